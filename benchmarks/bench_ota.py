"""OTA benchmark: 1,000+ power cuts, the attack catalogue, model-update size, delta vs full apply time on loopback.

Writes benchmarks/results/ota.json. ``delta_ratio_model_update`` = bytes of a model-only OTA payload (the detector
bundle's model.onnx + manifest.json, from exports/ when a real bundle exists, else a synthetic 0.6 MB stand-in) over the
bytes of a full firmware package (2 MB kernel + 12 MB rootfs, a typical PTZ camera image). Apply times: HTTPS
download from the OTA service process + verify + patch/write + trial boot + commit, on loopback.
"""
from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NAME = "ota"
ROOT = Path(__file__).resolve().parents[1]


def _find_bundle() -> Path | None:
    from camlab import settings

    for manifest in sorted(settings.exports_root().glob("detector/*/manifest.json")):
        if (manifest.parent / "model.onnx").is_file():
            return manifest.parent
    return None


def _timed_update(work: Path, offer_delta: bool) -> float:
    from device_sim.hal.flash import Flash
    from device_sim.ota import bootloader
    from device_sim.ota.client import HttpsTransport
    from device_sim.ota.faults import HW, synthetic_firmware
    from device_sim.ota.package import delta_package, full_package
    from device_sim.ota.repository import Repository
    from device_sim.ota.updater import Updater

    repo = Repository.create(work / "repo")
    v1 = synthetic_firmware("1.0.0", rootfs_kb=12 * 1024, kernel_kb=2 * 1024, change_kb=256)
    v2 = synthetic_firmware("1.1.0", rootfs_kb=12 * 1024, kernel_kb=2 * 1024, change_kb=256)
    repo.add_target("fw-1.0.0.full", full_package("1.0.0", HW, v1["kernel"], v1["rootfs"]))
    repo.add_target("fw-1.1.0.full", full_package("1.1.0", HW, v2["kernel"], v2["rootfs"]))
    if offer_delta:
        repo.add_target("fw-1.1.0.delta", delta_package("1.1.0", HW, v1, v2), custom={"base_version": "1.0.0"})
    flash = Flash(work / "dev")
    flash.factory_flash(v1, {"version": "1.0.0", "target": "fw-1.0.0.full", "targets_env": repo.load("targets")},
                        repo.load("root")["signed"])
    proc = subprocess.Popen([sys.executable, "-m", "device_sim.services.ota_server", "--port", "0", "--state",
                             str(repo.root)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=ROOT)
    try:
        port = int(proc.stdout.readline().split()[1])
        transport = HttpsTransport(f"https://127.0.0.1:{port}", cafile=repo.root / "tls" / "cert.pem")
        t0 = time.perf_counter()
        booted = bootloader.boot(flash)
        assert Updater(flash, transport, HW, booted).step().action == "reboot"
        booted = bootloader.boot(flash)
        assert Updater(flash, transport, HW, booted).step().action == "committed"
        return time.perf_counter() - t0
    finally:
        proc.kill()
        proc.wait()


def run() -> dict:
    from device_sim.ota import faults
    from device_sim.ota.attacks import ATTACKS
    from device_sim.ota.package import bundle_tar, full_package

    logging.getLogger("device_sim.ota").setLevel(logging.CRITICAL)
    work = Path(tempfile.mkdtemp(prefix="bench-ota-"))
    try:
        t0 = time.perf_counter()
        cuts = faults.run_power_cuts(1000, seed=2026, work=work / "cuts")
        cuts_s = time.perf_counter() - t0
        attack_results = {name: fn(work / f"attack-{name}") for name, fn in ATTACKS.items()}
        bundle = _find_bundle()
        if bundle is not None:
            model_bytes, model_source = len(bundle_tar(bundle)), str(bundle)
        else:
            model_bytes, model_source = 600 * 1024 + 4096, "synthetic 0.6 MB stand-in (no detector bundle in exports/)"
        fw = faults.synthetic_firmware("1.0.0", rootfs_kb=12 * 1024, kernel_kb=2 * 1024)
        full_bytes = len(full_package("1.0.0", faults.HW, fw["kernel"], fw["rootfs"]))
        delta_s = _timed_update(work / "delta", offer_delta=True)
        full_s = _timed_update(work / "full", offer_delta=False)
        return {
            "power_cuts": cuts.power_cuts, "bricks": cuts.bricks, "unsigned_boots": cuts.unsigned_boots,
            "boots_checked": cuts.boots, "distinct_cut_sites": len(cuts.cut_sites), "power_cut_run_s": round(cuts_s, 1),
            "attacks_tested": len(attack_results),
            "attacks_rejected": sum(ok for ok, _ in attack_results.values()),
            "attacks": {name: {"rejected": ok, "reason": why} for name, (ok, why) in attack_results.items()},
            "delta_ratio_model_update": round(model_bytes / full_bytes, 4),
            "model_update_bytes": model_bytes, "full_package_bytes": full_bytes, "model_update_source": model_source,
            "delta_apply_s": round(delta_s, 2), "full_apply_s": round(full_s, 2),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
