"""Resumable, retrying upload of encrypted clip files to the cloud over HTTPS, with bandwidth-driven stream choice.

RFC 9110 §14.4 (Content-Range) in the resumable-PUT style of Google's resumable media upload (308 + ``Range``);
exponential backoff with full jitter (AWS Architecture Blog, "Exponential Backoff And Jitter", 2015); TLS pinned to
the cloud's self-signed certificate (RFC 8446). Protocol: see :mod:`device_sim.services.cloud`.

API (the camera's composition root)::

    up = Uploader("https://127.0.0.1:PORT", cafile=cloud_cert, token=device_token); up.start()
    maker = ClipMaker(..., on_segment=up.enqueue_segment, on_finish=up.enqueue_clip)
    up.enqueue(clip)                        # every file of a finished clip (when not streamed segment by segment)
    stream = up.choose_stream({"main": main_bps, "sub": sub_bps})   # main when the measured uplink carries it
    up.wait_idle(timeout); up.stop()

Segments are uploaded in ``chunk_bytes`` chunks; after a failure the uploader asks the cloud (HEAD) how much it has
and continues from there. Playlist and clip.json are snapshotted when enqueued (the playlist only lists segments
already queued ahead of it) and a newer snapshot supersedes a queued older one; clip.json goes last, so a clip the
cloud's timeline shows as complete has its final playlist (EXT-X-ENDLIST) and every segment in place. 4xx answers (bad request) fail the job
with the cloud's message in :attr:`Uploader.failed`; connection errors, 5xx, 408 and 429 are retried with backoff.
"""
from __future__ import annotations

import http.client
import logging
import random
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from camlab.errors import CamlabError
from device_sim.storage.worker import QueueWorker

log = logging.getLogger(__name__)
RETRY_STATUS = {408, 429, 500, 502, 503, 504}


@dataclass
class Job:
    event_id: str
    name: str
    path: Path | None = None
    data: bytes | None = None
    final: bool = False                # the clip is complete in the cloud once this job lands
    enqueued_at: float = field(default_factory=time.time)
    decided_at: float = 0.0
    attempts: int = 0


class UploadError(CamlabError):
    """The cloud refused an upload (4xx) with the message it gave."""


