"""Event clips end to end: pre-roll + post-roll -> encrypted HLS -> cloud process (HTTPS) -> user decrypts + decodes."""
from __future__ import annotations

import re
import time

import pytest

from camlab.errors import CamlabError
from device_sim.storage.clips import ClipMaker, playlist_text
from device_sim.storage.crypto import (DecryptionError, IvLedger, UserKey, decrypt_segment, encrypt_segment,
                                       new_user_key)
from device_sim.storage.notify import Notifier
from device_sim.storage.playback import CloudClient, decode_ts, parse_playlist
from device_sim.storage.uploader import Uploader


def test_aes128_cbc_pkcs7_matches_rfc8216_and_wrong_key_is_clear():
    key = UserKey(bytes(range(16)))
    iv = bytes(16)
    # 188-byte TS packet -> 192 bytes of ciphertext (PKCS7 pads 4 bytes); 16 bytes of plaintext -> a full pad block
    ts = bytes([0x47]) + bytes(187)
    ct = encrypt_segment(key, ts, iv)
    assert len(ct) == 192
    assert len(encrypt_segment(key, bytes(16), iv)) == 32
    assert decrypt_segment(key, ct, iv) == ts
    # cross-check the first block with a raw AES-CBC by hand: C0 = AES_k(P0 xor IV)
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    e = Cipher(algorithms.AES(key.key), modes.ECB()).encryptor()
    assert ct[:16] == e.update(ts[:16]) + e.finalize()
    with pytest.raises(DecryptionError, match="wrong key"):
        decrypt_segment(UserKey(bytes(16)), ct, iv)
    with pytest.raises(DecryptionError, match="multiple of 16"):
        decrypt_segment(key, ct[:-3], iv)
    with pytest.raises(CamlabError):
        UserKey.from_hex("abc")


def _event_feed(src, t_event, pre_s, post_s):
    ring = list(src.packets(0.0, t_event))            # what the ring buffer holds when the event is decided
    live = [src.packet(i) for i in range(len(ring), len(ring) + int((post_s + 3) * src.fps))]
    return ring, live


def test_clip_segments_iv_playlist_and_cloud_roundtrip(tmp_path, src, cloud):
    key = new_user_key()
    up = Uploader(cloud.url, cloud.cert, token=cloud.device_token, chunk_bytes=4096, seed=0).start()
    notifier = Notifier(cloud.url, cloud.cert, token=cloud.device_token).start()
    ledger = IvLedger(tmp_path / "ivs.bin")
    maker = ClipMaker(tmp_path / "events", key, segment_s=10, pre_roll_s=5, post_roll_s=20,
                      epoch_base=1_763_769_600.0, ledger=ledger, on_segment=up.enqueue_segment,
                      on_finish=up.enqueue_clip)
    t_event = 12.35
    ring, live = _event_feed(src, t_event, 5, 20)
    event = {"event_id": "ev-0001", "type": "person", "pts_s": t_event}
    notifier.notify(event)                                # the push goes out first
    clip = maker.make_clip(event, ring, live, src.info)
    assert up.wait_idle(30) and notifier.wait_idle(5)
    assert not up.failed and not notifier.failed
    # pre-roll starts at the keyframe at or before event - 5 s (keyframes every 1 s)
    assert clip.start_pts_s == pytest.approx(7.0)
    # ~10 s segments cut at keyframes: 7..17, 17..27, 27..33 (post-roll ends at the first keyframe >= 32.35)
    assert [s.duration_s for s in clip.segments] == pytest.approx([10.0, 10.0, 6.0])
    ivs = [s.iv for s in clip.segments]
    assert len(set(ivs)) == len(ivs) == 3 and len(ledger) == 3
    text = clip.playlist.read_text()
    entries, ended = parse_playlist(text)
    assert ended and [e.iv for e in entries] == ivs and all(e.key_uri == key.uri for e in entries)
    assert key.hex() not in text.lower() and key.hex() not in clip.meta_path.read_text()
    assert len(re.findall(r"#EXT-X-KEY:METHOD=AES-128,URI=\"camlab-key://[0-9a-f]{16}\",IV=0x[0-9A-F]{32}", text)) == 3

    # the cloud holds only ciphertext: no stored file contains the key or decodes as clear MPEG-TS
    store = cloud.state / "store" / "clips" / "ev-0001"
    for seg in clip.segments:
        blob = (store / seg.name).read_bytes()
        assert blob == (clip.dir / seg.name).read_bytes() and blob[0] != 0x47 or blob[188] != 0x47
        assert key.key not in blob

    user = CloudClient(cloud.url, cloud.cert, token=cloud.user_token)
    tl = user.timeline(1_763_769_600.0, 1_763_769_700.0)
    assert [c["event_id"] for c in tl] == ["ev-0001"] and tl[0]["complete"] and tl[0]["in_cloud"]
    assert tl[0]["start_wall_s"] == pytest.approx(1_763_769_607.0)
    ts = user.download_clip("ev-0001", key)
    times = decode_ts(ts)
    # every frame from the pre-roll keyframe to the end of the post-roll, at its capture time
    assert len(times) == 260
    assert times[0] == pytest.approx(7.0, abs=1e-4) and times[-1] == pytest.approx(32.9, abs=1e-4)
    assert all(b - a == pytest.approx(0.1, abs=1e-4) for a, b in zip(times, times[1:]))
    pre = [t for t in times if t < t_event]
    assert len(pre) == 54                                 # 7.0 .. 12.3 inclusive
    with pytest.raises(DecryptionError, match="wrong key"):
        user.download_clip("ev-0001", {key.uri: UserKey(key.key[::-1])})     # the right URI, the wrong bytes
    # the push reached the cloud before the clip was complete there
    push = user.pushes()
    assert [p["event_id"] for p in push] == ["ev-0001"]
    assert push[0]["received_at"] < up.completed["ev-0001"]
    assert push[0]["received_at"] - push[0]["decided_at"] < 1.0
    up.stop()
    notifier.stop()


