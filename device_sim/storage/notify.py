"""Event notification, sent the moment an event is decided — never queued behind clip uploads.

HTTP push to the cloud service (``POST /v1/push`` over HTTPS, RFC 9110) from a dedicated sender thread with its own
connection, and/or MQTT (OASIS MQTT 3.1.1 PUBLISH, QoS 1) through a ``publish(topic, payload)`` callable the network
layer supplies. The payload names the event and where its clip will appear; it never carries key material.

API::

    n = Notifier("https://127.0.0.1:PORT", cafile=cert, token=device_token, mqtt_publish=None).start()
    n.notify(event)          # returns at once; the push goes out on the notifier's own thread
    n.latencies_s()          # decided -> acknowledged by the cloud, per notification
"""
from __future__ import annotations

import http.client
import json
import logging
import ssl
import time
from typing import Callable
from urllib.parse import urlsplit

from camlab.errors import CamlabError
from device_sim.storage.clips import _field, event_identity
from device_sim.storage.worker import QueueWorker

log = logging.getLogger(__name__)


def event_payload(event, decided_at: float) -> dict:
    eid, t, kind = event_identity(event)
    out = {"event_id": eid, "type": kind, "decided_at": decided_at, "clip": f"/v1/clips/{eid}/playlist.m3u8"}
    if t is not None:
        out["capture_time_s"] = t
    for k in ("wall_s", "confidence", "zone", "siid", "eiid", "service"):
        v = _field(event, k)
        if isinstance(v, (int, float, str)):
            out[k] = v
    return out


class Notifier(QueueWorker):
    thread_name = "notifier"

    def __init__(self, base_url: str | None, cafile=None, *, token: str | None = None,
                 mqtt_publish: Callable[[str, bytes], None] | None = None,
                 topic: str = "camlab/events", timeout_s: float = 2.0, retries: int = 3):
        if base_url is None and mqtt_publish is None:
            raise CamlabError("notify: need a cloud base_url or an mqtt_publish callable")
        self.base = None
        if base_url is not None:
            u = urlsplit(base_url)
            if u.scheme != "https" or not u.hostname or not u.port:
                raise CamlabError(f"notify: base_url {base_url!r} must be https://host:port")
            self.base = (u.hostname, u.port)
            self.ctx = ssl.create_default_context(cafile=str(cafile))
        self.auth = {"Authorization": f"Bearer {token}"} if token else {}   # the camera's cloud API token
        self.mqtt_publish, self.topic = mqtt_publish, topic
        self.timeout_s, self.retries = timeout_s, retries
        super().__init__()
        self._conn: http.client.HTTPSConnection | None = None
        self.sent: list[dict] = []       # payload + "acked_at" (+ "received_at" from the cloud)
        self.failed: list[tuple[str, str]] = []

    def notify(self, event) -> dict:
        """Queue the notification for ``event`` (returns its payload at once)."""
        payload = event_payload(event, time.time())
        if self.mqtt_publish is not None:           # MQTT goes out on the caller's thread: paho queues it itself
            try:
                self.mqtt_publish(self.topic, json.dumps(payload).encode())
            except Exception as exc:                # the network layer's trouble must not stop the push
                self.failed.append((payload["event_id"], f"mqtt: {exc}"))
        if self.base is not None:
            with self._cv:
                self._q.append(payload)
                self._cv.notify_all()
        return payload

    def wait_idle(self, timeout: float = 10.0) -> bool:
        end = time.monotonic() + timeout
        with self._cv:
            while self._q:
                if not self._cv.wait(max(0.0, end - time.monotonic())) and time.monotonic() >= end:
                    return False
        return True

    def latencies_s(self) -> list[float]:
        return [p["acked_at"] - p["decided_at"] for p in self.sent]

    def _warm(self) -> None:
        """Open (TCP + TLS) the push connection ahead of the first event, as a camera keeps it open."""
        try:
            self._conn = http.client.HTTPSConnection(*self.base, context=self.ctx, timeout=self.timeout_s)
            self._conn.request("GET", "/v1/health", headers=self.auth)
            self._conn.getresponse().read()
        except (OSError, http.client.HTTPException):
            self._conn = None

    def _run(self) -> None:
        if self.base is not None:
            self._warm()
        while True:
            with self._cv:
                while not self._q and not self._stop:
                    self._cv.wait()
                if self._stop:
                    return
                payload = self._q[0]
            self._send(payload)
            with self._cv:
                self._q.popleft()
                self._cv.notify_all()

    def _send(self, payload: dict) -> None:
        body = json.dumps(payload).encode()
        for attempt in range(self.retries + 1):
            try:
                if self._conn is None:
                    self._conn = http.client.HTTPSConnection(*self.base, context=self.ctx, timeout=self.timeout_s)
                self._conn.request("POST", "/v1/push", body=body,
                                   headers={"Content-Type": "application/json", **self.auth})
                resp = self._conn.getresponse()
                data = resp.read()
                if resp.status == 202:
                    ack = json.loads(data)
                    self.sent.append({**payload, "acked_at": time.time(), "received_at": ack.get("received_at")})
                    return
                if resp.status < 500:
                    self.failed.append((payload["event_id"], f"HTTP {resp.status} {data[:200]!r}"))
                    return
            except (OSError, http.client.HTTPException) as exc:
                err = exc
                if self._conn is not None:
                    self._conn.close()
                self._conn = None
                if attempt == self.retries:
                    self.failed.append((payload["event_id"], f"push failed: {err}"))
                    return
            time.sleep(0.05 * 2 ** attempt)
        self.failed.append((payload["event_id"], "push failed: server errors"))