class Uploader(QueueWorker):
    thread_name = "uploader"

    def __init__(self, base_url: str, cafile: Path | str, *, token: str | None = None, chunk_bytes: int = 64 * 1024,
                 backoff_base_s: float = 0.05, backoff_max_s: float = 2.0, max_attempts: int = 30,
                 timeout_s: float = 10.0, seed: int | None = None):
        u = urlsplit(base_url)
        if u.scheme != "https" or not u.hostname or not u.port:
            raise CamlabError(f"uploader: base_url {base_url!r} must be https://host:port")
        self.host, self.port = u.hostname, u.port
        self.ctx = ssl.create_default_context(cafile=str(cafile))
        self.auth = {"Authorization": f"Bearer {token}"} if token else {}   # the camera's cloud API token
        self.chunk_bytes = chunk_bytes
        self.backoff_base_s, self.backoff_max_s, self.max_attempts = backoff_base_s, backoff_max_s, max_attempts
        self.timeout_s = timeout_s
        self.rng = random.Random(seed)
        super().__init__()
        self._busy = False
        self._conn: http.client.HTTPSConnection | None = None
        self.bandwidth_bps: float | None = None       # EWMA of measured upload throughput (bits/s)
        self.completed: dict[str, float] = {}         # event_id -> time the final playlist was stored
        self.decided: dict[str, float] = {}
        self.failed: list[tuple[str, str, str]] = []  # (event_id, name, reason)
        self.retries = 0
        self.bytes_sent = 0

    # ---- queue --------------------------------------------------------------------------------------------------
    def stop(self) -> None:
        super().stop()
        self._close()

    def _put(self, job: Job) -> None:
        with self._cv:
            if job.data is not None:          # a newer snapshot supersedes a queued older one
                for old in list(self._q):
                    if old.event_id == job.event_id and old.name == job.name and old.data is not None:
                        self._q.remove(old)
                        job.final = job.final or old.final
            self._q.append(job)
            self._cv.notify_all()

    def enqueue_segment(self, clip, seg) -> None:
        """Queue one closed segment, then the playlist snapshot that lists it."""
        self.decided.setdefault(clip.event_id, clip.decided_at)
        self._put(Job(clip.event_id, seg.name, path=clip.dir / seg.name, decided_at=clip.decided_at))
        self._put(Job(clip.event_id, "playlist.m3u8", data=clip.playlist.read_bytes(), decided_at=clip.decided_at))
        self._put(Job(clip.event_id, "clip.json", data=clip.meta_path.read_bytes(), decided_at=clip.decided_at))

    def enqueue_clip(self, clip) -> None:
        """Queue the final playlist, then clip.json (``complete``: the clip is whole in the cloud once it lands)."""
        self.decided.setdefault(clip.event_id, clip.decided_at)
        self._put(Job(clip.event_id, "playlist.m3u8", data=clip.playlist.read_bytes(), decided_at=clip.decided_at))
        self._put(Job(clip.event_id, "clip.json", data=clip.meta_path.read_bytes(), final=clip.complete,
                      decided_at=clip.decided_at))

    def enqueue(self, clip) -> None:
        """Queue every file of a finished clip (segments first, playlist last)."""
        for seg in clip.segments:
            self._put(Job(clip.event_id, seg.name, path=clip.dir / seg.name, decided_at=clip.decided_at))
        self.enqueue_clip(clip)

    def pending(self) -> int:
        with self._cv:
            return len(self._q) + (1 if self._busy else 0)

    def wait_idle(self, timeout: float = 30.0) -> bool:
        end = time.monotonic() + timeout
        with self._cv:
            while self._q or self._busy:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._cv.wait(left)
        return True

    # ---- bitrate adaptation -------------------------------------------------------------------------------------
    def choose_stream(self, bitrates_bps: dict[str, float], headroom: float = 1.5) -> str:
        """``main`` when the measured uplink carries it with ``headroom``, else the cheapest stream (``sub``)."""
        if not bitrates_bps:
            raise CamlabError("choose_stream: no streams offered")
        cheapest = min(bitrates_bps, key=bitrates_bps.get)
        if self.bandwidth_bps is None:
            return "main" if "main" in bitrates_bps else cheapest
        fits = [s for s, b in bitrates_bps.items() if b * headroom <= self.bandwidth_bps]
        return max(fits, key=bitrates_bps.get) if fits else cheapest

    def _measure(self, nbytes: int, seconds: float) -> None:
        if nbytes < 4096 or seconds <= 0:
            return
        bps = 8 * nbytes / seconds
        self.bandwidth_bps = bps if self.bandwidth_bps is None else 0.7 * self.bandwidth_bps + 0.3 * bps

    # ---- worker -------------------------------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._q and not self._stop:
                    self._cv.wait()
                if self._stop:
                    return
                job = self._q.popleft()
                self._busy = True
            try:
                self._upload_with_retry(job)
            finally:
                with self._cv:
                    self._busy = False
                    self._cv.notify_all()

    def _upload_with_retry(self, job: Job) -> None:
        while not self._stop:
            try:
                self._upload(job)
                if job.final:
                    self.completed[job.event_id] = time.time()
                return
            except UploadError as exc:
                self.failed.append((job.event_id, job.name, str(exc)))
                log.error("upload %s/%s refused: %s", job.event_id, job.name, exc)
                return
            except (OSError, http.client.HTTPException, _Retry) as exc:
                self._close()
                job.attempts += 1
                self.retries += 1
                if job.attempts >= self.max_attempts:
                    self.failed.append((job.event_id, job.name, f"gave up after {job.attempts} attempts: {exc}"))
                    return
                delay = min(self.backoff_max_s, self.backoff_base_s * 2 ** (job.attempts - 1))
                time.sleep(self.rng.uniform(0, delay))

    def _connection(self) -> http.client.HTTPSConnection:
        if self._conn is None:
            self._conn = http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=self.timeout_s)
        return self._conn

    def _close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except OSError:
                pass
            self._conn = None

    def _request(self, method: str, url: str, body: bytes = b"", headers: dict | None = None):
        conn = self._connection()
        conn.request(method, url, body=body, headers={**self.auth, **(headers or {})})
        resp = conn.getresponse()
        data = resp.read()
        if resp.status in RETRY_STATUS:
            raise _Retry(f"{method} {url}: HTTP {resp.status}")
        return resp, data

    def _remote_offset(self, url: str, total: int) -> int:
        resp, _ = self._request("HEAD", url)
        if resp.status == 200:
            n = int(resp.getheader("Content-Length", "0"))
            return total if n == total else 0
        if resp.status == 308:
            rng = resp.getheader("Range")
            return int(rng.rsplit("-", 1)[1]) + 1 if rng else 0
        return 0

    def _upload(self, job: Job) -> None:
        data = job.data if job.data is not None else Path(job.path).read_bytes()
        total = len(data)
        url = f"/v1/clips/{job.event_id}/{job.name}"
        offset = 0
        if job.data is None and job.attempts:                 # resume a segment where the cloud stopped
            offset = self._remote_offset(url, total)
        while offset < total:
            chunk = data[offset: offset + self.chunk_bytes]
            t0 = time.monotonic()
            resp, body = self._request("PUT", url, chunk, {
                "Content-Range": f"bytes {offset}-{offset + len(chunk) - 1}/{total}",
                "Content-Type": "application/octet-stream"})
            self._measure(len(chunk), time.monotonic() - t0)
            if resp.status == 308:
                rng = resp.getheader("Range")
                offset = int(rng.rsplit("-", 1)[1]) + 1 if rng else 0
            elif resp.status in (200, 201):
                offset = total
            elif resp.status == 409 and job.data is None:
                new = self._remote_offset(url, total)
                if new == offset:
                    raise UploadError(f"{url}: HTTP 409 {body.decode('utf-8', 'replace')[:200]}")
                offset = new
            else:
                raise UploadError(f"{url}: HTTP {resp.status} {body.decode('utf-8', 'replace')[:200]}")
            self.bytes_sent += len(chunk)


class _Retry(Exception):
    pass
