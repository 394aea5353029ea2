"""Provisioning by QR code seen through the camera's sensor + ISP: UTF-8 SSIDs, join, one-time binding."""
from __future__ import annotations

import numpy as np
import pytest

from device_sim.net.identity import manufacture
from device_sim.net.packets import PacketError
from device_sim.net.provisioning import (WifiEnvironment, camera_luma, decode_qr, encode_payload, parse_payload,
                                         phone_scene, provision_from_frames, render_qr, start_provisioning)

SSID = "Café 🏠 家の Wi-Fi"        # 25 UTF-8 octets: accents, emoji, CJK
PASSWORD = 'p;a:s,s\\w"ord-ü'


@pytest.fixture(scope="module")
def pipeline():
    from pathlib import Path

    import camlab.isp
    from camlab.isp.pipeline import Pipeline
    return Pipeline.from_yaml(Path(camlab.isp.__file__).parent / "tuning" / "sc3336_day.yaml")


def test_payload_roundtrip_and_strictness():
    tok = "0123456789abcdef" * 2
    p = encode_payload(SSID, PASSWORD, tok)
    assert parse_payload(p).ssid == SSID and parse_payload(p).password == PASSWORD and parse_payload(p).token == tok
    for bad in ("WIFI:S:x;P:y;;", p.replace(";T:", ";X:"), p[:-2], p.replace("T:0", "T:Z"),
                p.replace(";;", ";S:dup;;"), "CAMLAB:V:1;S:" + "a" * 33 + ";P:12345678;T:" + tok + ";;"):
        with pytest.raises(PacketError):
            parse_payload(bad)
    with pytest.raises(PacketError):
        encode_payload("x" * 40, PASSWORD, tok)


def test_utf8_ssid_survives_qr_render_and_decode():
    p = encode_payload(SSID, PASSWORD, "ab" * 16)
    assert decode_qr(render_qr(p)) == p


def test_camera_sees_qr_joins_and_binds(tmp_path, cloud, pipeline):
    store, _, _ = cloud
    dev = manufacture(tmp_path / "new-cam", store)
    payload, qr = start_provisioning(store, "bob", SSID, PASSWORD, ttl_s=120)
    rng = np.random.default_rng(7)
    luma = camera_luma(phone_scene(qr, rng=rng), rng, pipeline, gain=4.0)   # a noisy, dim room
    assert luma.dtype == np.uint8 and luma.ndim == 2
    assert decode_qr(luma) == payload
    wifi = WifiEnvironment({SSID: PASSWORD, "neighbour": "12345678"})
    res = provision_from_frames([luma], dev, store, wifi)
    assert res.ok and res.stage == "done" and res.ssid == SSID and res.owner == "bob"
    assert wifi.joined == SSID and store.owner(dev.did) == "bob"
    # the bound camera gets its credential for the cloud HTTP API (device_sim.services.cloud)
    assert store.api_principal(res.cloud_token) == ("device", dev.did)
    store.revoke_api_token(res.cloud_token)
    assert store.api_principal(res.cloud_token) is None
    # the same code shown again (replay) binds nothing
    dev2 = manufacture(tmp_path / "cam2", store)
    res2 = provision_from_frames([luma], dev2, store, WifiEnvironment({SSID: PASSWORD}))
    assert not res2.ok and res2.stage == "bind" and "already used" in res2.detail and not res2.cloud_token
    assert store.owner(dev2.did) is None


def test_camera_reads_the_code_in_ir_night_mode(tmp_path, cloud):
    store, _, _ = cloud
    dev = manufacture(tmp_path / "night-cam", store)
    payload, qr = start_provisioning(store, "alice", SSID, PASSWORD)
    rng = np.random.default_rng(11)
    luma = camera_luma(phone_scene(qr, rng=rng, screen_level=0.6, room_level=0.1), rng, gain=8.0, night=True)
    assert decode_qr(luma) == payload
    res = provision_from_frames([np.full_like(luma, 20), luma], dev, store, WifiEnvironment({SSID: PASSWORD}))
    assert res.ok and res.owner == "alice"


def test_expired_token_wrong_password_and_no_code(tmp_path, cloud, pipeline):
    store, _, _ = cloud
    dev = manufacture(tmp_path / "cam3", store)
    payload, qr = start_provisioning(store, "bob", SSID, PASSWORD, ttl_s=60)
    res = provision_from_frames([qr], dev, store, WifiEnvironment({SSID: "another-passphrase"}))
    assert not res.ok and res.stage == "join"
    import time
    res = provision_from_frames([qr], dev, store, WifiEnvironment({SSID: PASSWORD}), now=time.time() + 61)
    assert not res.ok and res.stage == "bind" and "expired" in res.detail
    blank = np.full((360, 480), 128, np.uint8)
    res = provision_from_frames([blank], dev, store, WifiEnvironment({SSID: PASSWORD}))
    assert not res.ok and res.stage == "decode"
    assert store.owner(dev.did) is None