def test_iv_ledger_persists_and_never_reuses(tmp_path):
    led = IvLedger(tmp_path / "iv.bin")
    ivs = {led.claim() for _ in range(200)}
    again = IvLedger(tmp_path / "iv.bin")
    assert len(ivs) == 200 and len(again) == 200 and all(iv in again for iv in ivs)
    with open(tmp_path / "iv.bin", "ab") as fh:          # a torn record after a power cut is ignored
        fh.write(b"\x01\x02")
    assert len(IvLedger(tmp_path / "iv.bin")) == 200


def test_playlist_text_is_event_then_vod(tmp_path, src):
    maker = ClipMaker(tmp_path, new_user_key(), segment_s=2, pre_roll_s=1, post_roll_s=3)
    ring = list(src.packets(0.0, 3.0))
    sess = maker.start({"id": "e1", "pts_s": 2.5}, ring, src.info)
    first = sess.clip.playlist.read_text()
    assert "#EXT-X-PLAYLIST-TYPE:EVENT" in first and "#EXT-X-ENDLIST" not in first
    for i in range(30, 80):
        if not sess.add(src.packet(i)):
            break
        if i == 31:
            mid = sess.clip.playlist.read_text()
            assert "seg00000.ts" in mid and "#EXT-X-PLAYLIST-TYPE:EVENT" in mid
    clip = sess.finish()
    txt = playlist_text(clip, 2)
    assert "#EXT-X-PLAYLIST-TYPE:VOD" in txt and txt.rstrip().endswith("#EXT-X-ENDLIST")
    with pytest.raises(CamlabError, match="id"):
        maker.start({"id": "../etc", "pts_s": 1.0}, ring, src.info)


