"""OTA: A/B update, delta, rollback, attacks, power cuts, HTTPS service, model payloads."""
from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from device_sim.hal.flash import PARTS, Flash, PowerCut, PowerCutPlan
from device_sim.ota import bootloader, faults
from device_sim.ota.attacks import ATTACKS
from device_sim.ota.client import DirTransport, HttpsTransport
from device_sim.ota.package import model_package, parse, sha256
from device_sim.ota.updater import ModelStore, Updater

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(autouse=True)
def _quiet_ota_log():
    logging.getLogger("device_sim.ota").setLevel(logging.CRITICAL)


def test_clean_update_prefers_delta_and_commits(tmp_path):
    fleet = faults.Fleet.create(tmp_path / "fleet")
    flash = fleet.clone_device(tmp_path / "dev")
    report = faults.CutReport()
    assert faults.power_on_until_idle(flash, fleet, report) == "1.1.0"
    env = flash.read_env()
    assert env["active"] == "b" and env["trial"] is None and env["slots"]["b"]["state"] == "good"
    assert env["slots"]["b"]["target"] == "fw-1.1.0.delta-from-1.0.0"
    full = (fleet.repo.targets_dir / "fw-1.1.0.full").stat().st_size
    delta = (fleet.repo.targets_dir / "fw-1.1.0.delta-from-1.0.0").stat().st_size
    assert delta < 0.2 * full
    assert report.unsigned_boots == 0


def test_committed_slot_boots_without_touching_a_counter(tmp_path):
    fleet = faults.Fleet.create(tmp_path / "fleet")
    flash = fleet.clone_device(tmp_path / "dev")
    faults.power_on_until_idle(flash, fleet, faults.CutReport())
    seq = flash.read_env()["seq"]
    for _ in range(5):  # quick power cuts right after boot: a committed slot never switches
        assert bootloader.boot(flash).slot == "b"
    assert flash.read_env()["seq"] == seq


def test_unhealthy_update_rolls_back_and_is_not_retried(tmp_path):
    fleet = faults.Fleet.create(tmp_path / "fleet", healthy_update=False)
    flash = fleet.clone_device(tmp_path / "dev")
    assert faults.power_on_until_idle(flash, fleet, faults.CutReport()) == "1.0.0"
    env = flash.read_env()
    assert env["active"] == "a" and env["slots"]["b"]["state"] == "bad"
    assert json.loads((flash.data / "ota" / "state.json").read_text())["failed_versions"] == ["1.1.0"]


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attack_is_rejected_and_running_slot_untouched(tmp_path, name):
    refused, why = ATTACKS[name](tmp_path)
    assert refused, why


def test_power_cuts_never_brick_or_boot_unsigned(tmp_path):
    report = faults.run_power_cuts(200, seed=11, work=tmp_path / "cuts")
    assert report.power_cuts == 200
    assert report.bricks == 0 and report.unsigned_boots == 0
    assert report.final_versions == {"1.1.0": 200}
    assert len(report.cut_sites) > 40  # cuts spread over download, write, patch and env flips


def test_power_cuts_during_a_failing_update_end_on_the_old_version(tmp_path):
    report = faults.run_power_cuts(60, seed=12, work=tmp_path / "cuts", healthy_update=False)
    assert report.bricks == 0 and report.unsigned_boots == 0
    assert report.final_versions == {"1.0.0": 60}


def test_env_survives_a_cut_while_it_is_written(tmp_path):
    fleet = faults.Fleet.create(tmp_path / "fleet")
    flash = fleet.clone_device(tmp_path / "dev")
    before = flash.read_env()
    flash.cuts = PowerCutPlan(at=0, seed=3)
    with pytest.raises(PowerCut):
        flash.write_env({**before, "active": "b"})
    assert flash.read_env() == before


def _write_kind(w) -> str:
    if w.path.name.endswith(".tmp"):
        return "atomic file"          # temp + fsync + rename
    if w.path.suffix == ".part":
        return "download"
    if w.what.startswith("env"):
        return "boot env"
    return "partition"


