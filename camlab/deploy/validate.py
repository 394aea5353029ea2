"""Chip checklist for a deployable INT8 QDQ ONNX: every violation with the node name and the rule.

Rules: ONNX full check (onnx.checker); opset/IR range; one input, batch 1, H/W multiples of 32; static shapes after
strict shape inference; banned ops (dynamic shape, control flow, NMS/TopK, DSP); Resize with constant scales; no
QOperator ops; QDQ rules (int8 per-channel symmetric weights on axis 0 with zero-point 0, per-tensor activations of
the chip's dtype, every compute op fed by DequantizeLinear, every graph output produced by Q->DQ); no decode
(sigmoid/softmax/exp or concat of box and score heads) after the last compute layer; chip efficiency rules
(depthwise kernel sizes, channel multiples); op support list; budgets (activation RAM from tensor liveness, weight
RAM, flash). Sources: ONNX operator spec, RKNN-Toolkit2 user guide (op support, QDQ import), the chip profiles.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from camlab.deploy.chips import QOPERATOR_OPS, ChipProfile, load_chip

COMPUTE_OPS = {"Conv", "ConvTranspose", "Gemm", "MatMul"}
PASS_THROUGH = {"QuantizeLinear", "DequantizeLinear", "Reshape", "Transpose", "Flatten", "Squeeze", "Unsqueeze",
                "Identity", "Concat", "Split", "Slice", "Sigmoid", "Softmax", "Exp", "Mul", "Add", "Sub", "Div",
                "Tanh", "HardSigmoid", "Relu", "Clip", "LeakyRelu"}
DECODE_OPS = {"Sigmoid", "Softmax", "Exp", "HardSigmoid", "LogSoftmax"}
RULES = ("onnx_check", "opset", "ir_version", "single_input", "input_shape", "static_shapes", "banned_op",
         "unsupported_op", "resize_constant", "qoperator", "qdq_weights", "qdq_activation", "qdq_unquantized_op",
         "qdq_output", "decode_in_graph", "depthwise_kernel", "channel_multiple", "budget_activations",
         "budget_weights", "budget_flash")


@dataclass
class Violation:
    rule: str
    node: str
    message: str


@dataclass
class Report:
    chip: str
    model: str
    violations: list[Violation] = field(default_factory=list)
    cost: dict = field(default_factory=dict)
    latency: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not self.violations

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for v in self.violations:
            out[v.rule] = out.get(v.rule, 0) + 1
        return out

    def to_dict(self) -> dict:
        return {"chip": self.chip, "model": self.model, "passed": self.passed,
                "violation_count": len(self.violations), "counts": self.counts(), "rules_checked": list(RULES),
                "violations": [asdict(v) for v in self.violations], "cost": self.cost, "latency": self.latency}


def _attr(node, name, default=None):
    from onnx import helper

    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _label(node) -> str:
    return node.name or (node.output[0] if node.output else node.op_type)


def validate_model(model_or_path, chip: ChipProfile | str, *, flash_bytes: int | None = None) -> Report:
    """Run the checklist on a QDQ ONNX model (path or ModelProto) for ``chip``."""
    import onnx
    from onnx import numpy_helper

    from camlab.deploy.cost import graph_cost, npu_latency_ms
    from camlab.deploy.quantize import load_onnx

    chip = load_chip(chip) if isinstance(chip, str) else chip
    label = str(model_or_path) if isinstance(model_or_path, (str, Path)) else "<model>"
    model = load_onnx(model_or_path) if isinstance(model_or_path, (str, Path)) else model_or_path
    if flash_bytes is None:
        flash_bytes = Path(model_or_path).stat().st_size if isinstance(model_or_path, (str, Path)) \
            else model.ByteSize()
    rep = Report(chip=chip.name, model=label)
    v = rep.violations.append
    g = model.graph

    try:
        onnx.checker.check_model(model, full_check=True)
    except Exception as exc:  # onnx raises ValidationError / InferenceError
        v(Violation("onnx_check", "<graph>", str(exc).strip().splitlines()[0][:300]))

    opset = {o.domain or "ai.onnx": o.version for o in model.opset_import}
    main = opset.get("ai.onnx")
    if main is None or not chip.opset_min <= main <= chip.opset_max:
        v(Violation("opset", "<graph>", f"opset {main} outside {chip.opset_min}-{chip.opset_max}"))
    for dom in opset:
        if dom not in ("ai.onnx",):
            v(Violation("opset", "<graph>", f"custom opset domain '{dom}' is not accepted by the toolchain"))
    if model.ir_version > chip.ir_max:
        v(Violation("ir_version", "<graph>", f"IR version {model.ir_version} > {chip.ir_max}"))

    inits = {i.name: i for i in g.initializer}
    real_inputs = [i for i in g.input if i.name not in inits]
    if len(real_inputs) != 1:
        v(Violation("single_input", "<graph>", f"{len(real_inputs)} graph inputs, expected exactly 1"))
    for inp in real_inputs:
        dims = [d.dim_value if d.HasField("dim_value") else -1 for d in inp.type.tensor_type.shape.dim]
        if not dims or dims[0] != 1:
            v(Violation("input_shape", inp.name, f"input shape {dims}: batch must be 1"))
        if len(dims) == 4 and (dims[2] <= 0 or dims[3] <= 0 or dims[2] % chip.input_multiple
                               or dims[3] % chip.input_multiple):
            v(Violation("input_shape", inp.name, f"input shape {dims}: H and W must be static multiples of "
                                                  f"{chip.input_multiple}"))

    from camlab.deploy.export import check_static
    try:
        dynamic = check_static(model)
    except Exception as exc:
        dynamic = []
        v(Violation("static_shapes", "<graph>", f"strict shape inference failed: {str(exc).splitlines()[0][:300]}"))
    for name in dynamic:
        v(Violation("static_shapes", name, "shape not static after strict shape inference"))

    producers = {o: n for n in g.node for o in n.output}
    consumers: dict[str, list] = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    constants = set(inits) | {o for n in g.node if n.op_type == "Constant" for o in n.output}

    banned = set(chip.banned_ops)
    allowed = set(chip.allowed_ops) | {"Constant"}
    for n in g.node:
        if n.op_type in banned:
            v(Violation("banned_op", _label(n), f"{n.op_type} is not allowed on {chip.name}"))
        elif n.op_type in QOPERATOR_OPS:
            v(Violation("qoperator", _label(n), f"{n.op_type} is a QOperator op; bundles must be QDQ"))
        elif allowed and n.op_type not in allowed:
            v(Violation("unsupported_op", _label(n), f"{n.op_type} is not in {chip.name}'s NPU op list"))
        if n.op_type == "Resize":
            for idx in (1, 2, 3):
                if len(n.input) > idx and n.input[idx] and n.input[idx] not in constants:
                    v(Violation("resize_constant", _label(n), f"Resize input {idx} ('{n.input[idx]}') is computed, "
                                                              "scales/sizes must be constants"))

    # --- QDQ rules
    def const_array(name):
        if name in inits:
            return numpy_helper.to_array(inits[name])
        p = producers.get(name)
        if p is not None and p.op_type == "Constant":
            return numpy_helper.to_array(_attr(p, "value"))
        return None

    act_dtype = {"int8": np.int8, "uint8": np.uint8}.get(chip.activation_dtype)
    for n in g.node:
        if n.op_type not in ("QuantizeLinear", "DequantizeLinear"):
            continue
        src_const = n.input[0] in constants
        scale = const_array(n.input[1])
        zp = const_array(n.input[2]) if len(n.input) > 2 and n.input[2] else None
        if scale is None:
            v(Violation("qdq_activation", _label(n), "scale is not a constant"))
            continue
        if n.op_type == "DequantizeLinear" and src_const:  # weight or bias
            w = const_array(n.input[0])
            users = consumers.get(n.output[0], [])
            is_weight = any(u.op_type in COMPUTE_OPS and len(u.input) > 1 and u.input[1] == n.output[0]
                            for u in users)
            if w is not None and w.dtype == np.int32:
                continue  # bias, int32 by spec
            if is_weight:
                if w is None or w.dtype != np.int8:
                    v(Violation("qdq_weights", _label(n), f"weight dtype {None if w is None else w.dtype}, "
                                                          "expected int8"))
                axis = int(_attr(n, "axis", 1))
                if scale.size > 1 and axis != 0:
                    v(Violation("qdq_weights", _label(n), f"per-channel axis {axis}, expected 0"))
                if w is not None and w.ndim >= 2 and scale.size != w.shape[0]:
                    v(Violation("qdq_weights", _label(n), f"{scale.size} scales for {w.shape[0]} output channels "
                                                          "(expected per-channel on axis 0)"))
                if zp is not None and np.any(zp != 0):
                    v(Violation("qdq_weights", _label(n), "weight zero-point not 0 (symmetric int8 required)"))
            continue
        # activation quantization
        if scale.size != 1:
            v(Violation("qdq_activation", _label(n), f"activation scale has {scale.size} values; per-tensor "
                                                     "expected"))
        if act_dtype is not None and zp is not None and zp.dtype != act_dtype:
            v(Violation("qdq_activation", _label(n), f"activation dtype {zp.dtype}, {chip.name} wants "
                                                     f"{chip.activation_dtype}"))

    for n in g.node:
        if n.op_type in COMPUTE_OPS:
            for idx, i in enumerate(n.input[:2]):
                p = producers.get(i)
                if p is None or p.op_type != "DequantizeLinear":
                    what = "weight" if idx == 1 else "input"
                    v(Violation("qdq_unquantized_op", _label(n), f"{n.op_type} {what} '{i}' is float (not from "
                                                                 "DequantizeLinear)"))

    if chip.require_outputs_quantized:
        for o in g.output:
            p = producers.get(o.name)
            q = producers.get(p.input[0]) if p is not None and p.op_type == "DequantizeLinear" else None
            if p is None or p.op_type != "DequantizeLinear" or q is None or q.op_type != "QuantizeLinear":
                v(Violation("qdq_output", o.name, "graph output is not produced by QuantizeLinear -> "
                                                  "DequantizeLinear (INT8-only NPU rejects a float head)"))

    # --- decode in graph: walk back from each output to the last compute layer
    head_convs: dict[str, set] = {}
    for o in g.output:
        seen: set = set()
        stack = [o.name]
        sources: set = set()
        while stack:
            t = stack.pop()
            p = producers.get(t)
            if p is None or id(p) in seen:
                continue
            seen.add(id(p))
            if p.op_type in COMPUTE_OPS:
                sources.add(_label(p))
                continue
            if p.op_type in DECODE_OPS:
                v(Violation("decode_in_graph", _label(p), f"{p.op_type} after the last compute layer of output "
                                                          f"'{o.name}': decode belongs on the CPU"))
            if p.op_type == "Concat":
                feeding = [producers.get(i) for i in p.input if i not in constants]
                if len(feeding) > 1:
                    v(Violation("decode_in_graph", _label(p), f"Concat of head tensors into output '{o.name}' "
                                                              "(boxes/scores must stay separate raw outputs)"))
            stack.extend(i for i in p.input if i and i not in constants)
        head_convs[o.name] = sources
    heads = set().union(*head_convs.values()) if head_convs else set()

    # --- efficiency rules
    shapes = {}
    try:
        inferred = onnx.shape_inference.infer_shapes(model, data_prop=True)
        for vi in list(inferred.graph.value_info) + list(inferred.graph.output) + list(inferred.graph.input):
            shapes[vi.name] = [d.dim_value for d in vi.type.tensor_type.shape.dim]
    except Exception:
        pass
    graph_inputs = {i.name for i in real_inputs}

    def from_graph_input(t: str) -> bool:
        p = producers.get(t)
        while p is not None and p.op_type in ("QuantizeLinear", "DequantizeLinear"):
            if p.input[0] in graph_inputs:
                return True
            p = producers.get(p.input[0])
        return t in graph_inputs

    for n in g.node:
        if n.op_type != "Conv":
            continue
        wname = n.input[1]
        p = producers.get(wname)
        w = const_array(p.input[0]) if p is not None and p.op_type == "DequantizeLinear" else const_array(wname)
        if w is None or w.ndim != 4:
            continue
        group = int(_attr(n, "group", 1))
        cout, cin_g, kh, kw = w.shape
        cin = cin_g * group
        if group > 1 and cin_g == 1 and (kh != kw or kh not in chip.depthwise_kernels):
            v(Violation("depthwise_kernel", _label(n), f"depthwise {kh}x{kw}; {chip.name} runs depthwise "
                                                       f"efficiently only for {list(chip.depthwise_kernels)}"))
        m = chip.channel_multiple
        if _label(n) not in heads and cout % m:
            v(Violation("channel_multiple", _label(n), f"{cout} output channels, not a multiple of {m}"))
        if not from_graph_input(n.input[0]) and cin % m:
            v(Violation("channel_multiple", _label(n), f"{cin} input channels, not a multiple of {m}"))

    # --- budgets
    cost = graph_cost(model, flash_bytes=flash_bytes)
    rep.cost = {**cost.summary(), "weight_bytes": cost.weight_bytes, "peak_at": cost.peak_at}
    rep.latency = npu_latency_ms(cost, chip)
    if cost.peak_activation_bytes > chip.ai_ram_bytes:
        v(Violation("budget_activations", cost.peak_at, f"peak activations {cost.peak_activation_bytes} B > "
                                                        f"{chip.name} AI RAM budget {chip.ai_ram_bytes} B"))
    if cost.weight_bytes > chip.weights_ram_bytes:
        v(Violation("budget_weights", "<graph>", f"int8 weights {cost.weight_bytes} B > {chip.weights_ram_bytes} B"))
    if flash_bytes > chip.flash_partition_bytes:
        v(Violation("budget_flash", "<graph>", f"{flash_bytes} B > flash data partition "
                                               f"{chip.flash_partition_bytes} B"))
    return rep


def validate_bundle(bundle_dir: str | Path, chip: ChipProfile | str) -> Report:
    """Load a bundle (schema + sha256), check the manifest against the graph, then run the checklist."""
    from camlab.contract.manifest import device_files, load_bundle
    from camlab.deploy.quantize import load_onnx

    b = load_bundle(bundle_dir, verify=True)
    flash = sum((b.root / rel).stat().st_size for rel in device_files(b.manifest))   # what the partition carries
    model_path = b.model_path("int8")
    model = load_onnx(model_path)
    rep = validate_model(model, chip, flash_bytes=flash)
    rep.model = str(model_path)
    graph_in = [i for i in model.graph.input if i.name not in {x.name for x in model.graph.initializer}]
    spec = b.input
    if graph_in:
        dims = [d.dim_value for d in graph_in[0].type.tensor_type.shape.dim]
        if graph_in[0].name != spec["name"] or dims != spec["shape"]:
            rep.violations.append(Violation("single_input", graph_in[0].name,
                                            f"graph input {graph_in[0].name}{dims} differs from manifest "
                                            f"{spec['name']}{spec['shape']}"))
    names = [o.name for o in model.graph.output]
    if names != [o["name"] for o in b.outputs]:
        rep.violations.append(Violation("qdq_output", "<graph>", f"graph outputs {names} differ from manifest "
                                                                 f"{[o['name'] for o in b.outputs]}"))
    return rep


def write_report(rep: Report, path: str | Path) -> None:
    from camlab.io_utils import atomic_write_json

    atomic_write_json(Path(path), rep.to_dict())


def format_report(rep: Report) -> str:
    lines = [f"{rep.model} on {rep.chip}: {'PASS' if rep.passed else 'FAIL'} ({len(rep.violations)} violations)"]
    for x in rep.violations:
        lines.append(f"  [{x.rule}] {x.node}: {x.message}")
    return "\n".join(lines)


__all__ = ["Violation", "Report", "validate_model", "validate_bundle", "write_report", "format_report", "RULES"]
