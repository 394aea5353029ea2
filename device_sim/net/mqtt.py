"""IoT SPEC over MQTT: the camera's property get/set, actions and events through a per-device-ACL broker.

MQTT 3.1.1 (OASIS) with paho-mqtt; message bodies are MIoT-Spec-V2 style JSON (``get_properties``,
``set_properties``, ``action``; notifications ``properties_changed`` and ``event_occured``). Topics::

    camlab/<did>/down/<account>        app -> camera requests  (only <account> may publish here: broker ACL)
    camlab/<did>/up/reply/<account>    camera -> that app's replies
    camlab/<did>/up/props              property change notifications
    camlab/<did>/up/event              events

The broker ACL (generated from the account service) is the first gate; the camera still checks the account's
permission on every request against the account service (no cache), so a stale ACL cannot grant anything.
"""
from __future__ import annotations

import itertools
import json
import logging
import socket
import threading
import time
from typing import Callable

import paho.mqtt.client as paho

from .accounts import AccountStore
from .packets import MAX_COMMAND, PacketError, parse_json_object

log = logging.getLogger(__name__)
METHOD_PERMISSION = {"get_properties": "view", "set_properties": "control", "action": "control"}


def topics(did: str) -> dict[str, str]:
    base = f"camlab/{did}"
    return {"down": f"{base}/down", "reply": f"{base}/up/reply", "props": f"{base}/up/props",
            "event": f"{base}/up/event"}


def acl_rules(store: AccountStore, dids: list[str]) -> dict[str, list[tuple[str, str]]]:
    """Broker ACL from the account service: each device its own tree, each account the devices it may use."""
    rules: dict[str, list[tuple[str, str]]] = {}
    for did in dids:
        t = topics(did)
        rules.setdefault(did, []).extend([("read", f"{t['down']}/#"), ("write", f"camlab/{did}/up/#")])
        owner = store.owner(did)
        users = ([owner] if owner else []) + store.shared_with(did)
        for acc in users:
            entries = rules.setdefault(acc, [])
            entries += [("write", f"{t['down']}/{acc}"), ("read", f"{t['reply']}/{acc}")]
            if store.authorise(acc, did, "view"):
                entries += [("read", t["props"]), ("read", t["event"])]
    return rules


def parse_request(buf: bytes) -> dict:
    obj = parse_json_object(buf, "mqtt request", MAX_COMMAND)
    if not isinstance(obj.get("id"), int) or isinstance(obj.get("id"), bool):
        raise PacketError("mqtt request.id: expected an integer")
    if not isinstance(obj.get("method"), str) or obj["method"] not in METHOD_PERMISSION:
        raise PacketError(f"mqtt request.method: expected one of {sorted(METHOD_PERMISSION)}")
    if "params" not in obj:
        raise PacketError("mqtt request.params: missing")
    return obj


def _nodelay(client: paho.Client) -> None:
    """Small request/response messages: disable Nagle (paho leaves it on; with delayed ACKs that costs ~40 ms)."""
    sock = client.socket()
    if sock is not None:
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass


def _client(client_id: str, user: str, password: str) -> paho.Client:
    c = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv311)
    c.username_pw_set(user, password)
    return c


