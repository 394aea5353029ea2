"""OTA power cuts that bite: the delta patch streams to flash (cut points inside it), repeated cuts in one update
including the trial boot and its commit, a full-size image, no-settle and wrong final versions count as failures,
and the mutant that arms the trial before writing the slot fails."""
from __future__ import annotations

import logging
import random

import bsdiff4
import bsdiff4.core
import pytest

from device_sim.hal.flash import Flash, PowerCutPlan
from device_sim.ota import faults, package
from device_sim.ota.package import PackageError, _offtin, stream_patch


@pytest.fixture(autouse=True)
def _quiet_ota_log():
    logging.getLogger("device_sim.ota").setLevel(logging.CRITICAL)


def test_stream_patch_equals_bsdiff4_and_writes_in_bounded_pieces(tmp_path):
    rng = random.Random(4)
    for n in (0, 1, 700, 5000, 70_000):
        old = rng.randbytes(n)
        new = bytearray(old)
        for _ in range(5):
            if new:
                new[rng.randrange(len(new))] ^= 0xFF
        new = bytes(new[: n // 2]) + rng.randbytes(rng.randint(0, 3000)) + bytes(new[n // 2:])
        (tmp_path / "old").write_bytes(old)
        pieces: list[bytes] = []
        sha, size = stream_patch(tmp_path / "old", bsdiff4.diff(old, new), pieces.append, chunk=1024)
        assert b"".join(pieces) == new and size == len(new) and sha == package.sha256(new)
        assert all(len(p) <= 1024 for p in pieces)
    for v in (0, 1, 255, 1 << 40, -(1 << 33), -5):
        assert _offtin(bsdiff4.core.encode_int64(v)) == v


def test_stream_patch_refuses_malformed_patches(tmp_path):
    (tmp_path / "old").write_bytes(b"x" * 100)
    good = bsdiff4.diff(b"x" * 100, b"y" * 120)
    for bad in (b"", b"NOTBSDIFF" * 5, good[:40], good[:32] + b"\x00" * (len(good) - 32)):
        with pytest.raises(PackageError):
            stream_patch(tmp_path / "old", bad, lambda piece: None)


def test_stream_patch_on_mutated_patches_raises_only_package_error(tmp_path):
    rng = random.Random(9)
    old = rng.randbytes(20_000)
    new = bytearray(old)
    new[100:200] = rng.randbytes(100)
    good = bsdiff4.diff(old, bytes(new) + rng.randbytes(500))
    (tmp_path / "old").write_bytes(old)
    for _ in range(300):
        p = bytearray(good)
        for _ in range(rng.randint(1, 8)):
            p[rng.randrange(len(p))] = rng.randrange(256)
        if rng.random() < 0.2:
            p = p[: rng.randrange(len(p))]
        try:
            stream_patch(tmp_path / "old", bytes(p), lambda piece: None, chunk=4096)
        except PackageError:
            pass
    with pytest.raises(ValueError, match="chunk"):
        stream_patch(tmp_path / "old", good, lambda piece: None, chunk=0)


def test_delta_update_never_holds_an_image_in_memory(tmp_path, monkeypatch):
    """The delta path neither reads the running slot whole nor patches in RAM (bsdiff4.patch / package.apply)."""
    fleet = faults.Fleet.create(tmp_path / "fleet")
    flash = fleet.clone_device(tmp_path / "dev")

    def boom(*a, **k):
        raise AssertionError("image-sized buffer used on the delta path")
    monkeypatch.setattr(Flash, "slot_images", boom)
    monkeypatch.setattr(package.bsdiff4, "patch", boom)
    monkeypatch.setattr("device_sim.ota.updater.apply", boom)
    flash.write_log = []
    assert faults.power_on_until_idle(flash, fleet, faults.CutReport()) == "1.1.0"
    assert flash.read_env()["slots"]["b"]["target"] == "fw-1.1.0.delta-from-1.0.0"
    rootfs_writes = [w for phase, w in flash.write_log if w.startswith("rootfs_b")]
    assert len(rootfs_writes) >= 10                                   # the patched image went out piece by piece


def test_repeated_cuts_inside_the_patch_and_the_trial_boot_never_fail(tmp_path):
    r = faults.run_power_cuts(24, seed=21, work=tmp_path / "cuts", cuts_per_update=(1, 3), trial_cut_fraction=0.3)
    assert r.failed == 0 and r.final_versions == {"1.1.0": 24}, r.failures
    assert r.cuts_inside_patch > 0 and r.cuts_during_trial > 0 and r.trials_with_repeated_cuts > 0
    assert r.power_cuts > r.trials


def test_repeated_cuts_during_a_failing_update_end_on_the_old_version(tmp_path):
    r = faults.run_power_cuts(10, seed=22, work=tmp_path / "cuts", healthy_update=False, cuts_per_update=(1, 3))
    assert r.failed == 0 and r.final_versions == {"1.0.0": 10}, r.failures


def test_full_size_image_with_cuts(tmp_path):
    r = faults.run_power_cuts(2, seed=23, work=tmp_path / "cuts", rootfs_kb=8 * 1024, kernel_kb=512, change_kb=128,
                              chunk=128 * 1024, cuts_per_update=2)
    assert r.failed == 0 and r.final_versions == {"1.1.0": 2}, r.failures


def test_the_arm_trial_first_mutant_fails_the_harness(tmp_path):
    r = faults.run_power_cuts(12, seed=24, work=tmp_path / "cuts", updater="arm_trial_first")
    assert r.failed > 0 and r.wrong_final > 0 and r.final_versions.get("1.0.0", 0) > 0


def test_no_settle_counts_as_a_failure(tmp_path):
    r = faults.run_power_cuts(2, seed=25, work=tmp_path / "cuts", max_boots=1)
    assert r.no_settle == 2 and r.failed == 2 and r.final_versions == {"no-settle": 2}


def test_harness_and_plan_validate_their_input(tmp_path):
    with pytest.raises(ValueError, match="updater must be one of"):
        faults.run_power_cuts(1, work=tmp_path, updater="nope")
    with pytest.raises(ValueError, match="cuts_per_update"):
        faults.run_power_cuts(1, work=tmp_path, cuts_per_update=0)
    with pytest.raises(ValueError, match=">= 0"):
        PowerCutPlan(at=[-1])
    with pytest.raises(ValueError, match="chunk"):
        Flash(tmp_path / "f", chunk=0)
