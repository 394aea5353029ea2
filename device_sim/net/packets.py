"""Wire formats of the camera's P2P stack: session records, channel frames, media/file chunks, relay and signalling.

Every parser here takes untrusted bytes and either returns a typed value or raises ``PacketError`` (never anything
else); a hypothesis fuzzer in ``tests/device_sim/net/test_fuzz.py`` holds them to that. Layouts are fixed-width
big-endian (network byte order, RFC 1700) in the style of the DTLS record header (RFC 6347 §4.1): the header is
authenticated as AES-GCM additional data and the 64-bit sequence number forms the nonce (RFC 5116 §3.2).
"""
from __future__ import annotations

import enum
import json
import struct
from dataclasses import dataclass

from camlab.errors import CamlabError

MAGIC_SESSION = b"CS"
MAGIC_RELAY = b"CR"
VERSION = 1
MAX_DATAGRAM = 1400          # fits a 1500-byte Ethernet MTU with IP/UDP and relay headers
MAX_SIGNAL = 64 * 1024       # signalling frame limit (JSON)
MAX_COMMAND = 64 * 1024      # command-channel JSON message limit


class PacketError(CamlabError):
    """Malformed or unexpected bytes from the network (the packet is dropped, the service stays up)."""


class RecordType(enum.IntEnum):
    HELLO = 1        # app -> device: account, ephemeral X25519 key, nonce
    REPLY = 2        # device -> app: ephemeral key, nonce, device signature
    FINISH = 3       # app -> device: account signature over the transcript
    CONFIRM = 4      # device -> app: encrypted, empty (the device accepted the session)
    REJECT = 5       # device -> app: plain, one reason code
    DATA = 6         # either way: encrypted channel frame
    CLOSE = 7        # either way: encrypted, empty


class Channel(enum.IntEnum):
    """Channels multiplexed on one session; lower value = higher send priority."""
    ALERT = 0
    COMMAND = 1
    AUDIO = 2
    VIDEO = 3
    FILE = 4


RELIABLE = frozenset({Channel.COMMAND, Channel.FILE, Channel.ALERT})


class FrameKind(enum.IntEnum):
    DATA = 0
    ACK = 1


def _need(buf: bytes, n: int, what: str) -> None:
    if len(buf) < n:
        raise PacketError(f"{what}: expected at least {n} bytes, got {len(buf)}")


def _str(buf: bytes, off: int, what: str, limit: int = 255) -> tuple[str, int]:
    _need(buf, off + 1, what)
    n = buf[off]
    if n > limit:
        raise PacketError(f"{what}: length {n} over {limit}")
    _need(buf, off + 1 + n, what)
    try:
        s = buf[off + 1:off + 1 + n].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PacketError(f"{what}: not UTF-8") from exc
    return s, off + 1 + n


def _pack_str(s: str, what: str) -> bytes:
    b = s.encode("utf-8")
    if len(b) > 255:
        raise PacketError(f"{what}: longer than 255 bytes")
    return bytes([len(b)]) + b


# --------------------------------------------------------------------------------------------- session records
RECORD_HEADER = struct.Struct("!2sBBQQ")  # magic, version, type, session id, sequence
RECORD_HEADER_LEN = RECORD_HEADER.size    # 20


@dataclass(frozen=True)
class Record:
    type: RecordType
    session_id: int
    seq: int
    body: bytes

    @property
    def header(self) -> bytes:
        return RECORD_HEADER.pack(MAGIC_SESSION, VERSION, int(self.type), self.session_id, self.seq)

    def encode(self) -> bytes:
        return self.header + self.body


def parse_record(buf: bytes) -> Record:
    _need(buf, RECORD_HEADER_LEN, "session record")
    if len(buf) > MAX_DATAGRAM + 64:
        raise PacketError(f"session record: {len(buf)} bytes over the {MAX_DATAGRAM + 64}-byte limit")
    magic, ver, typ, sid, seq = RECORD_HEADER.unpack_from(buf)
    if magic != MAGIC_SESSION:
        raise PacketError(f"session record: bad magic {magic!r}, expected {MAGIC_SESSION!r}")
    if ver != VERSION:
        raise PacketError(f"session record: version {ver}, expected {VERSION}")
    try:
        rtype = RecordType(typ)
    except ValueError as exc:
        raise PacketError(f"session record: unknown type {typ}") from exc
    return Record(rtype, sid, seq, bytes(buf[RECORD_HEADER_LEN:]))


