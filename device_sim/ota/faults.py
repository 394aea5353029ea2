"""Power-cut fault-injection harness for OTA: cut at seeded random write points, power on again, check invariants.

Invariant (checked after every boot, independently of the boot loader's own logic): the booted slot's images hash to
a target signed in the repository's metadata history (never an unsigned or half-written slot), and some slot always
boots (no brick). After the cut, the device keeps booting and running the updater until it is idle; the final state
must be the new version committed (healthy firmware) or the old one (unhealthy firmware rolled back).
Also: real ``kill -9`` of a child process running the updater, inside a chosen flash write (:func:`kill9_trial`).
"""
from __future__ import annotations

import json
import os
import random
import select
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from device_sim.hal.flash import PARTS, Flash, PowerCut, PowerCutPlan, WriteInProgress
from device_sim.ota import bootloader
from device_sim.ota.client import DirTransport
from device_sim.ota.package import delta_package, full_package, sha256
from device_sim.ota.repository import Repository
from device_sim.ota.updater import Updater, UpdateRejected

HW = "sc3336-rv1106-ptz-v1"


def synthetic_firmware(version: str, rootfs_kb: int = 256, kernel_kb: int = 64, seed: int = 7,
                       healthy: bool = True, change_kb: int = 8) -> dict[str, bytes]:
    """Kernel + rootfs images with realistic structure: a header line, many 'files', a small part changing per version."""
    rng = random.Random(seed)
    header = json.dumps({"version": version, "selftest": "pass" if healthy else "fail"}).encode() + b"\n"
    files = []
    for i in range(rootfs_kb // 4):
        files.append((f"/usr/lib/lib{i:03d}.so\x00".encode() + rng.randbytes(4096 - 24)).ljust(4096, b"\x00"))
    vrng = random.Random(f"{seed}-{version}")
    for _ in range(max(1, change_kb // 4)):  # version-specific files change
        files[vrng.randrange(len(files))] = vrng.randbytes(4096)
    rootfs = header + b"".join(files)
    kernel = b"KERNEL " + version.encode() + b"\n" + random.Random(seed + 1).randbytes(kernel_kb * 1024)
    return {"kernel": kernel, "rootfs": rootfs}


@dataclass
class Fleet:
    """A repository with v1.0.0 (factory), v1.1.0 full + delta, and a factory-flashed device image to copy."""
    root: Path
    repo: Repository
    factory: Path
    signed_images: list[dict] = field(default_factory=list)

    @classmethod
    def create(cls, root: Path, healthy_update: bool = True, offer_delta: bool = True, rootfs_kb: int = 256,
               kernel_kb: int = 64, change_kb: int = 8) -> "Fleet":
        root.mkdir(parents=True, exist_ok=True)
        repo = Repository.create(root / "repo")
        v1 = synthetic_firmware("1.0.0", rootfs_kb=rootfs_kb, kernel_kb=kernel_kb, change_kb=change_kb)
        v2 = synthetic_firmware("1.1.0", healthy=healthy_update, rootfs_kb=rootfs_kb, kernel_kb=kernel_kb,
                                change_kb=change_kb)
        repo.add_target("fw-1.0.0.full", full_package("1.0.0", HW, v1["kernel"], v1["rootfs"]))
        repo.add_target("fw-1.1.0.full", full_package("1.1.0", HW, v2["kernel"], v2["rootfs"]))
        if offer_delta:
            repo.add_target("fw-1.1.0.delta-from-1.0.0", delta_package("1.1.0", HW, v1, v2),
                            custom={"base_version": "1.0.0"})
        flash = Flash(root / "factory")
        targets_env = repo.load("targets")
        flash.factory_flash(v1, {"version": "1.0.0", "target": "fw-1.0.0.full", "targets_env": targets_env},
                            repo.load("root")["signed"])
        signed = [{p: sha256(img[p]) for p in PARTS} for img in (v1, v2)]
        return cls(root, repo, root / "factory", signed)

    def clone_device(self, dest: Path, chunk: int = 16 * 1024) -> Flash:
        shutil.copytree(self.factory, dest)
        return Flash(dest, chunk=chunk)


class ArmFirstUpdater(Updater):
    """Mutant: arms the trial boot of the standby slot BEFORE writing it (the slot is bootable while half-written;
    the boot loader's hash check then marks it bad, and the update is lost for good)."""

    def _install(self, name, entry, env, write) -> None:
        standby = bootloader.other(self.booted.slot)
        slots = dict(env["slots"])
        env = self._arm_trial(name, entry, env, slots, standby)
        write(standby)


UPDATERS = {"real": Updater, "arm_trial_first": ArmFirstUpdater}


@dataclass
class CutReport:
    power_cuts: int = 0
    bricks: int = 0
    unsigned_boots: int = 0
    boots: int = 0
    final_versions: dict = field(default_factory=dict)
    cut_sites: dict = field(default_factory=dict)
    trials: int = 0
    no_settle: int = 0                  # still not idle after max_boots: a failure
    wrong_final: int = 0                # ended on another version than expected (e.g. a healthy update lost)
    cuts_by_phase: dict = field(default_factory=dict)   # "boot"/"update"/"trial boot"/"trial update" -> cuts
    cuts_by_write: dict = field(default_factory=dict)   # download / patch / partition / env / file -> cuts
    trials_with_repeated_cuts: int = 0
    cuts_during_trial: int = 0          # cuts while the trial slot was booting or being committed
    cuts_inside_patch: int = 0          # cuts inside the streamed delta patch (a write of the standby partition)
    failures: list = field(default_factory=list)

    @property
    def failed(self) -> int:
        return self.bricks + self.unsigned_boots + self.no_settle + self.wrong_final


def _check_boot(flash: Flash, result: bootloader.BootResult, fleet: Fleet, report: CutReport) -> None:
    images = {p: sha256(flash.read_partition(result.slot, p)) for p in PARTS}
    if images not in fleet.signed_images:
        report.unsigned_boots += 1


def power_on_until_idle(flash: Flash, fleet: Fleet, report: CutReport, max_boots: int = 12,
                        updater: type[Updater] = Updater, transport=None) -> str:
    """Boot, run the updater, reboot when it asks; cuts raise PowerCut and simply lead to the next power-on."""
    transport = transport or DirTransport(fleet.repo.root)
    for _ in range(max_boots):
        env = flash.read_env() or {}
        flash.phase = "trial boot" if env.get("trial") else "boot"
        try:
            booted = bootloader.boot(flash)
        except bootloader.Bricked:
            report.bricks += 1
            return "bricked"
        except PowerCut:
            continue
        report.boots += 1
        _check_boot(flash, booted, fleet, report)
        flash.phase = "trial update" if booted.trial else "update"
        try:
            step = updater(flash, transport, HW, booted).step()
        except PowerCut:
            continue
        except UpdateRejected:
            return booted.version
        if step.action in ("none",):
            return booted.version
    return "no-settle"


def count_writes(fleet: Fleet, work: Path, chunk: int = 16 * 1024, phases: bool = False):
    """Writes a clean update performs (the space the cut points are drawn from), trial boot and commit included;
    with ``phases``, also the write numbers made while the trial slot boots or commits."""
    flash = fleet.clone_device(work / "count", chunk=chunk)
    flash.write_log = []
    power_on_until_idle(flash, fleet, CutReport())
    n = flash.cuts.writes
    trial = [i for i, (phase, _) in enumerate(flash.write_log) if phase.startswith("trial")]
    shutil.rmtree(work / "count")
    return (n, trial) if phases else n


def _write_class(what: str, phase: str) -> str:
    if what.startswith("env"):
        return "boot env"
    if what.startswith("data/ota/") and what.endswith(".part"):
        return "download"
    if what.startswith(("kernel_", "rootfs_")):
        return "partition"
    return "file"


def run_power_cuts(n: int, seed: int = 1, work: Path | None = None, healthy_update: bool = True, *,
                   cuts_per_update: int | tuple[int, int] = 1, rootfs_kb: int = 256, kernel_kb: int = 64,
                   change_kb: int = 8, chunk: int = 16 * 1024, updater: str = "real",
                   max_boots: int | None = None, trial_cut_fraction: float = 0.2) -> CutReport:
    """``n`` trials, each with ``cuts_per_update`` power cuts (an int, or a (lo, hi) range drawn per trial) at
    random writes of the update (download, the streamed delta patch, the full write, env flips, the trial boot and
    its commit; ``trial_cut_fraction`` of the trials put their first cut on a write of the trial boot or commit),
    then power-on until idle.

    Trials alternate between a repository offering a delta (download, bsdiff patch streamed to flash) and one
    offering only the full package. Every trial must end on the expected version (1.1.0 for a healthy update,
    1.0.0 for an unhealthy one): a brick, an unsigned boot, "no-settle" (not idle after ``max_boots``) or another
    final version is a failure (:attr:`CutReport.failed`). ``updater``: 'real' or a mutant of :data:`UPDATERS`.
    """
    if updater not in UPDATERS:
        raise ValueError(f"run_power_cuts: updater must be one of {sorted(UPDATERS)}, got {updater!r}")
    lo, hi = (cuts_per_update, cuts_per_update) if isinstance(cuts_per_update, int) else cuts_per_update
    if n < 0 or not 1 <= lo <= hi:
        raise ValueError(f"run_power_cuts: n >= 0 and 1 <= cuts_per_update expected, got {n}, {cuts_per_update}")
    work = Path(work or tempfile.mkdtemp(prefix="ota-cuts-"))
    sizes = {"rootfs_kb": rootfs_kb, "kernel_kb": kernel_kb, "change_kb": change_kb}
    fleets = [Fleet.create(work / "fleet-delta", healthy_update=healthy_update, offer_delta=True, **sizes),
              Fleet.create(work / "fleet-full", healthy_update=healthy_update, offer_delta=False, **sizes)]
    counted = [count_writes(f, work, chunk, phases=True) for f in fleets]
    totals = [c[0] for c in counted]
    expected = "1.1.0" if healthy_update else "1.0.0"
    rng = random.Random(seed)
    report = CutReport()
    for i in range(n):
        fleet, total = fleets[i % 2], totals[i % 2]
        dev = work / f"dev{i}"
        flash = fleet.clone_device(dev, chunk=chunk)
        k = rng.randint(lo, hi)
        # the first cut in the clean run's writes; later ones spread over what the retries write after it
        trial_writes = counted[i % 2][1]
        if trial_writes and rng.random() < trial_cut_fraction:      # aim at the trial boot / commit writes
            first = rng.choice(trial_writes)
        else:
            first = rng.randrange(total)
        points = sorted({first} | {first + 1 + rng.randrange(total) for _ in range(k - 1)})
        flash.cuts = PowerCutPlan(at=points, seed=rng.randrange(1 << 30))
        version = power_on_until_idle(flash, fleet, report, max_boots=max_boots or 12 + 2 * hi,
                                      updater=UPDATERS[updater])
        report.trials += 1
        report.power_cuts += flash.cuts.fired_count
        report.trials_with_repeated_cuts += flash.cuts.fired_count > 1
        for phase, what in flash.cut_log:
            report.cuts_by_phase[phase] = report.cuts_by_phase.get(phase, 0) + 1
            wc = _write_class(what, phase)
            if wc == "partition" and i % 2 == 0 and phase == "update":
                wc = "delta patch (streamed)"
                report.cuts_inside_patch += 1
            report.cuts_by_write[wc] = report.cuts_by_write.get(wc, 0) + 1
            report.cuts_during_trial += phase.startswith("trial")
        report.final_versions[version] = report.final_versions.get(version, 0) + 1
        if version == "no-settle":
            report.no_settle += 1
        elif version not in (expected, "bricked"):
            report.wrong_final += 1
        if version != expected:
            report.failures.append(f"trial {i} ({'delta' if i % 2 == 0 else 'full'}, cuts at {points}, "
                                   f"{flash.cut_log}): ended on {version}, expected {expected}")
        site = f"{'delta' if i % 2 == 0 else 'full'}:{first}"
        report.cut_sites[site] = report.cut_sites.get(site, 0) + 1
        shutil.rmtree(dev)
    shutil.rmtree(work, ignore_errors=True)
    return report


def kill9_trial(fleet: Fleet, dev: Path, at_write: int, timeout_s: float = 60.0) -> dict | None:
    """Run one boot + updater step in a child process and SIGKILL it while it is inside flash write ``at_write``.

    A real, unannounced power cut at a known point, not after a guessed delay: the child's :attr:`Flash.on_write`
    hook lands half of that write (fsynced), reports it as one JSON line on stdout and blocks; the parent checks
    that the child still holds the file open, kills it with SIGKILL and returns what was in progress:
    ``index, what, path, landed, total, size`` (from the hook: :class:`~device_sim.hal.flash.WriteInProgress`),
    ``open_at_kill`` (the child had ``path`` open when killed; None without /proc), ``returncode`` and
    ``size_after`` (``path``'s size after the kill). None if the step ended without reaching that write.
    Write numbers are those of :func:`step_writes` on a fresh clone of the same fleet.
    """
    code = ("import sys; from pathlib import Path; from device_sim.ota import faults; "
            "faults._child_update(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]))")
    proc = subprocess.Popen([sys.executable, "-c", code, str(fleet.root), str(dev), str(at_write)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], timeout_s)
        if not ready:
            raise TimeoutError(f"updater child reached no write {at_write} within {timeout_s:.0f} s")
        line = proc.stdout.readline()
        if not line:                       # the step finished (or failed) before that write
            proc.wait()
            return None
        info = json.loads(line)
        path = Path(info["path"])
        info["open_at_kill"] = _holds_open(proc.pid, path)
        os.kill(proc.pid, signal.SIGKILL)
        info["returncode"] = proc.wait()
        info["size_after"] = path.stat().st_size if path.exists() else None
        return info
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pipe in (proc.stdin, proc.stdout):
            pipe.close()


def _holds_open(pid: int, path: Path) -> bool | None:
    """Whether process ``pid`` has ``path`` open (Linux /proc); None where that cannot be seen."""
    fds = Path(f"/proc/{pid}/fd")
    try:
        links = [os.readlink(fd) for fd in fds.iterdir()]
    except OSError:
        return None
    return str(path.resolve()) in links


def _update_step(fleet: Fleet, flash: Flash) -> None:
    booted = bootloader.boot(flash)
    Updater(flash, DirTransport(fleet.repo.root), HW, booted).step()


def step_writes(fleet: Fleet, dev: Path) -> list[WriteInProgress]:
    """Clone a fresh device to ``dev`` and list the flash writes of one boot + updater step (what
    :func:`kill9_trial` numbers), as seen mid-write by the :attr:`Flash.on_write` hook."""
    flash = fleet.clone_device(dev)
    seen: list[WriteInProgress] = []
    flash.on_write = seen.append
    _update_step(fleet, flash)
    return seen


def _child_update(fleet_root: Path, dev: Path, kill_at: int | None = None) -> None:
    fleet = Fleet(fleet_root, Repository(fleet_root / "repo"), fleet_root / "factory")
    flash = Flash(dev)
    if kill_at is not None:
        def hold(w: WriteInProgress) -> None:
            if w.index != kill_at:
                return
            print(json.dumps({"index": w.index, "what": w.what, "path": str(w.path), "landed": w.landed,
                              "total": w.total, "size": w.size}), flush=True)
            sys.stdin.read()               # blocks until the parent's SIGKILL
            os._exit(3)                    # stdin closed: the parent is gone; never finish the write
        flash.on_write = hold
    _update_step(fleet, flash)