class DeviceMqtt:
    """The camera's MQTT agent: answers SPEC requests, publishes property changes and events."""

    def __init__(self, did: str, password: str, host: str, port: int, spec, accounts: AccountStore):
        self.did, self.spec, self.accounts, self.t = did, spec, accounts, topics(did)
        self.stats = {"requests": 0, "rejected": 0, "denied": 0}
        self.ready = threading.Event()
        self.client = _client(did, did, password)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.connect(host, port, keepalive=30)
        self.client.loop_start()
        spec.listeners.append(self._notify)

    def _on_connect(self, client, userdata, flags, reason, properties):
        _nodelay(client)
        if reason.is_failure:
            log.warning("device %s: MQTT connect refused: %s", self.did, reason)
            return
        client.subscribe(f"{self.t['down']}/+", qos=1)
        self.ready.set()

    def _on_message(self, client, userdata, msg):
        account = msg.topic.rsplit("/", 1)[-1]
        self.stats["requests"] += 1
        try:
            req = parse_request(msg.payload)
        except PacketError as exc:
            self.stats["rejected"] += 1
            log.warning("device %s: bad MQTT request from %s: %s", self.did, account, exc)
            rid = None
            try:
                rid = json.loads(msg.payload).get("id")
            except Exception:  # noqa: BLE001 - the payload is already known to be bad
                pass
            if isinstance(rid, int):
                self._reply(account, {"id": rid, "code": -704220008, "error": str(exc)})
            return
        perm = METHOD_PERMISSION[req["method"]]
        if not self.accounts.authorise(account, self.did, perm):
            self.stats["denied"] += 1
            log.warning("device %s: %s may not %s", self.did, account, req["method"])
            self._reply(account, {"id": req["id"], "code": -704010000, "error": f"not authorised ({perm})"})
            return
        try:
            if req["method"] == "get_properties":
                result = self.spec.get_properties(req["params"])
            elif req["method"] == "set_properties":
                result = self.spec.set_properties(req["params"])
            else:
                result = self.spec.do_action(req["params"])
            self._reply(account, {"id": req["id"], "code": 0, "result": result})
        except ValueError as exc:
            self.stats["rejected"] += 1
            self._reply(account, {"id": req["id"], "code": -704220008, "error": str(exc)})

    def _reply(self, account: str, obj: dict) -> None:
        self.client.publish(f"{self.t['reply']}/{account}", json.dumps(obj), qos=1)

    def _notify(self, kind: str, body) -> None:
        topic = self.t["props"] if kind == "properties_changed" else self.t["event"]
        self.client.publish(topic, json.dumps({"method": kind, "params": body}), qos=1)

    def close(self) -> None:
        if self._notify in self.spec.listeners:
            self.spec.listeners.remove(self._notify)
        self.client.disconnect()
        self.client.loop_stop()


class AppMqtt:
    """The app's MQTT client for one account."""

    def __init__(self, account: str, password: str, host: str, port: int):
        self.account = account
        self._ids = itertools.count(1)
        self._waiting: dict[int, tuple[threading.Event, list]] = {}
        self.notifications: list[tuple[str, dict]] = []
        self.notified = threading.Condition()
        self.ready = threading.Event()
        self.refused = None
        self.client = _client(f"app-{account}-{id(self):x}", account, password)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.connect(host, port, keepalive=30)
        self.client.loop_start()

    def _on_connect(self, client, userdata, flags, reason, properties):
        _nodelay(client)
        if reason.is_failure:
            self.refused = str(reason)
        self.ready.set()

    def watch(self, did: str, timeout: float = 5.0) -> None:
        """Subscribe to the device's replies and notifications (the broker silently drops what the ACL denies)."""
        t = topics(did)
        done = threading.Event()
        self.client.on_subscribe = lambda *a: done.set()
        self.client.subscribe([(f"{t['reply']}/{self.account}", 1), (t["props"], 1), (t["event"], 1)])
        done.wait(timeout)

    def _on_message(self, client, userdata, msg):
        try:
            obj = json.loads(msg.payload)
        except ValueError:
            return
        if "/up/reply/" in msg.topic and isinstance(obj, dict) and obj.get("id") in self._waiting:
            ev, box = self._waiting.pop(obj["id"])
            box.append(obj)
            ev.set()
        else:
            with self.notified:
                self.notifications.append((msg.topic, obj))
                self.notified.notify_all()

    def request(self, did: str, method: str, params, timeout: float = 3.0) -> dict | None:
        """Send a SPEC request; the reply dict, or None if nothing came back (e.g. the ACL dropped it)."""
        rid = next(self._ids)
        ev, box = threading.Event(), []
        self._waiting[rid] = (ev, box)
        self.client.publish(f"{topics(did)['down']}/{self.account}",
                            json.dumps({"id": rid, "method": method, "params": params}), qos=1)
        if not ev.wait(timeout):
            self._waiting.pop(rid, None)
            return None
        return box[0]

    def publish_raw(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1)

    def wait_notification(self, pred: Callable[[str, dict], bool], timeout: float = 3.0) -> tuple[str, dict] | None:
        deadline = time.monotonic() + timeout
        with self.notified:
            while True:
                for item in self.notifications:
                    if pred(*item):
                        return item
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.notified.wait(left)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
