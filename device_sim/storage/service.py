"""The camera's storage service: card detect/mount, recording, retention, crash reconcile, status and format.

MIoT-spec style "storage" service: property ``sd-card-status`` (:mod:`device_sim.storage.sdcard_status`), plus
``total-space``/``free-space`` in bytes, action ``format-sd-card``. One object for the composition root::

    storage = StorageService(SdCard(base, capacity), on_status=publish_property, epoch_base=wall_at_pts0)
    storage.set_stream_info(encoder_stream_info)   # the recorded stream ("main")
    storage.write(packet)                          # every EncodedPacket; polls the card once a second of pts
    storage.mark_event(event_id, start_s, end_s)   # footage overlapping an event moves to the event tier
    storage.status()      # {"sd-card-status": detailed int, "total-space"/"free-space": bytes,
                          #  "spec": {"sd-status": 0..3, "total-space": MB, "free-space": MB}}  (model.json siid 6)
    storage.format_card()                          # the format-sd-card action (model.json: format-sd)
    storage.close()

Mount = probe + open the index (``.index/index.db`` on the card) + :func:`reconcile`. Removal, write-protect and
corruption are found by :meth:`poll` (card detect), by the recorder's I/O errors, and reported through ``on_status``
when the value changes. Recording resumes by itself after re-insertion or format.
"""
from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Callable

from device_sim.hal.sdcard import CardError, CardState, SdCard
from device_sim.media.packets import EncodedPacket, StreamInfo
from device_sim.storage.index import TIER_EVENT, TIER_PROTECTED, Index
from device_sim.storage.reconcile import ReconcileReport, reconcile
from device_sim.storage.recorder import Recorder
from device_sim.storage.retention import Retention
from device_sim.storage.sdcard_status import SdCardStatus, spec_sd_status, status_of

log = logging.getLogger(__name__)
INDEX_REL = ".index/index.db"


@dataclass(frozen=True)
class StorageConfig:
    stream: str = "main"
    low_water_fraction: float = 0.10
    high_water_fraction: float = 0.15
    poll_interval_s: float = 1.0
    fsync_interval_s: float = 5.0


