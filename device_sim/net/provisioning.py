"""Wi-Fi provisioning by QR code: the app shows SSID, passphrase and a one-time binding token; the camera sees the
code through its own sensor + ISP, decodes it, joins the network and binds itself to the account.

Payload: the ZXing ``WIFI:`` convention (backslash-escaping of ``\\ ; , : "``) with our own scheme tag,
``CAMLAB:V:1;S:<ssid>;P:<passphrase>;T:<token>;;``, encoded as UTF-8 in QR byte mode (ISO/IEC 18004:2015 §7.4.5).
The decoder takes zxing-cpp's raw bytes and decodes UTF-8 itself, so non-ASCII SSIDs survive (zbar's Latin-1 guess
mangles them). SSIDs are 1..32 octets (IEEE 802.11-2020 §9.4.2.2), passphrases 8..63 characters (§J.4.1).
The camera's view: sRGB scene -> ``camlab.sensor.unprocess`` (Brooks et al. 2019) -> ``camlab.isp`` Pipeline ->
luma (the Y plane of the main NV12 output), which is what firmware hands to a QR decoder.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from camlab.errors import CamlabError

from .accounts import AccountStore, AuthError
from .identity import DeviceIdentity
from .packets import PacketError

log = logging.getLogger(__name__)
PREFIX = "CAMLAB:V:1;"
_SPECIAL = '\\;,:"'


@dataclass(frozen=True)
class WifiCredentials:
    ssid: str
    password: str
    token: str


def _escape(s: str) -> str:
    return "".join("\\" + c if c in _SPECIAL else c for c in s)


def _check(ssid: str, password: str, token: str) -> None:
    if not isinstance(ssid, str) or not 1 <= len(ssid.encode("utf-8")) <= 32:
        raise PacketError(f"ssid {ssid!r}: expected 1..32 UTF-8 octets")
    if not isinstance(password, str) or not (password == "" or 8 <= len(password) <= 63):
        raise PacketError("password: expected 8..63 characters (or empty for an open network)")
    if not isinstance(token, str) or len(token) != 32 or any(c not in "0123456789abcdef" for c in token):
        raise PacketError("token: expected 32 lowercase hex characters")


def encode_payload(ssid: str, password: str, token: str) -> str:
    _check(ssid, password, token)
    return f"{PREFIX}S:{_escape(ssid)};P:{_escape(password)};T:{token};;"


def parse_payload(text: str) -> WifiCredentials:
    """Strict parser: exactly the fields S, P, T once each; raises PacketError otherwise."""
    if not isinstance(text, str) or len(text) > 512:
        raise PacketError("QR payload: expected a string of at most 512 characters")
    if not text.startswith(PREFIX) or not text.endswith(";;"):
        raise PacketError(f"QR payload: expected '{PREFIX}...;;'")
    body = text[len(PREFIX):-1]
    fields: dict[str, str] = {}
    i = 0
    while i < len(body):
        if body[i] == ";":
            i += 1
            continue
        if i + 1 >= len(body) or body[i + 1] != ":":
            raise PacketError(f"QR payload: expected 'KEY:' at {i}")
        key, i = body[i], i + 2
        out = []
        while i < len(body) and body[i] != ";":
            if body[i] == "\\":
                if i + 1 >= len(body) or body[i + 1] not in _SPECIAL:
                    raise PacketError("QR payload: dangling or unknown escape")
                out.append(body[i + 1])
                i += 2
            else:
                out.append(body[i])
                i += 1
        if i >= len(body):
            raise PacketError("QR payload: field not terminated by ';'")
        if key not in "SPT" or key in fields:
            raise PacketError(f"QR payload: unexpected or repeated field {key!r}")
        fields[key] = "".join(out)
    if set(fields) != {"S", "P", "T"}:
        raise PacketError(f"QR payload: fields {sorted(fields)}, expected S, P, T")
    _check(fields["S"], fields["P"], fields["T"])
    return WifiCredentials(fields["S"], fields["P"], fields["T"])


def render_qr(payload: str, box_size: int = 4, border: int = 4) -> np.ndarray:
    """The app's QR image: uint8 (H, W), 0 = dark module, 255 = light; UTF-8 bytes in byte mode, ECC level M."""
    import qrcode

    qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, box_size=box_size, border=border)
    qr.add_data(payload.encode("utf-8"), optimize=0)
    qr.make(fit=True)
    m = np.array(qr.get_matrix(), dtype=bool)          # includes the quiet zone
    img = np.where(m, 0, 255).astype(np.uint8)
    return np.kron(img, np.ones((box_size, box_size), dtype=np.uint8))