@dataclass(frozen=True)
class Hello:
    account: str
    did: str
    eph_pub: bytes   # 32-byte X25519
    nonce: bytes     # 16 bytes

    def encode(self) -> bytes:
        return _pack_str(self.account, "hello.account") + _pack_str(self.did, "hello.did") + self.eph_pub + self.nonce


def parse_hello(body: bytes) -> Hello:
    account, off = _str(body, 0, "hello.account", 64)
    did, off = _str(body, off, "hello.did", 64)
    if len(body) != off + 48:
        raise PacketError(f"hello: expected {off + 48} bytes, got {len(body)}")
    if not account or not did:
        raise PacketError("hello: empty account or did")
    return Hello(account, did, bytes(body[off:off + 32]), bytes(body[off + 32:off + 48]))


@dataclass(frozen=True)
class Reply:
    did: str
    eph_pub: bytes
    nonce: bytes
    signature: bytes  # 64-byte Ed25519

    def encode(self) -> bytes:
        return _pack_str(self.did, "reply.did") + self.eph_pub + self.nonce + self.signature


def parse_reply(body: bytes) -> Reply:
    did, off = _str(body, 0, "reply.did", 64)
    if len(body) != off + 112:
        raise PacketError(f"reply: expected {off + 112} bytes, got {len(body)}")
    return Reply(did, bytes(body[off:off + 32]), bytes(body[off + 32:off + 48]), bytes(body[off + 48:off + 112]))


def parse_finish(body: bytes) -> bytes:
    if len(body) != 64:
        raise PacketError(f"finish: expected a 64-byte signature, got {len(body)} bytes")
    return bytes(body)


class RejectReason(enum.IntEnum):
    BAD_SIGNATURE = 1
    UNKNOWN_ACCOUNT = 2
    NOT_AUTHORISED = 3
    WRONG_DEVICE = 4
    PROTOCOL = 5


def parse_reject(body: bytes) -> RejectReason:
    if len(body) != 1:
        raise PacketError(f"reject: expected 1 byte, got {len(body)}")
    try:
        return RejectReason(body[0])
    except ValueError as exc:
        raise PacketError(f"reject: unknown reason {body[0]}") from exc


# --------------------------------------------------------------------------------------------- channel frames
FRAME_HEADER = struct.Struct("!BBIHH")  # channel, kind, message seq, fragment index, fragment count
FRAME_HEADER_LEN = FRAME_HEADER.size    # 10
MAX_FRAGMENTS = 4096


@dataclass(frozen=True)
class Frame:
    channel: Channel
    kind: FrameKind
    msg_seq: int
    frag_idx: int
    frag_count: int
    payload: bytes

    def encode(self) -> bytes:
        return FRAME_HEADER.pack(int(self.channel), int(self.kind), self.msg_seq, self.frag_idx,
                                 self.frag_count) + self.payload


def parse_frame(buf: bytes) -> Frame:
    _need(buf, FRAME_HEADER_LEN, "channel frame")
    ch, kind, seq, idx, count = FRAME_HEADER.unpack_from(buf)
    try:
        channel = Channel(ch)
    except ValueError as exc:
        raise PacketError(f"channel frame: unknown channel {ch}") from exc
    try:
        fkind = FrameKind(kind)
    except ValueError as exc:
        raise PacketError(f"channel frame: unknown kind {kind}") from exc
    if fkind is FrameKind.DATA:
        if not 1 <= count <= MAX_FRAGMENTS or idx >= count:
            raise PacketError(f"channel frame: fragment {idx}/{count} out of range (1..{MAX_FRAGMENTS})")
    elif idx != 0 or count != 0:
        raise PacketError("channel frame: ack with fragment fields set")
    return Frame(channel, fkind, seq, idx, count, bytes(buf[FRAME_HEADER_LEN:]))


# --------------------------------------------------------------------------------------------- media and files
MEDIA_HEADER = struct.Struct("!BBqI")  # stream, flags (bit0 keyframe), pts (us), duration (us)
STREAMS = ("main", "sub", "audio")


