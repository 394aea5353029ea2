"""Cry detection on sliding windows of the cleaned microphone signal (after AEC + NS + AGC).

Windows, features and alarm logic are the contract's (camlab.contract.audio_features): the manifest's ``features``
block rebuilds the log-mel front end, ``decode`` gives threshold, window/hop and the k-of-n alarm with its
refractory period. The model's single raw logit per window becomes P(cry) through the logistic function.
"""
from __future__ import annotations

import numpy as np

from camlab.contract.audio_features import CryAlarm, FeatureConfig, FeatureExtractor, StreamingWindower, sigmoid


class CryFrontEnd:
    """Push 16 kHz float blocks; yields ``(model input, window end sample)`` for each complete window."""

    def __init__(self, features_block: dict, decode: dict, origin: str):
        self.cfg = FeatureConfig.from_manifest(features_block, origin=f"{origin}: 'features'")
        if self.cfg.sample_rate != 16000:
            raise ValueError(f"{origin}: features.sample_rate must be 16000 (the camera microphone rate)")
        self.fx = FeatureExtractor(self.cfg)
        self.win = StreamingWindower(self.cfg.window_samples, self.cfg.hop_samples)
        self.alarm = CryAlarm.from_decode(decode)
        classes = list(decode.get("classes", ["cry"]))
        self.cry_index = classes.index("cry") if "cry" in classes else len(classes) - 1

    def push(self, block_f32: np.ndarray):
        for window, end in self.win.push(block_f32):
            yield self.fx.model_input(window), end

    def probability(self, logits: np.ndarray) -> float:
        """One raw logit -> logistic; one logit per class -> softmax probability of ``cry``."""
        x = np.asarray(logits, np.float64).reshape(-1)
        if x.size == 1:
            return float(sigmoid(x[0]))
        e = np.exp(x - x.max())
        return float(e[self.cry_index] / e.sum())
