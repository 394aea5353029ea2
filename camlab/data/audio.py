"""Cry-detector audio data: soundfile I/O, 16 kHz mono resampling, recording-grouped splits, mixing augmentation.

Resampling: soxr (Robinson, "The SoX Resampler library", VHQ/HQ polyphase). Sources (``../shared/data/audio``):
positives Donate-a-Cry (8 kHz; split by the recording UUID in the file name so one recording never lands on both
sides), negatives ESC-50 (Piczak, ACM MM 2015; grouped by fold-clip id), Speech Commands background noise and digits
(Warden, arXiv:1804.03209; long background files split in contiguous time blocks, digits grouped by speaker).
Hard negatives read in place from Debian packages (``AudioDataConfig.extra_negatives``, installed by
``scripts/system_deps.sh``; CC BY-SA 3.0): the Asterisk prompts (real speech, 5 voices / languages, 8 kHz, grouped
by voice and prompt) and the Asterisk music on hold (long tracks, split in time like the background recordings);
``@packaged`` names the sound effects of seven Debian game/desktop packages (:mod:`camlab.data.packaged_audio`,
grouped by package and file).

Bandwidth: every clip is passed through ``band_limit_hz`` (8 kHz, the Donate-a-Cry rate) before anything else, so
positives and negatives share one bandwidth; the features also stop below 4 kHz (``FeatureConfig.fmax``).
Augmentation (at 8 kHz, then upsampled to 16 kHz like a band-limited microphone signal): cries mixed over household
noise at SNR -5..20 dB, cry onsets inside the window, gain changes, synthetic room impulse responses (exponentially
decaying noise tails after Lehmann & Johansson, "Prediction of energy decay in room impulse responses simulated with
an image-source model", JASA 124(1), 2008), and near-silence.
"""
from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from camlab import settings
from camlab.contract.audio_features import FeatureConfig, FeatureExtractor
from camlab.data.packaged_audio import resolve_negative_folder
from camlab.errors import InputFileError

SAMPLE_RATE = 16000
AUDIO_EXTS = (".wav", ".flac", ".ogg", ".oga", ".aiff", ".aif", ".au", ".mp3", ".opus", ".caf", ".w64", ".rf64")
# Debian-packaged real speech and music (scripts/system_deps.sh); read in place, never copied.
SYSTEM_NEGATIVES = ("/usr/share/asterisk/sounds", "/usr/share/asterisk/moh")
# Wesnoth's orchestral soundtrack (Debian wesnoth-1.16-music, GPL-2+, 41 tracks, 2.1 h, 44.1 kHz): strings, brass
# and woodwinds held like a cry; read in place by the cry_music release recipe, never redistributed
# (`scripts/system_deps.sh --train-audio`, run by `make models`, installs it; `--data` too).
MUSIC_PACKAGE = "wesnoth-1.16-music"
MUSIC_NEGATIVES = "/usr/share/games/wesnoth/1.16/data/core/music"
# Long no-cry files are split in time (the tail to validation), except music: a track's halves are one piece, so
# validation music must be tracks that training never heard.
WHOLE_TRACK_SOURCES = ("music",)
UUID_RE = re.compile(r"^([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})-")
MIN_DURATION_S = 0.1


# ------------------------------------------------------------------------------------------------------------ I/O
def read_audio(path: str | Path, min_duration_s: float = MIN_DURATION_S) -> tuple[np.ndarray, int]:
    """Read any file soundfile opens -> ``(mono float32 in [-1, 1], sample_rate)``.

    Stereo is averaged to mono; more than two channels, unreadable, empty, non-finite or shorter than
    ``min_duration_s`` files raise :class:`InputFileError` naming the file.
    """
    import soundfile as sf

    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{path}: audio file not found")
    try:
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises LibsndfileError/RuntimeError/TypeError on bad files
        raise InputFileError(f"{path}: not a readable audio file ({type(exc).__name__}: {exc})") from None
    if data.shape[0] == 0:
        raise InputFileError(f"{path}: audio file is empty (0 samples)")
    if data.shape[1] not in (1, 2):
        raise InputFileError(f"{path}: audio has {data.shape[1]} channels; expected mono or stereo")
    if sr <= 0:
        raise InputFileError(f"{path}: invalid sample rate {sr}")
    if data.shape[0] < min_duration_s * sr:
        raise InputFileError(f"{path}: audio is {data.shape[0] / sr:.3f} s long; need at least {min_duration_s} s")
    mono = data.mean(axis=1) if data.shape[1] == 2 else data[:, 0]
    if not np.all(np.isfinite(mono)):
        raise InputFileError(f"{path}: audio contains NaN or infinite samples")
    return np.ascontiguousarray(mono, dtype=np.float32), int(sr)


