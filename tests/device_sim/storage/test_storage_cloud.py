"""Cloud service (its own process, HTTPS): malformed uploads, resumable PUT, retry/backoff, bandwidth adaptation."""
from __future__ import annotations

import http.client
import json
import ssl

import pytest

from device_sim.storage.clips import ClipMaker
from device_sim.storage.crypto import new_user_key
from device_sim.storage.playback import CloudClient, decode_ts
from device_sim.storage.synth import SyntheticSource
from device_sim.storage.uploader import Uploader


def _req(cloud, method, path, body=b"", headers=None, token="device"):
    """One request; ``token``: "device" / "user" (the default tenant's camera / app), another token, or None."""
    ctx = ssl.create_default_context(cafile=str(cloud.cert))
    c = http.client.HTTPSConnection("127.0.0.1", cloud.port, context=ctx, timeout=10)
    token = {"device": cloud.device_token, "user": cloud.user_token}.get(token, token)
    headers = {**(headers or {}), **({"Authorization": f"Bearer {token}"} if token else {})}
    c.request(method, path, body=body, headers=headers)
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, dict(r.getheaders()), data


def _put(cloud, name, body, first, total, eid="ev1", token="device"):
    return _req(cloud, "PUT", f"/v1/clips/{eid}/{name}", body,
                {"Content-Range": f"bytes {first}-{first + len(body) - 1}/{total}"}, token=token)


def test_resumable_put_and_malformed_requests_are_refused_without_loss(cloud):
    seg = bytes(range(256)) * 4                                   # 1024 bytes, "ciphertext"
    st, hdr, _ = _put(cloud, "seg00000.ts", seg[:400], 0, 1024)
    assert st == 308 and hdr["Range"] == "bytes=0-399"
    st, hdr, _ = _req(cloud, "HEAD", "/v1/clips/ev1/seg00000.ts")
    assert st == 308 and hdr["Range"] == "bytes=0-399"
    st, hdr, body = _put(cloud, "seg00000.ts", seg[500:600], 500, 1024)          # a gap: told where to resume
    assert st == 409 and hdr["Range"] == "bytes=0-399" and b"400 bytes are stored" in body
    assert _put(cloud, "seg00000.ts", seg[400:], 400, 1024)[0] == 201
    stored = cloud.state / "store/clips/ev1/seg00000.ts"
    assert stored.read_bytes() == seg
    bad = [
        ("PUT", "/v1/clips/ev1/seg00001.ts", b"x" * 16, {"Content-Range": "bytes=0-15/16"}, "Content-Range"),
        ("PUT", "/v1/clips/ev1/seg00001.ts", b"x" * 16, {"Content-Range": "bytes 0-99/16"}, "first <= last < total"),
        ("PUT", "/v1/clips/ev1/../../etc", b"x" * 16, {"Content-Range": "bytes 0-15/16"}, "no such resource"),
        ("PUT", "/v1/clips/ev1/evil.sh", b"x" * 16, {"Content-Range": "bytes 0-15/16"}, "file name"),
        ("PUT", "/v1/clips/ev1/seg00001.ts", b"x" * 15, {"Content-Range": "bytes 0-14/15"}, "multiple of 16"),
        ("PUT", "/v1/clips/ev1/seg00001.ts", (b"\x47" + bytes(187)) * 2 + bytes(8),
         {"Content-Range": "bytes 0-383/384"}, "clear MPEG-TS"),
        ("PUT", "/v1/clips/ev1/playlist.m3u8", b"#EXTM3U\n#EXTINF:1,\nseg00000.ts\n",
         {"Content-Range": "bytes 0-30/31"}, "no EXT-X-KEY"),
        ("PUT", "/v1/clips/ev1/playlist.m3u8",
         b'#EXTM3U\n#EXT-X-KEY:METHOD=AES-128,URI="https://evil/key",IV=0x' + b"0" * 32 + b"\n#EXTINF:1,\nseg00000.ts\n",
         None, "camlab-key"),
        ("PUT", "/v1/clips/ev1/clip.json", b'{"event_id": "ev1", "key": "00"}', None, "missing"),
        ("PUT", "/v1/clips/ev1/clip.json", b'{"event_id": "ev2", "start_wall_s": 1, "end_wall_s": 2, '
         b'"key_uri": "camlab-key://0", "complete": true}', None, "event_id"),
        ("PUT", "/v1/clips/ev1/seg00000.ts", b"y" * 1024, {"Content-Range": "bytes 0-1023/2048"}, "write-once"),
        ("POST", "/v1/push", b"{not json", {}, "not JSON"),
        ("POST", "/v1/push", b'{"type": "person"}', {}, "event_id"),
        ("GET", "/v1/timeline?start=abc", b"", {}, "UNIX seconds"),
    ]
    for method, path, body, headers, why in bad:
        if headers is None:
            headers = {"Content-Range": f"bytes 0-{len(body) - 1}/{len(body)}"}
        st, _, resp = _req(cloud, method, path, body, headers)
        assert 400 <= st < 500, (path, st, resp)
        assert why in json.loads(resp)["error"], (why, resp)
    assert stored.read_bytes() == seg                                     # nothing stored was touched
    assert sorted(p.name for p in stored.parent.iterdir() if p.name != ".owner") == ["seg00000.ts"]


