"""P2P packets: every network parser of device_sim.net (session records, handshake, channel frames, media units,
file chunks, acks, commands, signalling, relay, MQTT requests, MIoT-spec requests) plus the camera's handshake state
machine and an established session's receive path. The first byte picks the parser; the rest is the packet."""
from __future__ import annotations

INSTRUMENT = ("device_sim.net", "device_sim.spec")


def _parsers() -> dict:
    from device_sim.net import fuzz
    return {k: v for k, v in fuzz.parsers().items() if k != "qr_payload"}  # the QR payload is its own target


def setup():
    from device_sim.net.packets import PacketError
    parsers = _parsers()
    fns = [parsers[k] for k in sorted(parsers)]

    def one(data: bytes) -> None:
        if data:
            fns[data[0] % len(fns)](data[1:])
    return one, (PacketError,)


def seeds() -> dict[str, bytes]:
    from device_sim.net import fuzz
    parsers = _parsers()
    names = sorted(parsers)
    samples = fuzz.valid_samples()
    out = {}
    for i, name in enumerate(names):
        for j, s in enumerate(getattr(parsers[name], "seeds", None) or samples.get(name, [])):
            out[f"{name}-{j}"] = bytes([i]) + s
        out[f"{name}-empty"] = bytes([i])
    return out
