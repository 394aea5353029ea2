"""Microphone HAL: a 16 kHz mono MEMS microphone and its ADC, fed by the scenario's sound field.

The acoustic scene (household background, cry clips at their levels) and the speaker echo add at the capsule;
the capsule adds self-noise (``noise_dbfs``, white), the ADC clips at full scale and quantises to 16-bit PCM, read
by the driver in blocks (10 ms, as the audio codec's DMA periods). Clips are resampled to 16 kHz with soxr
(Kaiser-windowed polyphase; libsoxr).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from camlab.errors import InputFileError

SAMPLE_RATE = 16000


def load_audio(path: Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Any soundfile-readable file -> mono float32 at ``sample_rate``."""
    import soundfile as sf
    import soxr
    try:
        y, sr = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError) as exc:  # type: ignore[attr-defined]
        raise InputFileError(f"{path}: not a readable audio file ({exc})") from None
    y = y.mean(axis=1)
    if sr != sample_rate:
        y = soxr.resample(y, sr, sample_rate).astype(np.float32)
    return y


def at_level(y: np.ndarray, level_db: float) -> np.ndarray:
    """Scale to an RMS level in dBFS (active samples only, so silence padding does not skew it)."""
    active = y[np.abs(y) > 1e-4]
    rms = float(np.sqrt(np.mean(active ** 2))) if active.size else 0.0
    return y * (10 ** (level_db / 20) / rms) if rms > 0 else y


@dataclass
class MicHAL:
    """Holds the near-end sound field for the whole scenario and reads it out block by block."""
    near: np.ndarray             # float64 near-end sound at the capsule (without echo)
    noise_dbfs: float = -70.0
    seed: int = 0
    sample_rate: int = SAMPLE_RATE

    def __post_init__(self):
        self._rng = np.random.default_rng(self.seed + 11)

    def read(self, start: int, n: int, echo: np.ndarray | None = None) -> np.ndarray:
        """PCM int16 block of ``n`` samples from sample ``start``; ``echo`` is added at the capsule."""
        x = np.zeros(n, np.float64)
        seg = self.near[start:start + n]
        x[:seg.size] = seg
        if echo is not None:
            x += echo[:n]
        x += self._rng.standard_normal(n) * 10 ** (self.noise_dbfs / 20)
        return (np.clip(x, -1.0, 32767 / 32768) * 32768).astype(np.int16)