@dataclass(frozen=True)
class MediaUnit:
    stream: str
    pts_us: int
    keyframe: bool
    duration_us: int
    data: bytes

    def encode(self) -> bytes:
        return MEDIA_HEADER.pack(STREAMS.index(self.stream), 1 if self.keyframe else 0, self.pts_us,
                                 self.duration_us) + self.data


def parse_media(buf: bytes) -> MediaUnit:
    _need(buf, MEDIA_HEADER.size, "media unit")
    s, flags, pts, dur = MEDIA_HEADER.unpack_from(buf)
    if s >= len(STREAMS):
        raise PacketError(f"media unit: unknown stream {s}")
    if flags & ~1:
        raise PacketError(f"media unit: reserved flag bits set ({flags:#x})")
    return MediaUnit(STREAMS[s], pts, bool(flags & 1), dur, bytes(buf[MEDIA_HEADER.size:]))


FILE_HEADER = struct.Struct("!IQQB")  # transfer id, offset, total size, flags (bit0 last)
FILE_CHUNK = 1024


@dataclass(frozen=True)
class FileChunk:
    transfer_id: int
    offset: int
    total: int
    last: bool
    data: bytes

    def encode(self) -> bytes:
        return FILE_HEADER.pack(self.transfer_id, self.offset, self.total, 1 if self.last else 0) + self.data


def parse_file_chunk(buf: bytes) -> FileChunk:
    _need(buf, FILE_HEADER.size, "file chunk")
    tid, off, total, flags = FILE_HEADER.unpack_from(buf)
    data = bytes(buf[FILE_HEADER.size:])
    if flags & ~1:
        raise PacketError(f"file chunk: reserved flag bits set ({flags:#x})")
    if off + len(data) > total:
        raise PacketError(f"file chunk: offset {off} + {len(data)} bytes past the total {total}")
    return FileChunk(tid, off, total, bool(flags & 1), data)


ACK = struct.Struct("!I")


def encode_acks(seqs: list[int]) -> bytes:
    return b"".join(ACK.pack(s) for s in seqs[:256])


def parse_acks(buf: bytes) -> list[int]:
    if len(buf) % 4 or not buf or len(buf) > 1024:
        raise PacketError(f"ack list: {len(buf)} bytes, expected 1..256 4-byte sequence numbers")
    return [v for (v,) in ACK.iter_unpack(buf)]


