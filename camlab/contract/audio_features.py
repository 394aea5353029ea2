"""Log-mel / MFCC features and streaming windows for the cry detector: the one implementation that training,
evaluation and the camera (device_sim) all run, numpy only, driven by the manifest's ``features`` block.

Mel scale and filter bank: Slaney, "Auditory Toolbox", Interval Research TR-1998-010 (the librosa default), or the
HTK formula (Young et al., "The HTK Book", §5.4) as YAMNet uses. Short-time Fourier transform framing follows
``librosa.stft(center=False)``: frames of ``n_fft`` samples every ``hop_length``, a periodic Hann window of
``win_length`` centred in the frame. MFCC is the orthonormal DCT-II of the dB log-mel (Davis & Mermelstein, IEEE
TASSP 28(4), 1980; as ``librosa.feature.mfcc``). A golden test holds all of it to librosa within a stated tolerance.

Streaming (what the device does): a 16 kHz mono float signal in [-1, 1] is cut into ``window_s`` windows (0.982 s,
96 frames) every ``hop_s`` (0.5 s); each window gives one ``[1, 1, n_mels, n_frames]`` input, normalised as ``(log_mel - mean) / std``. The
model emits one raw logit per window; :class:`CryAlarm` turns the window scores into alarms (k of the last n windows
above the probability threshold, then a refractory period), as the manifest's ``decode`` block says.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Iterator

import numpy as np

from camlab.errors import InputFileError


@dataclass(frozen=True)
class FeatureConfig:
    """Everything needed to recompute the model's input from 16 kHz samples (the manifest ``features`` block).

    ``fmax`` stays below 4 kHz on purpose: the Donate-a-Cry positives are 8 kHz recordings, so nothing above their
    Nyquist frequency may reach the model (otherwise "no energy above 4 kHz" becomes the cry cue).
    """

    kind: str = "log_mel"           # "log_mel" | "mfcc"
    sample_rate: int = 16000
    window_s: float = 0.982         # streaming window (one model input): 512 + 95 * 160 samples = 96 frames
    hop_s: float = 0.5              # streaming hop
    n_fft: int = 512
    win_length: int = 400           # 25 ms Hann
    hop_length: int = 160           # 10 ms
    power: float = 2.0              # 2: power spectrogram, 1: magnitude
    n_mels: int = 32                # 32 x 96 input: NPU toolchains want H, W multiples of 32
    fmin: float = 50.0
    fmax: float = 3800.0
    mel_scale: str = "slaney"       # "slaney" | "htk"
    mel_norm: str | None = "slaney"  # "slaney" (area-normalised triangles) | None
    log_offset: float = 1e-6        # log(mel + log_offset), natural log
    n_mfcc: int = 20                # used when kind == "mfcc" (MFCC of 10*log10(mel + log_offset))
    mean: float = -7.0              # normalisation: input = (feature - mean) / std
    std: float = 4.0

    def __post_init__(self):
        if self.kind not in ("log_mel", "mfcc"):
            raise ValueError(f"kind must be 'log_mel' or 'mfcc', got {self.kind!r}")
        if self.mel_scale not in ("slaney", "htk"):
            raise ValueError(f"mel_scale must be 'slaney' or 'htk', got {self.mel_scale!r}")
        if self.mel_norm not in ("slaney", None):
            raise ValueError(f"mel_norm must be 'slaney' or null, got {self.mel_norm!r}")
        if not 0 <= self.fmin < self.fmax <= self.sample_rate / 2:
            raise ValueError(f"need 0 <= fmin < fmax <= sample_rate/2, got fmin={self.fmin} fmax={self.fmax}")
        if self.win_length > self.n_fft or self.win_length < 1 or self.hop_length < 1:
            raise ValueError("need 1 <= win_length <= n_fft and hop_length >= 1")
        if self.window_samples < self.n_fft:
            raise ValueError(f"window_s={self.window_s} is shorter than one FFT frame")
        if self.hop_s <= 0 or self.std <= 0 or self.log_offset <= 0 or self.power <= 0:
            raise ValueError("hop_s, std, log_offset and power must be > 0")

    @property
    def window_samples(self) -> int:
        return int(round(self.window_s * self.sample_rate))

    @property
    def hop_samples(self) -> int:
        return int(round(self.hop_s * self.sample_rate))

    @property
    def n_frames(self) -> int:
        """STFT frames per streaming window (center=False)."""
        return 1 + (self.window_samples - self.n_fft) // self.hop_length

    @property
    def n_bins(self) -> int:
        """Feature rows: n_mels for log-mel, n_mfcc for MFCC."""
        return self.n_mels if self.kind == "log_mel" else self.n_mfcc

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        return (1, 1, self.n_bins, self.n_frames)

    def to_manifest(self) -> dict:
        """The manifest ``features`` block (plain JSON)."""
        d = asdict(self)
        d.update({"window": "hann_periodic", "center": False, "log": "natural", "channels": "mono",
                  "sample_format": "float32 in [-1, 1]", "n_frames": self.n_frames,
                  "layout": "[1, 1, n_bins, n_frames] (bins low to high frequency, frames in time order)",
                  "normalisation": {"type": "global", "mean": self.mean, "std": self.std,
                                    "formula": "(feature - mean) / std"}})
        return d

    @classmethod
    def from_manifest(cls, block: dict, origin: str = "manifest 'features'") -> "FeatureConfig":
        """Rebuild from a manifest ``features`` block (derived keys are checked, not trusted)."""
        if not isinstance(block, dict):
            raise InputFileError(f"{origin}: expected a mapping, got {type(block).__name__}")
        names = {f.name for f in fields(cls)}
        try:
            cfg = cls(**{k: v for k, v in block.items() if k in names})
        except (TypeError, ValueError) as exc:
            raise InputFileError(f"{origin}: {exc}") from None
        if "n_frames" in block and int(block["n_frames"]) != cfg.n_frames:
            raise InputFileError(f"{origin}: field 'n_frames' is {block['n_frames']}, the parameters give "
                                 f"{cfg.n_frames}")
        return cfg


# ----------------------------------------------------------------------------------------------- mel filter bank
def hz_to_mel(f, htk: bool = False):
    """Hz -> mel (Slaney's piecewise linear/log scale, or HTK's 2595 log10(1 + f/700))."""
    f = np.asarray(f, dtype=np.float64)
    if htk:
        return 2595.0 * np.log10(1.0 + f / 700.0)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = math.log(6.4) / 27.0
    lin = f / f_sp
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, min_log_hz) / min_log_hz) / logstep, lin)


def mel_to_hz(m, htk: bool = False):
    """mel -> Hz, inverse of :func:`hz_to_mel`."""
    m = np.asarray(m, dtype=np.float64)
    if htk:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = math.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


def mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, fmin: float, fmax: float, htk: bool = False,
                   norm: str | None = "slaney") -> np.ndarray:
    """Triangular mel filters ``(n_mels, 1 + n_fft // 2)`` float64 (as ``librosa.filters.mel``)."""
    fft_freqs = np.linspace(0.0, sample_rate / 2.0, 1 + n_fft // 2)
    mel_pts = mel_to_hz(np.linspace(hz_to_mel(fmin, htk), hz_to_mel(fmax, htk), n_mels + 2), htk)
    fdiff = np.diff(mel_pts)
    ramps = mel_pts[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    if norm == "slaney":
        weights *= (2.0 / (mel_pts[2:n_mels + 2] - mel_pts[:n_mels]))[:, None]
    return weights


def hann_periodic(n: int) -> np.ndarray:
    """Periodic (DFT-even) Hann window of length ``n`` (``scipy.signal.get_window('hann', n)``)."""
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)


def dct_ortho(n_out: int, n_in: int) -> np.ndarray:
    """Orthonormal DCT-II matrix ``(n_out, n_in)`` (``scipy.fft.dct(type=2, norm='ortho')`` rows)."""
    k = np.arange(n_out)[:, None]
    n = np.arange(n_in)[None, :]
    basis = np.cos(np.pi * k * (2 * n + 1) / (2 * n_in)) * math.sqrt(2.0 / n_in)
    basis[0] /= math.sqrt(2.0)
    return basis


class FeatureExtractor:
    """Precomputed window and filter bank for one :class:`FeatureConfig`; call it on samples."""

    def __init__(self, cfg: FeatureConfig):
        self.cfg = cfg
        win = hann_periodic(cfg.win_length)
        pad = (cfg.n_fft - cfg.win_length) // 2
        self.window = np.zeros(cfg.n_fft, dtype=np.float64)
        self.window[pad:pad + cfg.win_length] = win
        self.filters = mel_filterbank(cfg.sample_rate, cfg.n_fft, cfg.n_mels, cfg.fmin, cfg.fmax,
                                      htk=cfg.mel_scale == "htk", norm=cfg.mel_norm)
        self.dct = dct_ortho(cfg.n_mfcc, cfg.n_mels) if cfg.kind == "mfcc" else None
        self._filters_t = np.ascontiguousarray(self.filters.T)
        self._filters_t32 = self._filters_t.astype(np.float32)
        self._window32 = self.window.astype(np.float32)

    def stft_power(self, y: np.ndarray) -> np.ndarray:
        """``|STFT|**power`` ``(1 + n_fft//2, n_frames)`` float64 of a 1-D signal (center=False framing)."""
        cfg = self.cfg
        y = np.asarray(y, dtype=np.float64)
        if y.ndim != 1:
            raise ValueError(f"expected a 1-D signal, got shape {y.shape}")
        if y.size < cfg.n_fft:
            raise ValueError(f"signal of {y.size} samples is shorter than one frame ({cfg.n_fft})")
        frames = np.lib.stride_tricks.sliding_window_view(y, cfg.n_fft)[::cfg.hop_length]
        z = np.fft.rfft(frames * self.window, axis=-1)
        spec = z.real * z.real + z.imag * z.imag
        if cfg.power != 2.0:
            spec = spec ** (cfg.power / 2.0)
        return spec.T

    def mel(self, y: np.ndarray) -> np.ndarray:
        """Mel spectrogram ``(n_mels, n_frames)`` float64 (linear, before the log)."""
        return (self.stft_power(y).T @ self._filters_t).T

    def log_mel(self, y: np.ndarray) -> np.ndarray:
        """``ln(mel + log_offset)`` ``(n_mels, n_frames)`` float32."""
        return np.log(self.mel(y) + self.cfg.log_offset).astype(np.float32)

    def mfcc(self, y: np.ndarray) -> np.ndarray:
        """MFCC ``(n_mfcc, n_frames)`` float32: orthonormal DCT-II of ``10 log10(mel + log_offset)``."""
        dct = self.dct if self.dct is not None else dct_ortho(self.cfg.n_mfcc, self.cfg.n_mels)
        db = 10.0 * np.log10(self.mel(y) + self.cfg.log_offset)
        return (dct @ db).astype(np.float32)

    def features(self, y: np.ndarray) -> np.ndarray:
        """Un-normalised feature map ``(n_bins, n_frames)`` for ``cfg.kind``."""
        return self.log_mel(y) if self.cfg.kind == "log_mel" else self.mfcc(y)

    def source_input(self, window: np.ndarray) -> np.ndarray:
        """One window -> the un-normalised ``[1, 1, n_bins, n_frames]`` feature map (the manifest's "source" whose
        ``(source - inputs[0].mean) / inputs[0].std`` is the model input; ``Bundle.normalize`` does that step).
        Use either this + ``Bundle.normalize`` or :meth:`model_input`, never both."""
        cfg = self.cfg
        window = np.asarray(window, dtype=np.float32)
        if window.shape != (cfg.window_samples,):
            raise ValueError(f"expected a window of {cfg.window_samples} samples, got shape {window.shape}")
        return self.features(window)[None, None].astype(np.float32)

    def model_input(self, window: np.ndarray) -> np.ndarray:
        """One streaming window (``window_samples`` floats) -> normalised ``[1, 1, n_bins, n_frames]`` float32."""
        cfg = self.cfg
        window = np.asarray(window, dtype=np.float32)
        if window.shape != (cfg.window_samples,):
            raise ValueError(f"expected a window of {cfg.window_samples} samples, got shape {window.shape}")
        f = (self.features(window) - np.float32(cfg.mean)) / np.float32(cfg.std)
        return f[None, None].astype(np.float32)

    def batch(self, windows: np.ndarray) -> np.ndarray:
        """``(N, window_samples)`` -> ``(N, 1, n_bins, n_frames)`` float32."""
        windows = np.asarray(windows, dtype=np.float32)
        if windows.ndim != 2 or windows.shape[1] != self.cfg.window_samples:
            raise ValueError(f"expected (N, {self.cfg.window_samples}) windows, got shape {windows.shape}")
        cfg = self.cfg
        if len(windows) == 0:
            return np.zeros((0,) + cfg.input_shape[1:], np.float32)
        if len(windows) > 32:   # chunks that stay in cache
            return np.concatenate([self.batch(windows[i:i + 32]) for i in range(0, len(windows), 32)])
        # vectorised form of model_input over the batch (float32 FFT; agrees with model_input to ~1e-5)
        frames = np.lib.stride_tricks.sliding_window_view(windows, cfg.n_fft, axis=1)
        frames = frames[:, ::cfg.hop_length]
        z = np.fft.rfft(frames * self._window32, axis=-1)
        spec = z.real * z.real + z.imag * z.imag
        if cfg.power != 2.0:
            spec = spec ** (cfg.power / 2.0)
        mel = spec @ self._filters_t32                   # (N, n_frames, n_mels)
        if cfg.kind == "log_mel":
            feat = np.log(mel + cfg.log_offset)
        else:
            dct = self.dct if self.dct is not None else dct_ortho(cfg.n_mfcc, cfg.n_mels)
            feat = (10.0 * np.log10(mel + cfg.log_offset)) @ dct.T
        feat = (feat.astype(np.float32) - np.float32(cfg.mean)) / np.float32(cfg.std)
        return np.ascontiguousarray(feat.transpose(0, 2, 1))[:, None]


# ------------------------------------------------------------------------------------------------------ streaming
def sliding_windows(signal: np.ndarray, window_samples: int, hop_samples: int, pad_short: bool = True
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Cut a 1-D signal into windows as the device does: ``(windows (N, window_samples), end_sample (N,))``.

    The device emits a window each time ``hop_samples`` new samples arrived and at least ``window_samples`` are
    buffered, so window ``i`` covers ``[i*hop, i*hop + window)`` and becomes available at its end sample. A signal
    shorter than one window gives one zero-padded window when ``pad_short`` (else none).
    """
    x = np.asarray(signal, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f"expected a 1-D signal, got shape {x.shape}")
    if x.size < window_samples:
        if not pad_short or x.size == 0:
            return np.zeros((0, window_samples), np.float32), np.zeros(0, np.int64)
        return np.pad(x, (0, window_samples - x.size))[None], np.array([x.size], np.int64)
    starts = np.arange(0, x.size - window_samples + 1, hop_samples)
    view = np.lib.stride_tricks.sliding_window_view(x, window_samples)[starts]
    return np.ascontiguousarray(view), starts + window_samples


class StreamingWindower:
    """Incremental version of :func:`sliding_windows` for a live microphone: push blocks, get windows."""

    def __init__(self, window_samples: int, hop_samples: int):
        self.window = int(window_samples)
        self.hop = int(hop_samples)
        self._buf = np.zeros(0, np.float32)
        self._consumed = 0      # absolute sample index of _buf[0]
        self._next_start = 0    # absolute start of the next window

    def push(self, block: np.ndarray) -> Iterator[tuple[np.ndarray, int]]:
        """Append samples; yields ``(window, end_sample)`` for every window now complete."""
        block = np.asarray(block, dtype=np.float32).reshape(-1)
        self._buf = np.concatenate([self._buf, block])
        while self._next_start + self.window <= self._consumed + self._buf.size:
            off = self._next_start - self._consumed
            yield self._buf[off:off + self.window].copy(), self._next_start + self.window
            self._next_start += self.hop
        drop = max(0, self._next_start - self._consumed)
        drop = min(drop, self._buf.size)
        self._buf = self._buf[drop:]
        self._consumed += drop


# --------------------------------------------------------------------------------------------------- alarm logic
def sigmoid(x):
    x = np.asarray(x, dtype=np.float64)
    return 1.0 / (1.0 + np.exp(-np.clip(x, -60, 60)))


@dataclass
class CryAlarm:
    """Window scores -> alarms: fire when ``k`` of the last ``n`` windows have P(cry) >= ``threshold``, then stay
    quiet for ``refractory_s`` seconds (the manifest ``decode`` block: ``threshold``, ``alarm: {k, n,
    refractory_s}``, ``hop_s``)."""

    threshold: float = 0.5
    k: int = 2
    n: int = 3
    refractory_s: float = 10.0
    hop_s: float = 0.5
    _recent: list = field(default_factory=list, repr=False)
    _quiet_until: float = field(default=-math.inf, repr=False)

    @classmethod
    def from_decode(cls, decode: dict) -> "CryAlarm":
        alarm = decode.get("alarm", {})
        return cls(threshold=float(decode["threshold"]), k=int(alarm.get("k", 2)), n=int(alarm.get("n", 3)),
                   refractory_s=float(alarm.get("refractory_s", 10.0)), hop_s=float(decode["hop_s"]))

    def reset(self) -> None:
        self._recent = []
        self._quiet_until = -math.inf

    def update(self, probability: float, t_s: float) -> bool:
        """Feed one window's P(cry), available at time ``t_s``; True when an alarm fires now."""
        self._recent.append(float(probability) >= self.threshold)
        if len(self._recent) > self.n:
            self._recent.pop(0)
        if t_s < self._quiet_until or sum(self._recent) < self.k:
            return False
        self._quiet_until = t_s + self.refractory_s
        self._recent = []
        return True

    def run(self, probabilities, times_s) -> list[float]:
        """Alarm times for a whole stream (state is reset first)."""
        self.reset()
        return [float(t) for p, t in zip(probabilities, times_s) if self.update(p, t)]

    def clip_score(self, probabilities) -> float:
        """A clip's cry score consistent with the alarm rule: the best k-th largest P(cry) among n consecutive
        windows (a clip alarms iff this is >= threshold; clips shorter than n windows use what they have)."""
        p = np.asarray(probabilities, dtype=np.float64)
        if p.size == 0:
            return 0.0
        k = min(self.k, p.size)
        n = min(self.n, p.size)
        best = 0.0
        for i in range(0, p.size - n + 1):
            best = max(best, float(np.sort(p[i:i + n])[-k]))
        return best