def test_kill9_inside_a_flash_write_never_bricks(tmp_path):
    """SIGKILL a real updater process while it is inside a flash write (it says so through Flash.on_write and
    waits), one write of each kind, then power on until idle: the kill tore that write and the device still ends on
    a good, signed slot."""
    fleet = faults.Fleet.create(tmp_path / "fleet")
    writes = faults.step_writes(fleet, tmp_path / "dry-run")
    by_kind: dict[str, list] = {}
    for w in writes:
        by_kind.setdefault(_write_kind(w), []).append(w)
    assert set(by_kind) == {"atomic file", "download", "boot env", "partition"}, [w.what for w in writes]
    chosen = [by_kind["atomic file"][0], by_kind["download"][0], by_kind["boot env"][0],   # env: slot invalidated
              by_kind["partition"][0], by_kind["partition"][len(by_kind["partition"]) // 2],
              by_kind["boot env"][-1]]                                                   # env: trial armed
    for i, w in enumerate(chosen):
        dev = tmp_path / f"dev{i}"
        fleet.clone_device(dev)
        k = faults.kill9_trial(fleet, dev, w.index)
        assert k is not None, f"the update step never reached write {w.index} ({w.what})"
        assert k["index"] == w.index and k["what"] == w.what
        # the kill landed inside the write: the child had the file open, half of the write was on flash, and the
        # other half never arrived
        assert k["returncode"] == -signal.SIGKILL, k
        assert k["open_at_kill"] is not False, k
        assert 0 < k["landed"] < k["total"], k
        assert k["size_after"] == k["size"], k
        if _write_kind(w) == "atomic file":   # never renamed into place
            assert Path(k["path"]).exists()
        report = faults.CutReport()
        flash = Flash(dev)
        assert faults.power_on_until_idle(flash, fleet, report) == "1.1.0", w.what
        assert report.bricks == 0 and report.unsigned_boots == 0
        env = flash.read_env()
        booted = bootloader.boot(flash)
        assert env["trial"] is None and booted.slot == env["active"] and env["slots"][booted.slot]["state"] == "good"
        assert {p: sha256(flash.read_partition(booted.slot, p)) for p in PARTS} in fleet.signed_images


def test_key_rotation_is_followed_and_old_keys_lose_power(tmp_path):
    fleet = faults.Fleet.create(tmp_path / "fleet")
    old_targets_key = fleet.repo.keys("targets")
    fleet.repo.rotate_keys(("root", "targets"))
    flash = fleet.clone_device(tmp_path / "dev")
    assert faults.power_on_until_idle(flash, fleet, faults.CutReport()) == "1.1.0"
    assert json.loads((flash.root / "boot" / "root.json").read_text())["version"] == 2
    # metadata signed with the retired targets key is now refused
    from device_sim.ota.metadata import MetadataError, sign

    env = fleet.repo.load("targets")
    (fleet.repo.meta_dir / "targets.json").write_text(json.dumps(sign(env["signed"], old_targets_key)))
    booted = bootloader.boot(flash)
    with pytest.raises(MetadataError, match="valid signature"):
        Updater(flash, DirTransport(fleet.repo.root), faults.HW, booted).refresh_metadata()


def _start_server(state: Path) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen([sys.executable, "-m", "device_sim.services.ota_server", "--port", "0",
                             "--state", str(state)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            cwd=ROOT)
    line = proc.stdout.readline()
    assert line.startswith("PORT "), line
    return proc, int(line.split()[1])


def test_update_over_https_with_resumed_download(tmp_path):
    fleet = faults.Fleet.create(tmp_path / "fleet")
    proc, port = _start_server(fleet.repo.root)
    try:
        transport = HttpsTransport(f"https://127.0.0.1:{port}", cafile=fleet.repo.root / "tls" / "cert.pem")
        flash = fleet.clone_device(tmp_path / "dev")
        flash.cuts = PowerCutPlan(at=12, seed=1)  # cut in the middle of the package download
        booted = bootloader.boot(flash)
        with pytest.raises(PowerCut):
            Updater(flash, transport, faults.HW, booted).step()
        parts = list((flash.data / "ota").glob("*.part"))
        assert parts and parts[0].stat().st_size > 0
        booted = bootloader.boot(flash)
        assert Updater(flash, transport, faults.HW, booted).step().action == "reboot"
        booted = bootloader.boot(flash)
        assert booted.trial and booted.version == "1.1.0"
        assert Updater(flash, transport, faults.HW, booted).step().action == "committed"
    finally:
        proc.kill()
        proc.wait()


def test_server_rejects_bad_requests(tmp_path):
    fleet = faults.Fleet.create(tmp_path / "fleet")
    proc, port = _start_server(fleet.repo.root)
    try:
        transport = HttpsTransport(f"https://127.0.0.1:{port}", cafile=fleet.repo.root / "tls" / "cert.pem")
        from device_sim.ota.client import NotFound

        for path in ("keys/root-0.pem", "metadata/../keys/root-0.pem", "targets/.hidden"):
            with pytest.raises(NotFound):
                transport.fetch(path, 1000)
        assert proc.poll() is None  # still serving
    finally:
        proc.kill()
        proc.wait()


def _bundle(dir_: Path, version: str, weights: bytes) -> Path:
    dir_.mkdir(parents=True)
    (dir_ / "manifest.json").write_text(json.dumps({"model": {"name": "detector", "version": version},
                                                     "model_files": {"int8": "model.onnx", "fp32": "model_fp32.onnx"}}))
    (dir_ / "model.onnx").write_bytes(weights)
    return dir_


def test_model_payload_installs_atomically_and_survives_cuts(tmp_path):
    fleet = faults.Fleet.create(tmp_path / "fleet")
    flash = fleet.clone_device(tmp_path / "dev")
    store = ModelStore(flash)
    for version, seed in (("1.0.0", 1), ("1.1.0", 2)):
        pkg = model_package("detector", version, faults.HW, _bundle(tmp_path / version, version, bytes([seed]) * 5000))
        entry = fleet.repo.add_target(f"model-detector-{version}", pkg)
        assert store.install(pkg, entry).action == "model-installed"
    assert store.current("detector")["version"] == "1.1.0"
    assert (store.load_dir("detector") / "model.onnx").read_bytes() == b"\x02" * 5000
    pkg = model_package("detector", "1.2.0", faults.HW, _bundle(tmp_path / "v3", "1.2.0", b"\x03" * 5000))
    entry = fleet.repo.add_target("model-detector-1.2.0", pkg)
    for at in range(3):  # a cut at any write leaves 1.1.0 in force
        flash.cuts = PowerCutPlan(at=at, seed=at)
        with pytest.raises(PowerCut):
            store.install(pkg, entry)
        assert store.current("detector")["version"] == "1.1.0"
        assert (store.load_dir("detector") / "model.onnx").read_bytes() == b"\x02" * 5000
    flash.cuts = PowerCutPlan()
    assert parse(pkg).kind == "model" and store.install(pkg, entry).action == "model-installed"


# ---- security regressions (issue 16) -----------------------------------------------------------------------------
def test_https_transport_checks_the_hostname_against_the_pinned_certificate(tmp_path):
    from device_sim.ota.client import TransportError
    from device_sim.services.tls import make_self_signed

    fleet = faults.Fleet.create(tmp_path / "fleet")
    # the server presents a certificate the client pins, but issued for another name: refused
    make_self_signed(fleet.repo.root / "tls" / "cert.pem", fleet.repo.root / "tls" / "key.pem", "camlab-ota",
                     hosts=("ota.example.com",))
    proc, port = _start_server(fleet.repo.root)
    try:
        transport = HttpsTransport(f"https://127.0.0.1:{port}", cafile=fleet.repo.root / "tls" / "cert.pem")
        with pytest.raises(TransportError, match="(?i)hostname|IP address mismatch|certificate"):
            transport.fetch("metadata/timestamp.json", 10_000)
    finally:
        proc.kill()
        proc.wait()


def test_https_transport_accepts_the_pinned_certificate_by_name_and_by_ip(tmp_path):
    fleet = faults.Fleet.create(tmp_path / "fleet")
    proc, port = _start_server(fleet.repo.root)
    try:
        for host in ("127.0.0.1", "localhost"):
            transport = HttpsTransport(f"https://{host}:{port}", cafile=fleet.repo.root / "tls" / "cert.pem")
            assert transport.ctx.check_hostname and transport.ctx.verify_mode.name == "CERT_REQUIRED"
            assert json.loads(transport.fetch("metadata/timestamp.json", 10_000))["signed"]["_type"] == "timestamp"
    finally:
        proc.kill()
        proc.wait()


def test_no_private_key_is_reachable_over_the_served_tree(tmp_path):
    """TUF §6.1: root and targets keys are kept offline; no signing key lives in the folder the server serves."""
    from device_sim.ota.client import NotFound, TransportError

    fleet = faults.Fleet.create(tmp_path / "fleet")
    repo = fleet.repo
    served = repo.root.resolve()
    for role in ("root", "targets", "snapshot", "timestamp"):
        assert repo.keys(role)                                   # the keys exist and still sign ...
    key_files = list(repo.keys_dir.rglob("*.pem"))
    assert key_files and not any(served in p.resolve().parents for p in key_files)   # ... from outside the tree
    assert {p.parent.name for p in repo.keys_dir.rglob("root-*.pem")} == {"offline"}
    assert {p.parent.name for p in repo.keys_dir.rglob("targets-*.pem")} == {"offline"}
    for p in served.rglob("*"):
        if p.is_file() and p.parent.name != "tls":
            assert b"PRIVATE KEY" not in p.read_bytes(), p
    proc, port = _start_server(repo.root)
    try:
        transport = HttpsTransport(f"https://127.0.0.1:{port}", cafile=repo.root / "tls" / "cert.pem")
        names = [str(p.relative_to(served)) for p in served.rglob("*") if p.is_file()]
        names += [f"{d}/../{n}" for d in ("metadata", "targets") for n in names]
        names += ["keys/root-0.pem", "keys/targets-0.pem", "../" + repo.keys_dir.name + "/offline/root-0.pem"]
        for name in names:
            try:
                data = transport.fetch(name, 1 << 20)
            except (NotFound, TransportError):
                continue
            assert b"PRIVATE KEY" not in data, name
    finally:
        proc.kill()
        proc.wait()
    # the repository still publishes and rotates with its offline keys
    repo.rotate_keys(("root", "targets"))
    assert repo.load("root")["signed"]["version"] == 2
