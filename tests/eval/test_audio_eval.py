"""Cry evaluation: metrics against sklearn, streamed false alarms and onset latency with an oracle scorer whose
answers are known in closed form, bad-file handling, the CLI JSON contract, a bundle through evaluate_bundle."""
from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from camlab.contract.audio_features import CryAlarm, FeatureConfig
from camlab.errors import InputFileError
from camlab.eval.audio import METRIC_KEYS, binary_metrics, evaluate, load_eval_dir, roc_auc, roc_curve

TONE_HZ = 500.0


class ToneOracle:
    """P(cry) = 1 when more than half of a window's energy sits at 500 Hz (the synthetic 'cry')."""

    name = "oracle"

    def __init__(self):
        self.features = FeatureConfig(window_s=1.0)
        self.alarm = CryAlarm(threshold=0.5, k=2, n=3, refractory_s=10.0, hop_s=0.5)

    def probabilities(self, windows):
        spec = np.abs(np.fft.rfft(windows * np.hanning(windows.shape[1]), axis=1)) ** 2
        band = spec[:, int(480 * windows.shape[1] / 16000):int(520 * windows.shape[1] / 16000)].sum(axis=1)
        return (band / (spec.sum(axis=1) + 1e-20) > 0.5).astype(float)


def _tone(sr, seconds, amp=0.3):
    return (amp * np.sin(2 * np.pi * TONE_HZ * np.arange(int(sr * seconds)) / sr)).astype(np.float32)


def _noise(sr, seconds, seed, amp=0.05, channels=1):
    x = amp * np.random.default_rng(seed).standard_normal((int(sr * seconds), channels))
    return x.astype(np.float32)


@pytest.fixture()
def eval_dir(tmp_path):
    d = tmp_path / "eval"
    (d / "cry").mkdir(parents=True)
    (d / "nocry").mkdir()
    for i in range(3):
        sf.write(d / "cry" / f"c{i}.flac", _tone(8000, 2.0), 8000)            # 8 kHz, like Donate-a-Cry
    for i in range(4):
        sf.write(d / "nocry" / f"n{i}.wav", _noise(44100, 5.0, i, channels=2), 44100)   # stereo 44.1 kHz
    # a household sound that looks like a cry to the oracle: exactly one false alarm in the stream
    sf.write(d / "nocry" / "zz_trap.flac", _tone(16000, 3.0), 16000)
    # bad inputs: counted skips, not crashes
    (d / "cry" / "broken.wav").write_bytes(b"garbage")
    sf.write(d / "cry" / "tiny.wav", np.zeros(50, np.float32), 16000)
    sf.write(d / "nocry" / "six.wav", np.zeros((16000, 6), np.float32), 16000)
    (d / "nocry" / "notes.txt").write_text("not audio")
    return d


def test_metrics_against_sklearn():
    sk = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    s = np.round(rng.random(200) + 0.3 * y, 1)          # many ties
    assert roc_auc(s, y) == pytest.approx(sk.roc_auc_score(y, s), abs=1e-12)
    m = binary_metrics(s, y, 0.6)
    pred = s >= 0.6
    assert m["f1"] == pytest.approx(sk.f1_score(y, pred))
    assert m["precision"] == pytest.approx(sk.precision_score(y, pred))
    assert m["recall"] == pytest.approx(sk.recall_score(y, pred))
    assert m["accuracy"] == pytest.approx(sk.accuracy_score(y, pred))
    assert m["confusion"] == sk.confusion_matrix(y, pred).tolist()
    fpr, tpr = roc_curve(s, y)
    assert fpr[0] == 0 and tpr[-1] == 1 and np.all(np.diff(fpr) >= 0)
    assert roc_auc([1, 2], [1, 1]) is None


