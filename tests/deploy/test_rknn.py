"""RKNN-Toolkit2 oracle: log parsing on a recorded build table, the rv1106 layer model against recorded RKNN rows,
and (when ``make rknn`` built .venv-rknn) a real compile + INT8 simulation."""
from __future__ import annotations

import numpy as np
import pytest

from camlab.deploy import rknn
from camlab.deploy.chips import load_chip
from camlab.deploy.cost import LayerCost, layer_cycles
from camlab.deploy.rknn_worker import parse_build_log
from camlab.errors import CamlabError

# recorded from RKNN-Toolkit2 2.5.0, target rv1106 (stdout of the build, a 2-conv QDQ model), plus one CPU row
LOG = """\
D RKNN: [01:34:45.570]                       Network Layer Information Table
D RKNN: [01:34:45.570] ----------------------------------------------------------------------------------------
D RKNN: [01:34:45.570] ID   OpType             DataType Target InputShape                               OutputShape            Cycles(DDR/NPU/Total)    RW(KB)       FullName
D RKNN: [01:34:45.570] ----------------------------------------------------------------------------------------
D RKNN: [01:34:45.570] 0    InputOperator      INT8     CPU    \\                                        (1,3,64,64)            0/0/0                    0            InputOperator:images
D RKNN: [01:34:45.570] 1    Conv               INT8     NPU    (1,3,64,64),(16,3,3,3),(16)              (1,16,32,32)           4770/9216/9216           12           Conv:/c/Conv
D RKNN: [01:34:45.570] 2    Conv               INT8     NPU    (1,16,32,32),(7,16,1,1),(7)              (1,7,32,32)            5359/4096/5359           16           Conv:/h/Conv
D RKNN: [01:34:45.570] 3    TopK               FLOAT16  CPU    (1,7,32,32)                              (1,7,32,32)            0/0/0                    16           TopK:/topk
D RKNN: [01:34:45.570] 4    OutputOperator     INT8     NPU    (1,7,32,32)                              \\                      0/0/0                    16           OutputOperator:out
D RKNN: [01:34:45.570] <<<<<<<< end: rknn::RKNNModelRegCmdbuildPass
D RKNN: [01:34:45.571] Total Internal Memory Size: 44KB
D RKNN: [01:34:45.571] Total Weight Memory Size: 0.9375KB
"""


def test_parse_build_log_values():
    rep = parse_build_log(LOG)
    assert [la["op"] for la in rep["layers"]] == ["InputOperator", "Conv", "Conv", "TopK", "OutputOperator"]
    assert rep["total_cycles"] == 9216 + 5359
    assert rep["cpu_layers"] == ["TopK:/topk"]  # the input operator's CPU row is not a fallback
    assert rep["internal_memory_bytes"] == 44 * 1024 and rep["weight_memory_bytes"] == 960
    assert rep["layers"][1]["cycles_ddr"] == 4770 and rep["layers"][1]["name"] == "Conv:/c/Conv"


def test_rv1106_layer_model_reproduces_recorded_npu_cycles():
    chip = load_chip("rv1106")
    stem = LayerCost("c", "Conv", macs=16 * 32 * 32 * 27, params=448, in_bytes=3 * 64 * 64, out_bytes=16 * 32 * 32,
                     cin_per_group=3, cout=16, kernel_area=9)
    assert layer_cycles(stem, chip) == pytest.approx(9216)  # RKNN: NPU-bound, 9216
    head = LayerCost("h", "Conv", macs=7 * 32 * 32 * 16, params=119, in_bytes=16 * 32 * 32, out_bytes=7 * 32 * 32,
                     cin_per_group=16, cout=7, kernel_area=1)
    assert layer_cycles(head, chip) == pytest.approx(5359, rel=0.15)  # RKNN: DDR-bound, 5359


def test_missing_toolkit_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("CAMLAB_RKNN_VENV", str(tmp_path / "none"))
    assert not rknn.available()
    with pytest.raises(CamlabError, match="RKNN-Toolkit2 venv not found .* run `make rknn`"):
        rknn.run_oracle(tmp_path / "m.onnx", np.zeros((1, 3, 32, 32), np.float32))


