"""The power-loss layer (unsynced writes dropped or torn, names durable only after their folder's fsync) and the
recorder's power-cut harness on it: the invariant is checked BEFORE reconcile too, and the mutants fail."""
from __future__ import annotations

import random

import pytest

from device_sim.hal.sdcard import SdCard
from device_sim.storage.faults import lost_footage, run_power_loss
from device_sim.storage.index import Recording
from device_sim.storage.powerloss import SECTOR, PowerCut, PowerLossLayer


def _card(tmp_path):
    card = SdCard(tmp_path, 10_000_000)
    card.fs = PowerLossLayer(card.mount_point)
    return card


def test_unsynced_data_and_unsynced_names_are_lost(tmp_path):
    card = _card(tmp_path)
    root = card.mount_point
    a = card.open_write("d/a.bin")              # makedirs fsyncs the parent of the new folder
    card.fsync_dir("d")                         # a's name is durable
    a.write(b"A" * 4096)
    a.fsync()                                   # durable data
    a.write(b"B" * 4096)                        # pending
    b = card.open_write("d/b.bin")
    b.write(b"C" * 100)
    b.fsync()                                   # data durable, name not (no fsync of d)
    card.replace("d/a.bin", "d/a2.bin")         # not durable either
    a.close()
    b.close()
    rep = card.fs.crash(random.Random(0))
    assert sorted(p.name for p in (root / "d").iterdir()) == ["a.bin"]
    data = (root / "d/a.bin").read_bytes()
    assert data[:4096] == b"A" * 4096 and len(data) in range(4096, 8193)
    assert set(data[4096:]) <= {ord("B")} and len(data) % SECTOR == 0          # a sector-granular prefix of B
    assert rep.files_lost >= 1 and rep.renames_undone >= 1


def test_rename_after_fsync_and_folder_fsync_is_durable_and_unlink_comes_back_without_it(tmp_path):
    card = SdCard(tmp_path, 10_000_000)
    f = card.open_write("old.bin")
    f.write(b"x" * 1000)
    f.fsync()
    f.close()
    card.fsync_dir()
    card.fs = PowerLossLayer(card.mount_point)   # old.bin was there (durable) when the layer started
    g = card.open_write("y/new.bin")
    g.write(b"y" * 700)
    g.fsync()
    g.close()
    card.replace("y/new.bin", "y/final.bin")
    card.fsync_dir("y")
    card.unlink("old.bin")                      # no fsync of the root: comes back
    card.fs.crash(random.Random(1))
    root = card.mount_point
    assert (root / "y/final.bin").read_bytes() == b"y" * 700 and not (root / "y/new.bin").exists()
    assert (root / "old.bin").read_bytes() == b"x" * 1000
    assert (root / ".sdcard").exists() and card.probe().value == "ok"


def test_cut_inside_a_write_tears_it_and_kills_every_later_operation(tmp_path):
    card = _card(tmp_path)
    f = card.open_write("t.bin")
    card.fsync_dir()
    f.write(b"a" * 1024)
    f.fsync()
    card.fs.arm("write")
    with pytest.raises(PowerCut):
        f.write(b"b" * 5000)
    with pytest.raises(PowerCut):
        f.fsync()
    with pytest.raises(PowerCut):
        card.replace("t.bin", "u.bin")
    f.close()
    card.fs.crash(random.Random(3))
    data = (card.mount_point / "t.bin").read_bytes()
    assert data[:1024] == b"a" * 1024 and set(data[1024:]) <= {ord("b")} and len(data) % SECTOR == 0
    with pytest.raises(ValueError, match="kind must be one of"):
        card.fs.arm("nope")


def test_lost_footage_counts_holes_in_the_middle():
    rows = [Recording("a", "minute", 0, 60, 0, 1, 1), Recording("c", "minute", 120, 170, 0, 1, 1)]
    lost, holes = lost_footage((0, 180), rows)
    assert lost == pytest.approx(70) and holes == pytest.approx(60)       # minute 1 gone, 10 s tail in flight
    assert lost_footage((0, 60), rows[:1]) == (0.0, 0.0)