# --------------------------------------------------------------------------------------------- JSON messages
def parse_json_object(buf: bytes, what: str, limit: int) -> dict:
    if len(buf) > limit:
        raise PacketError(f"{what}: {len(buf)} bytes over the {limit}-byte limit")
    try:
        obj = json.loads(buf.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise PacketError(f"{what}: not UTF-8 JSON ({exc.__class__.__name__})") from exc
    if not isinstance(obj, dict):
        raise PacketError(f"{what}: expected a JSON object, got {type(obj).__name__}")
    return obj


def parse_command(buf: bytes) -> dict:
    """Command-channel request: ``{"id": int, "op": str, "args": {}}``."""
    obj = parse_json_object(buf, "command", MAX_COMMAND)
    if not isinstance(obj.get("id"), int) or isinstance(obj.get("id"), bool) or not 0 <= obj["id"] < 2**53:
        raise PacketError("command.id: expected an integer in [0, 2^53)")
    if "op" in obj:
        if not isinstance(obj["op"], str) or not obj["op"]:
            raise PacketError("command.op: expected a non-empty string")
        args = obj.setdefault("args", {})
        if not isinstance(args, dict):
            raise PacketError("command.args: expected an object")
    elif "ok" in obj:
        if not isinstance(obj["ok"], bool):
            raise PacketError("command.ok: expected a boolean")
    else:
        raise PacketError("command: expected 'op' (request) or 'ok' (response)")
    return obj


def encode_json(obj: dict) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


SIGNAL_LEN = struct.Struct("!I")


def encode_signal(obj: dict) -> bytes:
    body = encode_json(obj)
    if len(body) > MAX_SIGNAL:
        raise PacketError(f"signal: {len(body)} bytes over the {MAX_SIGNAL}-byte limit")
    return SIGNAL_LEN.pack(len(body)) + body


def parse_signal_length(head: bytes) -> int:
    _need(head, 4, "signal length")
    (n,) = SIGNAL_LEN.unpack_from(head)
    if not 0 < n <= MAX_SIGNAL:
        raise PacketError(f"signal length {n}: expected 1..{MAX_SIGNAL}")
    return n


SIGNAL_TYPES = {"register", "registered", "connect", "offer", "answer", "error", "ping", "pong"}


def parse_signal(body: bytes) -> dict:
    """Rendezvous message: JSON object with a known ``type`` and string/dict fields of bounded size."""
    obj = parse_json_object(body, "signal", MAX_SIGNAL)
    t = obj.get("type")
    if not isinstance(t, str) or t not in SIGNAL_TYPES:
        raise PacketError(f"signal.type: expected one of {sorted(SIGNAL_TYPES)}, got {t!r}")
    for key in ("did", "account", "conn_id", "sig", "reason"):
        if key in obj and (not isinstance(obj[key], str) or len(obj[key]) > 256):
            raise PacketError(f"signal.{key}: expected a string of at most 256 characters")
    for key in ("offer", "answer", "relay"):
        if key in obj:
            parse_ice_params(obj[key], f"signal.{key}") if key != "relay" else parse_relay_params(obj[key])
    return obj


def parse_ice_params(obj, what: str = "ice") -> dict:
    if not isinstance(obj, dict):
        raise PacketError(f"{what}: expected an object")
    for key in ("ufrag", "pwd"):
        if not isinstance(obj.get(key), str) or not 0 < len(obj[key]) <= 256:
            raise PacketError(f"{what}.{key}: expected a non-empty string")
    cands = obj.get("candidates")
    if not isinstance(cands, list) or len(cands) > 32 or not all(isinstance(c, str) and len(c) < 512 for c in cands):
        raise PacketError(f"{what}.candidates: expected a list of at most 32 candidate strings")
    return obj


def parse_relay_params(obj) -> dict:
    if not isinstance(obj, dict):
        raise PacketError("relay: expected an object")
    if not isinstance(obj.get("host"), str) or not isinstance(obj.get("port"), int) or not 0 < obj["port"] < 65536:
        raise PacketError("relay: expected host (string) and port (1..65535)")
    for key in ("session", "token_app", "token_device"):
        v = obj.get(key)
        if not isinstance(v, str) or len(v) != 32:
            raise PacketError(f"relay.{key}: expected 32 hex characters")
        try:
            bytes.fromhex(v)
        except ValueError as exc:
            raise PacketError(f"relay.{key}: not hex") from exc
    return obj


# --------------------------------------------------------------------------------------------- relay datagrams
class RelayType(enum.IntEnum):
    BIND = 1      # token (16 bytes)
    BIND_OK = 2   # empty
    DATA = 3      # payload


RELAY_HEADER = struct.Struct("!2sBB16s")  # magic, type, role (0 app, 1 device), session id


@dataclass(frozen=True)
class RelayPacket:
    type: RelayType
    role: int
    session: bytes
    body: bytes

    def encode(self) -> bytes:
        return RELAY_HEADER.pack(MAGIC_RELAY, int(self.type), self.role, self.session) + self.body


def parse_relay(buf: bytes) -> RelayPacket:
    _need(buf, RELAY_HEADER.size, "relay packet")
    if len(buf) > MAX_DATAGRAM + RELAY_HEADER.size + 64:
        raise PacketError(f"relay packet: {len(buf)} bytes too long")
    magic, typ, role, session = RELAY_HEADER.unpack_from(buf)
    if magic != MAGIC_RELAY:
        raise PacketError(f"relay packet: bad magic {magic!r}")
    try:
        rtype = RelayType(typ)
    except ValueError as exc:
        raise PacketError(f"relay packet: unknown type {typ}") from exc
    if role not in (0, 1):
        raise PacketError(f"relay packet: role {role}, expected 0 (app) or 1 (device)")
    body = bytes(buf[RELAY_HEADER.size:])
    if rtype is RelayType.BIND and len(body) != 16:
        raise PacketError(f"relay bind: expected a 16-byte token, got {len(body)} bytes")
    if rtype is RelayType.BIND_OK and body:
        raise PacketError("relay bind-ok: unexpected body")
    return RelayPacket(rtype, role, session, body)
