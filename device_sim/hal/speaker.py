"""Speaker HAL: the camera's small talk-back loudspeaker and the acoustic echo path back into its microphone.

A 1 W, 28 mm speaker in a plastic housing: high-passed (no output below ~300 Hz, 2nd-order Butterworth), softly
saturating (tanh) near full scale. The echo path is a room impulse response: a direct coupling tap through the
housing plus an exponentially decaying diffuse tail (Polack's model, RT60 ``rt60_s``), seeded for reproducibility.
What the speaker plays is also the AEC's far-end reference (loopback), as on the device's audio codec.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SpeakerSpec:
    sample_rate: int = 16000
    highpass_hz: float = 300.0
    drive: float = 1.5            # tanh saturation drive
    echo_gain_db: float = -6.0    # direct coupling speaker -> mic
    delay_ms: float = 1.0
    rt60_s: float = 0.25
    tail_gain_db: float = -18.0


class SpeakerHAL:
    def __init__(self, spec: SpeakerSpec = SpeakerSpec(), seed: int = 0):
        from scipy.signal import butter
        self.spec = spec
        self.sos = butter(2, spec.highpass_hz, btype="highpass", fs=spec.sample_rate, output="sos")
        rng = np.random.default_rng(seed + 7)
        n = int(spec.rt60_s * spec.sample_rate)
        t = np.arange(n) / spec.sample_rate
        tail = rng.standard_normal(n) * np.exp(-6.908 * t / spec.rt60_s)   # -60 dB at rt60
        tail *= 10 ** (spec.tail_gain_db / 20) / np.sqrt(np.sum(tail ** 2))
        rir = tail
        d = int(spec.delay_ms * spec.sample_rate / 1000)
        rir[d] += 10 ** (spec.echo_gain_db / 20)
        self.rir = rir.astype(np.float64)

    def play(self, signal: np.ndarray) -> np.ndarray:
        """What the driver emits for a talk-back signal (float in [-1, 1])."""
        from scipy.signal import sosfilt
        y = sosfilt(self.sos, np.asarray(signal, np.float64))
        return np.tanh(self.spec.drive * y) / np.tanh(self.spec.drive)

    def echo(self, emitted: np.ndarray) -> np.ndarray:
        """The emitted sound as it reaches the microphone (convolution with the echo path)."""
        from scipy.signal import fftconvolve
        return fftconvolve(emitted, self.rir)[: emitted.size]