def phone_scene(qr: np.ndarray, size: tuple[int, int] = (360, 480), rng: np.random.Generator | None = None,
                screen_level: float = 0.85, room_level: float = 0.25) -> np.ndarray:
    """An sRGB float scene (H, W, 3) in [0, 1]: a dim room with the phone screen showing the QR held up to the lens
    (slightly off-centre, screen white below 1.0 so the sensor does not clip)."""
    rng = np.random.default_rng(0) if rng is None else rng
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w]
    room = room_level * (0.8 + 0.2 * np.sin(xx / 23.0) * np.cos(yy / 17.0))
    scene = np.stack([room * 1.05, room, room * 0.9], axis=-1)
    qh, qw = qr.shape
    if qh > h or qw > w:
        raise CamlabError(f"QR of {qw}x{qh} pixels does not fit a {w}x{h} scene")
    y0 = (h - qh) // 2 + int(rng.integers(-(h - qh) // 4, (h - qh) // 4 + 1))
    x0 = (w - qw) // 2 + int(rng.integers(-(w - qw) // 4, (w - qw) // 4 + 1))
    screen = np.where(qr[..., None] > 127, screen_level, 0.04) * np.array([0.97, 1.0, 1.03])
    scene[y0:y0 + qh, x0:x0 + qw] = screen
    return np.clip(scene, 0.0, 1.0)


def camera_luma(scene_srgb: np.ndarray, rng: np.random.Generator, pipeline=None, gain: float = 2.0,
                night: bool = False) -> np.ndarray:
    """What the camera sees: unprocess to a noisy Bayer frame, run the ISP, return the luma plane (uint8).
    ``night``: IR-lit scene through the IR tuning (monochrome), as when the user provisions in a dark room."""
    import camlab.isp
    from camlab.isp.pipeline import Pipeline
    from camlab.sensor.unprocess import unprocess

    if pipeline is None:
        tuning = Path(camlab.isp.__file__).parent / "tuning" / ("sc3336_ir.yaml" if night else "sc3336_day.yaml")
        pipeline = Pipeline.from_yaml(tuning)
    raw, _ = unprocess(scene_srgb, rng, gain=gain, ir_mode=night)
    res = pipeline.run(raw)
    nv12 = res.main_nv12
    return np.ascontiguousarray(nv12[: nv12.shape[0] * 2 // 3])


def decode_qr(luma: np.ndarray) -> str | None:
    """Decode the first QR code in a luma image; raw bytes are decoded as UTF-8 here (never a charset guess)."""
    import zxingcpp

    for result in zxingcpp.read_barcodes(luma, formats=zxingcpp.BarcodeFormat.QRCode):
        try:
            return bytes(result.bytes).decode("utf-8")
        except UnicodeDecodeError:
            log.warning("QR code content is not UTF-8; ignored")
    import cv2

    text, _, _ = cv2.QRCodeDetector().detectAndDecode(luma)
    return text or None


class WifiEnvironment:
    """The access points around the camera: SSID -> passphrase (a join succeeds only with the right passphrase)."""

    def __init__(self, aps: dict[str, str]):
        self.aps = dict(aps)
        self.joined: str | None = None

    def join(self, ssid: str, password: str) -> bool:
        ok = ssid in self.aps and self.aps[ssid] == password
        self.joined = ssid if ok else None
        return ok


def start_provisioning(store: AccountStore, account: str, ssid: str, password: str,
                       ttl_s: float = 600.0) -> tuple[str, np.ndarray]:
    """App side: a fresh one-time token for ``account`` and the QR image to show."""
    token = store.issue_bind_token(account, ttl_s=ttl_s)
    payload = encode_payload(ssid, password, token)
    return payload, render_qr(payload)


@dataclass
class ProvisioningResult:
    ok: bool
    stage: str            # "decode", "parse", "join", "bind" or "done"
    detail: str = ""
    ssid: str = ""
    owner: str = ""
    cloud_token: str = ""  # the device's credential for the cloud HTTP API (issued once it is bound)


def provision_from_frames(frames, ident: DeviceIdentity, store: AccountStore, wifi: WifiEnvironment,
                          now: float | None = None) -> ProvisioningResult:
    """Device side: scan luma frames until a valid code is read, join the Wi-Fi, bind with the token."""
    creds = None
    last = ProvisioningResult(False, "decode", "no QR code seen")
    for luma in frames:
        text = decode_qr(luma)
        if text is None:
            continue
        try:
            creds = parse_payload(text)
            break
        except PacketError as exc:
            log.warning("provisioning: ignored QR code: %s", exc)
            last = ProvisioningResult(False, "parse", str(exc))
    if creds is None:
        return last
    if not wifi.join(creds.ssid, creds.password):
        log.warning("provisioning: could not join %r", creds.ssid)
        return ProvisioningResult(False, "join", f"could not join {creds.ssid!r}", creds.ssid)
    try:
        owner = store.bind(ident.did, creds.token, ident.bind_proof(creds.token), now=now)
    except AuthError as exc:
        return ProvisioningResult(False, "bind", str(exc), creds.ssid)
    return ProvisioningResult(True, "done", "", creds.ssid, owner, store.issue_api_token("device", ident.did))
