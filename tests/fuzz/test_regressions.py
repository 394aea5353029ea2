"""Inputs the fuzzer found that crashed a parser (issue 16), each now rejected with the parser's documented error.

The inputs are kept in ``tests/fuzz/corpus/<target>/crash-*`` so every fuzz run replays them too."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from camlab.errors import CamlabError, InputFileError

CORPUS = Path(__file__).resolve().parent / "corpus"


def _input(target: str, name: str) -> bytes:
    return (CORPUS / target / name).read_bytes()


def test_truncated_model_bundle_tar_is_a_package_error():
    from device_sim.ota.package import PackageError, untar_bundle
    data = _input("ota_package", "crash-truncated-tar")
    with pytest.raises(PackageError, match="bundle"):
        untar_bundle(data[1:])


def test_recording_without_a_decoder_is_an_input_file_error(tmp_path):
    from device_sim.storage.mux import probe_mp4
    p = tmp_path / "00.mp4"
    p.write_bytes(_input("recording", "crash-no-decoder"))
    with pytest.raises(InputFileError, match="00.mp4"):
        probe_mp4(p)


def test_playlist_extinf_that_is_not_a_number_is_rejected():
    from device_sim.storage.playback import parse_playlist
    text = _input("hls", "crash-extinf-not-a-number")[1:].decode()
    with pytest.raises(CamlabError, match="EXTINF"):
        parse_playlist(text)
    for bad in ("#EXTINF:abc,", "#EXTINF:nan,", "#EXTINF:-1,", "#EXTINF:inf,"):
        with pytest.raises(CamlabError, match="EXTINF"):
            parse_playlist(f"#EXTM3U\n{bad}\nseg00000.ts\n")


def test_root_rotation_with_a_malformed_role_is_a_metadata_error():
    from device_sim.ota.metadata import MetadataError, parse_envelope, sign, verify_root_rotation
    from tests.fuzz.targets import tuf
    keys = tuf._keys()
    root = __import__("device_sim.ota.metadata", fromlist=["make_root"]).make_root(
        1, tuf.EXPIRES, {r: [k] for r, k in keys.items()})
    data = _input("tuf", "crash-root-without-threshold")
    env = parse_envelope(data[1:], "root")
    if data[0] & 4:
        env = sign(env["signed"], [keys["root"]])
    with pytest.raises(MetadataError, match="root"):
        verify_root_rotation(root, env)
    for mutate in (lambda s: s["roles"].pop("root"), lambda s: s["roles"]["root"].update(threshold="1"),
                   lambda s: s.update(keys=[]), lambda s: s["roles"]["root"].update(keyids=None),
                   lambda s: s["roles"]["root"].update(threshold=0)):
        new = json.loads(json.dumps({**root, "version": 2}))
        mutate(new)
        with pytest.raises(MetadataError, match="root"):
            verify_root_rotation(root, sign(new, [keys["root"]]))


def test_fragments_disagreeing_on_their_count_are_a_packet_error():
    """A fragment of message 9 saying 3 fragments, then one saying 2: the receive path must reject, not KeyError."""
    from device_sim.net.fuzz import _mux_target
    from device_sim.net.packets import Channel, Frame, FrameKind, PacketError, Record, RecordType
    run = _mux_target()

    def frame(idx: int, count: int) -> bytes:
        body = b"\x00" + Frame(Channel.VIDEO, FrameKind.DATA, 9, idx, count, b"half").encode()
        return Record(RecordType.DATA, 7, 1, body).encode()
    run(frame(2, 3))
    with pytest.raises(PacketError, match="fragment"):
        run(frame(1, 2))


def test_mqtt_request_method_that_is_not_a_string_is_a_packet_error():
    from device_sim.net.mqtt import parse_request
    from device_sim.net.packets import PacketError
    data = _input("p2p", "crash-mqtt-method-not-a-string")
    with pytest.raises(PacketError, match="method"):
        parse_request(data[1:])
    with pytest.raises(PacketError, match="method"):
        parse_request(b'{"id": 1, "method": {"a": 1}, "params": []}')


def test_signal_type_that_is_not_a_string_is_a_packet_error():
    from device_sim.net.packets import PacketError, parse_signal
    data = _input("p2p", "crash-signal-type-not-a-string")
    with pytest.raises(PacketError, match="signal.type"):
        parse_signal(data[1:])
    with pytest.raises(PacketError, match="signal.type"):
        parse_signal(b'{"type": ["connect"]}')


def test_signature_entries_that_are_not_objects_are_a_metadata_error():
    from device_sim.ota.metadata import MetadataError, parse_envelope
    data = _input("tuf", "crash-signature-not-an-object")
    with pytest.raises(MetadataError, match="signatures"):
        parse_envelope(data[1:], "root")
    for sigs in ([1], [{"keyid": ["x"], "sig": "AA=="}], [{"keyid": "ab", "sig": 5}]):
        env = {"signed": {"_type": "timestamp", "version": 1, "expires": "2030-01-01T00:00:00Z"}, "signatures": sigs}
        with pytest.raises(MetadataError, match="signatures"):
            parse_envelope(json.dumps(env).encode(), "timestamp")


def test_cloud_content_length_with_a_unicode_digit_is_a_400():
    """'10\u00b9' passes str.isdigit() but not int(): the handler must answer 4xx, not raise."""
    from tests.fuzz.targets import cloud_http
    one, _ = cloud_http.setup()
    one(_input("cloud_http", "crash-content-length-superscript-digit"))
    for cl in ("\u00b2", "\u0663", "1\u00b9"):        # superscript two, Arabic-Indic three
        one(f"POST /v1/push HTTP/1.1\r\nAuthorization: Bearer @DEV@\r\nContent-Length: {cl}\r\n\r\n{{}}".encode())