def test_power_loss_harness_real_recorder_keeps_the_invariant_before_and_after_reconcile(tmp_path, src):
    rep = run_power_loss(tmp_path, 12, seed=5, src=src, recovery_cut_fraction=0.4)
    assert rep.power_cuts == 12 and not rep.failures, rep.failures
    assert rep.ok and rep.pre_indexed_missing == rep.pre_indexed_corrupt == 0
    assert rep.pre_partials > 0 and rep.repaired > 0 and rep.recovery_cuts > 0     # reconcile had work to do
    assert rep.max_lost_s <= 5.0 + 2 * src.gop / src.fps + 1.0   # the fsync interval + the GOPs in flight
    assert rep.cuts_with_holes == 0


@pytest.mark.parametrize("mutant", ["no_fsync", "row_before_rename"])
def test_power_loss_harness_fails_the_mutants(tmp_path, src, mutant):
    rep = run_power_loss(tmp_path, 12, seed=5, src=src, recorder=mutant)
    assert not rep.ok and rep.pre_indexed_missing + rep.pre_indexed_corrupt > 0


def test_run_power_loss_validates_its_input(tmp_path):
    with pytest.raises(ValueError, match="recorder must be one of"):
        run_power_loss(tmp_path, 1, recorder="nope")


def _partial_with_torn_moof(tmp_path, src, capacity=50_000_000):
    from device_sim.storage.index import Index
    from device_sim.storage.recorder import Recorder
    from device_sim.storage.reconcile import complete_boxes
    card = SdCard(tmp_path, capacity)
    index = Index(card.mount_point / ".index/index.db")
    rec = Recorder(card, index, info=src.info, epoch_base=1_763_769_600.0)
    for p in src.packets(0.0, 35.0):
        rec.write(p)
    rec._cur.fh.flush()
    partial = card.mount_point / rec.in_flight
    data = partial.read_bytes()
    off, moofs = 0, []
    while off + 8 <= len(data):                                      # top-level boxes: where is the last moof?
        if data[off + 4:off + 8] == b"moof":
            moofs.append(off)
        off += int.from_bytes(data[off:off + 4], "big")
    partial.write_bytes(data[:moofs[-1] + 104])                      # a cut 104 bytes into the last moof
    assert complete_boxes(partial.read_bytes()) == moofs[-1]
    return card, index, partial, moofs[-1]


def test_a_torn_moof_at_the_tail_does_not_lose_the_minute(tmp_path, src):
    """FFmpeg refuses a fragmented MP4 whose last few bytes are a torn moof: the repair must read the whole boxes
    before it, not discard the minute (found by the power-loss harness: 60 s lost per such cut)."""
    import av
    from device_sim.storage.reconcile import reconcile
    card, index, partial, whole = _partial_with_torn_moof(tmp_path, src)
    with pytest.raises(av.error.FFmpegError):
        av.open(str(partial))                               # what the repair used to do
    rep = reconcile(card, index)
    assert rep.repaired == ["2025/11/22/00/00.mp4"] and not rep.discarded
    row = index.get("2025/11/22/00/00.mp4")
    assert row.end_s - row.start_s >= 30.0                 # every whole fragment kept


def test_a_repair_that_does_not_fit_keeps_the_partial_then_retention_makes_room(tmp_path, src):
    from device_sim.storage.reconcile import reconcile
    from device_sim.storage.retention import Retention
    card, index, partial, _ = _partial_with_torn_moof(tmp_path, src, capacity=1_000_000)
    old = card.open_write("2025/11/21/23/59.mp4")           # old footage, indexed, that retention may delete
    old.write(bytes(150_000))
    old.fsync()
    old.close()
    index.add("2025/11/21/23/59.mp4", 1_763_769_540.0, 1_763_769_600.0, bytes=150_000, frames=600)
    junk = card.open_write("snapshots/junk.bin")
    junk.write(bytes(card.free_bytes() - 40_000))          # no room left for the repaired copy
    junk.close()
    rep = reconcile(card, index)
    assert rep.deferred == [str(partial.relative_to(card.mount_point))] and not rep.discarded
    assert partial.exists()                                 # kept, never discarded for a card error
    rep = reconcile(card, index, retention=Retention(card, index))
    assert rep.repaired == ["2025/11/22/00/00.mp4"] and not partial.exists()
