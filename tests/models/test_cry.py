"""Cry model: size budgets, BatchNorm folding, NPU-friendly ONNX graph, manifest_io against the schema, checkpoints."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from camlab.config import to_dict
from camlab.contract.audio_features import FeatureConfig
from camlab.errors import InputFileError
from camlab.models.cry import (MAX_MACS, MAX_PARAMS, CryModelConfig, build_model, count_macs, count_params,
                               fold_batchnorm, load_checkpoint, manifest_io)
from camlab.train.checkpoint import save_checkpoint

NPU_OPS = {"Conv", "Relu", "MaxPool", "GlobalAveragePool", "AveragePool", "Flatten", "Reshape", "Gemm"}


def _trained_like(cfg=None, seed=0):
    torch.manual_seed(seed)
    m = build_model(cfg or CryModelConfig())
    m.train()
    with torch.no_grad():   # give BatchNorm non-trivial running statistics
        for _ in range(3):
            m(torch.randn(16, 1, 32, 96) * 2 + 0.5)
    for p in m.parameters():
        p.data.add_(0.05 * torch.randn_like(p))
    return m.eval()


def test_budgets_and_shapes():
    cfg = CryModelConfig()
    m = build_model(cfg)
    assert count_params(m) <= MAX_PARAMS and count_macs(cfg) <= MAX_MACS
    # independent count from the executed layers (forward hooks)
    hooked = []

    def hook(mod, inp, out):
        k = mod.weight[0].numel() if isinstance(mod, torch.nn.Conv2d) else mod.in_features
        hooked.append(out[0].numel() * k)

    for mod in m.modules():
        if isinstance(mod, (torch.nn.Conv2d, torch.nn.Linear)):
            mod.register_forward_hook(hook)
    m.eval()(torch.zeros(1, 1, 32, 96))
    assert count_macs(cfg) == sum(hooked)
    assert m(torch.zeros(2, 1, 32, 96)).shape == (2, 1)
    mf = CryModelConfig(features=FeatureConfig(kind="mfcc", n_mfcc=20))
    assert build_model(mf)(torch.zeros(1, *mf.features.input_shape[1:])).shape == (1, 1)


def test_batchnorm_folding_is_exact():
    m = _trained_like()
    x = torch.randn(4, 1, 32, 96)
    with torch.no_grad():
        a = m(x)
        fold_batchnorm(m)
        b = m(x)
    assert not any(isinstance(mod, torch.nn.BatchNorm2d) for mod in m.modules())
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)


def test_onnx_graph_uses_npu_ops_only(tmp_path):
    import onnx
    import onnxruntime as ort

    m = fold_batchnorm(_trained_like())
    path = tmp_path / "cry.onnx"
    x = torch.randn(1, 1, 32, 96)
    torch.onnx.export(m, (x,), str(path), input_names=["features"], output_names=["logits"], opset_version=17,
                      dynamo=False)
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert ops <= NPU_OPS, ops - NPU_OPS
    assert "Sigmoid" not in ops and "Softmax" not in ops
    out = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"features": x.numpy()})[0]
    np.testing.assert_allclose(out, m(x).detach().numpy(), atol=1e-4)


def test_manifest_io_matches_schema_and_features():
    import jsonschema

    from camlab.contract.manifest import schema

    io = manifest_io(to_dict(CryModelConfig()))
    s = schema()
    defs = {"$defs": s["$defs"]}
    jsonschema.validate(io["inputs"][0], {**defs, "$ref": "#/$defs/input"})
    jsonschema.validate(io["outputs"][0], {**defs, "$ref": "#/$defs/output"})
    jsonschema.validate(io["decode"], {**defs, "$ref": "#/$defs/cry_decode"})
    assert io["inputs"][0]["shape"] == [1, 1, 32, 96]
    f = FeatureConfig.from_manifest(io["features"])
    assert f == CryModelConfig().features
    assert io["inputs"][0]["mean"] == f.mean and io["inputs"][0]["std"] == f.std
    assert io["decode"]["window_s"] == f.window_s and io["decode"]["alarm"]["k"] == 2
    json.dumps(io)


def test_checkpoint_roundtrip_and_errors(tmp_path):
    cfg = CryModelConfig(channels=(16, 48))
    m = _trained_like(cfg)
    p = save_checkpoint(tmp_path / "c.pt", kind="cry", model_config=to_dict(cfg), state_dict=m.state_dict(),
                        meta={"metrics": {"f1": 0.5}})
    loaded, meta = load_checkpoint(p)
    x = torch.randn(3, 1, 32, 96)
    torch.testing.assert_close(loaded(x), m(x), atol=1e-5, rtol=1e-4)
    assert meta["metrics"]["f1"] == 0.5 and meta["model_config"]["channels"] == [16, 48]
    save_checkpoint(tmp_path / "d.pt", kind="detector", model_config={}, state_dict={})
    with pytest.raises(InputFileError, match="expected 'cry'"):
        load_checkpoint(tmp_path / "d.pt")
    save_checkpoint(tmp_path / "e.pt", kind="cry", model_config=to_dict(CryModelConfig()), state_dict=m.state_dict())
    with pytest.raises(InputFileError, match="does not match the model"):
        load_checkpoint(tmp_path / "e.pt")


def test_channel_counts_are_npu_vector_multiples():
    from camlab.models.cry import CryModelConfig

    with pytest.raises(ValueError, match="multiple of 16"):
        CryModelConfig(stem_channels=24)
    with pytest.raises(ValueError, match="multiple of 16"):
        CryModelConfig(channels=(32, 40))


def test_aux_head_is_training_only():
    """The distillation head shares the features but is not in forward() (so not in the exported graph) and not
    in the deployed parameter count."""
    from camlab.models.cry import CryModelConfig, build_model, count_params

    plain = build_model(CryModelConfig(channels=(16, 32)))
    m = build_model(CryModelConfig(channels=(16, 32), aux_outputs=7)).eval()
    assert count_params(m) == count_params(plain)
    x = torch.randn(3, 1, 32, 96)
    main, aux = m.forward_aux(x)
    assert main.shape == (3, 1) and aux.shape == (3, 7)
    torch.testing.assert_close(m(x), main)
    assert sum(p.numel() for p in m.parameters()) == count_params(m) + 32 * 7 + 7


def _export_and_run(model, x, path, n: int):
    """Export ``model`` (opset 17, TorchScript exporter) to ``path``; (ONNX graph, onnxruntime logits of x[:n])."""
    import onnx
    import onnxruntime as ort

    torch.onnx.export(model, (x[:1],), str(path), input_names=["features"], output_names=["logits"], opset_version=17,
                      dynamo=False)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    out = np.concatenate([sess.run(None, {"features": x[i:i + 1].numpy()})[0] for i in range(n)])
    return onnx.load(str(path)).graph, out


def test_teacher_gate_vetoes_windows_the_teacher_head_doubts(tmp_path):
    """With ``teacher_gate`` g, a window keeps its cry logit where the distillation head's P(cry) >= g, loses
    GATE_DROP logits one logit below it (linear in between); the gated graph is NPU ops only (one Gemm row, Sub,
    Clip, Mul, Add), matches onnxruntime, and counts that row in params and MACs."""
    import math
    from dataclasses import replace

    from camlab.deploy.chips import load_chip
    from camlab.models.cry import GATE_DROP

    base = CryModelConfig(channels=(16, 32), aux_outputs=7)
    m = fold_batchnorm(_trained_like(base))
    x = torch.randn(64, 1, 32, 96)
    with torch.no_grad():
        z, aux = m.forward_aux(x)
        t = aux[:, :1]
        gate = float(torch.sigmoid(t.median()))
        m.model_config = replace(base, teacher_gate=gate)
        gated = m(x)
    shortfall = (math.log(gate / (1 - gate)) - t).clamp(0, 1)
    torch.testing.assert_close(gated, z - GATE_DROP * shortfall)
    assert bool((gated[t >= math.log(gate / (1 - gate))] == z[t >= math.log(gate / (1 - gate))]).all())
    assert bool((gated < z).any())
    assert count_params(m) == count_params(fold_batchnorm(build_model(base))) + 33
    assert count_macs(m.model_config) == count_macs(base) + 32

    graph, out = _export_and_run(m, x, tmp_path / "gated.onnx", 16)
    ops = {n.op_type for n in graph.node}
    assert ops <= set(load_chip("rv1106").allowed_ops) | {"Constant"}, ops
    np.testing.assert_allclose(out, gated[:16].numpy(), atol=1e-4)

    with pytest.raises(ValueError, match="teacher_gate"):
        CryModelConfig(teacher_gate=1.0, aux_outputs=7)
    with pytest.raises(ValueError, match="distillation head"):
        CryModelConfig(teacher_gate=0.05)


def test_teacher_blend_is_one_blended_gemm_row(tmp_path):
    """With ``teacher_blend`` b, the deployed logit is (1 - b) x cry head + b x the distillation head's first row;
    the exported graph has the ops, initializer sizes and MACs of the plain model (the blend folds into one row),
    and onnxruntime gives the blended logits."""
    from dataclasses import replace

    base = CryModelConfig(channels=(16, 32), aux_outputs=7)
    m = fold_batchnorm(_trained_like(base))
    x = torch.randn(32, 1, 32, 96)
    with torch.no_grad():
        z, aux = m.forward_aux(x)
        m.model_config = replace(base, teacher_blend=0.5)
        blended = m(x)
        m.model_config = replace(base, teacher_blend=1.0)
        teacher_only = m(x)
    torch.testing.assert_close(blended, 0.5 * z + 0.5 * aux[:, :1])
    torch.testing.assert_close(teacher_only, aux[:, :1])
    assert not torch.allclose(blended, z)
    m.model_config = replace(base, teacher_blend=0.5)
    assert count_params(m) == count_params(fold_batchnorm(build_model(base)))
    assert count_macs(m.model_config) == count_macs(base)

    def ops_and_size(graph):
        return sorted(n.op_type for n in graph.node), sum(int(np.prod(i.dims)) for i in graph.initializer)

    graph, out = _export_and_run(m, x, tmp_path / "blend.onnx", 8)
    plain_graph, _ = _export_and_run(fold_batchnorm(_trained_like(base)), x, tmp_path / "plain.onnx", 1)
    assert ops_and_size(graph) == ops_and_size(plain_graph)
    np.testing.assert_allclose(out, blended[:8].numpy(), atol=1e-4)

    with pytest.raises(ValueError, match="teacher_blend"):
        CryModelConfig(teacher_blend=1.5, aux_outputs=7)
    with pytest.raises(ValueError, match="distillation head"):
        CryModelConfig(teacher_blend=0.5)
