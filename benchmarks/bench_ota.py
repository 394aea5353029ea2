"""OTA benchmark: power cuts (1-3 per update, inside the streamed delta patch and the trial boot, a 10 MB image, a
mutant that must fail), the attack catalogue and the ported tuf-conformance client cases over HTTPS, model-update
size, delta vs full apply time on loopback.

Writes benchmarks/results/ota.json. Model update: two real detector bundles A and B (B = A's checkpoint after one SGD
step of the training loss on 8 real training images, re-exported with ``camlab export detector``; or the two newest
detector bundles of the same architecture when ``CAMLAB_OTA_BUNDLES=a:b`` names them) are each placed in the rootfs of
a firmware image (12 MB rootfs + 2 MB kernel, a typical PTZ camera image); the delta package is the repo's bsdiff4
delta (Percival 2003, "Naive differences of executable code") from firmware A to firmware B, applied and hash-checked
with :func:`device_sim.ota.package.apply`; ``delta_ratio_model_update`` = its bytes over the full package of firmware
B. When no detector bundle with its checkpoint exists the figure is null with the reason. Apply times: HTTPS
download from the OTA service process + verify + patch/write + trial boot + commit, on loopback.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

NAME = "ota"
ROOT = Path(__file__).resolve().parents[1]


def _bundle_roots() -> list[Path]:
    from camlab import settings
    return [settings.exports_root(), ROOT / "out" / "demo" / "exports"]


def _find_bundle() -> Path | None:
    """Newest detector bundle (exports/, then out/demo/exports) whose training checkpoint still exists."""
    for root in _bundle_roots():
        found = []
        for manifest in root.glob("detector/*/manifest.json"):
            man = json.loads(manifest.read_text())
            ck = man.get("provenance", {}).get("checkpoint")
            if (manifest.parent / "model.onnx").is_file() and ck and Path(ck).is_file():
                found.append((man["model"]["version"], manifest.parent))
        if found:
            return max(found)[1]
    return None


def finetune_one_step(checkpoint: Path, out: Path, n_images: int = 8, lr: float = 1e-3) -> Path:
    """``checkpoint`` after one SGD step of the detector's training loss on ``n_images`` real training images."""
    import torch

    from camlab.models.detector import load_checkpoint
    from camlab.train.checkpoint import save_checkpoint
    from camlab.train.detector import DetectionDataset, collate, load_data, load_train_config
    from camlab.train.detector_loss import detection_loss

    ck = torch.load(checkpoint, map_location="cpu", weights_only=False)
    model, _ = load_checkpoint(checkpoint)
    cfg = load_train_config("detector_demo", overrides={"data": {"max_train_images": n_images},
                                                        "augment": {"enabled": False}})
    train, _, _ = load_data(cfg)
    ds = DetectionDataset(train[:n_images], cfg, train=False, seed=0)
    images, targets = collate([ds[i] for i in range(len(ds))])
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    loss, _ = detection_loss(model(images), targets, tuple(model.config.strides))
    opt.zero_grad()
    loss.backward()
    opt.step()
    meta = dict(ck.get("meta") or {}, finetune={"from": str(checkpoint), "steps": 1, "lr": lr, "images": n_images})
    save_checkpoint(out, kind=ck["kind"], model_config=ck["model_config"], state_dict=model.state_dict(), meta=meta)
    return out


def export_detector(checkpoint: Path, out_root: Path) -> Path:
    """``camlab export detector`` of ``checkpoint`` into ``out_root`` (no metric, no RKNN); the bundle folder."""
    subprocess.run([str(Path(sys.executable).parent / "camlab"), "export", "detector", "--checkpoint", str(checkpoint),
                    "--out", str(out_root), "--no-eval", "--no-rknn", "--calib", "16"], check=True, cwd=ROOT,
                   stdout=subprocess.DEVNULL)
    return max(out_root.glob("detector/*/manifest.json")).parent


def firmware_with_bundle(version: str, bundle: Path) -> dict[str, bytes]:
    """The synthetic firmware image of ``version`` (same base files) with ``bundle``'s tar in its rootfs."""
    from device_sim.ota.faults import synthetic_firmware
    from device_sim.ota.package import bundle_tar
    fw = synthetic_firmware("1.0.0", rootfs_kb=12 * 1024, kernel_kb=2 * 1024, change_kb=0)
    header = json.dumps({"version": version, "selftest": "pass"}).encode() + b"\n"
    body = fw["rootfs"].split(b"\n", 1)[1]
    return {"kernel": fw["kernel"], "rootfs": header + body + bundle_tar(bundle)}


