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
        "model": {"stem_channels": 8, "channels": [16, 32]}})
    assert res.checkpoint.is_file() and res.run_id
    m = res.metrics
    assert m["val_window_f1"] > 0.8 and m["val_window_roc_auc"] > 0.9
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
    assert {"figures/roc.png", "figures/confusion.png", "figures/loss.png"} <= arts
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