def _clip(tmp_path, src, key, eid, t_event=8.0, post=4.0, pre=3.0):
    maker = ClipMaker(tmp_path / "ev", key, segment_s=2, pre_roll_s=pre, post_roll_s=post, epoch_base=1.7e9)
    ring = list(src.packets(0.0, t_event))
    live = [src.packet(i) for i in range(len(ring), len(ring) + int((post + 3) * src.fps))]
    return maker.make_clip({"event_id": eid, "pts_s": t_event}, ring, live, src.info)


def test_uploader_retries_with_backoff_and_resumes_through_a_flaky_link(tmp_path, src, start_cloud):
    cloud = start_cloud(tmp_path / "flaky", "--fail-rate", "0.3", "--seed", "3")
    try:
        key = new_user_key()
        clip = _clip(tmp_path, src, key, "flaky-1")
        up = Uploader(cloud.url, cloud.cert, token=cloud.device_token, chunk_bytes=2048, backoff_base_s=0.01,
                      backoff_max_s=0.1, seed=1).start()
        up.enqueue(clip)
        assert up.wait_idle(60)
        up.stop()
        assert not up.failed and up.retries >= 3 and "flaky-1" in up.completed
        ts = CloudClient(cloud.url, cloud.cert, token=cloud.user_token).download_clip("flaky-1", key)
        times = decode_ts(ts)
        assert times[0] == pytest.approx(5.0, abs=1e-4) and len(times) == 70       # 5.0 .. 11.9
    finally:
        cloud.stop()


def test_uploader_picks_substream_on_a_slow_uplink(tmp_path, start_cloud):
    main = SyntheticSource(160, 96, fps=10, gop=10, texture=0.08, seed=1)
    sub = SyntheticSource(64, 64, fps=10, gop=10, stream="sub")
    rates = {"main": main.bitrate_bps, "sub": sub.bitrate_bps}
    assert rates["main"] > 3 * rates["sub"]
    slow_bps = rates["main"] / 8 / 3                      # the uplink carries a third of the main stream
    cloud = start_cloud(tmp_path / "slow", "--throttle-bps", str(slow_bps))
    fast = start_cloud(tmp_path / "fast")
    try:
        for c, want in ((cloud, "sub"), (fast, "main")):
            up = Uploader(c.url, c.cert, token=c.device_token, chunk_bytes=16384).start()
            assert up.choose_stream(rates) == "main"                          # nothing measured yet
            clip = _clip(tmp_path / want, main, new_user_key(), f"probe-{want}", t_event=2.0, post=0.5,
                         pre=1.0)
            up.enqueue(clip)
            assert up.wait_idle(60) and not up.failed
            up.stop()
            assert up.choose_stream(rates) == want, (up.bandwidth_bps, rates)
    finally:
        cloud.stop()
        fast.stop()


def test_upload_resumes_after_the_cloud_process_is_killed(tmp_path, start_cloud):
    import time
    main = SyntheticSource(160, 96, fps=10, gop=10, texture=0.08, seed=2)
    key = new_user_key()
    clip = _clip(tmp_path, main, key, "resume-1", t_event=6.0, post=2.0, pre=5.0)
    total = sum(s.bytes for s in clip.segments)
    first = start_cloud(tmp_path / "c", "--throttle-bps", str(total / 3))     # ~3 s to upload
    up = Uploader(first.url, first.cert, token=first.device_token, chunk_bytes=4096, backoff_base_s=0.05,
                  backoff_max_s=0.3).start()
    up.enqueue(clip)
    deadline = time.monotonic() + 20
    while up.bytes_sent < total / 4 and time.monotonic() < deadline:        # a quarter is in the cloud
        time.sleep(0.02)
    first.proc.kill()                                                          # the cloud dies mid-upload
    first.proc.wait(5)
    sent_before = up.bytes_sent
    assert 0 < sent_before < total
    again = start_cloud(tmp_path / "c", "--port", str(first.port))             # same state dir, same port
    assert again.port == first.port
    assert up.wait_idle(60) and not up.failed and "resume-1" in up.completed
    up.stop()
    assert up.retries >= 1 and up.bytes_sent < total + 3 * 4096 + 4096       # resumed, not restarted
    got = CloudClient(again.url, again.cert, token=again.user_token).download_clip("resume-1", key)
    assert decode_ts(got)[0] == pytest.approx(1.0, abs=1e-4)