def model_update(work: Path) -> dict:
    """Delta package (bsdiff4) between firmware holding bundle A and firmware holding bundle B vs B's full package."""
    from device_sim.ota.faults import HW
    from device_sim.ota.package import apply, delta_package, full_package, parse
    from camlab.contract.manifest import sha256_file

    pair = os.environ.get("CAMLAB_OTA_BUNDLES")
    if pair:
        a, b = (Path(x) for x in pair.split(":"))
        how = "CAMLAB_OTA_BUNDLES"
    else:
        a = _find_bundle()
        if a is None:
            return {"delta_ratio_model_update": None, "model_update_note": "no detector bundle with its checkpoint "
                    f"under {[str(r) for r in _bundle_roots()]} (run make models or make demo)"}
        ck = Path(json.loads((a / "manifest.json").read_text())["provenance"]["checkpoint"])
        b = export_detector(finetune_one_step(ck, work / "finetuned.pt"), work / "exports")
        how = "B = A's checkpoint after one SGD step (lr 1e-3, 8 real training images), re-exported"
    fw_a, fw_b = firmware_with_bundle("1.0.0", a), firmware_with_bundle("1.1.0", b)
    delta = delta_package("1.1.0", HW, fw_a, fw_b)
    full = full_package("1.1.0", HW, fw_b["kernel"], fw_b["rootfs"])
    patched = apply(parse(delta), fw_a)          # raises unless the patched images hash to firmware B
    assert patched == fw_b
    ident = [{"path": str(p), "model_onnx_sha256": sha256_file(p / "model.onnx"),
              "model_onnx_bytes": (p / "model.onnx").stat().st_size} for p in (a, b)]
    return {"delta_ratio_model_update": round(len(delta) / len(full), 4), "model_update_bytes": len(delta),
            "full_package_bytes": len(full), "model_update_bundles": ident, "model_update_how": how,
            "model_update_note": "bsdiff4 delta package between two firmware images differing only in the detector "
                                 "bundle (and the version line), applied and hash-checked"}


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


def _cut_summary(r, wall_s: float) -> dict:
    return {"trials": r.trials, "power_cuts": r.power_cuts, "failed_trials": r.failed, "bricks": r.bricks,
            "unsigned_boots": r.unsigned_boots, "no_settle": r.no_settle, "wrong_final_version": r.wrong_final,
            "final_versions": r.final_versions, "boots_checked": r.boots, "cuts_by_phase": r.cuts_by_phase,
            "cuts_by_write": r.cuts_by_write, "cuts_inside_patch": r.cuts_inside_patch,
            "cuts_during_trial_boot_or_commit": r.cuts_during_trial,
            "trials_with_repeated_cuts": r.trials_with_repeated_cuts, "distinct_cut_sites": len(r.cut_sites),
            "first_failures": r.failures[:3], "wall_s": round(wall_s, 1)}


