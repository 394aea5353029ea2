"""Identity, binding tokens, the authenticated handshake and record protection (no network needed)."""
from __future__ import annotations

import pytest

from device_sim.net.accounts import AuthError
from device_sim.net.identity import DeviceIdentity, did_from_public_key, manufacture
from device_sim.net.packets import PacketError, RecordType, RejectReason, parse_record
from device_sim.net.session import ClientHandshake, DeviceHandshake, HandshakeError, ReplayWindow


def _handshake(store, dev, app):
    client = ClientHandshake(app, dev.did, store.device_public_key(dev.did))
    server = DeviceHandshake(dev, store)
    reply = parse_record(server.on_hello(parse_record(client.hello())))
    finish = parse_record(client.on_reply(reply))
    dsess, out = server.on_finish(finish)
    return client, server, dsess, parse_record(out)


def test_factory_identity_roundtrip(tmp_path, cloud):
    store, dev, _ = cloud
    assert dev.did == did_from_public_key(dev.sign_pub) and dev.did.startswith("cam-") and ":" not in dev.did
    again = DeviceIdentity.load(tmp_path / "device")
    assert again.did == dev.did and again.sign_pub == dev.sign_pub and again.kx_pub == dev.kx_pub
    assert store.device_public_key(dev.did) == dev.sign_pub
    assert (tmp_path / "device" / "keystore.json").stat().st_mode & 0o077 == 0
    other = manufacture(tmp_path / "d2", store)
    assert other.did != dev.did and other.sign_pub != dev.sign_pub


def test_bind_token_is_one_time_expiring_and_device_signed(tmp_path, cloud):
    store, dev, users = cloud
    d2 = manufacture(tmp_path / "d2", store)
    tok = store.issue_bind_token("bob", ttl_s=60, now=1000.0)
    with pytest.raises(AuthError, match="expired"):
        store.bind(d2.did, tok, d2.bind_proof(tok), now=1061.0)
    with pytest.raises(AuthError, match="signature"):
        store.bind(d2.did, tok, dev.bind_proof(tok), now=1001.0)        # another device's key
    assert store.bind(d2.did, tok, d2.bind_proof(tok), now=1001.0) == "bob"
    with pytest.raises(AuthError, match="already used"):
        store.bind(d2.did, tok, d2.bind_proof(tok), now=1002.0)         # replayed token
    tok2 = store.issue_bind_token("mallory")
    with pytest.raises(AuthError, match="bound to another account"):
        store.bind(d2.did, tok2, d2.bind_proof(tok2))                    # hijack attempt
    with pytest.raises(AuthError, match="unknown token"):
        store.bind(d2.did, "00" * 16, d2.bind_proof("00" * 16))
    assert store.owner(d2.did) == "bob"


def test_permissions_follow_the_database_immediately(cloud):
    store, dev, _ = cloud
    assert store.authorise("alice", dev.did, "talk")
    assert store.authorise("bob", dev.did, "view") and not store.authorise("bob", dev.did, "talk")
    assert not store.authorise("mallory", dev.did, "view")
    n = store.queries
    store.unshare("alice", dev.did, "bob")
    assert not store.authorise("bob", dev.did, "view")
    assert store.queries == n + 1
    with pytest.raises(AuthError):
        store.share("mallory", dev.did, "mallory", ("view",))


def test_handshake_and_records(cloud):
    store, dev, users = cloud
    client, server, dsess, confirm = _handshake(store, dev, users["alice"])
    assert dsess is not None and confirm.type is RecordType.CONFIRM
    asess = client.on_confirm(confirm)
    assert asess.session_id == dsess.session_id and asess.send_key == dsess.recv_key
    rec = asess.seal(b"hello camera")
    assert dsess.open(parse_record(rec)) == b"hello camera"
    with pytest.raises(PacketError, match="replayed"):
        dsess.open(parse_record(rec))
    forged = bytearray(asess.seal(b"x" * 40))
    forged[-1] ^= 1
    with pytest.raises(PacketError, match="authentication"):
        dsess.open(parse_record(bytes(forged)))
    hdr = bytearray(asess.seal(b"y"))
    hdr[3] = RecordType.DATA                 # same type; flip the sequence number instead (AAD covers it)
    hdr[19] ^= 0x40
    with pytest.raises(PacketError):
        dsess.open(parse_record(bytes(hdr)))
    # a device message cannot be reflected back to the device (direction keys differ)
    back = dsess.seal(b"to app")
    with pytest.raises(PacketError):
        dsess.open(parse_record(back))
    assert asess.open(parse_record(back)) == b"to app"


@pytest.mark.parametrize("who,reason", [("mallory", RejectReason.NOT_AUTHORISED)])
def test_unauthorised_account_is_rejected(cloud, who, reason):
    store, dev, users = cloud
    client, server, dsess, out = _handshake(store, dev, users[who])
    assert dsess is None and out.type is RecordType.REJECT and out.body == bytes([reason])
    with pytest.raises(HandshakeError, match=reason.name):
        client.on_confirm(out)


def test_unknown_account_and_stolen_account_name(tmp_path, cloud):
    store, dev, users = cloud
    from device_sim.net.identity import AppIdentity
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    ghost = AppIdentity("ghost", Ed25519PrivateKey.generate())
    _, _, dsess, out = _handshake(store, dev, ghost)
    assert dsess is None and out.body == bytes([RejectReason.UNKNOWN_ACCOUNT])
    thief = AppIdentity("alice", Ed25519PrivateKey.generate())       # claims alice without her key
    _, _, dsess, out = _handshake(store, dev, thief)
    assert dsess is None and out.body == bytes([RejectReason.BAD_SIGNATURE])


def test_impostor_device_is_detected_by_the_app(tmp_path, cloud):
    store, dev, users = cloud
    fake = manufacture(tmp_path / "fake", store)
    fake.did = dev.did                         # a clone that claims the real DID but has other keys
    client = ClientHandshake(users["alice"], dev.did, store.device_public_key(dev.did))
    reply = parse_record(DeviceHandshake(fake, store).on_hello(parse_record(client.hello())))
    with pytest.raises(HandshakeError, match="does not verify"):
        client.on_reply(reply)


def test_duplicate_finish_gives_one_session(cloud):
    store, dev, users = cloud
    client = ClientHandshake(users["alice"], dev.did, store.device_public_key(dev.did))
    server = DeviceHandshake(dev, store)
    finish = parse_record(client.on_reply(parse_record(server.on_hello(parse_record(client.hello())))))
    s1, c1 = server.on_finish(finish)
    s2, c2 = server.on_finish(finish)
    assert s1 is not None and s2 is None and c1 == c2


def test_replay_window():
    w = ReplayWindow(64)
    for s in (5, 3, 70, 10):
        assert not w.seen(s)
        w.mark(s)
        assert w.seen(s)
    assert w.seen(5)               # 70 - 5 >= 64: too old, refused
    assert not w.seen(69) and not w.seen(200)