class StorageService:
    def __init__(self, card: SdCard, config: StorageConfig = StorageConfig(), *,
                 on_status: Callable[[dict], None] | None = None, epoch_base: float | None = None):
        self.card, self.config, self.on_status = card, config, on_status
        self.epoch_base = epoch_base
        self.index: Index | None = None
        self.recorder: Recorder | None = None
        self.retention: Retention | None = None
        self.last_reconcile: ReconcileReport | None = None
        self._info: StreamInfo | None = None
        self._formatting = False
        self._last_status: int | None = None
        self._last_poll_pts: float | None = None
        self.dropped_packets = 0                  # packets that arrived while no card could record them
        self._lock = threading.RLock()
        self.mount()

    # ---- mount/unmount ------------------------------------------------------------------------------------------
    def mount(self) -> bool:
        """Probe and mount (read-write, or read-only on a write-protected card); False when there is no usable card."""
        with self._lock:
            st = self.card.probe()
            if st not in (CardState.OK, CardState.READ_ONLY) or self.index is not None:
                self._publish()
                return self.index is not None
            root = self.card.require()
            if st is CardState.READ_ONLY:
                self.index = Index(root / INDEX_REL, readonly=True)
                self._publish()
                return True
            self.index = Index(root / INDEX_REL)
            cap = self.card.capacity_bytes
            self.retention = Retention(self.card, self.index, low_water_bytes=int(cap * self.config.low_water_fraction),
                                       high_water_bytes=int(cap * self.config.high_water_fraction))
            self.last_reconcile = reconcile(self.card, self.index, retention=self.retention)
            self.recorder = Recorder(self.card, self.index, self.retention, stream=self.config.stream,
                                     info=self._info, epoch_base=self.epoch_base,
                                     fsync_interval_s=self.config.fsync_interval_s, on_error=self._on_card_error)
            self._publish()
            return True

    def unmount(self) -> None:
        with self._lock:
            if self.recorder is not None:
                self.recorder.close()
                if self.recorder.epoch_base is not None:
                    self.epoch_base = self.recorder.epoch_base
            if self.index is not None:
                try:
                    self.index.close()
                except Exception:
                    pass
            self.index = self.recorder = self.retention = None

    def close(self) -> None:
        self.unmount()

    # ---- recording ------------------------------------------------------------------------------------------------
    def set_stream_info(self, info: StreamInfo) -> None:
        self._info = info
        if self.recorder is not None:
            self.recorder.set_stream_info(info)

    def write(self, pkt: EncodedPacket) -> None:
        if pkt.stream != self.config.stream:
            return
        if self._last_poll_pts is None or pkt.pts_s - self._last_poll_pts >= self.config.poll_interval_s:
            self._last_poll_pts = pkt.pts_s
            self.poll()
        rec = self.recorder
        if rec is not None and self.card.state is CardState.OK:
            rec.write(pkt)
        else:
            self.dropped_packets += 1

    def mark_event(self, event_id: str, start_s: float, end_s: float, type: str | None = None) -> None:
        if self.index is not None and not self.index.readonly:
            self.index.mark_event(event_id, start_s, end_s, type)

    def clip_dir(self):
        """Where event clips live on the card (``events/``); None without a writable card."""
        if self.index is None or self.index.readonly:
            return None
        return self.card.require(write=True) / "events"

    def register_clip(self, clip, protected: bool = False) -> None:
        """Index a finished clip kept under :meth:`clip_dir` so retention evicts it after continuous footage
        (``protected``: last of all)."""
        if self.index is None or self.index.readonly:
            return
        root = self.card.require(write=True)
        rel = clip.dir.relative_to(root).as_posix()
        size = sum(f.stat().st_size for f in clip.dir.iterdir() if f.is_file())
        self.index.add(rel, clip.epoch_base + clip.start_pts_s, clip.epoch_base + clip.end_pts_s, bytes=size,
                       frames=sum(s.frames for s in clip.segments), kind="clip",
                       tier=TIER_PROTECTED if protected else TIER_EVENT, event_id=clip.event_id)

    # ---- card detect ----------------------------------------------------------------------------------------------
    def poll(self) -> int:
        """Card detect: probe, unmount on loss, mount on (re)insertion; returns the ``sd-card-status`` value."""
        with self._lock:
            st = self.card.probe()
            rw = self.index is not None and not self.index.readonly
            if self.index is not None and (st in (CardState.REMOVED, CardState.CORRUPT, CardState.UNFORMATTED)
                                           or (st is CardState.READ_ONLY) == rw):
                self.unmount()
            if self.index is None and st in (CardState.OK, CardState.READ_ONLY):
                self.mount()
            return self._publish()

    def _on_card_error(self, exc: BaseException) -> None:
        log.warning("storage: %s", exc)
        self.card.probe()
        self._publish()

    def format_card(self) -> dict:
        """The ``format-sd-card`` action: unmount, format, mount; raises :class:`CardError` when impossible."""
        with self._lock:
            self._formatting = True
            self._publish()
            try:
                self.unmount()
                self.card.format()
            finally:
                self._formatting = False
            self.mount()
            return self.status()

    def status(self) -> dict:
        st = self.card.state
        looping = bool(self.retention and self.retention.stats.deleted)
        detailed = status_of(st, formatting=self._formatting, looping=looping)
        free = 0
        if st in (CardState.OK, CardState.READ_ONLY):
            try:
                free = self.card.free_bytes()
            except (CardError, OSError):
                pass
        present = st is not CardState.REMOVED
        return {"sd-card-status": int(detailed), "state": st.value,
                "total-space": self.card.capacity_bytes if present else 0, "free-space": free,
                # the device model's storage service (siid 6): sd-status 0..3, spaces in MB
                "spec": {"sd-status": spec_sd_status(detailed),
                         "total-space": (self.card.capacity_bytes if present else 0) >> 20, "free-space": free >> 20}}

    def _code(self) -> int:
        looping = bool(self.retention and self.retention.stats.deleted)
        return int(status_of(self.card.state, formatting=self._formatting, looping=looping))

    def _publish(self) -> int:
        """Report the status through ``on_status`` when its value changed (cheap: no free-space scan otherwise)."""
        code = self._code()
        if code != self._last_status:
            self._last_status = code
            if self.on_status is not None:
                self.on_status(self.status())
        return code


__all__ = ["StorageService", "StorageConfig", "SdCardStatus"]