# ---- security regressions (issue 16) -----------------------------------------------------------------------------
@pytest.mark.parametrize("eid", ["..", ".", "...", ".hidden", "a/..", "..\\x"])
def test_cloud_paths_refuse_event_ids_that_are_not_plain_names(tmp_path, eid):
    from device_sim.services.cloud import BadRequest, CloudStore
    st = CloudStore(tmp_path / "store")
    with pytest.raises(BadRequest) as info:
        st.paths(eid, "clip.json")
    assert info.value.status == 400


def test_cloud_put_with_dotdot_event_id_writes_nothing_outside_the_event_folder(cloud):
    body = json.dumps({"event_id": "..", "start_wall_s": 1.0, "end_wall_s": 2.0, "key_uri": "camlab-key://0",
                       "complete": True}).encode()
    st, _, resp = _req(cloud, "PUT", "/v1/clips/../clip.json", body,
                       {"Content-Range": f"bytes 0-{len(body) - 1}/{len(body)}"})
    assert st == 400, (st, resp)
    assert not (cloud.state / "store" / "clip.json").exists()
    assert not list((cloud.state / "store").rglob("clip.json"))


@pytest.mark.parametrize("path", ["/v1/push?since=abc", "/v1/push?since=nan", "/v1/push?since=",
                                  "/v1/timeline?start=0&end=inf", "/v1/timeline?start=nan"])
def test_cloud_answers_malformed_queries_with_400_not_500(cloud, path):
    st, _, resp = _req(cloud, "GET", path)
    assert st == 400, (path, st, resp)
    assert "error" in json.loads(resp)


@pytest.mark.parametrize("method", ["DELETE", "PATCH", "OPTIONS"])
def test_cloud_answers_unsupported_methods_with_405(cloud, method):
    st, hdr, _ = _req(cloud, method, "/v1/clips/ev1/clip.json")
    assert st == 405 and "GET" in hdr.get("Allow", "")


def _clip_json(eid, **extra):
    return json.dumps({"event_id": eid, "start_wall_s": 1000.0, "end_wall_s": 1010.0, "key_uri": "camlab-key://0",
                       "complete": True, **extra}).encode()


def _audit(cloud):
    from device_sim.net.endpoint import AccessLog
    return [e for e in AccessLog(cloud.state / "store" / "access_log.jsonl").entries() if e.get("service") == "cloud"]


def test_cloud_refuses_requests_without_a_valid_credential_and_logs_them(cloud):
    assert _put(cloud, "clip.json", _clip_json("ev1"), 0, len(_clip_json("ev1")))[0] == 201
    assert _req(cloud, "POST", "/v1/push", b'{"event_id": "ev1"}')[0] == 202
    reqs = [("GET", "/v1/push", b"", {}), ("GET", "/v1/timeline", b"", {}), ("GET", "/v1/clips/ev1/clip.json", b"", {}),
            ("HEAD", "/v1/clips/ev1/clip.json", b"", {}), ("POST", "/v1/push", b'{"event_id": "ev2"}', {}),
            ("PUT", "/v1/clips/ev1/clip.json", _clip_json("ev1", nonce=1), None)]
    for token in (None, "0" * 32, "Basic YWxpY2U6eA=="):
        for method, path, body, headers in reqs:
            if headers is None:
                headers = {"Content-Range": f"bytes 0-{len(body) - 1}/{len(body)}"}
            st, hdr, resp = _req(cloud, method, path, body, headers, token=token)
            assert st == 401, (method, path, token, st, resp)
            assert hdr.get("WWW-Authenticate", "").startswith("Bearer")
    stored = json.loads((cloud.state / "store/clips/ev1/clip.json").read_bytes())
    assert "nonce" not in stored                                       # nothing was replaced
    refused = [e for e in _audit(cloud) if e["status"] == 401]
    assert len(refused) == 3 * len(reqs) and {e["path"] for e in refused} >= {"/v1/push", "/v1/clips/ev1/clip.json"}


