"""INT8 post-training quantization to QDQ ONNX with onnxruntime ``quantize_static``, plus FP32-vs-INT8 comparison.

Jacob et al., "Quantization and Training of Neural Networks for Efficient Integer-Arithmetic-Only Inference",
CVPR 2018 (affine int8 scheme); ONNX QuantizeLinear/DequantizeLinear (opset 13) operator spec; onnxruntime
quantization docs (QDQ format). Weights: int8, per-channel symmetric on axis 0 (zero-point 0). Activations:
per-tensor (int8, asymmetric by default, what RKNN's ``asymmetric_quantized-8`` expects). Every graph output ends in
QuantizeLinear -> DequantizeLinear: INT8-only NPUs (rv1106) reject a float head.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from camlab.errors import CamlabError, InputFileError


@dataclass(frozen=True)
class QuantConfig:
    """What ``quantize_static`` is asked for (recorded in the manifest's ``quantization`` block)."""

    method: str = "MinMax"               # MinMax | Entropy | Percentile
    activation_dtype: str = "int8"        # int8 | uint8
    activation_symmetric: bool = False
    percentile: float = 99.999


class _ArrayReader:
    """onnxruntime CalibrationDataReader over an (N, ...) float32 array, one sample per call."""

    def __init__(self, input_name: str, samples: np.ndarray):
        self.input_name = input_name
        self.samples = samples
        self.i = 0

    def get_next(self):
        if self.i >= len(self.samples):
            return None
        x = self.samples[self.i:self.i + 1]
        self.i += 1
        return {self.input_name: np.ascontiguousarray(x, dtype=np.float32)}

    def rewind(self):
        self.i = 0


def _ort_quant_types(cfg: QuantConfig):
    from onnxruntime.quantization import CalibrationMethod, QuantType

    methods = {"MinMax": CalibrationMethod.MinMax, "Entropy": CalibrationMethod.Entropy,
               "Percentile": CalibrationMethod.Percentile, "Distribution": CalibrationMethod.Distribution}
    if cfg.method not in methods:
        raise CamlabError(f"quantization method must be one of {sorted(methods)}, got {cfg.method!r}")
    if cfg.activation_dtype not in ("int8", "uint8"):
        raise CamlabError(f"activation dtype must be int8 or uint8, got {cfg.activation_dtype!r}")
    act = QuantType.QInt8 if cfg.activation_dtype == "int8" else QuantType.QUInt8
    return methods[cfg.method], act


def _output_ranges(fp32_path: Path, input_name: str, samples: np.ndarray) -> dict[str, tuple[float, float]]:
    """Min/max of every graph output of the FP32 model over the calibration samples."""
    sess = session(fp32_path)
    names = [o.name for o in sess.get_outputs()]
    lo = {n: np.inf for n in names}
    hi = {n: -np.inf for n in names}
    for i in range(len(samples)):
        outs = sess.run(names, {input_name: samples[i:i + 1].astype(np.float32)})
        for n, o in zip(names, outs):
            lo[n] = min(lo[n], float(o.min()))
            hi[n] = max(hi[n], float(o.max()))
    return {n: (lo[n], hi[n]) for n in names}


def _scale_zero_point(lo: float, hi: float, dtype: str, symmetric: bool) -> tuple[float, int]:
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    qmin, qmax = (-128, 127) if dtype == "int8" else (0, 255)
    if symmetric:
        m = max(abs(lo), abs(hi)) or 1e-8
        scale = m / ((qmax - qmin) / 2)
        zp = 0 if dtype == "int8" else 128
    else:
        scale = (hi - lo) / (qmax - qmin) or 1e-8
        zp = int(round(qmin - lo / scale))
        zp = int(np.clip(zp, qmin, qmax))
    return float(scale), zp


def ensure_output_qdq(model, ranges: dict[str, tuple[float, float]], dtype: str = "int8",
                      symmetric: bool = False) -> list[str]:
    """Insert QuantizeLinear -> DequantizeLinear before every graph output not already produced by a DQ node.

    The output keeps its name (the producer is renamed to ``<name>_preq``). Returns the outputs that were fixed.
    """
    from onnx import helper, numpy_helper

    producers = {o: n for n in model.graph.node for o in n.output}
    fixed = []
    for out in model.graph.output:
        prod = producers.get(out.name)
        if prod is not None and prod.op_type == "DequantizeLinear":
            continue
        if out.name not in ranges:
            raise CamlabError(f"graph output '{out.name}' has no calibration range; cannot add Q->DQ")
        scale, zp = _scale_zero_point(*ranges[out.name], dtype, symmetric)
        pre = f"{out.name}_preq"
        if prod is not None:
            prod.output[list(prod.output).index(out.name)] = pre
        for node in model.graph.node:  # other consumers of the float tensor read the pre-quant value
            for i, name in enumerate(node.input):
                if name == out.name:
                    node.input[i] = pre
        np_dtype = np.int8 if dtype == "int8" else np.uint8
        model.graph.initializer.extend([
            numpy_helper.from_array(np.array(scale, np.float32), f"{out.name}_oscale"),
            numpy_helper.from_array(np.array(zp, np_dtype), f"{out.name}_ozp"),
        ])
        q = helper.make_node("QuantizeLinear", [pre, f"{out.name}_oscale", f"{out.name}_ozp"], [f"{out.name}_q"],
                             name=f"{out.name}_QuantizeLinear_out")
        dq = helper.make_node("DequantizeLinear", [f"{out.name}_q", f"{out.name}_oscale", f"{out.name}_ozp"],
                              [out.name], name=f"{out.name}_DequantizeLinear_out")
        model.graph.node.extend([q, dq])
        fixed.append(out.name)
    return fixed


def quantize_qdq(fp32_path: str | Path, int8_path: str | Path, calibration: np.ndarray,
                 cfg: QuantConfig = QuantConfig()) -> dict:
    """FP32 ONNX -> INT8 QDQ ONNX calibrated on ``calibration`` (N, ...) float32 model inputs.

    Returns the manifest's ``quantization`` block (without ``calibration.source``, which the caller knows).
    """
    import onnx
    import onnxruntime
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    fp32_path, int8_path = Path(fp32_path), Path(int8_path)
    calibration = np.asarray(calibration, dtype=np.float32)
    if calibration.ndim < 2 or len(calibration) == 0:
        raise CamlabError(f"calibration data must be a non-empty (N, ...) array, got shape {calibration.shape}")
    if not np.isfinite(calibration).all():
        raise CamlabError("calibration data contains NaN or inf")
    model = load_onnx(fp32_path)
    input_name = model.graph.input[0].name
    want = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    if list(calibration.shape[1:]) != want[1:]:
        raise CamlabError(f"calibration samples have shape {list(calibration.shape[1:])}, model input "
                          f"'{input_name}' expects {want[1:]}")
    method, act_type = _ort_quant_types(cfg)
    extra = {"WeightSymmetric": True, "ActivationSymmetric": cfg.activation_symmetric,
             "QuantizeBias": True, "DedicatedQDQPair": False, "AddQDQPairToWeight": False,
             "ForceQuantizeNoInputCheck": True}
    if cfg.method == "Percentile":
        extra["CalibPercentile"] = cfg.percentile
    int8_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = int8_path.with_name(int8_path.name + ".tmp.onnx")
    t0 = time.perf_counter()
    import logging

    root_level = logging.getLogger().level
    logging.getLogger().setLevel(logging.ERROR)  # onnxruntime's "consider pre-processing" notices
    try:
        quantize_static(str(fp32_path), str(tmp), _ArrayReader(input_name, calibration),
                        quant_format=QuantFormat.QDQ, per_channel=True, weight_type=QuantType.QInt8,
                        activation_type=act_type, calibrate_method=method, extra_options=extra)
        qmodel = onnx.load(str(tmp))
    finally:
        logging.getLogger().setLevel(root_level)
        for p in (tmp, tmp.with_name(tmp.name + ".data")):
            p.unlink(missing_ok=True)
    ranges = _output_ranges(fp32_path, input_name, calibration)
    fixed = ensure_output_qdq(qmodel, ranges, cfg.activation_dtype, cfg.activation_symmetric)
    qmodel.ir_version = model.ir_version
    onnx.checker.check_model(qmodel, full_check=True)
    from camlab.io_utils import atomic_write_bytes

    atomic_write_bytes(int8_path, qmodel.SerializeToString())
    return {
        "format": "QDQ",
        "weights": {"dtype": "int8", "granularity": "per_channel", "symmetric": True, "axis": 0},
        "activations": {"dtype": cfg.activation_dtype, "granularity": "per_tensor",
                        "symmetric": cfg.activation_symmetric},
        "outputs_quantized": True,
        "calibration": {"method": cfg.method, "count": int(len(calibration))},
        "tool": f"onnxruntime {onnxruntime.__version__} quantize_static",
        "_outputs_fixed": fixed,
        "_seconds": round(time.perf_counter() - t0, 2),
    }


def load_onnx(path: str | Path):
    """onnx.load with a clear error for a missing or corrupt file."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{path}: ONNX model not found")
    try:
        return onnx.load(str(path))
    except Exception as exc:  # protobuf DecodeError and friends
        raise InputFileError(f"{path}: not a readable ONNX model ({type(exc).__name__}: {exc})") from None


def reference_session_options(threads: int = 1):
    """onnxruntime options under which a QDQ model computes what its graph says (the chip's integer arithmetic).

    Graph optimisation stops at the basic level: the extended level fuses DQ -> Conv -> Q into x86 integer kernels
    which, on CPUs without VNNI (this VM: AVX2 only), multiply with VPMADDUBSW and saturate its int16 pair sums
    (onnxruntime's quantization guide: ``reduce_range`` "for better accuracy on non-VNNI CPUs"). NPUs accumulate in
    int32 and do not saturate there, so fused-kernel outputs are a host artefact, not the bundle's accuracy. Measured
    on the 2026-12-02 release cry model: INT8 logits cosine vs FP32 0.818 fused, 0.9998 unfused (F1 0.929 vs 0.956);
    ``tests/deploy/test_quantize_reference.py`` holds a 3x3 conv whose fused result is half the exact one."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    return opts


def session(path: str | Path, threads: int = 1):
    """A CPU onnxruntime session with :func:`reference_session_options` (single-threaded by default)."""
    import onnxruntime as ort

    opts = reference_session_options(threads)
    try:
        return ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise InputFileError(f"{path}: onnxruntime cannot load the model ({type(exc).__name__}: {exc})") from None


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two tensors, flattened (float64)."""
    a = np.asarray(a, np.float64).ravel()
    b = np.asarray(b, np.float64).ravel()
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na == 0 and nb == 0:
        return 1.0
    if na == 0 or nb == 0:
        return 0.0
    return float(a @ b / (na * nb))


def compare_outputs(fp32_path: str | Path, int8_path: str | Path, inputs: Iterable[np.ndarray]) -> dict:
    """Per-output cosine FP32 vs INT8 over ``inputs`` (each (1, ...) or (...)): min over samples and overall."""
    s32, s8 = session(fp32_path), session(int8_path)
    name = s32.get_inputs()[0].name
    outs = [o.name for o in s32.get_outputs()]
    per_sample: dict[str, list[float]] = {o: [] for o in outs}
    cat32: dict[str, list] = {o: [] for o in outs}
    cat8: dict[str, list] = {o: [] for o in outs}
    n = 0
    for x in inputs:
        x = np.asarray(x, np.float32)
        if x.ndim == len(s32.get_inputs()[0].shape) - 1:
            x = x[None]
        r32 = s32.run(outs, {name: x})
        r8 = s8.run(outs, {name: x})
        for o, a, b in zip(outs, r32, r8):
            per_sample[o].append(cosine(a, b))
            cat32[o].append(a.ravel())
            cat8[o].append(b.ravel())
        n += 1
    if n == 0:
        raise CamlabError("compare_outputs needs at least one input")
    return {"count": n,
            "cosine": {o: cosine(np.concatenate(cat32[o]), np.concatenate(cat8[o])) for o in outs},
            "cosine_min_sample": {o: float(min(v)) for o, v in per_sample.items()}}


def ort_latency_ms(path: str | Path, x: np.ndarray, repeats: int = 20, warmup: int = 3) -> float:
    """Median single-thread onnxruntime CPU latency of one inference, in ms."""
    sess = session(path)
    name = sess.get_inputs()[0].name
    x = np.asarray(x, np.float32)
    for _ in range(warmup):
        sess.run(None, {name: x})
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        sess.run(None, {name: x})
        times.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(times))