def test_streamed_metrics_with_oracle(eval_dir):
    data = load_eval_dir(eval_dir)
    assert len(data.cry) == 3 and len(data.nocry) == 5
    assert sorted(p.name for p, _ in data.skipped) == ["broken.wav", "notes.txt", "six.wav", "tiny.wav"]
    res = evaluate(ToneOracle(), eval_dir, anchors=False, full=True)
    assert {k for k in res if k in METRIC_KEYS} == set(METRIC_KEYS)
    # clips: every cry alarms; the trap is the only no-cry clip that alarms
    assert res["confusion"] == [[4, 1], [0, 3]]
    assert res["recall"] == 1.0 and res["precision"] == pytest.approx(0.75)
    assert res["f1"] == pytest.approx(2 * 0.75 / 1.75)
    # one false alarm in 4 x 5 s + 3 s of household audio
    assert res["details"]["false_alarms"] == 1
    assert res["false_alarms_per_hour"] == pytest.approx(3600 / 23.0, rel=1e-3)
    # streams: 4 s of household audio then the tone (onset 4.0 s); windows end every 0.5 s; the window ending at
    # 4.5 s is half tone (positive), so with k=2 the alarm comes at 5.0 s: 1.0 s after the onset
    assert res["details"]["streams_alarmed"] == 3
    assert res["onset_to_alarm_s"] == pytest.approx(1.0, abs=1e-6)
    assert res["details"]["onset_missed"] == 0 and res["details"]["onset_alarm_within_limit"] == 1.0
    assert res["anchors"] == {}


def test_onset_misses_are_counted():
    from camlab.eval.audio import onset_summary

    s = onset_summary([0.5, 3.0], streams=4, limit_s=2.0)
    assert s["onset_missed"] == 2 and s["onset_miss_rate"] == 0.5 and s["onset_alarm_within_limit"] == 0.25
    assert s["onset_to_alarm_median_s_misses_inf"] == np.inf   # half the streams never alarmed
    assert onset_summary([0.5, 1.0, 1.5], streams=3)["onset_to_alarm_median_s_misses_inf"] == 1.0


def test_details_csv_lists_every_clip_with_its_group(eval_dir, tmp_path):
    """``--details``: one row per readable clip, its folder as group, the decision the alarm rule takes; groups
    summarised (the laughter-like tone folder alarms every time, plain noise never)."""
    import csv

    (eval_dir / "nocry" / "laughter").mkdir()
    sf.write(eval_dir / "nocry" / "laughter" / "l0.flac", _tone(16000, 2.0), 16000)
    out = tmp_path / "clips.csv"
    res = evaluate(ToneOracle(), eval_dir, anchors=False, details_csv=out)
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 3 + 6 and list(rows[0]) == ["file", "group", "label", "score", "decision"]
    by = {r["file"]: r for r in rows}
    assert by["nocry/laughter/l0.flac"]["group"] == "nocry/laughter" and by["nocry/laughter/l0.flac"]["decision"] == "1"
    assert by["nocry/zz_trap.flac"]["decision"] == "1" and by["nocry/n0.wav"]["decision"] == "0"
    assert all(r["group"] == "cry" and r["decision"] == "1" and r["label"] == "1" for r in rows if r["label"] == "1")
    assert res["by_group"]["nocry/laughter"] == {"clips": 1, "label": 0, "alarms": 1, "alarm_rate": 1.0}
    assert res["by_group"]["nocry"]["alarms"] == 1 and res["by_group"]["nocry"]["clips"] == 5


def test_eval_dir_errors(tmp_path):
    with pytest.raises(InputFileError, match="not found"):
        load_eval_dir(tmp_path / "nope")
    (tmp_path / "cry").mkdir()
    with pytest.raises(InputFileError, match="'nocry/' is missing"):
        load_eval_dir(tmp_path)
    (tmp_path / "nocry").mkdir()
    sf.write(tmp_path / "nocry" / "a.wav", _noise(16000, 1.0, 0)[:, 0], 16000)
    with pytest.raises(InputFileError, match=r"cry/ \(0\)"):
        load_eval_dir(tmp_path)


def _tiny_checkpoint(path):
    import torch

    from camlab.config import to_dict
    from camlab.models.cry import CryModelConfig, build_model
    from camlab.train.checkpoint import save_checkpoint

    torch.manual_seed(0)
    cfg = CryModelConfig(stem_channels=16, channels=(16,))
    model = build_model(cfg).eval()
    return save_checkpoint(path, kind="cry", model_config=to_dict(cfg), state_dict=model.state_dict()), model