def test_camera_encoder_packets_and_spec_events_record_and_clip(tmp_path):
    """The device_sim encoders' real output (HEVC main, H.264 sub, in-band headers) and the spec's event JSON."""
    import numpy as np

    from device_sim.hal.sdcard import SdCard
    from device_sim.media.encoder import StreamConfig, VideoEncoder
    from device_sim.spec.events import detection_event
    from device_sim.storage.faults import check_card
    from device_sim.storage.index import Index
    from device_sim.storage.recorder import Recorder

    main = VideoEncoder(StreamConfig("main", "hevc", 96, 64, 10.0, 300_000, gop=10))
    sub = VideoEncoder(StreamConfig("sub", "h264", 64, 48, 10.0, 100_000, gop=10))
    pk = {"main": [], "sub": []}
    rng = np.random.default_rng(0)
    for i in range(65):
        t = 55.0 + i / 10
        for enc, (w, h) in ((main, (96, 64)), (sub, (64, 48))):
            nv12 = rng.integers(0, 255, (h * 3 // 2, w), dtype=np.uint8)
            pk[enc.cfg.name] += enc.encode(nv12, t)
    for enc in (main, sub):
        pk[enc.cfg.name] += enc.flush()
    card = SdCard(tmp_path / "sd", 50_000_000)
    index = Index(card.mount_point / ".index/index.db")
    rec = Recorder(card, index, info=main.info, epoch_base=1_763_769_600.0)
    for p in sorted(pk["main"] + pk["sub"], key=lambda p: p.pts_s):
        rec.write(p)
    rec.close()
    assert [(r.path, r.frames) for r in index.all()] == [("2025/11/22/00/00.mp4", 50), ("2025/11/22/00/01.mp4", 15)]
    assert check_card(card, index).ok
    ev = detection_event("person", 0.9, "door", [0.1, 0.1, 0.5, 0.9], capture_time_s=58.0, emit_time_s=58.05)
    ring, live = [p for p in pk["sub"] if p.pts_s <= 58.0], [p for p in pk["sub"] if p.pts_s > 58.0]
    key = new_user_key()
    maker = ClipMaker(tmp_path / "ev", key, segment_s=2, pre_roll_s=2, post_roll_s=1.5, infos=[sub.info], stream="sub")
    clip = maker.make_clip(ev, ring, live)
    assert clip.event_id == "person-58000" and clip.event_type == "person" and clip.stream == "sub"
    entries, ended = parse_playlist(clip.playlist.read_text())
    plain = b"".join(decrypt_segment(key, (clip.dir / e.uri).read_bytes(), e.iv) for e in entries)
    times = decode_ts(plain)
    assert ended and times[0] == pytest.approx(56.0, abs=1e-3) and times[-1] == pytest.approx(59.9, abs=1e-3)


from hypothesis import given, settings, strategies as st  # noqa: E402


@settings(max_examples=60, deadline=None)
@given(plain=st.binary(min_size=0, max_size=600), key=st.binary(min_size=16, max_size=16),
       iv=st.binary(min_size=16, max_size=16))
def test_segment_encryption_roundtrip_property(plain, key, iv):
    ct = encrypt_segment(UserKey(key), plain, iv)
    assert len(ct) == (len(plain) // 16 + 1) * 16                # PKCS7 always pads, 1..16 bytes
    assert decrypt_segment(UserKey(key), ct, iv, expect_ts=False) == plain


@settings(max_examples=40, deadline=None)
@given(durs=st.lists(st.floats(min_value=0.1, max_value=12.0), min_size=1, max_size=8), done=st.booleans())
def test_playlist_roundtrip_property(tmp_path_factory, durs, done):
    from device_sim.services.cloud import validate_playlist
    from device_sim.storage.clips import Clip, Segment
    from device_sim.storage.crypto import new_iv
    key = new_user_key()
    clip = Clip("e", tmp_path_factory.getbasetemp(), "main", "person", 0.0, 0.0, 1.0, 1.7e9, key.uri, complete=done)
    t = 0.0
    for i, d in enumerate(durs):
        clip.segments.append(Segment(i, f"seg{i:05d}.ts", t, round(d, 3), new_iv(), 16, 1))
        t += d
    text = playlist_text(clip, 10)
    entries, ended = parse_playlist(text)
    validate_playlist(text)                                   # the cloud accepts what the camera writes
    assert ended == done and [e.uri for e in entries] == [s.name for s in clip.segments]
    assert [e.iv for e in entries] == [s.iv for s in clip.segments]
    assert [e.duration_s for e in entries] == pytest.approx([s.duration_s for s in clip.segments])
    assert int(text.split("#EXT-X-TARGETDURATION:")[1].split()[0]) >= max(round(d) for d in durs)


def test_notification_over_mqtt_through_mosquitto(tmp_path):
    """The MQTT path: the notifier publishes through a paho client to a real mosquitto broker (QoS 1)."""
    import json
    import socket
    import subprocess
    import threading

    import paho.mqtt.client as mqtt

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    conf = tmp_path / "m.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    broker = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        got, ready = [], threading.Event()

        def connect(c, deadline=10.0):
            t0 = time.monotonic()
            while True:
                try:
                    c.connect("127.0.0.1", port)
                    return
                except OSError:
                    if time.monotonic() - t0 > deadline:
                        raise
                    time.sleep(0.05)
        sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="phone")
        sub.on_connect = lambda c, u, f, rc, p=None: (c.subscribe("camlab/events", qos=1), None)[1]
        sub.on_subscribe = lambda *a: ready.set()
        sub.on_message = lambda c, u, m: got.append((time.time(), json.loads(m.payload)))
        connect(sub)
        sub.loop_start()
        pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="camera")
        connect(pub)
        pub.loop_start()
        assert ready.wait(10)
        n = Notifier(None, mqtt_publish=lambda topic, payload: pub.publish(topic, payload, qos=1))
        sent = n.notify({"event": "person", "capture_time_s": 12.5, "confidence": 0.9, "zone": "door"})
        deadline = time.monotonic() + 10
        while not got and time.monotonic() < deadline:
            time.sleep(0.01)
        assert got and got[0][1]["event_id"] == "person-12500" == sent["event_id"]
        assert got[0][1]["zone"] == "door" and got[0][0] - sent["decided_at"] < 1.0
        for c in (sub, pub):
            c.loop_stop()
            c.disconnect()
    finally:
        broker.kill()
        broker.wait(5)
