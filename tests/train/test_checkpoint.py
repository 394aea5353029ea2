"""Checkpoint files are untrusted input: loading one must never run code (torch.load weights_only=True)."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from camlab.errors import InputFileError
from camlab.train.checkpoint import load_checkpoint, save_checkpoint

torch = pytest.importorskip("torch")


class _Evil:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.write_text, (self.marker, "pwned"))


def test_load_checkpoint_refuses_a_pickle_that_would_run_code(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pt"
    torch.save({"kind": "cry", "model_config": {}, "state_dict": {}, "meta": {"x": _Evil(marker)}}, path,
               pickle_protocol=pickle.HIGHEST_PROTOCOL)
    with pytest.raises(InputFileError, match="retrain"):
        load_checkpoint(path)
    assert not marker.exists()


def test_saved_checkpoints_hold_plain_types_and_load_with_weights_only(tmp_path):
    import dataclasses

    @dataclasses.dataclass
    class Cfg:
        width: int = 8
        tags: tuple = ("a", "b")

    sd = {"w": torch.arange(4, dtype=torch.float32)}
    meta = {"metrics": {"auc": np.float64(0.93), "n": np.int64(7)}, "curve": np.arange(3, dtype=np.float32),
            "cfg": Cfg(), "out": tmp_path / "x", "history": [{"loss": np.float32(0.5)}], "none": None}
    p = save_checkpoint(tmp_path / "c.pt", kind="cry", model_config={"width": np.int64(8)}, state_dict=sd, meta=meta,
                        epoch=np.int64(3))
    ck = load_checkpoint(p, expect_kind="cry")
    assert torch.equal(ck["state_dict"]["w"], sd["w"])
    assert ck["meta"]["metrics"] == {"auc": pytest.approx(0.93), "n": 7} and type(ck["meta"]["metrics"]["n"]) is int
    assert ck["meta"]["curve"] == [0.0, 1.0, 2.0] and ck["meta"]["cfg"] == {"width": 8, "tags": ("a", "b")}
    assert ck["meta"]["out"] == str(tmp_path / "x") and ck["epoch"] == 3 and ck["model_config"] == {"width": 8}


def test_model_and_optimizer_state_round_trip(tmp_path):
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2))
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    net(torch.randn(2, 1, 5, 5)).sum().backward()
    opt.step()
    p = save_checkpoint(tmp_path / "m.pt", kind="detector", model_config={}, state_dict=net.state_dict(),
                        optimizer=opt.state_dict(), epoch=1)
    ck = load_checkpoint(p)
    assert ck["state_dict"]._metadata == net.state_dict()._metadata
    net2 = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3), torch.nn.BatchNorm2d(2))
    net2.load_state_dict(ck["state_dict"])
    opt2 = torch.optim.AdamW(net2.parameters(), lr=1e-3)
    opt2.load_state_dict(ck["optimizer"])
    assert opt2.state_dict()["param_groups"][0]["betas"] == opt.state_dict()["param_groups"][0]["betas"]