def test_cli_json_contract_with_yamnet(eval_dir, tmp_path):
    from camlab.cli import main

    ckpt, _ = _tiny_checkpoint(tmp_path / "tiny.pt")
    out = tmp_path / "res.json"
    csv_out = tmp_path / "clips.csv"
    assert main(["eval", "cry", "--model", str(ckpt), "--data", str(eval_dir), "--json", str(out),
                 "--details", str(csv_out)]) == 0
    res = json.loads(out.read_text())
    head, *body = csv_out.read_text().splitlines()
    assert head == "file,group,label,score,decision,yamnet_score,yamnet_decision" and len(body) == 3 + 5
    extra = ["false_alarms", "nocry_hours", "false_alarms_per_hour_upper95", "false_alarm_note"]
    onset = ["onset_missed", "onset_miss_rate", "onset_alarm_within_limit", "onset_to_alarm_median_s_misses_inf"]
    assert list(res) == list(METRIC_KEYS) + extra + onset + ["by_group", "anchors"]
    assert list(res["anchors"]) == ["yamnet"]
    assert list(res["anchors"]["yamnet"]) == list(METRIC_KEYS) + extra + onset + ["by_group"]
    assert res["n_cry"] == 3 and res["n_nocry"] == 5 and res["anchors"]["yamnet"]["n_cry"] == 3
    assert 0.0 <= res["accuracy"] <= 1.0 and res["false_alarms_per_hour"] >= 0.0
    # the rate comes with its exposure: count / hours, and the exact Poisson 95 % bound above it
    hours = res["nocry_hours"]
    assert hours == pytest.approx((4 * 5.0 + 3.0) / 3600, rel=0.01)   # the five readable nocry files
    assert res["false_alarms_per_hour"] == pytest.approx(res["false_alarms"] / hours)
    assert res["false_alarms_per_hour_upper95"] > res["false_alarms_per_hour"]
    assert f"{res['false_alarms']} false alarm(s) in {hours:.4f} h" in res["false_alarm_note"]
    assert main(["eval", "cry", "--model", str(tmp_path / "none.pt"), "--data", str(eval_dir),
                 "--json", str(out)]) == 2


def test_evaluate_bundle_matches_torch(eval_dir, tmp_path):
    """A hand-made bundle (FP32 graph in both slots, manifest from manifest_io) scores like the torch model."""
    import torch

    from camlab.contract.manifest import file_entry
    from camlab.eval.audio import evaluate_bundle
    from camlab.models.cry import manifest_io

    ckpt, model = _tiny_checkpoint(tmp_path / "tiny.pt")
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    torch.onnx.export(model, (torch.zeros(1, 1, 32, 96),), str(bundle / "model_fp32.onnx"), input_names=["features"],
                      output_names=["logits"], dynamo=False)
    (bundle / "model.onnx").write_bytes((bundle / "model_fp32.onnx").read_bytes())
    io = manifest_io(model.model_config)
    manifest = {
        "schema_version": 1,
        "model": {"name": "cry", "task": "cry", "version": "test-1", "created": "2026-01-01T00:00:00Z"},
        "files": {"model.onnx": file_entry(bundle / "model.onnx", "model_int8"),
                  "model_fp32.onnx": file_entry(bundle / "model_fp32.onnx", "model_fp32")},
        "model_files": {"int8": "model.onnx", "fp32": "model_fp32.onnx"},
        **io,
        "quantization": {"format": "QDQ", "weights": {"dtype": "int8", "granularity": "per_channel",
                                                      "symmetric": True, "axis": 0},
                         "activations": {"dtype": "int8", "granularity": "per_tensor", "symmetric": False},
                         "outputs_quantized": True, "calibration": {"method": "MinMax", "source": "test", "count": 1}},
        "metrics": {"split": {"name": "val", "count": 0}, "fp32": {}, "int8": {}, "output_cosine": {}},
        "cost": {"macs": 0, "params": 0, "peak_activation_bytes": 0, "flash_bytes": 0, "per_chip": {}},
        "chips": ["rv1106"],
        "provenance": {"mlflow_run_id": None, "git_commit": "test"},
    }
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    a = evaluate_bundle(bundle, eval_dir, variant="int8", full=True)
    b = evaluate(model, eval_dir, anchors=False, full=True)
    np.testing.assert_allclose(a["scores"], b["scores"], atol=1e-4)
    assert a["f1"] == b["f1"] and a["anchors"] == {}


