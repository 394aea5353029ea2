"""Weight averaging (camlab.train.ema): the arithmetic, its refusals, and what the two trainers ship with it on."""
from __future__ import annotations

import pytest
import torch

from camlab.train.ema import WeightAverage, check_horizon, decay_for_horizon


def _net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))


def test_the_average_follows_the_formula_with_the_warm_up_and_copies_integer_buffers():
    net = _net()
    avg = WeightAverage(net, 0.9)
    start = {k: v.clone() for k, v in avg.state_dict().items()}
    expected = {k: v.clone() for k, v in start.items() if v.is_floating_point()}
    for t in range(4):
        with torch.no_grad():
            for p in net.parameters():
                p.add_(1.0)
        net.train()
        net(torch.randn(5, 3))          # moves the BatchNorm statistics and num_batches_tracked
        d = min(0.9, (1 + t) / (10 + t))
        assert avg.effective_decay() == pytest.approx(d)
        avg.update(net)
        for k in expected:
            expected[k] = d * expected[k] + (1 - d) * net.state_dict()[k]
    for k, v in avg.state_dict().items():
        if v.is_floating_point():
            assert torch.allclose(v, expected[k], atol=1e-6), k
        else:
            assert torch.equal(v, net.state_dict()[k]), k      # the batch counter is copied, not averaged
    assert avg.updates == 4 and not any(p.requires_grad for p in avg.model.parameters())
    # the live model is untouched by the average
    assert not torch.equal(net[0].weight, avg.model[0].weight)


def test_decay_for_horizon_and_refusals():
    assert decay_for_horizon(3.0, 64) == pytest.approx(1 - 1 / 192)
    assert decay_for_horizon(1.0, 86) == pytest.approx(1 - 1 / 86)
    with pytest.raises(ValueError, match="spans <= 1 step"):
        decay_for_horizon(0.5, 2)
    with pytest.raises(ValueError, match=r"train.ema_epochs must be >= 0 epochs"):
        check_horizon(-1.0, "train.ema_epochs")
    with pytest.raises(ValueError, match="decay must be in"):
        WeightAverage(_net(), 1.0)


def test_recipes_refuse_a_negative_horizon():
    from camlab.train.cry import load_train_config as cry_config
    from camlab.train.detector import load_train_config as det_config

    from camlab.errors import ConfigError

    with pytest.raises(ConfigError, match=r"cry_demo.yaml: train.*ema_epochs must be >= 0 epochs"):
        cry_config("cry_demo", {"train": {"ema_epochs": -1}})
    with pytest.raises(ConfigError, match=r"detector_demo.yaml: optim.*ema_epochs must be >= 0 epochs"):
        det_config("detector_demo", {"optim": {"ema_epochs": -0.5}})
    assert cry_config("cry_ema").train.ema_epochs == 3.0
    assert cry_config("cry_music").train.ema_epochs == 0.0


def test_detector_ships_the_average_and_a_resumed_run_continues_it(tmp_path, monkeypatch):
    """best.pt holds the averaged weights (what is calibrated and exported), last.pt the live ones plus the average,
    and a resumed run ends with the average an uninterrupted one has; a run without an average cannot be resumed
    with one."""
    from camlab.errors import ConfigError
    from camlab.train import checkpoint
    from camlab.train.detector import train
    from tests.train.test_detector_train import _config

    def cfg(out, epochs, ema=1.0, **over):
        # eval_every as the recipes: only the last epoch is scored, so best.pt is the last epoch's average
        return _config(tmp_path, log_mlflow=False, workers=0, out_dir=str(tmp_path / out), calibrate={"max_images": 8},
                       eval_every=100,
                       optim={"epochs": epochs, "batch_size": 8, "lr": 0.003, "warmup_epochs": 0.5,
                              "ema_epochs": ema}, **over)

    whole = train(cfg("whole", 3))
    last = torch.load(tmp_path / "whole" / "last.pt", map_location="cpu", weights_only=False)
    best = torch.load(whole.checkpoint, map_location="cpu", weights_only=False)
    assert whole.checkpoint.name == "best.pt" and last["average_updates"] == 9
    name = next(k for k, v in last["state_dict"].items() if v.is_floating_point() and v.numel() > 8)
    assert torch.equal(best["state_dict"][name], last["average"][name])
    assert not torch.equal(best["state_dict"][name], last["state_dict"][name])

    class Killed(Exception):
        pass

    real_save = checkpoint.save_checkpoint

    def save_then_die(path, **kw):
        real_save(path, **kw)
        if path.name == "last.pt":
            raise Killed

    monkeypatch.setattr(checkpoint, "save_checkpoint", save_then_die)
    with pytest.raises(Killed):
        train(cfg("cut", 3))                                    # dies once epoch 1 is saved
    monkeypatch.setattr(checkpoint, "save_checkpoint", real_save)
    resumed = train(cfg("cut", 3, resume="auto"))
    again = torch.load(tmp_path / "cut" / "last.pt", map_location="cpu", weights_only=False)
    assert again["average_updates"] == 9
    for k, v in last["average"].items():
        assert torch.equal(v, again["average"][k]), k
    assert resumed.checkpoint.name == "best.pt"

    train(cfg("plain", 1, ema=0.0))
    with pytest.raises(ConfigError, match="holds no weight average"):
        train(cfg("plain", 2, resume="auto"))
