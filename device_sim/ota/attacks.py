"""The OTA threat catalogue as executable scenarios (TUF specification §1.5 attacks), shared by tests and bench.

Each attack sets up a compromised server/mirror against a factory-fresh device and reports whether the device
refused it with its running slot untouched (same version, same images, still booting). The device talks HTTPS to
a :class:`Mirror` on loopback (the OTA service's handler behind TLS), as in the field.
"""
from __future__ import annotations

import json
import shutil
import ssl
import threading
import time
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Callable

from device_sim.hal.flash import PARTS, Flash
from device_sim.ota import bootloader
from device_sim.ota.client import HttpsTransport, TransportError
from device_sim.ota.faults import HW, Fleet, synthetic_firmware
from device_sim.ota.metadata import SigningKey, iso_utc, sign
from device_sim.ota.package import Part, build, delta_package, full_package, sha256
from device_sim.ota.updater import Updater, UpdateRejected


class Mirror:
    """A (possibly malicious) HTTPS mirror of a repository folder, in a thread on loopback: the OTA service's own
    request handler (:func:`device_sim.services.ota_server.make_handler`) behind TLS with the service certificate,
    so the device talks to it with the :class:`HttpsTransport` it uses in the field.

    ``mode``: None (honest), ``"trickle"`` (paths under ``trickle_prefix`` answer 200 with a huge Content-Length and
    then one byte every ``trickle_s`` seconds, forever: TUF's slow-retrieval attack), ``"endless"`` (targets are
    followed by zeros past their signed length: endless data). ``deadline_s``: the device transport's per-request
    deadline."""

    def __init__(self, repo_root: Path, mode: str | None = None, *, trickle_prefix: str = "targets/",
                 trickle_s: float = 0.05, deadline_s: float = 30.0):
        if mode not in (None, "trickle", "endless"):
            raise ValueError(f"mirror: mode must be None, 'trickle' or 'endless', got {mode!r}")
        self.repo_root, self.mode = Path(repo_root), mode
        self.trickle_prefix, self.trickle_s, self.deadline_s = trickle_prefix, trickle_s, deadline_s
        self.trickled_bytes = 0
        self.requests: list[str] = []
        self._stop = threading.Event()

    def __enter__(self) -> "Mirror":
        from device_sim.services.ota_server import make_handler
        from device_sim.services.tls import ensure_certificate
        cert, key = ensure_certificate(self.repo_root / "tls", "camlab-ota")
        mirror = self

        class Handler(make_handler(self.repo_root)):
            def log_message(self, fmt, *args):
                pass

            def do_GET(self):  # noqa: N802 (http.server API)
                path = self.path.lstrip("/")
                mirror.requests.append(path)
                if mirror.mode == "trickle" and path.startswith(mirror.trickle_prefix):
                    return self._trickle()
                if mirror.mode == "endless" and path.startswith("targets/"):
                    return self._endless(path)
                return super().do_GET()

            def _trickle(self) -> None:
                self.send_response(200)
                self.send_header("Content-Length", str(1 << 40))
                self.end_headers()
                self.close_connection = True
                until = time.monotonic() + 300
                try:
                    while time.monotonic() < until and not mirror._stop.is_set():
                        self.wfile.write(b" ")
                        mirror.trickled_bytes += 1
                        time.sleep(mirror.trickle_s)
                except OSError:
                    pass                          # the device gave up

            def _endless(self, path: str) -> None:
                f = mirror.repo_root / path
                if not f.is_file() or "/" in path[len("targets/"):]:
                    return self._send(404, b"not found\n")
                rng = self.headers.get("Range") or "bytes=0-"
                start = int(rng[6:-1]) if rng.startswith("bytes=") and rng[6:-1].isdigit() else 0
                self.send_response(206 if start else 200)
                self.send_header("Content-Length", str(1 << 40))
                self.end_headers()
                self.close_connection = True
                try:
                    self.wfile.write(f.read_bytes()[start:])
                    while not mirror._stop.is_set():
                        self.wfile.write(bytes(65536))
                except OSError:
                    pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address) -> None:
                pass        # a device that read its max_bytes and hung up mid-answer is not an error

        self._server = Server(("127.0.0.1", 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(cert, key)
        self._server.socket = ctx.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        self.cafile = cert
        self.url = f"https://127.0.0.1:{self._server.server_address[1]}"
        self.transport = HttpsTransport(self.url, cafile=cert, deadline_s=self.deadline_s)
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


def _attempt(fleet: Fleet, dev: Path, transport=None, mode: str | None = None) -> tuple[bool, str]:
    """Run one update attempt over HTTPS (a :class:`Mirror` of the fleet's repository, ``mode`` for a malicious
    one; or ``transport``); True if the device refused and its running slot is untouched."""
    if transport is None:
        with Mirror(fleet.repo.root, mode) as m:
            return _attempt(fleet, dev, m.transport)
    flash = fleet.clone_device(dev)
    before = {s: {p: sha256(flash.read_partition(s, p)) for p in PARTS} for s in ("a", "b")}
    booted = bootloader.boot(flash)
    try:
        step = Updater(flash, transport, HW, booted).step()
        if step.action == "reboot":
            after_boot = bootloader.boot(flash)
            return False, f"device accepted the update and booted {after_boot.version}"
        refused, why = step.action == "none", step.detail
    except (UpdateRejected, TransportError) as exc:
        refused, why = True, str(exc)
    after = {p: sha256(flash.read_partition(booted.slot, p)) for p in PARTS}
    untouched = after == before[booted.slot] and bootloader.boot(flash).version == "1.0.0"
    return refused and untouched, why


def _fleet(work: Path, name: str) -> Fleet:
    """A repository holding only the factory 1.0.0 (the attack adds what it needs)."""
    from device_sim.ota.repository import Repository

    root = work / name
    repo = Repository.create(root / "repo")
    v1 = synthetic_firmware("1.0.0")
    repo.add_target("fw-1.0.0.full", full_package("1.0.0", HW, v1["kernel"], v1["rootfs"]))
    flash = Flash(root / "factory")
    flash.factory_flash(v1, {"version": "1.0.0", "target": "fw-1.0.0.full", "targets_env": repo.load("targets")},
                        repo.load("root")["signed"])
    return Fleet(root, repo, root / "factory", [{p: sha256(v1[p]) for p in PARTS}])


def arbitrary_package(work: Path) -> tuple[bool, str]:
    fleet = _fleet(work, "arbitrary")
    v2 = synthetic_firmware("1.1.0")
    fleet.repo.add_target("fw-1.1.0.full", full_package("1.1.0", HW, v2["kernel"], v2["rootfs"]))
    evil = synthetic_firmware("1.1.0", seed=666)  # attacker swaps the file on the mirror
    (fleet.repo.targets_dir / "fw-1.1.0.full").write_bytes(full_package("1.1.0", HW, evil["kernel"], evil["rootfs"]))
    return _attempt(fleet, work / "arbitrary-dev")


def wrong_signature(work: Path) -> tuple[bool, str]:
    fleet = _fleet(work, "wrongsig")
    v2 = synthetic_firmware("1.1.0")
    fleet.repo.add_target("fw-1.1.0.full", full_package("1.1.0", HW, v2["kernel"], v2["rootfs"]))
    env = fleet.repo.load("targets")
    forged = sign(env["signed"], [SigningKey.generate()])  # attacker's own key
    (fleet.repo.meta_dir / "targets.json").write_text(json.dumps(forged))
    return _attempt(fleet, work / "wrongsig-dev")


def rollback_metadata(work: Path) -> tuple[bool, str]:
    """Replay of older (validly signed) metadata after the device has seen newer versions."""
    fleet = _fleet(work, "rollback")
    old = {r: (fleet.repo.meta_dir / f"{r}.json").read_bytes() for r in ("timestamp", "snapshot", "targets")}
    v2 = synthetic_firmware("1.1.0", healthy=False)
    fleet.repo.add_target("fw-1.1.0.full", full_package("1.1.0", HW, v2["kernel"], v2["rootfs"]))
    dev = work / "rollback-dev"
    flash = fleet.clone_device(dev)
    with Mirror(fleet.repo.root) as m:                                           # the device sees new versions
        Updater(flash, m.transport, HW, bootloader.boot(flash)).refresh_metadata()
    for role, data in old.items():
        (fleet.repo.meta_dir / f"{role}.json").write_bytes(data)
    shutil.rmtree(fleet.factory)
    shutil.copytree(dev, fleet.factory)
    return _attempt(fleet, work / "rollback-dev2")


def downgrade(work: Path) -> tuple[bool, str]:
    fleet = _fleet(work, "downgrade")
    v0 = synthetic_firmware("0.9.0")
    fleet.repo.add_target("fw-0.9.0.full", full_package("0.9.0", HW, v0["kernel"], v0["rootfs"]))
    return _attempt(fleet, work / "downgrade-dev")


def freeze(work: Path) -> tuple[bool, str]:
    fleet = _fleet(work, "freeze")
    v2 = synthetic_firmware("1.1.0")
    fleet.repo.add_target("fw-1.1.0.full", full_package("1.1.0", HW, v2["kernel"], v2["rootfs"]))
    ts = fleet.repo.load("timestamp")["signed"]
    stale = {**ts, "expires": iso_utc(time.time() - 3600)}
    (fleet.repo.meta_dir / "timestamp.json").write_text(json.dumps(sign(stale, fleet.repo.keys("timestamp"))))
    return _attempt(fleet, work / "freeze-dev")


def endless_data(work: Path) -> tuple[bool, str]:
    fleet = _fleet(work, "endless")
    v2 = synthetic_firmware("1.1.0")
    fleet.repo.add_target("fw-1.1.0.full", full_package("1.1.0", HW, v2["kernel"], v2["rootfs"]))
    return _attempt(fleet, work / "endless-dev", mode="endless")


def mix_and_match(work: Path) -> tuple[bool, str]:
    """Targets metadata from one release combined with snapshot/timestamp of another."""
    fleet = _fleet(work, "mix")
    v2 = synthetic_firmware("1.1.0")
    fleet.repo.add_target("fw-1.1.0.full", full_package("1.1.0", HW, v2["kernel"], v2["rootfs"]))
    ts, snap = (fleet.repo.meta_dir / "timestamp.json").read_bytes(), (fleet.repo.meta_dir / "snapshot.json").read_bytes()
    v3 = synthetic_firmware("1.2.0", healthy=False)
    fleet.repo.add_target("fw-1.2.0.full", full_package("1.2.0", HW, v3["kernel"], v3["rootfs"]))
    (fleet.repo.meta_dir / "timestamp.json").write_bytes(ts)   # old timestamp + snapshot, newer targets
    (fleet.repo.meta_dir / "snapshot.json").write_bytes(snap)
    return _attempt(fleet, work / "mix-dev")


def wrong_hardware(work: Path) -> tuple[bool, str]:
    fleet = _fleet(work, "hw")
    v2 = synthetic_firmware("1.1.0")
    fleet.repo.add_target("fw-1.1.0.other-hw", full_package("1.1.0", "t40xp-bullet-v2", v2["kernel"], v2["rootfs"]))
    return _attempt(fleet, work / "hw-dev")


def tampered_delta(work: Path) -> tuple[bool, str]:
    """A delta whose patch bytes were altered on the mirror (hash check), then one signed but producing wrong images."""
    fleet = _fleet(work, "delta")
    v1, v2 = synthetic_firmware("1.0.0"), synthetic_firmware("1.1.0")
    good = delta_package("1.1.0", HW, v1, v2)
    fleet.repo.add_target("fw-1.1.0.delta", good, custom={"base_version": "1.0.0"})
    path = fleet.repo.targets_dir / "fw-1.1.0.delta"
    data = bytearray(path.read_bytes())
    data[-100] ^= 0xFF
    path.write_bytes(bytes(data))
    first = _attempt(fleet, work / "delta-dev")
    # a signed delta whose patch was made against the wrong base: produces an image unlike the signed one
    fleet2 = _fleet(work, "delta2")
    wrong_base = synthetic_firmware("1.0.0", seed=99)
    bad = delta_package("1.1.0", HW, wrong_base, v2)
    parts = [Part(p.name, p.payload, p.image_sha256, sha256(v1[p.name]))
             for p in __import__("device_sim.ota.package", fromlist=["parse"]).parse(bad).parts]
    fleet2.repo.add_target("fw-1.1.0.delta", build("delta", "1.1.0", HW, parts), custom={"base_version": "1.0.0"})
    second = _attempt(fleet2, work / "delta2-dev")
    return first[0] and second[0], f"{first[1]} | {second[1]}"


def corrupt_metadata(work: Path) -> tuple[bool, str]:
    fleet = _fleet(work, "corrupt")
    (fleet.repo.meta_dir / "timestamp.json").write_bytes(b'{"signed": {"_type": "timestamp", "vers')
    return _attempt(fleet, work / "corrupt-dev")


def truncated_package(work: Path) -> tuple[bool, str]:
    fleet = _fleet(work, "trunc")
    v2 = synthetic_firmware("1.1.0")
    fleet.repo.add_target("fw-1.1.0.full", full_package("1.1.0", HW, v2["kernel"], v2["rootfs"]))
    path = fleet.repo.targets_dir / "fw-1.1.0.full"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return _attempt(fleet, work / "trunc-dev")


ATTACKS: dict[str, Callable[[Path], tuple[bool, str]]] = {
    "arbitrary_package": arbitrary_package, "wrong_signature": wrong_signature, "rollback_metadata": rollback_metadata,
    "downgrade": downgrade, "freeze": freeze, "endless_data": endless_data, "mix_and_match": mix_and_match,
    "wrong_hardware": wrong_hardware, "tampered_delta": tampered_delta, "corrupt_metadata": corrupt_metadata,
    "truncated_package": truncated_package,
}