def test_operating_point_prefers_rules_within_limits():
    from camlab.eval.audio import apply_rule, choose_operating_point

    t = 0.5 * np.arange(2, 42)
    noisy = np.zeros(40)
    noisy[[5, 6, 20]] = 0.7          # two adjacent 0.7 windows: a false alarm at threshold <= 0.7 with k=2
    cry = np.r_[np.zeros(8), np.full(10, 0.95)]
    probs = {"clips": [(cry, 1), (noisy, 0)], "nocry_stream": (noisy, t), "nocry_hours": 20 / 3600,
             "onsets": [(cry, 0.5 * np.arange(2, 20), 4.5)]}
    r = apply_rule(probs, CryAlarm(threshold=0.5, k=2, n=3, hop_s=0.5))
    assert r["false_alarms_per_hour"] == pytest.approx(180.0) and r["onset_to_alarm_s"] == pytest.approx(1.0)
    best, rows = choose_operating_point(probs, 0.5, max_fa_per_hour=1.0, max_latency_s=1.6)
    assert len(rows) == 18
    assert best["threshold"] == 0.95 and best["false_alarms_per_hour"] == 0 and best["f1"] == 1.0
    # the strictest rule within the latency limit: 3 of 3 alarms 1.5 s after onset (<= 1.6 s)
    assert (best["k"], best["n"]) == (3, 3) and best["onset_to_alarm_s"] == pytest.approx(1.5)
    best, _ = choose_operating_point(probs, 0.5, max_fa_per_hour=1.0, max_latency_s=1.2)
    assert (best["k"], best["n"], best["threshold"]) == (2, 3, 0.95)


def test_false_alarm_upper_bound_and_stress_streams(eval_dir):
    from camlab.eval.audio import fa_rate_upper, score_eval_set, stress_beds

    # exact one-sided Poisson bounds: 0 events -> -ln(0.05) = 2.996 per unit exposure; 1 event -> 4.744
    assert fa_rate_upper(0, 1.0) == pytest.approx(2.9957, abs=1e-3)
    assert fa_rate_upper(1, 2.0) == pytest.approx(4.7439 / 2, abs=1e-3)
    assert fa_rate_upper(0, 0.0) is None
    data = load_eval_dir(eval_dir)
    bed_len = sum(len(w) for _, w in data.nocry)
    beds = stress_beds(data)
    assert [len(x) for _, x in beds] == [bed_len] * 5
    assert all(np.abs(x).max() <= 1.0 for _, x in beds)
    res = score_eval_set(ToneOracle(), data, stress=True)
    d = res["details"]
    assert d["false_alarms"] == 1 and d["false_alarms_per_hour_upper95"] == pytest.approx(
        fa_rate_upper(1, d["nocry_hours"]))
    st = d["stress"]
    assert st["hours"] == pytest.approx(5 * d["nocry_hours"])
    # the 3 s tone trap alarms once in the quiet and loud copies; each overlay holds the trap twice (in place and
    # in the shifted copy, over noise of amp 0.05 vs tone 0.3): one or two alarms each, by where the copy lands
    assert st["by_variant"]["quiet_-12dB"] == 1 and st["by_variant"]["loud_peak0.9"] == 1
    assert all(1 <= st["by_variant"][f"overlay_{q}/4"] <= 2 for q in (1, 2, 3))
    assert 5 <= st["false_alarms"] <= 8 and st["per_hour"] == pytest.approx(st["false_alarms"] / st["hours"])


def test_blockwise_streaming_cuts_the_same_windows():
    """Long streams are windowed ``block`` windows at a time: the same windows and times as one sliding_windows."""
    from camlab.contract.audio_features import sliding_windows
    from camlab.eval.audio import _stream_probs

    class Energy(ToneOracle):
        def probabilities(self, windows):
            return np.sqrt(np.mean(windows.astype(np.float64) ** 2, axis=1))

    sc = Energy()
    x = _noise(16000, 13.3, 5)[:, 0] * np.linspace(0.1, 1, int(16000 * 13.3)).astype(np.float32)
    p, t = _stream_probs(sc, x, block=4)
    wins, ends = sliding_windows(x, sc.features.window_samples, sc.features.hop_samples)
    np.testing.assert_allclose(p, sc.probabilities(wins), rtol=1e-6)
    np.testing.assert_allclose(t, ends / 16000)


