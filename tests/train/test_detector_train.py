"""Detector training: a few steps on synthetic YOLO folders, checkpoint + resume, MLflow logging, 2-process DDP."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from camlab.train.synthetic import make_yolo_folder

TINY_MODEL = {"input_width": 128, "input_height": 96, "stem": 16, "widths": [16, 16, 32, 32],
              "depths": [1, 1, 1, 1], "neck": 16}


def _config(tmp_path: Path, **over) -> dict:
    train_dir = make_yolo_folder(tmp_path / "train", 24, seed=21, size=(192, 128))
    val_dir = make_yolo_folder(tmp_path / "val", 8, seed=22, size=(192, 128))
    cfg = {"name": "test", "experiment": "detector-test", "out_dir": str(tmp_path / "out"), "progress": False,
           "threads": 1, "workers": 0, "model": TINY_MODEL, "render": {"enabled": False},
           "data": {"train_dirs": [str(train_dir)], "val_dirs": [str(val_dir)]},
           "optim": {"epochs": 2, "batch_size": 8, "lr": 0.003, "warmup_epochs": 0.5}}
    cfg.update(over)
    return cfg


def test_train_checkpoint_resume_and_mlflow(tmp_path):
    import mlflow

    from camlab.models.detector import load_checkpoint
    from camlab.train.detector import train

    cfg = _config(tmp_path)
    res = train(cfg)
    assert res.checkpoint.is_file() and (tmp_path / "out" / "last.pt").is_file()
    assert [r["epoch"] for r in res.history] == [1, 2] and res.history[-1]["step"] == 6
    assert res.history[-1]["train_loss"] < res.history[0]["train_loss"] * 1.5  # finite, same scale
    assert set(res.eval["classes"]) == {"person", "pet", "vehicle"}
    assert res.counts["train"]["images"] == 24 and res.counts["val"]["images"] == 8
    model, meta = load_checkpoint(res.checkpoint)
    assert meta["mlflow_run_id"] == res.run_id and meta["counts"]["val"]["images"] == 8
    # presence thresholds were picked on the training split and travel with the model into the manifest/eval
    calib = meta["calibration"]
    assert calib["split"] == "train" and calib["n_images"] == 24
    assert len(model.config.class_score_thresholds) == 3
    assert res.eval["presence_thresholds"] == pytest.approx(model.config.thresholds())
    person = calib["classes"]["person"]
    assert person["fp_rate"] is None or person["fp_rate"] <= 0.015 or person["threshold"] == 0.95

    client = mlflow.tracking.MlflowClient()
    run = client.get_run(res.run_id)
    assert run.data.params["optim.epochs"] == "2" and "val_person_ap50" in run.data.metrics
    assert len(client.get_metric_history(res.run_id, "train_loss")) == 2
    arts = {a.path for a in client.list_artifacts(res.run_id, "plots")}
    assert {"plots/pr_curves.png", "plots/confusion_matrix.png", "plots/losses.png"} <= arts
    assert [a.path for a in client.list_artifacts(res.run_id, "checkpoint")]

    # resume from last.pt: continues at epoch 3 with the optimizer state, same MLflow run, even when a parent
    # run (make models) is active by then
    from camlab import tracking
    with tracking.run("release", run_name="outer"):
        res2 = train(dict(cfg, resume="auto", optim=dict(cfg["optim"], epochs=3)))
    assert [r["epoch"] for r in res2.history] == [1, 2, 3] and res2.history[-1]["step"] == 9
    assert res2.run_id == res.run_id
    assert len(client.get_metric_history(res.run_id, "train_loss")) == 3


def test_bad_config_is_a_clear_error(tmp_path):
    from camlab.errors import CamlabError
    from camlab.train.detector import train

    with pytest.raises(CamlabError, match="unknown key 'optim.epoch'"):
        train(_config(tmp_path, optim={"epoch": 1}))
    with pytest.raises(CamlabError, match="unknown detector config"):
        train("no_such_config")
    with pytest.raises(CamlabError, match="multiples of 32"):
        train(_config(tmp_path, model=dict(TINY_MODEL, input_width=100)))


@pytest.mark.slow
def test_torchrun_two_processes(tmp_path):
    """The same train() under torchrun (gloo, 2 ranks): one checkpoint from rank 0, ranks stayed in sync."""
    import yaml

    cfg = _config(tmp_path, log_mlflow=False, optim={"epochs": 1, "batch_size": 4, "max_steps": 3})
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg))
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "camlab.cli", "train", "detector", "--config", str(path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    from camlab.train.checkpoint import load_checkpoint

    ck = load_checkpoint(tmp_path / "out" / "last.pt", expect_kind="detector")
    assert ck["step"] == 3 and ck["meta"]["history"][-1]["step"] == 3
    # DDP: 24 images / 2 ranks / batch 4 = 3 steps per epoch per rank
    assert ck["epoch"] == 0
    assert all(torch.isfinite(v).all() for v in ck["state_dict"].values() if v.is_floating_point())


def test_same_recipe_trains_bit_for_bit(tmp_path):
    """Two trainings of one config (augmentation on, one loader worker as the release recipe runs) end with the
    same weights: a release figure must be reproducible by `make models`, not a draw (issue 19)."""
    from camlab.train.detector import train

    weights = []
    for k in (1, 2):
        cfg = _config(tmp_path, log_mlflow=False, workers=1, out_dir=str(tmp_path / f"out{k}"),
                      optim={"epochs": 1, "batch_size": 8, "lr": 0.003, "max_steps": 3},
                      augment={"mosaic_p": 0.5}, calibrate={"max_images": 8})
        res = train(cfg)
        weights.append(torch.load(res.checkpoint, map_location="cpu", weights_only=False)["state_dict"])
    assert weights[0].keys() == weights[1].keys()
    for name in weights[0]:
        assert torch.equal(weights[0][name], weights[1][name]), name


def test_checkpoint_match_tells_a_reproduced_training_from_another(tmp_path):
    """benchmarks.checkpoint_match: identical for a retraining of the same config, different for another seed."""
    from benchmarks.checkpoint_match import compare
    from camlab.train.detector import train

    ckpts = []
    for k, seed in ((1, 0), (2, 0), (3, 1)):
        cfg = _config(tmp_path, log_mlflow=False, workers=0, seed=seed, out_dir=str(tmp_path / f"out{k}"),
                      optim={"epochs": 1, "batch_size": 8, "lr": 0.003, "max_steps": 2}, calibrate={"max_images": 8})
        ckpts.append(train(cfg).checkpoint)
    same = compare(ckpts[0], ckpts[1])
    assert same["identical"] and same["tensors_equal"] == same["tensors_a"] and same["max_abs_weight_diff"] == 0.0
    other = compare(ckpts[0], ckpts[2])
    assert not other["identical"] and other["max_abs_weight_diff"] > 0


def test_checkpoint_match_names_a_bad_file(tmp_path, capsys):
    from benchmarks.checkpoint_match import main

    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    assert main([str(junk), str(tmp_path / "missing.pt"), "x"]) == 2
    assert "junk.pt: not a readable camlab checkpoint" in capsys.readouterr().err
    assert main([str(tmp_path / "missing.pt"), str(junk), "x"]) == 2
    assert "missing.pt: checkpoint not found" in capsys.readouterr().err
    assert main(["only-one.pt"]) == 2


def test_a_resumed_training_ends_with_the_weights_of_an_uninterrupted_one(tmp_path, monkeypatch):
    """make models resumes an interrupted detector run from last.pt: the result must be the checkpoint an
    uninterrupted run gives (the sampler's shuffle of the later epochs included), or the README's figures are not
    what a restarted make models ships."""
    from camlab.train import checkpoint, detector

    base = _config(tmp_path, log_mlflow=False, workers=1, augment={"mosaic_p": 0.5}, calibrate={"max_images": 8},
                   optim={"epochs": 3, "batch_size": 8, "lr": 0.003, "warmup_epochs": 0.5})
    whole = detector.train(dict(base, out_dir=str(tmp_path / "whole")))

    class Killed(Exception):
        pass

    real_save = checkpoint.save_checkpoint

    def save_then_die(path, **kw):
        real_save(path, **kw)
        if Path(path).name == "last.pt":
            raise Killed

    monkeypatch.setattr(checkpoint, "save_checkpoint", save_then_die)   # train() imports it at call time
    with pytest.raises(Killed):
        detector.train(dict(base, out_dir=str(tmp_path / "cut")))          # dies once epoch 1 is saved
    monkeypatch.setattr(checkpoint, "save_checkpoint", real_save)
    resumed = detector.train(dict(base, out_dir=str(tmp_path / "cut"), resume="auto"))
    a = torch.load(whole.checkpoint.parent / "last.pt", map_location="cpu", weights_only=False)
    b = torch.load(resumed.checkpoint.parent / "last.pt", map_location="cpu", weights_only=False)
    assert [r["train_loss"] for r in a["meta"]["history"]] == [r["train_loss"] for r in b["meta"]["history"]]
    for name in a["state_dict"]:
        assert torch.equal(a["state_dict"][name], b["state_dict"][name]), name


def test_epoch_shuffle_is_the_old_order_and_ignores_extra_iterators():
    """Epoch e's order is the e-th pass of a once-seeded RandomSampler (what uninterrupted runs always had), and a
    second iterator in the same epoch (tqdm.asyncio opens one eagerly) neither changes it nor the next epoch's."""
    from torch.utils.data import RandomSampler

    from camlab.train.detector import EpochShuffle

    g = torch.Generator().manual_seed(5)
    old = [list(RandomSampler(range(11), generator=g)) for _ in range(4)]
    sh = EpochShuffle(11, 5)
    for e in range(4):
        sh.set_epoch(e)
        iter(sh)                                    # an iterator opened and dropped
        assert list(sh) == old[e] and list(sh) == old[e]
    assert len(sh) == 11 and sorted(old[3]) == list(range(11)) and old[0] != old[1]


@pytest.mark.parametrize("enabled", [False, True])
def test_progress_opens_one_iterator_per_pass(enabled):
    from camlab.train.common import progress

    class Counted:
        opened = 0

        def __iter__(self):
            Counted.opened += 1
            return iter(range(3))

        def __len__(self):
            return 3

    assert list(progress(Counted(), desc="x", enabled=enabled)) == [0, 1, 2] and Counted.opened == 1


def test_a_recipe_with_a_presence_gate_trains_calibrates_and_ships_the_gate(tmp_path):
    """calibrate.presence_gate: the gate is fitted after training, its thresholds come from out-of-fold gates, and
    the checkpoint that the exporter and the evaluator read carries it (its graph computes the gated scores)."""
    from camlab.models.detector import load_checkpoint
    from camlab.train.detector import train

    cfg = _config(tmp_path, log_mlflow=False, optim={"epochs": 1, "batch_size": 8, "lr": 0.003, "max_steps": 3},
                  calibrate={"presence_gate": ["person", "vehicle"], "presence_gate_folds": 3})
    res = train(cfg)
    model, meta = load_checkpoint(res.checkpoint)
    assert model.config.presence_gate and model.gate is not None
    gate = meta["calibration"]["presence_gate"]
    assert gate["classes"] == ["person", "vehicle"] and gate["folds"] == 3 and len(gate["fold_fits"]) == 3
    assert gate["rows"] == 24
    fitted = [c for c, r in gate["fit"].items() if r["fitted"]]
    assert fitted, gate["fit"]                          # the synthetic split has images without each class
    pet = model.gate.fc[0].bias[1].item(), [conv.weight[1].abs().sum().item() for conv in model.gate.fc]
    assert pet == (0.0, [0.0] * 4)                     # not asked for: no gate for pets
    for name in fitted:                                 # a fitted class's offsets are in the graph
        ci = ("person", "pet", "vehicle").index(name)
        assert sum(conv.weight[ci].abs().sum().item() for conv in model.gate.fc) > 0
    assert res.eval["presence_thresholds"] == pytest.approx(model.config.thresholds())
