"""QR payloads: the Wi-Fi provisioning text a camera reads from the phone's QR code (``CAMLAB:V:1;S:..;P:..;T:..;;``)."""
from __future__ import annotations

INSTRUMENT = ("device_sim.net.provisioning",)


def setup():
    from device_sim.net.packets import PacketError
    from device_sim.net.provisioning import parse_payload

    def one(data: bytes) -> None:
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return                      # the QR decoder hands over text; bytes that are not UTF-8 never reach it
        parse_payload(text)
    return one, (PacketError,)


def seeds() -> dict[str, bytes]:
    from device_sim.net.provisioning import encode_payload
    return {"valid": encode_payload("Café-Wi-Fi 🏠", "pässword;1", "ab" * 16).encode(),
            "plain": encode_payload("home", "secret123", "cd" * 16).encode(),
            "escapes": encode_payload("a;b\\c:d", 'p,"q";longer', "ef" * 16).encode(),
            "truncated": encode_payload("home", "secret123", "cd" * 16).encode()[:-3],
            "repeated": b"CAMLAB:V:1;S:a;S:b;P:c;T:" + b"ab" * 16 + b";;"}
