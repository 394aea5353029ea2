"""The presence gate (camlab.models.detector.PresenceGate, camlab.train.presence_gate): an image-level logit offset
per class inside the graph, fitted after training, its thresholds picked on out-of-fold gates."""
from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
import torch

from camlab.data.classes import CLASSES
from camlab.errors import ConfigError
from camlab.models.detector import CamDet, DetectorConfig
from camlab.train import presence_gate as pg


def _model(gate: bool) -> CamDet:
    torch.manual_seed(0)
    return CamDet(DetectorConfig(input_width=96, input_height=64, presence_gate=gate)).eval()


def test_a_zero_gate_changes_nothing_and_a_fitted_one_lowers_every_cell_of_its_class_alike_never_lifts():
    plain = _model(False)
    gated = pg.with_gate(plain)
    x = torch.rand(2, 3, 64, 96)
    with torch.no_grad():
        for a, b in zip(plain(x), gated(x)):
            assert torch.equal(a, b)
        w = np.zeros((len(CLASSES), sum(gated.gate.widths)))
        w[2, :5] = 0.3
        pg.set_gate(gated, w, np.array([0.0, -1.5, 0.25]))
        outs, (c4, c5) = gated.forward_parts(x)
        g = (gated.gate.pooled(c4, c5).flatten(1) @ torch.from_numpy(w).float().T) + torch.tensor([0.0, -1.5, 0.25])
        for k, (a, b) in enumerate(zip(outs, gated(x))):
            if k % 2 == 0:                                  # box maps untouched
                assert torch.equal(a, b)
                continue
            diff = (b - a).flatten(2)                        # (N, C, cells): one offset per image and class
            cut = g.clamp(max=0.0)                           # only the suppressing half of the fitted offset
            assert torch.allclose(diff, cut[:, :, None].expand_as(diff), atol=1e-5)
            assert (diff <= 0).all()
    assert not any(p.requires_grad for p in gated.gate.parameters())     # never moved by the detector's loss
    with pytest.raises(ConfigError, match="set_gate: 5 weights"):
        pg.set_gate(gated, np.zeros((3, 5)), np.zeros(3))


def test_the_gated_graph_exports_with_npu_ops_and_onnxruntime_agrees(tmp_path):
    from camlab.deploy.export import export_onnx

    gated = pg.with_gate(_model(False))
    rng = np.random.default_rng(0)
    pg.set_gate(gated, rng.normal(0, 0.05, (len(CLASSES), sum(gated.gate.widths))), np.array([0.5, -0.5, 1.0]))
    path = export_onnx(gated, (1, 3, 64, 96), tmp_path / "gated.onnx", output_names=gated.output_names)
    import onnx

    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert "GlobalAveragePool" in ops and ops & {"GlobalMaxPool", "MaxPool"}, ops   # static input: MaxPool
    assert "Concat" not in ops, "RKNN-Toolkit2 cannot build pooled vectors joined by a Concat for rv1106"
    x = rng.random((1, 3, 64, 96), dtype=np.float32)
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"images": x})
    with torch.no_grad():
        want = gated(torch.from_numpy(x))
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b.numpy(), rtol=1e-4, atol=1e-4)


def _rows(n: int = 400, seed: int = 0) -> pg.GateRows:
    """Feature 0 carries class 0's presence, the box logit is uninformative; class 1 is never absent."""
    rng = np.random.default_rng(seed)
    present = np.zeros((n, 3), bool)
    present[:, 0] = rng.random(n) < 0.5
    present[:, 1] = True
    pooled = rng.normal(0, 1, (n, 8)) + 10.0
    pooled[:, 0] += np.where(present[:, 0], 2.0, -2.0)
    known = np.ones((n, 3), bool)
    known[: n // 4, 2] = False
    return pg.GateRows(pooled, rng.normal(-2, 0.5, (n, 3)), present, known, np.arange(n))


def test_fit_learns_the_image_level_evidence_and_leaves_unfittable_classes_off():
    rows = _rows()
    w, b, rep = pg.fit_gate(rows, ("person", "pet"), c=1.0)
    g = rows.pooled @ w[0] + b[0]
    p = 1 / (1 + np.exp(-(rows.max_logit[:, 0] + g)))
    acc = float(((p >= 0.5) == rows.present[:, 0]).mean())
    assert acc > 0.95 and rep["person"]["fitted"]
    assert rep["person"]["gate_mean_positives"] > 0 > rep["person"]["gate_mean_negatives"]
    assert not rep["pet"]["fitted"] and not w[1].any() and b[1] == 0      # no negatives: no gate
    assert not w[2].any() and b[2] == 0                                    # not asked for


def test_thresholds_are_scored_on_out_of_fold_gates_and_the_final_gate_sees_every_row(monkeypatch):
    rows = _rows(100)
    samples = list(range(100))
    monkeypatch.setattr(pg, "gate_rows", lambda model, s, show_progress=False: rows)
    gated = pg.with_gate(_model(False))
    gated.gate.widths = (2, 2, 2, 2)
    gated.gate.fc = torch.nn.ModuleList([torch.nn.Conv2d(2, 3, 1, bias=i == 0) for i in range(4)])
    seen = []

    def score_fn(model, part):
        seen.append((list(part), -model.gate.fc[0].bias.detach().numpy().copy()))   # the convs hold -g
        return len(part)

    results, rep = pg.cross_fitted_scores(gated, samples, ("person",), 1.0, 4, seed=7, score_fn=score_fn)
    fold = pg.fold_of(100, 4, 7)
    assert sorted(i for part, _ in seen for i in part) == samples           # every sample scored exactly once
    for k, (part, bias) in enumerate(seen):
        assert set(part) == set(np.where(fold == k)[0])
        _, b_k, _ = pg.fit_gate(rows.take(fold != k), ("person",), 1.0)   # the gate of the other folds
        np.testing.assert_allclose(bias, b_k, rtol=1e-5, atol=1e-6)
    _, b_all, _ = pg.fit_gate(rows, ("person",), 1.0)
    np.testing.assert_allclose(-gated.gate.fc[0].bias.detach().numpy(), b_all, rtol=1e-5, atol=1e-6)
    assert results == [int((fold == k).sum()) for k in range(4)] and rep["folds"] == 4


def test_bad_gate_settings_are_one_line_errors():
    from camlab.train.detector import load_train_config

    with pytest.raises(ConfigError, match=r"presence_gate: unknown class.*unicorn"):
        load_train_config("detector_full", {"calibrate": {"presence_gate": ["unicorn"]}})
    with pytest.raises(ConfigError, match="presence_gate_folds >= 2"):
        load_train_config("detector_full", {"calibrate": {"presence_gate": ["person"], "presence_gate_folds": 1}})
    with pytest.raises(ConfigError, match="no presence gate"):
        pg.gate_rows(_model(False), [])
