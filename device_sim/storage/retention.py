"""Tiered retention for a full card: delete the oldest footage, continuous before event footage, protected last.

Loop recording as camera firmware does it (e.g. the "overwrite oldest" policy of SD recording in ONVIF Profile G
devices): when free space falls under ``low_water_bytes`` the oldest files of the lowest tier are deleted until
``high_water_bytes`` are free; quarantined (unreadable) files go first. Recording never stops for space: the
recorder calls :meth:`Retention.ensure` before each new minute and on ``ENOSPC``.
"""
from __future__ import annotations

import errno
from dataclasses import dataclass, field
from pathlib import Path

from device_sim.hal.sdcard import SdCard
from device_sim.storage.index import (TIER_CONTINUOUS, TIER_EVENT, TIER_PROTECTED, Index, IndexFull, UnsafeCardPath,
                                      card_file)

QUARANTINE = ".quarantine"


@dataclass
class RetentionStats:
    deleted: list[tuple[str, int]] = field(default_factory=list)   # (path, tier)
    freed_bytes: int = 0
    refused: list[str] = field(default_factory=list)   # index rows naming a path outside the card (dropped)


class Retention:
    """Space keeper for one card + index. ``low``/``high`` default to 10 % / 15 % of the capacity."""

    def __init__(self, card: SdCard, index: Index, *, low_water_bytes: int | None = None,
                 high_water_bytes: int | None = None):
        cap = card.capacity_bytes
        self.card, self.index = card, index
        self.low = int(low_water_bytes if low_water_bytes is not None else cap * 0.10)
        self.high = int(high_water_bytes if high_water_bytes is not None else max(self.low, cap * 0.15))
        if not 0 <= self.low <= self.high < cap:
            raise ValueError(f"retention: need 0 <= low ({self.low}) <= high ({self.high}) < capacity ({cap})")
        self.stats = RetentionStats()

    def ensure(self, need_bytes: int = 0) -> int:
        """Free space until ``max(high, need)`` bytes are free when under ``max(low, need)``; returns free bytes."""
        free = self.card.free_bytes()
        if free >= max(self.low, need_bytes):
            return free
        target = max(self.high, need_bytes)
        free = self._drain_quarantine(free, target)
        for tier in (TIER_CONTINUOUS, TIER_EVENT, TIER_PROTECTED):
            while free < target:
                batch = self.index.oldest(tier)
                if not batch:
                    break
                for rec in batch:
                    try:                       # a row naming a path outside the card is dropped, nothing deleted
                        card_file(self.card.require(write=True), rec.path)
                    except UnsafeCardPath:
                        self.index.remove(rec.path)
                        self.stats.refused.append(rec.path)
                        continue
                    freed = self._forget(rec.path)
                    self.stats.deleted.append((rec.path, tier))
                    self.stats.freed_bytes += freed
                    free += freed
                    if free >= target:
                        break
            if free >= target:
                break
        return self.card.free_bytes()

    def _forget(self, rel: str) -> int:
        """Drop the row, then the file (a cut in between leaves a whole file without a row, which reconcile indexes
        again; never a row without its file). On SQLITE_FULL the row cannot go first (deleting needs room in the
        WAL): the file goes first to make the room."""
        try:
            self.index.remove(rel)
        except IndexFull:
            freed = self._delete(rel)
            self.index.remove(rel)
            return freed
        return self._delete(rel)

    def _delete(self, rel: str) -> int:
        try:
            freed = self.card.unlink(rel)
        except FileNotFoundError:
            return 0
        root = self.card.require(write=True)
        parent = (root / rel).parent
        if parent.is_dir():                        # the unlink is durable (else it comes back after a cut)
            self.card.fsync_dir(parent.relative_to(root))
        while parent != root:                      # drop emptied YYYY/MM/DD/HH folders
            try:
                self.card.rmdir(parent.relative_to(root))
            except OSError as exc:
                if exc.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOENT):
                    break
                raise
            parent = parent.parent
            self.card.fsync_dir(parent.relative_to(root))
        return freed

    def _drain_quarantine(self, free: int, target: int) -> int:
        q = self.card.require(write=True) / QUARANTINE
        if not q.is_dir():
            return free
        for f in sorted(q.iterdir(), key=lambda p: p.stat().st_mtime):
            if free >= target:
                break
            free += self.card.unlink(Path(QUARANTINE) / f.name)
        return free