def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Band-limited resampling with soxr (HQ); works on 1-D signals or ``(samples, channels)`` arrays."""
    import soxr

    if sr_in == sr_out:
        return np.asarray(x, dtype=np.float32)
    return soxr.resample(np.asarray(x, dtype=np.float32), sr_in, sr_out, quality="HQ").astype(np.float32)


def load_audio(path: str | Path, sample_rate: int = SAMPLE_RATE, band_limit_hz: int | None = None,
               min_duration_s: float = MIN_DURATION_S) -> np.ndarray:
    """A file as mono float32 at ``sample_rate``; with ``band_limit_hz`` it first passes through that rate."""
    x, sr = read_audio(path, min_duration_s)
    if band_limit_hz and sr > band_limit_hz:
        x, sr = resample(x, sr, band_limit_hz), band_limit_hz
    return resample(x, sr, sample_rate)


def band_limit(x: np.ndarray, sample_rate: int, through_hz: int) -> np.ndarray:
    """Pass a signal through ``through_hz`` and back (removes everything above ``through_hz / 2``)."""
    if through_hz >= sample_rate:
        return np.asarray(x, dtype=np.float32)
    y = resample(resample(x, sample_rate, through_hz), through_hz, sample_rate)
    return y[: len(x)] if len(y) >= len(x) else np.pad(y, (0, len(x) - len(y)))


# ---------------------------------------------------------------------------------------------------- the index
@dataclass(frozen=True)
class Clip:
    """One stretch of one file: ``[start_s, end_s)`` (``end_s`` None = to the end), its label and split group."""

    path: Path
    label: int            # 1 cry, 0 no cry
    source: str           # donateacry | esc50 | background | digits | asterisk | moh | music | packaged | other
    group: str            # recordings that must stay on one side of the split
    start_s: float = 0.0
    end_s: float | None = None


def audio_root(root: str | Path | None = None) -> Path:
    """``<data root>/audio``; the embedded demo slice when the full data is absent."""
    if root is not None:
        return Path(root)
    full = settings.data_root() / "audio"
    return full if full.is_dir() else settings.demo_data_root() / "audio"


def _side(seed: int, group: str, val_fraction: float) -> str:
    h = hashlib.sha256(f"{seed}:{group}".encode()).digest()
    return "val" if int.from_bytes(h[:8], "big") / 2**64 < val_fraction else "train"


def recording_group(path: Path) -> tuple[str, str]:
    """``(source, group)`` of a file from its folder and name (Donate-a-Cry: the recording UUID)."""
    parts = [p.lower() for p in path.parts]
    name = path.stem
    if "donateacry" in parts or "infant_cry" in parts:
        m = UUID_RE.match(path.name)
        return "donateacry", "cry:" + (m.group(1).lower() if m else name)
    if "esc50_noise" in parts:
        return "esc50", "esc50:" + "-".join(name.split("-")[:2])
    if "spoken_digits" in parts:
        bits = name.split("_")
        return "digits", "digits:" + (bits[1] if len(bits) > 1 else name)
    if "speech_commands_background" in parts:
        return "background", "background:" + name
    if "asterisk" in parts and "moh" in parts:
        return "moh", "moh:" + name
    if "wesnoth" in parts and "music" in parts:
        return "music", "music:" + name
    if "packaged_audio" in parts and parts.index("packaged_audio") + 2 < len(parts):
        package = path.parts[parts.index("packaged_audio") + 1]
        return "packaged", f"packaged:{package}/{name}"
    if "asterisk" in parts and "sounds" in parts:
        i = parts.index("sounds")
        voice = path.parts[i + 1] if len(path.parts) > i + 2 else "sounds"
        rel = "/".join(path.parts[i + 2:-1] + (name,))
        return "asterisk", f"asterisk:{voice}/{rel}"
    return "other", "other:" + name


def group_folder(clip: "Clip") -> str:
    """The folder a clip is laid out under in a split folder (``cry/<it>/``, ``nocry/<it>/``), which is also the
    group its per-clip figures are reported under: the cry reason, the household set, the Asterisk voice, ``moh``."""
    parts = clip.path.parts
    if clip.source == "donateacry":
        return "donateacry_" + clip.path.parent.name
    if clip.source == "asterisk":
        i = [p.lower() for p in parts].index("sounds")
        return "asterisk_" + (parts[i + 1] if len(parts) > i + 2 else "sounds")
    if clip.source == "packaged":
        return "packaged_" + clip.path.parent.name
    if clip.source == "other":
        return clip.path.parent.name or "other"
    return clip.source


def _layout_name(clip: "Clip") -> str:
    """File name inside the group folder, unique per source file (Asterisk voices reuse prompt names per folder)."""
    if clip.source == "asterisk":
        i = [p.lower() for p in clip.path.parts].index("sounds")
        return "_".join(clip.path.parts[i + 2:])
    return clip.path.name


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTS)


@dataclass(frozen=True)
class SplitIndex:
    train: tuple[Clip, ...]
    val: tuple[Clip, ...]
    skipped: tuple[str, ...] = ()   # "path: reason" of files soundfile could not open

    def counts(self) -> dict:
        out: dict = {"skipped": len(self.skipped)}
        for name, clips in (("train", self.train), ("val", self.val)):
            out[name] = {"cry": sum(c.label for c in clips), "nocry": sum(1 - c.label for c in clips),
                         "cry_recordings": len({c.group for c in clips if c.label})}
        return out


def build_index(root: str | Path | None = None, val_fraction: float = 0.25, seed: int = 0,
                long_file_s: float = 30.0, extra_negatives: tuple[str, ...] = ()) -> SplitIndex:
    """Every clip of ``<root>/infant_cry`` (positives), ``<root>/household`` and each ``extra_negatives`` folder
    (negatives, read in place), split by group.

    Groups go to one side by ``sha256(seed, group)``; files longer than ``long_file_s`` (the background recordings,
    one per noise type; music-on-hold tracks) are split in time instead: the last ``val_fraction`` of each is
    validation (not music tracks: ``WHOLE_TRACK_SOURCES``). A missing ``extra_negatives`` folder is an error naming
    the install step.
    """
    import soundfile as sf

    root = audio_root(root)
    cry_dir, house_dir = root / "infant_cry", root / "household"
    if not cry_dir.is_dir() or not house_dir.is_dir():
        raise InputFileError(f"{root}: expected audio folders 'infant_cry/' and 'household/' (see the data README)")
    train: list[Clip] = []
    val: list[Clip] = []
    skipped: list[str] = []
    folders = [(1, cry_dir), (0, house_dir)]
    for extra in extra_negatives:
        extra = resolve_negative_folder(extra)
        if not Path(extra).is_dir():
            raise InputFileError(f"{extra}: hard-negative folder missing; `make sysdeps` installs the Debian speech "
                                 "and music-on-hold packages, `scripts/system_deps.sh --train-audio` (run by "
                                 "`make models`) the sound effects and the Wesnoth music")
        folders.append((0, Path(extra)))
    for label, folder in folders:
        for path in _files(folder):
            source, group = recording_group(path)
            try:
                info = sf.info(str(path))
            except Exception as exc:
                skipped.append(f"{path}: not readable by soundfile ({type(exc).__name__})")
                continue
            dur = info.duration
            if info.frames <= 0:
                skipped.append(f"{path}: audio file is empty (0 samples)")
                continue
            if info.channels not in (1, 2):
                skipped.append(f"{path}: audio has {info.channels} channels; expected mono or stereo")
                continue
            if dur < MIN_DURATION_S:
                skipped.append(f"{path}: audio is {dur:.3f} s long; need at least {MIN_DURATION_S} s")
                continue
            if label == 0 and dur > long_file_s and source not in WHOLE_TRACK_SOURCES:
                cut = round(dur * (1.0 - val_fraction), 3)
                train.append(Clip(path, 0, source, group, 0.0, cut))
                val.append(Clip(path, 0, source, group, cut, None))
                continue
            (val if _side(seed, group, val_fraction) == "val" else train).append(Clip(path, label, source, group))
    if not any(c.label for c in train) or not any(c.label for c in val):
        raise InputFileError(f"{root}: too few cry recordings for a train/validation split")
    return SplitIndex(tuple(train), tuple(val), tuple(skipped))


def index_for(cfg: "AudioDataConfig") -> SplitIndex:
    """:func:`build_index` of a data config (root, split fraction and seed, extra no-cry folders)."""
    return build_index(cfg.root, cfg.val_fraction, cfg.split_seed, extra_negatives=tuple(cfg.extra_negatives))


# ------------------------------------------------------------------------------------------------ waveform cache
def _cache_key(path: Path, rate: int) -> str:
    st = path.stat()
    return hashlib.sha1(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{rate}".encode()).hexdigest()


def cached_waveform(path: Path, rate: int) -> np.ndarray:
    """The whole file mono at ``rate`` (band-limited to it), cached as .npy under ``cache_root()/audio/wave``."""
    from camlab.io_utils import atomic_write_bytes
    import io

    cache = settings.cache_root() / "audio" / "wave" / f"{_cache_key(path, rate)}.npy"
    if cache.is_file():
        try:
            return np.load(cache)
        except Exception:
            pass
    x, sr = read_audio(path)
    x = resample(x, sr, rate)
    buf = io.BytesIO()
    np.save(buf, x.astype(np.float32))
    atomic_write_bytes(cache, buf.getvalue())
    return x


def clip_waveform(clip: Clip, rate: int) -> np.ndarray:
    x = cached_waveform(clip.path, rate)
    a = int(round(clip.start_s * rate))
    b = len(x) if clip.end_s is None else int(round(clip.end_s * rate))
    return x[a:b]


# -------------------------------------------------------------------------------------------------- augmentation
@dataclass(frozen=True)
class AugmentConfig:
    """Mixing augmentation for training windows (all levels in dB)."""

    snr_db: tuple[float, float] = (-5.0, 20.0)       # cry over household noise
    p_noise: float = 0.85                            # fraction of positives mixed with noise
    level_dbfs: tuple[float, float] = (-45.0, -8.0)  # window RMS after the gain change
    p_reverb: float = 0.4
    rt60_s: tuple[float, float] = (0.15, 0.8)
    p_onset: float = 0.3                             # positives whose cry starts inside the window
    min_cry_s: float = 0.4                           # at least this much cry in such a window
    p_silence: float = 0.08                          # negatives that are (near-)silence
    p_neg_mix: float = 0.3                           # negatives made of two household sounds
    p_hard: float = 0.5                              # negatives drawn from mined hard spots (once mining ran)
    p_speed: float = 0.0                             # windows (both classes) played faster/slower ...
    speed: tuple[float, float] = (0.85, 1.18)        # ... by a factor in this range (pitch and tempo together)
    p_synth: float = 0.0                             # negatives that are a synthetic siren or bell (over noise)

    def __post_init__(self):
        for name in ("p_noise", "p_reverb", "p_onset", "p_silence", "p_neg_mix", "p_hard", "p_speed", "p_synth"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1]")
        for name in ("snr_db", "level_dbfs", "rt60_s", "speed"):
            lo, hi = getattr(self, name)
            if lo > hi:
                raise ValueError(f"{name} must be [low, high] with low <= high, got {[lo, hi]}")
        if self.rt60_s[0] <= 0:
            raise ValueError("rt60_s must be > 0")
        if not 0.5 <= self.speed[0] <= self.speed[1] <= 2.0:
            raise ValueError(f"speed must be [low, high] within [0.5, 2.0], got {list(self.speed)}")


@dataclass(frozen=True)
class AudioDataConfig:
    root: str | None = None          # folder holding infant_cry/ and household/; None = data root (or demo slice)
    val_fraction: float = 0.25
    split_seed: int = 0
    band_limit_hz: int = 8000        # every clip passes through this rate
    positive_fraction: float = 0.5
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    extra_negatives: tuple[str, ...] = ()   # more no-cry folders read in place (e.g. SYSTEM_NEGATIVES)
    balance_sources: bool = False    # no-cry draws: every source (esc50, asterisk, moh, ...) gets an equal share

    def __post_init__(self):
        if not 0.05 <= self.val_fraction <= 0.5:
            raise ValueError(f"val_fraction must be in [0.05, 0.5], got {self.val_fraction}")
        if self.band_limit_hz < 2 * 4000 or self.band_limit_hz > SAMPLE_RATE:
            raise ValueError(f"band_limit_hz must be in [8000, {SAMPLE_RATE}], got {self.band_limit_hz}")
        if not 0.05 <= self.positive_fraction <= 0.95:
            raise ValueError("positive_fraction must be in [0.05, 0.95]")


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)) + 1e-20))


def _limit(x: np.ndarray, peak: float) -> np.ndarray:
    """Scale down (never clip: clipping would add harmonics above the band limit) so that max |x| <= peak."""
    m = float(np.max(np.abs(x))) if x.size else 0.0
    return (x * (peak / m) if m > peak else x).astype(np.float32)


def synthetic_rir(rate: int, rt60_s: float, rng: np.random.Generator) -> np.ndarray:
    """A room impulse response: direct path, a few early reflections, exponentially decaying diffuse tail."""
    n = int(rate * min(rt60_s * 1.2, 1.0)) + 1
    t = np.arange(n) / rate
    tail = rng.standard_normal(n) * np.exp(-6.9078 * t / rt60_s)   # -60 dB at rt60
    onset = int(rate * rng.uniform(0.002, 0.01))
    tail[:onset] = 0.0
    h = tail * 10 ** (rng.uniform(-12, -3) / 20) / (np.sqrt(np.sum(tail ** 2)) + 1e-12)
    h[0] = 1.0
    for _ in range(rng.integers(2, 6)):
        h[int(rate * rng.uniform(0.003, 0.03))] += rng.uniform(-0.5, 0.5)
    return (h / np.max(np.abs(h))).astype(np.float32)


def synthetic_siren(n: int, rate: int, rng: np.random.Generator) -> np.ndarray:
    """An electronic siren: a harmonic tone (odd harmonics, 1/h, below 0.48 ``rate``) swept like the common
    patterns (wail: 2-6 s sweeps, yelp: 0.15-0.4 s sweeps, hi-lo: two alternating tones), e.g. the tone generators
    of emergency-vehicle sirens (SAE J1849 lists wail/yelp/hi-lo). Tonal and pitched like a cry, but steady."""
    t = np.arange(n) / rate + rng.uniform(0, 10)
    lo = rng.uniform(450, 900)
    hi = lo * rng.uniform(1.3, 2.2)
    kind = rng.integers(3)
    if kind == 2:      # hi-lo
        period = rng.uniform(0.8, 2.0)
        f = np.where((t % period) < period / 2, lo, hi)
    else:              # wail (slow) or yelp (fast) triangle sweep
        period = rng.uniform(2.0, 6.0) if kind == 0 else rng.uniform(0.15, 0.4)
        tri = 2 * np.abs((t / period) % 1.0 - 0.5)
        f = lo + (hi - lo) * tri
    phase = 2 * np.pi * np.cumsum(f) / rate
    x = np.zeros(n)
    for h in range(1, 12, 2):
        if h * hi >= 0.48 * rate:
            break
        x += np.sin(h * phase) / h
    return x.astype(np.float32)


def synthetic_bell(n: int, rate: int, rng: np.random.Generator) -> np.ndarray:
    """Struck bells: inharmonic partials with exponential decays (church-bell partial ratios hum 0.5, prime 1,
    tierce 1.2, quint 1.5, nominal 2, upper partials 2.5-4; Rossing, "The Science of Sound", ch. 13), higher ones
    decaying faster, struck at random times (ringing, a door chime)."""
    f0 = rng.uniform(200, 1100)
    ratios = np.array([0.5, 1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0]) * rng.uniform(0.97, 1.03, 8)
    ratios = ratios[ratios * f0 < 0.48 * rate]
    amps = rng.uniform(0.2, 1.0, ratios.size)
    t60 = rng.uniform(1.0, 4.0) / np.sqrt(ratios)
    x = np.zeros(n)
    pos = -int(rng.uniform(0, 1.5) * rate)
    while pos < n:
        a = max(pos, 0)
        tt = (np.arange(a, n) - pos) / rate
        for r, amp, d in zip(ratios, amps, t60):
            x[a:] += amp * np.exp(-6.9078 * tt / d) * np.sin(2 * np.pi * r * f0 * tt + rng.uniform(0, 6.3))
        pos += int(rng.uniform(0.4, 2.5) * rate)
    return x.astype(np.float32)


def negative_weights(lengths, sources, balance_sources: bool = False) -> np.ndarray:
    """Draw probabilities of no-cry clips: ``sqrt(length)``; with ``balance_sources`` normalised within each source
    so every source gets the same share (thousands of short speech prompts must not crowd out the pets and taps)."""
    w = np.asarray(lengths, dtype=np.float64) ** 0.5
    if balance_sources:
        src = np.asarray(sources)
        for s in np.unique(src):
            w[src == s] /= w[src == s].sum()
    return w / w.sum()


class WindowSampler:
    """Draws labelled, augmented 1 s training windows from a list of clips (all at ``band_limit_hz``)."""

    MARGIN_S = 0.05  # resampler edge margin cut away after upsampling

    def __init__(self, clips, cfg: AudioDataConfig, feature_cfg: FeatureConfig):
        self.cfg = cfg
        self.fcfg = feature_cfg
        self.rate = cfg.band_limit_hz
        self.win = int(round(feature_cfg.window_s * self.rate))
        self.margin = int(round(self.MARGIN_S * self.rate))
        self.n = self.win + 2 * self.margin
        self.pos = [w for w in (self._load(c) for c in clips if c.label == 1) if w is not None]
        negs = [(c, self._load(c)) for c in clips if c.label == 0]
        self.neg = [w for _, w in negs if w is not None]
        self.neg_sources = [c.source for c, w in negs if w is not None]
        if not self.pos or not self.neg:
            raise InputFileError("need at least one cry and one no-cry clip to sample training windows")
        self.neg_weights = negative_weights([len(w) for w in self.neg], self.neg_sources, cfg.balance_sources)
        self.fx = FeatureExtractor(feature_cfg)
        self.hard: list[tuple[int, int]] = []   # (negative index, start sample at ``rate``) of mined hard windows
        self.last_hard = np.zeros(0, bool)       # per window of the last ``windows()`` call: cropped at a hard spot
        self._last_hard = False

    def set_hard_negatives(self, spots) -> None:
        """Hard-negative mining (Sung & Poggio, "Example-based learning for view-based human face detection",
        PAMI 20(1), 1998): ``[(negative index, start sample at band_limit_hz)]`` of no-cry windows the current
        model scores high; a ``p_hard`` share of later negative windows is cropped around them."""
        self.hard = [(int(i), int(a)) for i, a in spots if 0 <= int(i) < len(self.neg)]

    def _hard_crop(self, rng, n: int | None = None) -> np.ndarray:
        n = n or self.n
        i, a = self.hard[rng.integers(len(self.hard))]
        x = self.neg[i]
        a = int(np.clip(a - self.margin + rng.integers(-self.rate // 8, self.rate // 8 + 1), 0, max(0, len(x) - n)))
        c = x[a:a + n].astype(np.float32)
        return np.pad(c, (0, n - len(c))) if len(c) < n else c

    def _speed(self, rng) -> float:
        a = self.cfg.augment
        return float(rng.uniform(*a.speed)) if a.p_speed and rng.random() < a.p_speed else 1.0

    def _play(self, source, speed: float, rng) -> np.ndarray:
        """``source(n)`` -> ``n`` samples, played ``speed`` times faster (speed perturbation: Ko et al., "Audio
        augmentation for speech recognition", Interspeech 2015): ``ceil(n * speed)`` source samples resampled to
        ``n``, so pitch and tempo scale together (a meow stays a meow, a cry stays a cry)."""
        if speed == 1.0:
            return source(self.n)
        import soxr

        need = int(np.ceil(self.n * speed)) + 8
        y = soxr.resample(source(need), self.rate * speed, self.rate, quality="HQ").astype(np.float32)
        return y[: self.n] if len(y) >= self.n else np.pad(y, (0, self.n - len(y)))

    def _load(self, clip: Clip):
        try:
            x = clip_waveform(clip, self.rate)
        except InputFileError:
            return None
        return x if len(x) > 0.2 * self.rate else None

    def _crop(self, x: np.ndarray, n: int, rng) -> np.ndarray:
        if len(x) <= n:
            off = rng.integers(0, n - len(x) + 1)
            return np.pad(x, (off, n - len(x) - off))
        a = rng.integers(0, len(x) - n + 1)
        return x[a:a + n].astype(np.float32)

    def _loud_crop(self, x, n, rng, tries=3):
        best, best_e = None, -1.0
        for _ in range(tries):
            c = self._crop(x, n, rng)
            e = _rms(c)
            if e > best_e:
                best, best_e = c, e
        return best

    def _noise(self, rng, n: int | None = None) -> np.ndarray:
        i = rng.choice(len(self.neg), p=self.neg_weights)
        return self._crop(self.neg[i], n or self.n, rng)

    def _reverb(self, x, rng):
        h = synthetic_rir(self.rate, rng.uniform(*self.cfg.augment.rt60_s), rng)
        n = len(x) + len(h) - 1
        nfft = 1 << (n - 1).bit_length()
        y = np.fft.irfft(np.fft.rfft(x, nfft) * np.fft.rfft(h, nfft), nfft)[: len(x)]   # linear convolution
        return y.astype(np.float32)

    def _window_8k(self, label: int, rng) -> np.ndarray:
        a = self.cfg.augment
        n = self.n
        if label == 1:
            src = self.pos[rng.integers(len(self.pos))]
            cry = self._play(lambda m: self._loud_crop(src, m, rng), self._speed(rng), rng)
            if rng.random() < a.p_onset:   # the cry starts inside the window (alarm latency)
                start = self.margin + rng.integers(0, max(1, self.win - int(a.min_cry_s * self.rate)))
                cry = np.concatenate([np.zeros(start, np.float32), cry[: n - start]])
            if rng.random() < a.p_reverb:
                cry = self._reverb(cry, rng)
            x = cry
            if rng.random() < a.p_noise:
                noise = self._noise(rng)
                snr = rng.uniform(*a.snr_db)
                active = cry[np.abs(cry) > 1e-4]
                ref = _rms(active) if active.size else _rms(cry)
                x = cry + noise * (ref / _rms(noise)) * 10 ** (-snr / 20)
        else:
            if rng.random() < a.p_silence:
                lvl = 10 ** (rng.uniform(-90, -55) / 20)
                x = self._noise(rng)
                return (x / _rms(x) * lvl).astype(np.float32)
            if a.p_synth and rng.random() < a.p_synth:   # a synthetic siren or bell, often over household noise
                x = (synthetic_siren if rng.random() < 0.5 else synthetic_bell)(n, self.rate, rng)
                if rng.random() < 0.7:
                    y = self._noise(rng)
                    x = x + y * (_rms(x) / _rms(y)) * 10 ** (-rng.uniform(0, 20) / 20)
            else:
                hard = bool(self.hard) and rng.random() < a.p_hard
                self._last_hard = hard
                x = self._play(lambda m: self._hard_crop(rng, m) if hard else self._noise(rng, m), self._speed(rng),
                               rng)
            if rng.random() < a.p_neg_mix:
                y = self._noise(rng)
                x = x + y * (_rms(x) / _rms(y)) * 10 ** (-rng.uniform(-10, 10) / 20)
            if rng.random() < a.p_reverb:
                x = self._reverb(x, rng)
        lvl = 10 ** (rng.uniform(*a.level_dbfs) / 20)
        x = x * (lvl / _rms(x))
        return _limit(x, 0.9)

    def windows(self, count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``(waves (count, window_samples) at 16 kHz, labels (count,) float32)``."""
        labels = (rng.random(count) < self.cfg.positive_fraction).astype(np.float32)
        self.last_hard = np.zeros(count, bool)   # which windows were cropped around mined hard negatives
        if count == 0:
            return np.zeros((0, self.fcfg.window_samples), np.float32), labels
        cols = []
        for j, lab in enumerate(labels):
            self._last_hard = False
            cols.append(self._window_8k(int(lab), rng))
            self.last_hard[j] = self._last_hard
        w8 = np.stack(cols, axis=1)       # (n, count)
        w16 = resample(w8, self.rate, self.fcfg.sample_rate)
        m = int(round(self.MARGIN_S * self.fcfg.sample_rate))
        waves = np.ascontiguousarray(w16[m:m + self.fcfg.window_samples].T)
        waves = np.stack([_limit(w, 0.999) for w in waves]) if len(waves) else waves
        if waves.shape[1] < self.fcfg.window_samples:
            waves = np.pad(waves, ((0, 0), (0, self.fcfg.window_samples - waves.shape[1])))
        return waves, labels

    def features(self, count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``(inputs (count, 1, n_bins, n_frames) float32 normalised, labels (count,))``."""
        waves, labels = self.windows(count, rng)
        return self.fx.batch(waves), labels


def cached_features(name: str, key: dict, make) -> tuple[np.ndarray, np.ndarray]:
    """Feature sets keyed by their recipe, cached as .npz under ``cache_root()/audio/features``."""
    import io
    import json

    from camlab.io_utils import atomic_write_bytes

    digest = hashlib.sha1(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]
    path = settings.cache_root() / "audio" / "features" / f"{name}-{digest}.npz"
    if path.is_file():
        try:
            with np.load(path) as z:
                return z["x"], z["y"]
        except Exception:
            pass
    x, y = make()
    buf = io.BytesIO()
    np.savez(buf, x=x, y=y)
    atomic_write_bytes(path, buf.getvalue())
    return x, y


def calibration_windows(n: int, seed: int = 0, feature_cfg: FeatureConfig | None = None,
                        data_cfg: AudioDataConfig | None = None) -> np.ndarray:
    """``n`` model inputs ``(n, 1, n_bins, n_frames)`` float32 (normalised as the manifest says) for INT8
    calibration: augmented training-split windows (cries over household noise and household noise alone)."""
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    data_cfg = data_cfg or AudioDataConfig()
    feature_cfg = feature_cfg or FeatureConfig()
    index = index_for(data_cfg)
    sampler = WindowSampler(index.train, data_cfg, feature_cfg)
    x, _ = sampler.features(n, np.random.default_rng(seed))
    return x


def write_split_dir(split: str, out_dir: str | Path, data_cfg: AudioDataConfig | None = None) -> dict:
    """Lay out a split as ``out_dir/cry/<group>/`` and ``out_dir/nocry/<group>/`` (what ``camlab eval cry --data``
    reads; ``<group>`` is :func:`group_folder`, so per-clip figures can be grouped by folder).

    Whole files are linked; time-split parts of long files are written as FLAC excerpts at their own rate.
    A folder reused from an earlier run is brought to exactly this split: files the split does not name are
    removed, links that point elsewhere and excerpts of another length are rewritten (a stale file would change
    every metric computed on the folder without a trace). Returns the counts.
    """
    import os

    import soundfile as sf

    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    data_cfg = data_cfg or AudioDataConfig()
    index = index_for(data_cfg)
    out = Path(out_dir)
    counts = {"cry": 0, "nocry": 0}
    wanted: set[Path] = set()
    for clip in getattr(index, split):
        sub = out / ("cry" if clip.label else "nocry") / group_folder(clip)
        sub.mkdir(parents=True, exist_ok=True)
        if clip.start_s == 0.0 and clip.end_s is None:
            dst = sub / _layout_name(clip)
            src = clip.path.resolve()
            if not (dst.is_symlink() and Path(os.readlink(dst)) == src):
                dst.unlink(missing_ok=True)
                os.symlink(src, dst)
        else:
            x, sr = read_audio(clip.path)
            a = int(round(clip.start_s * sr))
            b = len(x) if clip.end_s is None else int(round(clip.end_s * sr))
            dst = sub / f"{clip.path.stem}_{clip.start_s:.1f}s.flac"
            if not _is_excerpt(dst, b - a, sr):
                if dst.is_symlink():
                    dst.unlink()
                tmp = dst.with_suffix(".tmp.flac")
                sf.write(str(tmp), x[a:b], sr, format="FLAC")
                os.replace(tmp, dst)
        wanted.add(dst)
        counts["cry" if clip.label else "nocry"] += 1
    for sub in (out / "cry", out / "nocry"):
        for f in sorted(sub.rglob("*"), reverse=True) if sub.is_dir() else ():
            if f not in wanted and (f.is_file() or f.is_symlink()):
                f.unlink()
            elif f.is_dir() and not f.is_symlink() and not any(f.iterdir()):
                f.rmdir()
    return counts


def _is_excerpt(path: Path, frames: int, rate: int) -> bool:
    """Whether ``path`` is already a plain FLAC file of ``frames`` samples at ``rate``."""
    import soundfile as sf

    if path.is_symlink() or not path.is_file():
        return False
    try:
        info = sf.info(str(path))
    except (RuntimeError, sf.LibsndfileError):
        return False
    return info.frames == frames and info.samplerate == rate and info.format == "FLAC"


#: the fields of AudioDataConfig that decide which clips land on which side of the split (and nothing else)
SPLIT_FIELDS = ("root", "val_fraction", "split_seed", "extra_negatives")


def split_config(data: "AudioDataConfig | dict") -> AudioDataConfig:
    """The split-deciding part of a recipe's data block (a config, or the dict a checkpoint's ``train_config``
    stores): the same split, without the augmentation and sampling settings."""
    get = data.get if isinstance(data, dict) else (lambda k, d=None: getattr(data, k, d))
    return AudioDataConfig(**{k: get(k) for k in SPLIT_FIELDS if get(k) is not None})


def check_split_is_the_checkpoints(checkpoint, meta: dict, n_val_cry: int, data_cfg: AudioDataConfig) -> None:
    """Refuse to score validation clips other than those the checkpoint's training held out: without the full data
    (a worktree with no ../shared/data) the loaders fall back to the embedded demo slice, and a release checkpoint
    trained with 101 validation cries would be scored on 16 without a word."""
    from camlab.errors import InputFileError

    recorded = (((meta or {}).get("split") or {}).get("val") or {}).get("cry")
    if recorded is not None and int(recorded) != int(n_val_cry):
        raise InputFileError(f"{checkpoint}: trained with {recorded} validation cries, but the split built from "
                             f"{audio_root(data_cfg.root)} holds {n_val_cry}: not the data it was trained on "
                             f"(data root {settings.data_root()}); set CAMLAB_DATA to it")


def split_dir(split: str = "val", data_cfg: AudioDataConfig | None = None) -> Path:
    """``write_split_dir`` into the cache (``cache_root()/audio/split-<split>-<recipe>``), reused when present."""
    data_cfg = data_cfg or AudioDataConfig()
    root = audio_root(data_cfg.root)
    extra = "|".join(data_cfg.extra_negatives)
    tag = hashlib.sha1(f"{root.resolve()}|{data_cfg.val_fraction}|{data_cfg.split_seed}|{extra}|layout2".encode()
                       ).hexdigest()[:10]
    out = settings.cache_root() / "audio" / f"split-{split}-{tag}"
    write_split_dir(split, out, data_cfg)
    return out


def duration_hours(clips) -> float:
    import soundfile as sf

    total = 0.0
    for c in clips:
        d = sf.info(str(c.path)).duration
        total += (d if c.end_s is None else c.end_s) - c.start_s
    return total / 3600.0


__all__ = ["AudioDataConfig", "AugmentConfig", "Clip", "SplitIndex", "WindowSampler", "band_limit", "build_index",
           "calibration_windows", "group_folder", "held_out_folders", "index_for", "load_audio", "negative_weights",
           "read_audio", "resample", "split_config", "split_dir", "write_split_dir"]


# ------------------------------------------------------------------------- sources read from Debian packages
#: ``tuxpaint-stamps-default`` (GPL-2, Bill Kendrick et al.): the stamps' sound effects (animals, household
#: appliances, instruments) and their spoken descriptions in ~15 languages, 3.1 h. Held out of every recipe (a
#: 2026-12-05 trial with it as hard negatives made validation worse), so it measures false alarms on a source the
#: model never heard (read in place, not redistributed).
TUXPAINT_STAMPS = Path("/usr/share/tuxpaint/stamps")
#: ``hedgewars-data`` (sounds GFDL-1.3): 15 voice packs of short expressive vocalisations (laughs, "ow", "nooo",
#: screams, taunts) and the game's sound effects. No recipe reads it (a test checks): held out of every training to
#: measure false alarms on sounds the model never heard (read for measurement, not redistributed).
HEDGEWARS_SOUNDS = Path("/usr/share/games/hedgewars/Data/Sounds")
PACKAGE_HINT = "install it with `bash scripts/system_deps.sh --data` (done by `make bench`)"


#: Whole sources the benchmarks score and no recipe ever trains on: ``<audio root>/held_out/<source>/`` and
#: ``<folder>/<source>/`` for each folder in this setting (os.pathsep-separated), each source in the layout of
#: ``camlab eval cry --data`` (``cry/<group>/`` and ``nocry/<group>/``). Training reads only ``infant_cry/``,
#: ``household/`` and a recipe's ``extra_negatives``, so a source put here stays unheard.
HELD_OUT_SETTING = "CAMLAB_CRY_HELD_OUT"


def held_out_folders(root: str | Path | None = None) -> dict[str, Path]:
    """``{source name: folder}`` of every held-out source (see :data:`HELD_OUT_SETTING`); a later root wins a name."""
    roots = [audio_root(root) / "held_out"]
    for entry in filter(None, os.environ.get(HELD_OUT_SETTING, "").split(os.pathsep)):
        if not Path(entry).is_dir():
            raise InputFileError(f"{HELD_OUT_SETTING}: {entry} is not a folder (expected folders of held-out sources)")
        roots.append(Path(entry))
    found: dict[str, Path] = {}
    for base in roots:
        if not base.is_dir():
            continue
        for source in sorted(p for p in base.iterdir() if p.is_dir()):
            if not ((source / "cry").is_dir() and (source / "nocry").is_dir()):
                raise InputFileError(f"{source}: a held-out source needs cry/ and nocry/ sub-folders (the layout of "
                                     "`camlab eval cry --data`)")
            found[source.name] = source
    return found


def _package_files(root: Path, what: str) -> list[Path]:
    if not root.is_dir():
        raise InputFileError(f"{root}: {what} not installed; " + PACKAGE_HINT)
    return sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_EXTS and p.is_file())


def tuxpaint_groups(root: str | Path = TUXPAINT_STAMPS) -> dict[str, list[Path]]:
    """Tux Paint's stamp audio as two groups: ``tuxpaint_sound_effects`` (the stamps' own sounds) and
    ``tuxpaint_spoken`` (``*_desc*`` descriptions and the spoken letters/numbers under ``symbols/``)."""
    root = Path(root)
    files = _package_files(root, "Tux Paint stamps (Debian tuxpaint-stamps-default)")
    spoken = [p for p in files if "_desc" in p.stem or p.relative_to(root).parts[0] == "symbols"]
    said = set(spoken)
    return {"tuxpaint_sound_effects": [p for p in files if p not in said], "tuxpaint_spoken": spoken}


def hedgewars_groups(root: str | Path = HEDGEWARS_SOUNDS) -> dict[str, list[Path]]:
    """Hedgewars' sounds as three groups: ``hedgewars_laughs`` (each voice pack's ``Laugh*``), ``hedgewars_voices``
    (every other vocalisation under ``voices/``) and ``hedgewars_effects`` (the game's other sounds)."""
    root = Path(root)
    files = _package_files(root, "Hedgewars sounds (Debian hedgewars-data)")
    voices = [p for p in files if p.relative_to(root).parts[0] == "voices"]
    laughs = [p for p in voices if p.stem.lower().startswith("laugh")]
    voiced = set(voices)
    return {"hedgewars_laughs": laughs, "hedgewars_voices": [p for p in voices if p not in set(laughs)],
            "hedgewars_effects": [p for p in files if p not in voiced]}
