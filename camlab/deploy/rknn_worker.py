"""RKNN-Toolkit2 worker: compile a QDQ ONNX for a Rockchip NPU on x86 and run its INT8 simulator. Runs in .venv-rknn.

Rockchip RKNN-Toolkit2 2.x user guide (``RKNN.config/load_onnx/build/export_rknn/init_runtime/inference``). The
toolkit pins old numpy/onnx/protobuf, so this script imports nothing from camlab and talks to
:mod:`camlab.deploy.rknn` through files: ``--inputs`` (npz, key ``inputs``: (N, ...) float32 normalised model
inputs) in, ``--out`` (JSON report) and ``--outputs`` (npz of simulator outputs per sample) out. The per-layer
table (target NPU/CPU, cycles DDR/NPU/total) and the memory statistics are parsed from the build's verbose log.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
import traceback
from pathlib import Path

# this file sits beside camlab/deploy/rknn.py, which would shadow the toolkit's ``rknn`` package
_HERE = str(Path(__file__).resolve().parent)
sys.path[:] = [p for p in sys.path if p and Path(p).resolve().as_posix() != Path(_HERE).as_posix()]

LAYER_RE = re.compile(r"^(?:D RKNN: \[[^\]]*\]\s+)?(\d+)\s+(\S+)\s+(\S+)\s+(NPU|CPU)\s+(.*?)\s+"
                      r"(\d+)/(\d+)/(\d+)\s+(\d+)\s+(\S+)\s*$")
MEM_RE = re.compile(r"Total (Internal|Weight) Memory Size:\s*([\d.]+)\s*(KB|MB|B)")


def parse_build_log(text: str) -> dict:
    """Per-layer rows and memory totals from the verbose build log."""
    layers = []
    in_table = False
    for line in text.splitlines():
        if "Network Layer Information Table" in line:
            in_table, layers = True, []
            continue
        if in_table and "end: rknn::RKNNModelRegCmdbuildPass" in line:
            in_table = False
            continue
        if not in_table:
            continue
        m = LAYER_RE.match(line.strip())
        if m:
            layers.append({"id": int(m.group(1)), "op": m.group(2), "dtype": m.group(3), "target": m.group(4),
                           "cycles_ddr": int(m.group(6)), "cycles_npu": int(m.group(7)),
                           "cycles": int(m.group(8)), "rw_kb": int(m.group(9)), "name": m.group(10)})
    mem = {}
    for kind, value, unit in MEM_RE.findall(text):
        scale = {"B": 1, "KB": 1024, "MB": 1024 * 1024}[unit]
        mem[f"{kind.lower()}_memory_bytes"] = int(float(value) * scale)
    io_ops = {"InputOperator", "OutputOperator"}
    cpu = [la for la in layers if la["target"] == "CPU" and la["op"] not in io_ops]
    return {"layers": layers, "cpu_layers": [la["name"] for la in cpu],
            "total_cycles": sum(la["cycles"] for la in layers), **mem}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--target", default="rv1106")
    ap.add_argument("--inputs", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--outputs", required=True)
    ap.add_argument("--rknn", required=True, help="where to write the compiled .rknn")
    ap.add_argument("--log", required=True)
    args = ap.parse_args(argv)
    report = {"ok": False, "target": args.target, "stage": "import"}
    try:
        import numpy as np
        from rknn.api import RKNN

        from importlib.metadata import version

        report["toolkit_version"] = version("rknn-toolkit2")
        x = np.load(args.inputs)["inputs"].astype(np.float32)
        r = RKNN(verbose=True, verbose_file=args.log)
        t0 = time.time()
        for stage, call in (("config", lambda: r.config(target_platform=args.target)),
                            ("load_onnx", lambda: r.load_onnx(model=args.model)),
                            ("build", lambda: r.build(do_quantization=False)),
                            ("export_rknn", lambda: r.export_rknn(args.rknn))):
            report["stage"] = stage
            ret = call()
            if ret != 0:
                raise RuntimeError(f"RKNN {stage} returned {ret}")
        report["build_s"] = round(time.time() - t0, 2)
        with open(args.log, encoding="utf-8", errors="replace") as fh:
            report.update(parse_build_log(fh.read()))
        report["stage"] = "init_runtime"
        if r.init_runtime() != 0:  # no target: the toolkit's INT8 simulator
            raise RuntimeError("RKNN init_runtime (simulator) failed")
        report["stage"] = "inference"
        outs = {}
        for i in range(len(x)):
            res = r.inference(inputs=[x[i:i + 1]], data_format="nchw")
            for j, o in enumerate(res):
                outs[f"s{i}_o{j}"] = np.asarray(o, np.float32)
        np.savez(args.outputs, **outs)
        report["samples"] = int(len(x))
        r.release()
        report["ok"] = True
        report["stage"] = "done"
    except Exception as exc:  # reported to the host process, which raises a clear error
        report["error"] = f"{type(exc).__name__}: {exc}"
        report["traceback"] = traceback.format_exc()[-4000:]
    with open(args.out, "w", encoding="utf-8") as fh:
        json.dump(report, fh, indent=1)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