def test_cloud_tenants_cannot_read_or_write_each_others_objects(cloud):
    bob = cloud.tenant("bob")
    body = _clip_json("ev-a", tenant="alice")
    assert _put(cloud, "clip.json", body, 0, len(body), eid="ev-a")[0] == 201
    assert _req(cloud, "POST", "/v1/push", b'{"event_id": "ev-a", "did": "forged"}')[0] == 202
    bob_body = _clip_json("ev-b", tenant="bob")
    assert _put(cloud, "clip.json", bob_body, 0, len(bob_body), eid="ev-b", token=bob["device_token"])[0] == 201
    # the owner's app reads; the other tenant's app and camera are refused
    assert json.loads(_req(cloud, "GET", "/v1/clips/ev-a/clip.json", token="user")[2])["tenant"] == "alice"
    for tok in (bob["user_token"], bob["device_token"]):
        st, _, resp = _req(cloud, "GET", "/v1/clips/ev-a/clip.json", token=tok)
        assert st == 403 and b"alice" not in resp
        assert _req(cloud, "HEAD", "/v1/clips/ev-a/clip.json", token=tok)[0] == 403
    tl_bob = json.loads(_req(cloud, "GET", "/v1/timeline", token=bob["user_token"])[2])
    assert [c["event_id"] for c in tl_bob] == ["ev-b"]
    tl_alice = json.loads(_req(cloud, "GET", "/v1/timeline", token="user")[2])
    assert [c["event_id"] for c in tl_alice] == ["ev-a"]
    assert json.loads(_req(cloud, "GET", "/v1/push", token=bob["user_token"])[2]) == []
    pushes = json.loads(_req(cloud, "GET", "/v1/push", token="user")[2])
    assert [(p["event_id"], p["did"]) for p in pushes] == [("ev-a", cloud.did)]     # stamped with the real sender
    # bob's camera may not replace alice's clip.json / playlist, nor add a segment to her event
    evil = _clip_json("ev-a", tenant="bob")
    assert _put(cloud, "clip.json", evil, 0, len(evil), eid="ev-a", token=bob["device_token"])[0] == 403
    assert _put(cloud, "seg00009.ts", bytes(32), 0, 32, eid="ev-a", token=bob["device_token"])[0] == 403
    assert json.loads((cloud.state / "store/clips/ev-a/clip.json").read_bytes())["tenant"] == "alice"
    assert not (cloud.state / "store/clips/ev-a/seg00009.ts").exists()
    # apps read, cameras write: alice's app may not upload, and may not post pushes
    assert _put(cloud, "clip.json", body, 0, len(body), eid="ev-a2", token="user")[0] == 403
    assert _req(cloud, "POST", "/v1/push", b'{"event_id": "ev-x"}', token="user")[0] == 403
    refused = [e for e in _audit(cloud) if e["status"] == 403]
    assert len(refused) == 8 and all(e["principal"] for e in refused)
    assert {e["principal"] for e in refused} >= {f"device:{bob['did']}", "user:bob", "user:alice"}


def test_cloud_follows_sharing_and_ownership_changes_at_once(cloud):
    from device_sim.net.accounts import AccountStore
    bob = cloud.tenant("bob")
    body = _clip_json("ev-a")
    assert _put(cloud, "clip.json", body, 0, len(body), eid="ev-a")[0] == 201
    assert _req(cloud, "GET", "/v1/clips/ev-a/clip.json", token=bob["user_token"])[0] == 403
    store = AccountStore(cloud.accounts)
    store.share("alice", cloud.did, "bob", ("view",))
    assert _req(cloud, "GET", "/v1/clips/ev-a/clip.json", token=bob["user_token"])[0] == 200
    store.unshare("alice", cloud.did, "bob")
    assert _req(cloud, "GET", "/v1/clips/ev-a/clip.json", token=bob["user_token"])[0] == 403
    store.unbind("alice", cloud.did)           # an unbound camera belongs to nobody: no one reads, it writes nothing
    assert _req(cloud, "GET", "/v1/clips/ev-a/clip.json", token="user")[0] == 403
    assert _put(cloud, "clip.json", body, 0, len(body), eid="ev-a")[0] == 403
    store.close()