def _power_cuts(work: Path) -> dict:
    """Trial counts from the environment: ``BENCH_OTA_CUT_TRIALS`` (320 KB image, default 1000),
    ``BENCH_OTA_BIG_TRIALS`` (10 MB image, default 100), ``BENCH_OTA_MUTANT_TRIALS`` (default 100)."""
    from device_sim.ota import faults
    n_small = int(os.environ.get("BENCH_OTA_CUT_TRIALS", 1000))
    n_big = int(os.environ.get("BENCH_OTA_BIG_TRIALS", 100))
    n_mut = int(os.environ.get("BENCH_OTA_MUTANT_TRIALS", 100))
    out = {}
    t0 = time.perf_counter()
    small = faults.run_power_cuts(n_small, seed=2026, work=work / "cuts", cuts_per_update=(1, 3))
    out["power_cuts_small_image"] = _cut_summary(small, time.perf_counter() - t0)
    t0 = time.perf_counter()
    bad = faults.run_power_cuts(max(10, n_small // 10), seed=2027, work=work / "cuts-unhealthy",
                                healthy_update=False, cuts_per_update=(1, 3))
    out["power_cuts_unhealthy_update"] = _cut_summary(bad, time.perf_counter() - t0)
    t0 = time.perf_counter()
    big = faults.run_power_cuts(n_big, seed=2028, work=work / "cuts-big", cuts_per_update=(1, 3),
                                rootfs_kb=8 * 1024, kernel_kb=2 * 1024, change_kb=256, chunk=128 * 1024)
    out["power_cuts_full_size_image"] = {**_cut_summary(big, time.perf_counter() - t0),
                                         "image_bytes": None, "flash_write_chunk_bytes": 128 * 1024}
    fw = faults.synthetic_firmware("1.0.0", rootfs_kb=8 * 1024, kernel_kb=2 * 1024, change_kb=256)
    out["power_cuts_full_size_image"]["image_bytes"] = sum(len(v) for v in fw.values())
    t0 = time.perf_counter()
    mut = faults.run_power_cuts(n_mut, seed=2029, work=work / "cuts-mutant", updater="arm_trial_first")
    out["power_cuts_mutant_arm_trial_first"] = {**_cut_summary(mut, time.perf_counter() - t0),
                                                "must_fail": True, "failed": mut.failed > 0}
    runs = [small, bad, big]
    out.update({"power_cuts": sum(r.power_cuts for r in runs), "power_cut_trials": sum(r.trials for r in runs),
                "power_cut_failures": sum(r.failed for r in runs), "bricks": sum(r.bricks for r in runs),
                "unsigned_boots": sum(r.unsigned_boots for r in runs), "no_settle": sum(r.no_settle for r in runs),
                "wrong_final_version": sum(r.wrong_final for r in runs),
                "cuts_inside_patch": sum(r.cuts_inside_patch for r in runs),
                "cuts_during_trial_boot_or_commit": sum(r.cuts_during_trial for r in runs),
                "final_versions": {"healthy_small": small.final_versions, "unhealthy_small": bad.final_versions,
                                   "healthy_full_size": big.final_versions},
                "boots_checked": sum(r.boots for r in runs),
                "mutant_arm_trial_first_failed_trials": mut.failed, "mutants_failing": int(mut.failed > 0),
                "mutants_total": 1})
    return out


def run() -> dict:
    from device_sim.ota.attacks import ATTACKS
    from device_sim.ota.tuf_cases import CASES as TUF_CASES

    logging.getLogger("device_sim.ota").setLevel(logging.CRITICAL)
    shm = Path("/dev/shm")          # the flash model's durability is the cut plan's, so tmpfs only saves time
    work = Path(tempfile.mkdtemp(prefix="bench-ota-", dir=shm if shm.is_dir() and os.access(shm, os.W_OK) else None))
    try:
        t0 = time.perf_counter()
        cuts = _power_cuts(work)
        cuts_s = time.perf_counter() - t0
        attack_results = {name: fn(work / f"attack-{name}") for name, fn in ATTACKS.items()}
        t0 = time.perf_counter()
        tuf = {name: fn(work / f"tuf-{name}") for name, fn in TUF_CASES.items()}
        tuf_s = time.perf_counter() - t0
        model = model_update(work / "model")
        delta_s = _timed_update(work / "delta", offer_delta=True)
        full_s = _timed_update(work / "full", offer_delta=False)
        return {
            **cuts, "power_cut_run_s": round(cuts_s, 1),
            "power_cut_notes": "each trial: 1-3 power cuts at random flash writes of one update (20% aimed at the "
                               "trial boot / commit writes), a cut keeps a random prefix of the write in flight; "
                               "then power-on until idle (max 18 boots). A trial fails on a brick, a boot of an "
                               "unsigned slot, no-settle, or a final version other than the expected one (1.1.0 "
                               "healthy, 1.0.0 unhealthy). Delta trials apply the bsdiff4 patch streamed into the "
                               "standby partition (cuts inside the patch). Mutant arm_trial_first arms the trial "
                               "before writing the slot and must fail.",
            "attacks_tested": len(attack_results),
            "attacks_rejected": sum(ok for ok, _ in attack_results.values()),
            "attacks": {name: {"rejected": ok, "reason": why} for name, (ok, why) in attack_results.items()},
            "attacks_transport": "HTTPS (TLS on loopback, the OTA service's request handler; pinned certificate)",
            "tuf_cases_tested": len(tuf), "tuf_cases_passed": sum(ok for ok, _ in tuf.values()),
            "tuf_cases": {name: {"passed": ok, "detail": why} for name, (ok, why) in tuf.items()},
            "tuf_cases_source": "client attack list of theupdateframework/tuf-conformance (not installable here: "
                                "not on this machine's package index), ported to this client's metadata format "
                                "(device_sim/ota/tuf_cases.py)",
            "tuf_cases_run_s": round(tuf_s, 1),
            **model,
            "delta_apply_s": round(delta_s, 2), "full_apply_s": round(full_s, 2),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    print(json.dumps(run(), indent=2))
