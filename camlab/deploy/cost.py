"""Cost model of an ONNX graph on a camera NPU: MACs, parameters, peak activation memory, flash, latency estimate.

Peak activation memory comes from tensor liveness over the topological node order (each tensor lives from its
producer to its last consumer; reshape-like ops alias their input), the scheme of TVM/TFLite static memory planners
(Pisarchyk & Lee, "Efficient Memory Management for Deep Neural Net Inference", 2020). Latency is a per-layer
roofline (Williams et al., CACM 2009) in NPU cycles, scaled as the chip profile's ``latency.basis`` states
(rv1106: 2.0 x cycles / 1 GHz, the RKNN-Toolkit2 relation). Quantization nodes are transparent: a QDQ graph costs
what the NPU runs after folding them.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from camlab.deploy.chips import ChipProfile

ALIAS_OPS = {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "QuantizeLinear", "DequantizeLinear"}
COMPUTE_OPS = {"Conv", "ConvTranspose", "Gemm", "MatMul"}


@dataclass
class LayerCost:
    name: str
    op: str
    macs: int
    params: int
    in_bytes: int
    out_bytes: int
    depthwise: bool = False
    cin_per_group: int = 0
    cout: int = 0
    kernel_area: int = 1


@dataclass
class GraphCost:
    macs: int
    params: int
    peak_activation_bytes: int
    weight_bytes: int
    flash_bytes: int
    layers: list[LayerCost] = field(default_factory=list)
    peak_at: str = ""

    def summary(self) -> dict:
        return {"macs": int(self.macs), "params": int(self.params),
                "peak_activation_bytes": int(self.peak_activation_bytes), "flash_bytes": int(self.flash_bytes)}


def _shapes(model) -> dict[str, tuple[int, ...]]:
    import onnx

    inferred = model
    for strict in (True, False):  # a broken graph still gets a cost (the validator reports the breakage)
        try:
            inferred = onnx.shape_inference.infer_shapes(model, strict_mode=strict, data_prop=True)
            break
        except Exception:
            continue
    out = {}
    for vi in list(inferred.graph.input) + list(inferred.graph.value_info) + list(inferred.graph.output):
        dims = vi.type.tensor_type.shape.dim
        out[vi.name] = tuple(int(d.dim_value) if d.HasField("dim_value") else -1 for d in dims)
    for init in inferred.graph.initializer:
        out[init.name] = tuple(init.dims)
    return out


def _attr(node, name, default=None):
    from onnx import helper

    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _numel(shape) -> int:
    return int(np.prod(shape)) if shape and all(d > 0 for d in shape) else 0


def graph_cost(model, *, act_bytes: int = 1, weight_bytes_per: int = 1, flash_bytes: int | None = None) -> GraphCost:
    """Cost of a (FP32 or QDQ) ONNX model as the NPU would run it with ``act_bytes``-wide activations."""
    shapes = _shapes(model)
    inits = {i.name for i in model.graph.initializer}
    const_out = {o for n in model.graph.node if n.op_type == "Constant" for o in n.output}
    constant = inits | const_out
    # resolve DequantizeLinear of an initializer to the initializer (weights)
    dq_src = {n.output[0]: n.input[0] for n in model.graph.node
              if n.op_type == "DequantizeLinear" and n.input[0] in constant}
    constant |= set(dq_src)

    layers: list[LayerCost] = []
    params = 0
    counted_params: set[str] = set()
    for node in model.graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear", "Constant"):
            continue
        outs = [shapes.get(o, ()) for o in node.output]
        out_el = sum(_numel(s) for s in outs)
        act_in = [i for i in node.input if i and i not in constant]
        in_el = sum(_numel(shapes.get(i, ())) for i in act_in)
        p = 0
        for i in node.input:
            src = dq_src.get(i, i)
            if src in inits and src not in counted_params and node.op_type in COMPUTE_OPS | {"PRelu", "BatchNormalization"}:
                p += _numel(shapes.get(src, ()))
                counted_params.add(src)
        params += p
        macs = 0
        dw = False
        cin_g = cout = 0
        karea = 1
        if node.op_type == "Conv":
            w = shapes.get(dq_src.get(node.input[1], node.input[1]), ())
            group = int(_attr(node, "group", 1))
            if len(w) >= 3:
                macs = out_el * int(np.prod(w[1:]))
                dw = group > 1 and w[1] == 1
                cout, cin_g, karea = int(w[0]), int(w[1]), int(np.prod(w[2:]))
        elif node.op_type == "ConvTranspose":
            w = shapes.get(dq_src.get(node.input[1], node.input[1]), ())
            if len(w) >= 3:
                macs = _numel(shapes.get(node.input[0], ())) * int(np.prod(w[1:]))
        elif node.op_type in ("Gemm", "MatMul"):
            a = shapes.get(node.input[0], ())
            if node.op_type == "Gemm" and _attr(node, "transA", 0):
                k = a[0] if a else 0
            else:
                k = a[-1] if a else 0
            macs = out_el * max(int(k), 0)
            cin_g, cout = max(int(k), 0), int(outs[0][-1]) if outs and outs[0] else 0
        elif node.op_type not in ALIAS_OPS:
            macs = out_el  # element-wise / pooling: one op per output element
        layers.append(LayerCost(name=node.name or node.output[0], op=node.op_type, macs=int(macs), params=int(p),
                                in_bytes=in_el * act_bytes, out_bytes=out_el * act_bytes, depthwise=dw,
                                cin_per_group=cin_g, cout=cout, kernel_area=karea))

    peak, peak_at = _peak_liveness(model, shapes, constant, act_bytes)
    total_macs = sum(layer.macs for layer in layers if layer.op in COMPUTE_OPS)
    return GraphCost(macs=int(total_macs), params=int(params), peak_activation_bytes=int(peak),
                     weight_bytes=int(params * weight_bytes_per),
                     flash_bytes=int(flash_bytes if flash_bytes is not None else model.ByteSize()),
                     layers=layers, peak_at=peak_at)


def _peak_liveness(model, shapes, constant, act_bytes) -> tuple[int, str]:
    nodes = [n for n in model.graph.node if n.op_type != "Constant"]
    # alias chains: reshape-like outputs share their input's buffer
    root: dict[str, str] = {}

    def base(t: str) -> str:
        while t in root:
            t = root[t]
        return t

    for n in nodes:
        if n.op_type in ALIAS_OPS and n.input and n.input[0] not in constant:
            root[n.output[0]] = n.input[0]
    last_use: dict[str, int] = {}
    for step, n in enumerate(nodes):
        for i in n.input:
            if i and i not in constant:
                last_use[base(i)] = step
    end = len(nodes)
    for o in model.graph.output:
        last_use[base(o.name)] = end
    size = {}
    for t in shapes:
        if t not in constant and t not in root:
            size[t] = _numel(shapes[t]) * act_bytes
    live: dict[str, int] = {}
    for inp in model.graph.input:
        if inp.name not in constant:
            live[inp.name] = size.get(inp.name, 0)
    peak, peak_at = sum(live.values()), "<input>"
    for step, n in enumerate(nodes):
        for o in n.output:
            if o and o not in root and o not in constant:
                live[o] = size.get(o, 0)
        cur = sum(live.values())
        if cur > peak:
            peak, peak_at = cur, n.name or n.output[0]
        for t in list(live):
            if last_use.get(t, -1) <= step:
                del live[t]
    return peak, peak_at


def layer_cycles(layer: LayerCost, chip: ChipProfile) -> float:
    """Per-layer NPU cycles on ``chip``: max(NPU compute, DDR traffic), the structure of RKNN's layer table.

    Compute: dense conv/GEMM at ``min(macs_per_cycle, macs_per_input_channel x Cin x min(taps, max_taps))``
    MAC/cycle, depthwise at ``depthwise_macs_per_cycle``, output channels padded to ``channel_pad``. Traffic:
    input + padded output + weight bytes at ``ddr_bytes_per_cycle``. Element-wise ops, pooling and resize fuse into
    the neighbouring conv (no DDR pass). The constants per chip live in its YAML ``latency`` block.
    """
    lat = chip.latency
    if layer.op not in COMPUTE_OPS:
        return layer.macs / lat.elementwise_macs_per_cycle
    pad = lat.channel_pad
    cout = max(layer.cout, 1)
    cout_pad = -(-cout // pad) * pad
    macs = layer.macs * cout_pad / cout if layer.cout else layer.macs
    out_bytes = layer.out_bytes * cout_pad / cout if layer.cout else layer.out_bytes
    if layer.depthwise:
        rate = lat.depthwise_macs_per_cycle
    else:
        cin = max(layer.cin_per_group, 1)
        rate = min(chip.macs_per_cycle, lat.macs_per_input_channel * cin * min(layer.kernel_area, lat.max_taps))
    compute = macs / (rate * lat.conv_efficiency)
    memory = (layer.in_bytes + out_bytes + layer.params) / lat.ddr_bytes_per_cycle
    return max(compute, memory)


def npu_latency_ms(cost: GraphCost, chip: ChipProfile, rknn_cycles: float | None = None) -> dict:
    """Latency estimate on ``chip``: ``{npu_latency_ms, cycles, basis, source}``.

    With ``rknn_cycles`` (RKNN-Toolkit2 per-layer cycles summed; rv1106 only) the estimate is
    ``cycles_scale x cycles / clock``; otherwise the roofline cycles of the cost model plus ``overhead_ms``.
    """
    lat = chip.latency
    if rknn_cycles is not None:
        ms = lat.cycles_scale * rknn_cycles / chip.npu_clock_hz * 1e3
        return {"npu_latency_ms": round(ms, 3), "cycles": int(rknn_cycles), "basis": lat.basis, "source": "rknn"}
    cycles = sum(layer_cycles(layer, chip) for layer in cost.layers)
    ms = lat.cycles_scale * cycles / chip.npu_clock_hz * 1e3 + lat.overhead_ms
    return {"npu_latency_ms": round(ms, 3), "cycles": int(cycles), "basis": lat.basis, "source": "model"}


def model_cost(path: str | Path, fp32_path: str | Path | None = None) -> GraphCost:
    """Cost of the bundle's INT8 model (flash = its file size); the graph walked is ``fp32_path`` when given."""
    from camlab.deploy.quantize import load_onnx

    path = Path(path)
    graph = load_onnx(fp32_path or path)
    return graph_cost(graph, flash_bytes=path.stat().st_size)


def as_dict(cost: GraphCost) -> dict:
    d = cost.summary()
    d["weight_bytes"] = cost.weight_bytes
    d["peak_at"] = cost.peak_at
    d["layers"] = [asdict(layer) for layer in cost.layers]
    return d