def test_long_household_stream_states_unique_and_remixed_hours(eval_dir):
    """>= the asked hours, of which the first variant is the recorded audio once; re-mixed copies are counted
    apart; the trap clip alarms once per copy (speed/gain/room keep a 500 Hz-ish tone a tone for the oracle at
    speed 1) and the Poisson bound sits above the rate."""
    from camlab.eval.audio import long_household_stream, long_stream_false_alarms

    data = load_eval_dir(eval_dir)
    variants, summary = long_household_stream(data, min_hours=0.03)   # 23 s of audio -> 5 copies
    assert variants[0][0] == "original" and summary["unique_hours"] == pytest.approx(23 / 3600, rel=1e-3)
    assert summary["total_hours"] >= 0.03 and summary["remixed_hours"] == pytest.approx(
        summary["total_hours"] - summary["unique_hours"])
    assert len({n for n, _ in variants}) == len(variants) and all(np.abs(x).max() <= 1.0 for _, x in variants)
    res = long_stream_false_alarms(ToneOracle(), variants, summary)
    assert res["unique_only"]["false_alarms"] == 1 and res["by_variant"]["gain-12dB"] == 1
    assert res["by_variant"]["speed0.9"] == 0   # 450 Hz: outside the oracle's band
    assert res["per_hour_upper95"] > res["per_hour"] == pytest.approx(res["false_alarms"] / res["hours"])


def test_recall_at_equal_precision_and_metrics_from_probs(eval_dir):
    from camlab.eval.audio import metrics_from_probs, recall_at_precision, stream_probabilities

    r = recall_at_precision([0.9, 0.8, 0.7, 0.6, 0.2], [1, 0, 1, 1, 0], precision=0.75)
    assert r["threshold"] == 0.6 and r["recall"] == 1.0 and r["precision"] == 0.75
    assert recall_at_precision([0.9, 0.8, 0.7], [1, 0, 1], 1.0)["recall"] == 0.5
    sc = ToneOracle()
    m = metrics_from_probs(stream_probabilities(sc, load_eval_dir(eval_dir)), sc.alarm)
    full = evaluate(sc, eval_dir, anchors=False, full=True)
    assert m["f1"] == full["f1"] and m["false_alarms"] == full["details"]["false_alarms"]
    assert m["onset_to_alarm_s"] == full["onset_to_alarm_s"] and m["onset_missed"] == 0


def test_held_out_source_streams_chunks_and_names_the_file_that_alarms(eval_dir, tmp_path):
    """A held-out source is streamed file after file in chunks (state reset between chunks): the trap tone alarms
    once and is named, for every scorer given; unreadable files are listed as skipped, hours count only audio."""
    from camlab.eval.audio import held_out_source_false_alarms

    nocry = sorted((eval_dir / "nocry").glob("n*.wav")) + [eval_dir / "nocry" / "zz_trap.flac",
                                                           eval_dir / "nocry" / "six.wav"]
    res = held_out_source_false_alarms({"a": ToneOracle(), "b": ToneOracle()}, {"g": nocry}, chunk_s=8.0)
    for key in ("a", "b"):
        g = res[key]["g"]
        assert g["files"] == 5 and g["hours"] == pytest.approx(23 / 3600, rel=1e-3)
        assert g["false_alarms"] == 1 and g["alarm_files"] == [str(eval_dir / "nocry" / "zz_trap.flac")]
        assert len(g["skipped"]) == 1 and "six.wav" in g["skipped"][0] and "channels" in g["skipped"][0]
        assert g["per_hour_upper95"] > g["per_hour"] == pytest.approx(1 / g["hours"])


def test_tuxpaint_groups_split_sound_effects_from_speech(tmp_path):
    from camlab.data.audio import tuxpaint_groups

    root = tmp_path / "stamps"
    for rel in ("animals/cats/cat.ogg", "animals/cats/cat_desc_fr.ogg", "symbols/math/0.ogg",
                "household/kettle.ogg", "household/kettle.png"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"")
    g = tuxpaint_groups(root)
    assert [p.name for p in g["tuxpaint_sound_effects"]] == ["cat.ogg", "kettle.ogg"]
    assert sorted(p.name for p in g["tuxpaint_spoken"]) == ["0.ogg", "cat_desc_fr.ogg"]
    with pytest.raises(InputFileError, match="system_deps.sh --data"):
        tuxpaint_groups(tmp_path / "absent")