@pytest.mark.slow
@pytest.mark.skipif(not rknn.available(), reason="RKNN-Toolkit2 venv not built (make rknn)")
def test_oracle_compiles_tiny_detector_with_no_cpu_layers(tiny_onnx):
    _, int8, calib = tiny_onnx
    rep = rknn.run_oracle(int8, calib[:2])
    assert rep["ok"] and rep["toolkit_version"] == "2.5.0"
    assert rep["cpu_layers"] == 0
    assert rep["total_cycles"] > 0 and rep["latency_ms"] == pytest.approx(2.0 * rep["total_cycles"] / 1e6, abs=1e-3)
    assert rep["sim_cosine_min"] > 0.99
    assert rep["internal_memory_bytes"] > 0


@pytest.mark.slow
@pytest.mark.skipif(not rknn.available(), reason="RKNN-Toolkit2 venv not built (make rknn)")
def test_oracle_builds_camdet_with_a_fitted_presence_gate_for_rv1106(tmp_path):
    """The gate's pooled vectors joined by a Concat made RKNN-Toolkit2 fail ("Conv ... not supported 'float16' dtype
    at rv1103/rv1106"); the summed per-vector convs must build with no CPU fallback."""
    import torch

    from camlab.deploy.export import export_onnx
    from camlab.deploy.quantize import quantize_qdq
    from camlab.models.detector import CamDet, DetectorConfig
    from camlab.train.presence_gate import set_gate

    torch.manual_seed(0)
    model = CamDet(DetectorConfig(backbone="mobilenetv2", input_width=160, input_height=96,
                                  presence_gate=True)).eval()
    rng = np.random.default_rng(0)
    set_gate(model, rng.normal(0, 0.02, (3, sum(model.gate.widths))), np.array([0.0, -0.5, -0.5]))
    fp32 = export_onnx(model, (1, 3, 96, 160), tmp_path / "gated.onnx", output_names=model.output_names)
    calib = rng.random((8, 3, 96, 160), dtype=np.float32)
    quantize_qdq(fp32, tmp_path / "gated_int8.onnx", calib)
    rep = rknn.run_oracle(tmp_path / "gated_int8.onnx", calib[:2])
    assert rep["ok"], rep.get("error")
    assert rep["cpu_layers"] == 0
    assert rep["sim_cosine_min"] > 0.98


@pytest.mark.slow
@pytest.mark.skipif(not rknn.available(), reason="RKNN-Toolkit2 venv not built (make rknn)")
def test_a_bundle_rknn_cannot_build_for_the_target_chip_is_not_written(tmp_path):
    """The exporter used to record the toolkit's refusal in the manifest and still list rv1106 as a chip the bundle
    ships to, with the latency of the cost model: a figure that could not fail."""
    from deploy_nets import images, tiny_detector_rknn_refuses, tiny_io

    from camlab.deploy.bundle import BundleRequest, build_bundle

    req = BundleRequest(model=tiny_detector_rknn_refuses(), io=tiny_io(), name="detector", task="detection",
                        calibration=images(8), calibration_source="synthetic (test)", out_root=tmp_path / "t",
                        oracle=True, register=False)
    with pytest.raises(CamlabError, match=r"RKNN-Toolkit2 could not build the INT8 model for rv1106, no bundle "
                                          r"written: .*float16"):
        build_bundle(req)
    assert not [p for p in (tmp_path / "t").rglob("*") if p.is_file()]
    other = BundleRequest(model=tiny_detector_rknn_refuses(), io=tiny_io(), name="detector", task="detection",
                          calibration=images(8), calibration_source="synthetic (test)", out_root=tmp_path / "o",
                          target_chip="ssc377", oracle=True, register=False)
    from camlab.contract.manifest import load_bundle

    manifest = load_bundle(build_bundle(other)).manifest
    assert "rv1106" not in manifest["chips"] and "ssc377" in manifest["chips"]
    assert "rknn_build" in manifest["validation"]["rv1106"]["rules"]
