"""RKNN-Toolkit2 oracle: the vendor toolchain compiles a bundle's QDQ model for rv1106 on x86 and simulates it.

Rockchip RKNN-Toolkit2 2.5.0 (PyPI ``rknn-toolkit2``) lives in its own venv (``make rknn`` ->
``scripts/bootstrap_rknn.sh`` -> ``.venv-rknn``) because it pins old numpy/onnx/protobuf; this module runs
``camlab/deploy/rknn_worker.py`` there as a subprocess and reads back per-layer cycles, the layers that fall back to
the CPU, internal/weight memory and the INT8 simulator's outputs, compared by cosine with onnxruntime on the same
QDQ model. Latency = 2.0 x total cycles / 1 GHz (the rv1106 profile's basis).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from camlab import settings
from camlab.errors import CamlabError

WORKER = Path(__file__).with_name("rknn_worker.py")


def rknn_python() -> Path:
    """The interpreter of the RKNN venv: ``$CAMLAB_RKNN_VENV`` or ``<project>/.venv-rknn``."""
    venv = Path(os.environ.get("CAMLAB_RKNN_VENV", settings.project_root() / ".venv-rknn"))
    return venv / "bin" / "python"


def available() -> bool:
    """True when ``make rknn`` has built the toolkit venv."""
    return rknn_python().is_file()


def run_oracle(int8_path: str | Path, inputs: np.ndarray, *, target: str = "rv1106", workdir: str | Path | None = None,
               timeout: float = 900.0, clock_hz: float = 1e9, cycles_scale: float = 2.0) -> dict:
    """Compile ``int8_path`` with RKNN-Toolkit2 for ``target`` and simulate it on ``inputs`` ((N, ...) float32).

    Returns ``{ok, target, cpu_layers, cpu_layer_names, total_cycles, latency_ms, internal_memory_bytes,
    weight_memory_bytes, sim_cosine: {output: cos}, sim_cosine_min, layers, build_s}``. Raises CamlabError naming
    the stage when the toolkit is missing or fails.
    """
    from camlab.deploy.quantize import cosine, session

    py = rknn_python()
    if not py.is_file():
        raise CamlabError(f"RKNN-Toolkit2 venv not found at {py.parent.parent}; run `make rknn` first")
    int8_path = Path(int8_path).resolve()
    x = np.asarray(inputs, np.float32)
    own_tmp = None
    if workdir is None:
        own_tmp = tempfile.TemporaryDirectory(prefix="camlab_rknn_")
        workdir = own_tmp.name
    work = Path(workdir)
    work.mkdir(parents=True, exist_ok=True)
    try:
        np.savez(work / "inputs.npz", inputs=x)
        cmd = [str(py), str(WORKER), "--model", str(int8_path), "--target", target, "--inputs",
               str(work / "inputs.npz"), "--out", str(work / "report.json"), "--outputs", str(work / "outputs.npz"),
               "--rknn", str(work / f"model_{target}.rknn"), "--log", str(work / "build.log")]
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env, cwd=work)
        except subprocess.TimeoutExpired:
            raise CamlabError(f"RKNN-Toolkit2 on {int8_path.name} timed out after {timeout:.0f} s") from None
        rep_path = work / "report.json"
        if not rep_path.is_file():
            raise CamlabError(f"RKNN worker exited {proc.returncode} without a report: {proc.stderr.strip()[-600:]}")
        rep = json.loads(rep_path.read_text())
        # the compiler's C++ layer writes the layer table to stdout, not to the verbose file
        from camlab.deploy.rknn_worker import parse_build_log

        log = (work / "build.log").read_text(errors="replace") if (work / "build.log").is_file() else ""
        parsed = parse_build_log(log + "\n" + proc.stdout + "\n" + proc.stderr)
        if parsed["layers"]:
            rep.update(parsed)
        if not rep.get("ok"):
            raise CamlabError(f"RKNN-Toolkit2 failed at stage '{rep.get('stage')}' for {int8_path.name}: "
                              f"{rep.get('error')}")
        sess = session(int8_path)
        names = [o.name for o in sess.get_outputs()]
        sim = np.load(work / "outputs.npz")
        cos = {}
        for j, name in enumerate(names):
            ref, got = [], []
            for i in range(len(x)):
                ref.append(sess.run([name], {sess.get_inputs()[0].name: x[i:i + 1]})[0].ravel())
                got.append(sim[f"s{i}_o{j}"].ravel())
            cos[name] = cosine(np.concatenate(ref), np.concatenate(got))
        total = int(rep.get("total_cycles", 0))
        return {"ok": True, "target": target, "toolkit_version": rep.get("toolkit_version"),
                "cpu_layers": len(rep.get("cpu_layers", [])), "cpu_layer_names": rep.get("cpu_layers", []),
                "total_cycles": total, "latency_ms": round(cycles_scale * total / clock_hz * 1e3, 3),
                "internal_memory_bytes": rep.get("internal_memory_bytes"),
                "weight_memory_bytes": rep.get("weight_memory_bytes"), "sim_cosine": cos,
                "sim_cosine_min": float(min(cos.values())) if cos else None, "samples": int(len(x)),
                "build_s": rep.get("build_s"), "layers": rep.get("layers", [])}
    finally:
        if own_tmp is not None:
            own_tmp.cleanup()


def oracle_for_bundle(bundle_dir: str | Path, n: int = 4, timeout: float = 900.0) -> dict:
    """Run the oracle on a bundle's model.onnx with its calibration sample as inputs."""
    from camlab.contract.manifest import load_bundle
    from camlab.deploy.chips import load_chip

    b = load_bundle(bundle_dir)
    sample = b.root / "calibration" / "sample.npz"
    x = np.load(sample)["inputs"][:n]
    chip = load_chip("rv1106")
    return run_oracle(b.model_path("int8"), x, target="rv1106", timeout=timeout, clock_hz=chip.npu_clock_hz,
                      cycles_scale=chip.latency.cycles_scale)


def _smoke() -> dict:
    """Tiny conv net -> FP32 ONNX -> QDQ INT8 -> RKNN rv1106: proves the toolchain path end to end."""
    import torch

    from camlab.deploy.export import export_onnx
    from camlab.deploy.quantize import quantize_qdq

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 16, 3, 2, 1), torch.nn.ReLU(), torch.nn.Conv2d(16, 32, 3, 2, 1),
                              torch.nn.ReLU(), torch.nn.Conv2d(32, 16, 1)).eval()
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = export_onnx(net, (1, 3, 64, 96), Path(tmp) / "fp32.onnx", output_names=["head"])
        x = np.random.default_rng(0).standard_normal((8, 3, 64, 96)).astype(np.float32)
        quantize_qdq(fp32, Path(tmp) / "int8.onnx", x)
        rep = run_oracle(Path(tmp) / "int8.onnx", x[:2])
    rep.pop("layers")
    return rep


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m camlab.deploy.rknn", description=__doc__.splitlines()[0])
    ap.add_argument("bundle", nargs="?", help="bundle folder (exports/<model>/<version>)")
    ap.add_argument("--smoke", action="store_true", help="compile a tiny model to prove the toolkit works")
    args = ap.parse_args(argv)
    try:
        if args.smoke:
            rep = _smoke()
        elif args.bundle:
            rep = oracle_for_bundle(args.bundle)
            rep.pop("layers")
        else:
            ap.error("give a bundle folder or --smoke")
    except CamlabError as exc:
        print(f"camlab.deploy.rknn: error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(rep, indent=1))
    return 0 if rep["cpu_layers"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