def test_hedgewars_groups_put_laughs_apart(tmp_path):
    from camlab.data.audio import hedgewars_groups

    root = tmp_path / "Sounds"
    for rel in ("voices/Pirate/Laugh.ogg", "voices/Pirate/Ow1.ogg", "voices/Robot/Laugh.ogg", "explosion.ogg"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"")
    g = hedgewars_groups(root)
    assert [p.parent.name for p in g["hedgewars_laughs"]] == ["Pirate", "Robot"]
    assert [p.name for p in g["hedgewars_voices"]] == ["Ow1.ogg"] and [p.name for p in g["hedgewars_effects"]] == [
        "explosion.ogg"]


def test_no_training_recipe_reads_a_held_out_source():
    """The held-out source measures generalisation only if no cry recipe trains or calibrates on it."""
    from pathlib import Path

    import yaml

    from camlab.data.audio import HEDGEWARS_SOUNDS

    configs = sorted((Path(__file__).resolve().parents[2] / "camlab" / "train" / "configs").glob("cry*.yaml"))
    assert configs
    for cfg in configs:
        data = yaml.safe_load(cfg.read_text()).get("data") or {}
        folders = [str(data.get("root") or "")] + [str(p) for p in data.get("extra_negatives") or []]
        assert not any(f and (Path(f) == HEDGEWARS_SOUNDS or HEDGEWARS_SOUNDS in Path(f).parents
                              or Path(f) in HEDGEWARS_SOUNDS.parents) for f in folders), cfg


def test_teacher_head_scorer_reads_the_distillation_head():
    """The diagnostic scorer gives sigmoid(forward_aux's teacher column), not the deployed cry output; a model
    without a distillation head is refused."""
    import numpy as np
    import pytest
    import torch

    from camlab.contract.audio_features import CryAlarm, FeatureConfig, FeatureExtractor
    from camlab.eval.audio import TeacherHeadScorer, TorchScorer
    from camlab.models.cry import CryModelConfig, build_model

    fc = FeatureConfig()
    model = build_model(CryModelConfig(channels=(16,), aux_outputs=7, features=fc)).eval()
    torch.nn.init.normal_(model.aux.weight, std=2.0)
    windows = np.random.default_rng(0).standard_normal((5, fc.window_samples)).astype(np.float32) * 0.1
    alarm = CryAlarm(0.5, 1, 1, 10.0, fc.hop_s)
    got = TeacherHeadScorer(model, fc, alarm, column=2).probabilities(windows)
    with torch.no_grad():
        want = torch.sigmoid(model.forward_aux(torch.from_numpy(FeatureExtractor(fc).batch(windows)))[1][:, 2]).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert not np.allclose(got, TorchScorer(model, fc, alarm).probabilities(windows))
    with pytest.raises(ValueError, match="distillation head"):
        TeacherHeadScorer(build_model(CryModelConfig(channels=(16,), features=fc)), fc, alarm)


def test_pick_operating_point_prefers_the_strictest_gate_within_the_f1_slack():
    """Rows from teacher-gated streams compete with ungated ones: among rules meeting the limits and within the F1
    slack, the highest gate wins (then threshold); a gate that costs more F1 than the slack does not."""
    from camlab.eval.audio import pick_operating_point

    def row(gate, th, f1, fa=0.5, onset=1.0):
        return {"teacher_gate": gate, "threshold": th, "k": 3, "n": 4, "f1": f1, "false_alarms_per_hour": fa,
                "onset_to_alarm_s": onset}

    rows = [row(0.0, 0.9, 0.950), row(0.05, 0.8, 0.945), row(0.1, 0.9, 0.930), row(0.2, 0.9, 0.99, fa=3.0)]
    assert pick_operating_point(rows, max_fa_per_hour=1.0, max_latency_s=1.6)["teacher_gate"] == 0.05
    assert pick_operating_point(rows, max_fa_per_hour=1.0, max_latency_s=1.6, f1_slack=0.001)["teacher_gate"] == 0.0
    plain = [{k: v for k, v in r.items() if k != "teacher_gate"} for r in rows[:1]]
    assert pick_operating_point(plain, max_fa_per_hour=1.0, max_latency_s=1.6)["threshold"] == 0.9
