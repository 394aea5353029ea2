"""Deploy test fixtures: a tiny detector exported and quantized once per session."""
from __future__ import annotations

import pytest
from deploy_nets import images, tiny_detector, tiny_io


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory):
    """(fp32 path, int8 path, calibration array) for the tiny detector, built once per session."""
    from camlab.deploy.export import export_onnx
    from camlab.deploy.quantize import quantize_qdq

    root = tmp_path_factory.mktemp("tiny_onnx")
    io = tiny_io()
    fp32 = export_onnx(tiny_detector(), io["inputs"][0]["shape"], root / "fp32.onnx",
                       output_names=[o["name"] for o in io["outputs"]])
    calib = images(16)
    quantize_qdq(fp32, root / "int8.onnx", calib)
    return fp32, root / "int8.onnx", calib
