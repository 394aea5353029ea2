"""Raw sensor frames in and out: DNG/camera RAW (LibRaw via rawpy), headerless dumps, MIPI RAW10/RAW12, DNG writer.

References: Adobe Digital Negative (DNG) Specification 1.4.0.0 (2012); TIFF/EP, ISO 12234-2:2001; MIPI Alliance
CSI-2 Specification v1.3, section 11.4 (RAW10 / RAW12 packed pixel data); LibRaw 0.21/0.22 (rawpy).

Every reader returns a :class:`RawFrame` (uint16 CFA plus the metadata the ISP needs). Every failure caused by the
input file raises :class:`camlab.errors.InputFileError` naming the file and what was expected.
"""
from __future__ import annotations

import io
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal, Sequence

import numpy as np

from camlab.errors import CamlabError, InputFileError
from camlab.io_utils import atomic_write_bytes
from camlab.sensor.cfa import PATTERNS, Pattern, channel_offsets, parse_pattern

Endianness = Literal["little", "big"]
Packing = Literal["u16", "mipi_raw10", "mipi_raw12"]

# Linear sRGB (D65) <-> CIE XYZ, IEC 61966-2-1.
SRGB_TO_XYZ = np.array([[0.4124564, 0.3575761, 0.1804375],
                        [0.2126729, 0.7151522, 0.0721750],
                        [0.0193339, 0.1191920, 0.9503041]])
XYZ_TO_SRGB = np.linalg.inv(SRGB_TO_XYZ)


@dataclass
class RawFrame:
    """One raw Bayer frame as it leaves the sensor.

    ``data``: uint16 (H, W) CFA in sensor DN. ``black_level``: one value or per channel (R, Gr, Gb, B).
    ``wb_gains``: as-shot white-balance gains (r, g, b), green = 1, or None. ``ccm``: 3x3 white-balanced camera RGB ->
    linear sRGB (rows sum to 1), or None. ``analog_gain``: sensor gain (1 = base ISO); ``exposure_s``; ``iso``.
    """

    data: np.ndarray
    pattern: Pattern
    black_level: float | tuple[float, float, float, float]
    white_level: float
    bits: int
    wb_gains: tuple[float, float, float] | None = None
    ccm: np.ndarray | None = None
    analog_gain: float = 1.0
    exposure_s: float | None = None
    iso: float | None = None
    source: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        self.pattern = parse_pattern(self.pattern, "RawFrame.pattern")
        if not isinstance(self.data, np.ndarray) or self.data.ndim != 2 or self.data.dtype != np.uint16:
            raise CamlabError(f"RawFrame.data: expected a uint16 (H, W) array, got "
                              f"{getattr(self.data, 'dtype', type(self.data))} {getattr(self.data, 'shape', '')}")
        if not 1 <= int(self.bits) <= 16:
            raise CamlabError(f"RawFrame.bits: expected 1..16, got {self.bits}")
        bl = self.black_levels()
        if not float(self.white_level) > float(bl.max()):
            raise CamlabError(f"RawFrame.white_level: {self.white_level} must exceed the black level {bl.max()}")
        if self.wb_gains is not None:
            g = tuple(float(v) for v in self.wb_gains)
            if len(g) != 3 or not all(np.isfinite(g)) or min(g) <= 0:
                raise CamlabError(f"RawFrame.wb_gains: expected three positive finite gains, got {self.wb_gains}")
            self.wb_gains = g  # type: ignore[assignment]
        if self.ccm is not None:
            self.ccm = np.asarray(self.ccm, dtype=np.float64)
            if self.ccm.shape != (3, 3) or not np.isfinite(self.ccm).all():
                raise CamlabError(f"RawFrame.ccm: expected a finite 3x3 matrix, got shape {self.ccm.shape}")

    @property
    def height(self) -> int:
        return int(self.data.shape[0])

    @property
    def width(self) -> int:
        return int(self.data.shape[1])

    def black_levels(self) -> np.ndarray:
        """Black level per channel (R, Gr, Gb, B) as a float64 (4,) array."""
        bl = np.atleast_1d(np.asarray(self.black_level, dtype=np.float64))
        if bl.size == 1:
            bl = np.repeat(bl, 4)
        if bl.shape != (4,) or not np.isfinite(bl).all():
            raise CamlabError(f"RawFrame.black_level: expected one value or four (R, Gr, Gb, B), got {self.black_level}")
        return bl

    def black_level_map(self) -> np.ndarray:
        """(2, 2) black level of each site of the CFA tile (row, col) as float64."""
        bl = self.black_levels()
        tile = np.zeros((2, 2))
        for i, name in enumerate(("R", "Gr", "Gb", "B")):
            r, c = channel_offsets(self.pattern)[name]
            tile[r, c] = bl[i]
        return tile

    def normalized(self) -> np.ndarray:
        """Linear CFA as float32 (H, W): (data - black) / (white - black), not clipped."""
        tile = self.black_level_map()
        h, w = self.data.shape
        black = np.tile(tile, ((h + 1) // 2, (w + 1) // 2))[:h, :w]
        return ((self.data.astype(np.float64) - black) / (float(self.white_level) - black)).astype(np.float32)

    def with_data(self, data: np.ndarray) -> "RawFrame":
        return replace(self, data=data)


# --------------------------------------------------------------------------------------------------------------------
# rawpy / LibRaw


def _pattern_from_rawpy(raw_pattern: np.ndarray, color_desc: bytes, path: Path) -> Pattern:
    desc = color_desc.decode("ascii", "replace")
    if raw_pattern is None or np.asarray(raw_pattern).shape != (2, 2):
        raise InputFileError(f"{path}: expected a 2x2 Bayer CFA, LibRaw reports pattern "
                             f"{None if raw_pattern is None else np.asarray(raw_pattern).tolist()} ({desc})")
    name = "".join(desc[int(i)] for i in np.asarray(raw_pattern).ravel())
    if name not in PATTERNS:
        raise InputFileError(f"{path}: expected a Bayer CFA (RGGB/GRBG/GBRG/BGGR), got {name!r}")
    return name  # type: ignore[return-value]


def read_raw(path: str | Path, *, width: int | None = None, height: int | None = None, bits: int | None = None,
             pattern: str | None = None, endianness: Endianness = "little",
             black_level: float | Sequence[float] | None = None, white_level: float | None = None,
             packing: Packing = "u16", stride: int | None = None) -> RawFrame:
    """Read a raw frame. DNG/camera RAW via rawpy; with ``width`` given, a headerless dump (see ``read_headerless``).

    For rawpy files the visible area (LibRaw's crop of the sensor margins) is returned, with the black level per
    channel, the white level, the as-shot WB (normalized to green = 1) and LibRaw's camera->sRGB matrix.
    """
    path = Path(path)
    if width is not None or height is not None:
        if width is None or height is None or bits is None or pattern is None:
            raise CamlabError(f"{path}: a headerless raw needs width, height, bits and pattern "
                              f"(got width={width}, height={height}, bits={bits}, pattern={pattern})")
        return read_headerless(path, width, height, bits, pattern, endianness, black_level=black_level,
                               white_level=white_level, packing=packing, stride=stride)
    if not path.is_file():
        raise InputFileError(f"{path}: raw file not found")
    if path.suffix.lower() in (".raw", ".bin"):
        raise InputFileError(f"{path}: a headerless .raw needs --width, --height, --bits and --pattern")
    import rawpy

    try:
        with rawpy.imread(str(path)) as raw:
            if raw.raw_type != rawpy.RawType.Flat:
                raise InputFileError(f"{path}: expected a Bayer CFA raw, LibRaw reports {raw.raw_type}")
            # The colours of the visible area's top-left tile (raw_pattern may refer to the uncropped sensor).
            rp = np.asarray(raw.raw_colors_visible[:2, :2]) if raw.raw_pattern is not None else None
            pat = _pattern_from_rawpy(rp, raw.color_desc, path)
            data = np.array(raw.raw_image_visible, dtype=np.uint16, copy=True)
            bl_by_colour = list(raw.black_level_per_channel)
            offs = channel_offsets(pat)
            black = tuple(float(bl_by_colour[int(rp[offs[n]])]) for n in ("R", "Gr", "Gb", "B"))
            white = float(raw.white_level)
            cam_wb = [float(v) for v in raw.camera_whitebalance][:3]
            ccm = np.asarray(raw.color_matrix, dtype=np.float64)[:, :3]
            iso = None
            exposure = None
            try:
                other = raw.other  # rawpy >= 0.26 exposes shot metadata
                iso = float(other.iso_speed) if other.iso_speed > 0 else None
                exposure = float(other.shutter_speed) if (iso and other.shutter_speed > 0) else None
            except Exception:  # noqa: BLE001 - optional metadata
                pass
    except InputFileError:
        raise
    except Exception as exc:  # rawpy raises LibRawError subclasses, IOError, ValueError
        raise InputFileError(f"{path}: LibRaw cannot open this file as a camera raw/DNG ({type(exc).__name__}: "
                             f"{exc}); expected a DNG or camera RAW, or pass width/height/bits/pattern for a "
                             f"headerless dump") from None
    if iso is None and path.suffix.lower() == ".dng":
        iso, exposure = _dng_shot_tags(path)
    wb = None
    if len(cam_wb) == 3 and cam_wb[1] > 0 and min(cam_wb) > 0:
        wb = (cam_wb[0] / cam_wb[1], 1.0, cam_wb[2] / cam_wb[1])
    if not np.isfinite(ccm).all() or np.allclose(ccm, 0):
        ccm = None
    # White level can be written for the top of the ADC range; bit depth is what it takes to hold it.
    bits = int(np.clip(np.ceil(np.log2(max(white, float(data.max()) if data.size else 1.0) + 1)), 8, 16))
    return RawFrame(data=data, pattern=pat, black_level=black, white_level=white, bits=bits, wb_gains=wb, ccm=ccm,
                    analog_gain=(iso / 100.0 if iso else 1.0), exposure_s=exposure, iso=iso, source=str(path))


def _dng_shot_tags(path: Path) -> tuple[float | None, float | None]:
    """ISO and exposure time from IFD0 of a DNG (where :func:`write_dng` puts them; LibRaw reads only EXIF's)."""
    try:
        import tifffile

        with tifffile.TiffFile(str(path)) as tf:
            tags = tf.pages[0].tags
            iso = tags.get(34855)
            exp = tags.get(33434)
            iso_v = float(np.atleast_1d(iso.value)[0]) if iso is not None else None
            exp_v = None
            if exp is not None:
                num, den = exp.value
                exp_v = float(num) / float(den) if den else None
            return (iso_v if iso_v else None), exp_v
    except Exception:  # noqa: BLE001 - optional metadata only
        return None, None


# --------------------------------------------------------------------------------------------------------------------
# headerless dumps and MIPI CSI-2 packed lines


def _check_dims(path: Path | str, width: int, height: int, bits: int) -> None:
    for name, v in (("width", width), ("height", height)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v <= 0:
            raise CamlabError(f"{path}: {name} must be a positive integer, got {v!r}")
    if not isinstance(bits, (int, np.integer)) or not 1 <= bits <= 16:
        raise CamlabError(f"{path}: bits must be an integer in 1..16, got {bits!r}")


def mipi_line_bytes(width: int, bits: int) -> int:
    """Minimum bytes per packed MIPI line: RAW10 packs 4 pixels in 5 bytes, RAW12 2 pixels in 3 bytes."""
    if bits == 10:
        return (width + 3) // 4 * 5
    if bits == 12:
        return (width + 1) // 2 * 3
    raise CamlabError(f"MIPI packing: bits must be 10 or 12, got {bits}")


def _as_lines(buf: bytes | bytearray | memoryview | np.ndarray, width: int, height: int, bits: int,
              stride: int | None, what: str) -> np.ndarray:
    need = mipi_line_bytes(width, bits)
    stride = need if stride is None else int(stride)
    if stride < need:
        raise CamlabError(f"{what}: line stride {stride} bytes is less than the {need} bytes a {width}-pixel "
                          f"RAW{bits} line needs")
    arr = np.frombuffer(buf, dtype=np.uint8) if not isinstance(buf, np.ndarray) else buf.reshape(-1).view(np.uint8)
    total = stride * height
    # The last line's padding may be omitted by some dumpers.
    if arr.size < total - (stride - need) or arr.size > total:
        raise InputFileError(f"{what}: expected {total} bytes ({height} lines x {stride}-byte stride, RAW{bits} "
                             f"{width}x{height}), got {arr.size} ({'truncated' if arr.size < total else 'oversized'})")
    if arr.size < total:
        arr = np.concatenate([arr, np.zeros(total - arr.size, np.uint8)])
    return arr.reshape(height, stride)[:, :need]


def unpack_mipi_raw10(buf: bytes | np.ndarray, width: int, height: int, stride: int | None = None,
                      what: str = "RAW10 buffer") -> np.ndarray:
    """MIPI CSI-2 RAW10: per 4 pixels, 4 bytes of bits [9:2] then one byte of the 2 LSBs (pixel 0 in bits [1:0])."""
    _check_dims(what, width, height, 10)
    lines = _as_lines(buf, width, height, 10, stride, what).reshape(height, -1, 5).astype(np.uint16)
    lsb = lines[:, :, 4]
    px = np.empty((height, lines.shape[1], 4), np.uint16)
    for k in range(4):
        px[:, :, k] = (lines[:, :, k] << 2) | ((lsb >> (2 * k)) & 0x3)
    return px.reshape(height, -1)[:, :width].copy()


def pack_mipi_raw10(data: np.ndarray, stride: int | None = None) -> bytes:
    """Inverse of :func:`unpack_mipi_raw10` (padding bytes are zero)."""
    data = _check_packable(data, 10)
    h, w = data.shape
    groups = (w + 3) // 4
    padded = np.zeros((h, groups * 4), np.uint16)
    padded[:, :w] = data
    px = padded.reshape(h, groups, 4)
    out = np.zeros((h, groups, 5), np.uint8)
    out[:, :, :4] = (px >> 2).astype(np.uint8)
    out[:, :, 4] = ((px[:, :, 0] & 3) | ((px[:, :, 1] & 3) << 2) | ((px[:, :, 2] & 3) << 4)
                    | ((px[:, :, 3] & 3) << 6)).astype(np.uint8)
    return _pad_stride(out.reshape(h, -1), stride, 10, w)


def unpack_mipi_raw12(buf: bytes | np.ndarray, width: int, height: int, stride: int | None = None,
                      what: str = "RAW12 buffer") -> np.ndarray:
    """MIPI CSI-2 RAW12: per 2 pixels, 2 bytes of bits [11:4] then one byte: pixel 0 LSBs in [3:0], pixel 1 in [7:4]."""
    _check_dims(what, width, height, 12)
    lines = _as_lines(buf, width, height, 12, stride, what).reshape(height, -1, 3).astype(np.uint16)
    px = np.empty((height, lines.shape[1], 2), np.uint16)
    px[:, :, 0] = (lines[:, :, 0] << 4) | (lines[:, :, 2] & 0xF)
    px[:, :, 1] = (lines[:, :, 1] << 4) | (lines[:, :, 2] >> 4)
    return px.reshape(height, -1)[:, :width].copy()


def pack_mipi_raw12(data: np.ndarray, stride: int | None = None) -> bytes:
    """Inverse of :func:`unpack_mipi_raw12` (padding bytes are zero)."""
    data = _check_packable(data, 12)
    h, w = data.shape
    groups = (w + 1) // 2
    padded = np.zeros((h, groups * 2), np.uint16)
    padded[:, :w] = data
    px = padded.reshape(h, groups, 2)
    out = np.zeros((h, groups, 3), np.uint8)
    out[:, :, 0] = (px[:, :, 0] >> 4).astype(np.uint8)
    out[:, :, 1] = (px[:, :, 1] >> 4).astype(np.uint8)
    out[:, :, 2] = ((px[:, :, 0] & 0xF) | ((px[:, :, 1] & 0xF) << 4)).astype(np.uint8)
    return _pad_stride(out.reshape(h, -1), stride, 12, w)


def _check_packable(data: np.ndarray, bits: int) -> np.ndarray:
    data = np.asarray(data)
    if data.ndim != 2 or not np.issubdtype(data.dtype, np.integer):
        raise CamlabError(f"RAW{bits} packing: expected an integer (H, W) array, got {data.dtype} {data.shape}")
    if data.size and (data.min() < 0 or data.max() >= (1 << bits)):
        raise CamlabError(f"RAW{bits} packing: values must lie in 0..{(1 << bits) - 1}, got {data.min()}..{data.max()}")
    return data.astype(np.uint16)


def _pad_stride(lines: np.ndarray, stride: int | None, bits: int, width: int) -> bytes:
    need = mipi_line_bytes(width, bits)
    if stride is None or stride == need:
        return lines.tobytes()
    if stride < need:
        raise CamlabError(f"RAW{bits} packing: line stride {stride} is less than the {need} bytes a line needs")
    out = np.zeros((lines.shape[0], stride), np.uint8)
    out[:, :need] = lines
    return out.tobytes()


def read_headerless(path: str | Path, width: int, height: int, bits: int, pattern: str,
                    endianness: Endianness = "little", *, black_level: float | Sequence[float] | None = None,
                    white_level: float | None = None, packing: Packing = "u16", stride: int | None = None,
                    analog_gain: float = 1.0) -> RawFrame:
    """Read a headerless sensor dump.

    ``packing="u16"``: one 16-bit word per pixel (``endianness`` little/big), ``stride`` in bytes per line (default
    ``2 * width``). ``"mipi_raw10"`` / ``"mipi_raw12"``: MIPI CSI-2 packed lines. Black level defaults to 0 and white
    level to ``2**bits - 1``. A file whose size does not match, or whose values exceed ``bits``, is rejected.
    """
    path = Path(path)
    pat = parse_pattern(pattern, f"{path}: pattern")
    _check_dims(path, width, height, bits)
    if endianness not in ("little", "big"):
        raise CamlabError(f"{path}: endianness must be 'little' or 'big', got {endianness!r}")
    if not path.is_file():
        raise InputFileError(f"{path}: raw file not found")
    buf = path.read_bytes()
    if packing == "u16":
        line = 2 * width if stride is None else int(stride)
        if line < 2 * width or line % 2:
            raise CamlabError(f"{path}: stride must be an even number of bytes >= {2 * width}, got {stride}")
        expected = line * height
        if len(buf) != expected:
            kind = "truncated" if len(buf) < expected else "oversized"
            raise InputFileError(f"{path}: {kind} headerless raw: {width}x{height} 16-bit words with a {line}-byte "
                                 f"stride need {expected} bytes, the file has {len(buf)}; check width/height/bits")
        dtype = np.dtype("<u2" if endianness == "little" else ">u2")
        data = np.frombuffer(buf, dtype=dtype).reshape(height, line // 2)[:, :width].astype(np.uint16)
    elif packing == "mipi_raw10":
        if bits != 10:
            raise CamlabError(f"{path}: packing mipi_raw10 needs bits=10, got {bits}")
        data = unpack_mipi_raw10(buf, width, height, stride, what=str(path))
    elif packing == "mipi_raw12":
        if bits != 12:
            raise CamlabError(f"{path}: packing mipi_raw12 needs bits=12, got {bits}")
        data = unpack_mipi_raw12(buf, width, height, stride, what=str(path))
    else:
        raise CamlabError(f"{path}: packing must be one of u16, mipi_raw10, mipi_raw12, got {packing!r}")
    top = (1 << bits) - 1
    if data.size and int(data.max()) > top:
        raise InputFileError(f"{path}: pixel values reach {int(data.max())}, above the {bits}-bit maximum {top}; "
                             f"check bits and endianness")
    bl = 0.0 if black_level is None else black_level
    wl = float(top if white_level is None else white_level)
    if isinstance(bl, (list, tuple, np.ndarray)):
        bl = tuple(float(v) for v in bl)
        if len(bl) != 4:
            raise CamlabError(f"{path}: black_level must be one value or four (R, Gr, Gb, B), got {black_level}")
    return RawFrame(data=data, pattern=pat, black_level=bl if isinstance(bl, tuple) else float(bl), white_level=wl,
                    bits=int(bits), analog_gain=float(analog_gain), source=str(path))


def write_headerless(frame: RawFrame, path: str | Path, endianness: Endianness = "little") -> None:
    """Write ``frame.data`` as a headerless 16-bit dump (atomic)."""
    dtype = "<u2" if endianness == "little" else ">u2"
    atomic_write_bytes(Path(path), frame.data.astype(dtype).tobytes())


# --------------------------------------------------------------------------------------------------------------------
# DNG writer

LIBRAW_MIN_SIZE = 22  # LibRaw refuses images narrower or shorter than this
_CFA_CODE = {"R": 0, "G": 1, "B": 2}


def _srational(m: np.ndarray, den: int = 10000) -> list[int]:
    out: list[int] = []
    for v in np.asarray(m, dtype=np.float64).ravel():
        out += [int(round(v * den)), den]
    return out


def _rational(v: Sequence[float], den: int = 1000000) -> list[int]:
    out: list[int] = []
    for x in v:
        out += [int(round(float(x) * den)), den]
    return out


def dng_bytes(frame: RawFrame, camera_model: str = "camlab simulated sensor") -> bytes:
    """Encode ``frame`` as an uncompressed DNG 1.4 (CFA in IFD0) and return the bytes."""
    import tifffile

    if frame.height < LIBRAW_MIN_SIZE or frame.width < LIBRAW_MIN_SIZE:
        raise CamlabError(f"write_dng: frame is {frame.width}x{frame.height}; LibRaw rejects raws smaller than "
                          f"{LIBRAW_MIN_SIZE}x{LIBRAW_MIN_SIZE}")
    wb = np.asarray(frame.wb_gains if frame.wb_gains is not None else (1.0, 1.0, 1.0), dtype=np.float64)
    ccm = np.asarray(frame.ccm if frame.ccm is not None else np.eye(3), dtype=np.float64)
    try:
        cam_from_srgb = np.linalg.inv(ccm)
    except np.linalg.LinAlgError:
        raise CamlabError("write_dng: RawFrame.ccm is singular") from None
    # DNG ColorMatrix1 maps XYZ to the raw (un-balanced) camera space: XYZ -> sRGB -> balanced cam -> raw cam.
    color_matrix = np.diag(1.0 / wb) @ cam_from_srgb @ XYZ_TO_SRGB
    white_cam = color_matrix @ (SRGB_TO_XYZ @ np.ones(3))
    color_matrix = color_matrix / white_cam.max()
    neutral = (1.0 / wb) / (1.0 / wb).max()
    bl_tile = frame.black_level_map()
    cfa = bytes(_CFA_CODE[c] for c in frame.pattern)
    extratags = [
        (50706, "B", 4, (1, 4, 0, 0), True),              # DNGVersion
        (50707, "B", 4, (1, 1, 0, 0), True),              # DNGBackwardVersion
        (50708, "s", 0, camera_model, True),              # UniqueCameraModel
        (271, "s", 0, "camlab", True),                    # Make
        (272, "s", 0, camera_model, True),                # Model
        (33421, "H", 2, (2, 2), True),                    # CFARepeatPatternDim
        (33422, "B", 4, cfa, True),                       # CFAPattern
        (50710, "B", 3, (0, 1, 2), True),                 # CFAPlaneColor
        (50711, "H", 1, 1, True),                         # CFALayout: rectangular
        (50713, "H", 2, (2, 2), True),                    # BlackLevelRepeatDim
        (50714, "2I", 4, tuple(_rational(bl_tile.ravel(), 100)), True),  # BlackLevel (RATIONAL)
        (50717, "I", 1, int(round(frame.white_level)), True),           # WhiteLevel
        (50721, "2i", 9, tuple(_srational(color_matrix)), True),        # ColorMatrix1
        (50778, "H", 1, 21, True),                        # CalibrationIlluminant1 = D65
        (50728, "2I", 3, tuple(_rational(neutral)), True),  # AsShotNeutral
    ]
    if frame.iso:
        extratags.append((34855, "H", 1, int(min(65535, round(frame.iso))), True))  # ISOSpeedRatings
    if frame.exposure_s:
        extratags.append((33434, "2I", 1, tuple(_rational([frame.exposure_s], 1000000)), True))  # ExposureTime
    bio = io.BytesIO()
    with tifffile.TiffWriter(bio, bigtiff=False, byteorder="<") as tw:
        tw.write(frame.data.astype(np.uint16), photometric=32803, planarconfig=None, compression=None,
                 subfiletype=0, metadata=None, software="camlab", extratags=extratags)
    return bio.getvalue()


def write_dng(frame: RawFrame, path: str | Path, camera_model: str = "camlab simulated sensor") -> Path:
    """Write ``frame`` as a DNG that LibRaw/rawpy open with the same CFA, pattern, black and white level (atomic)."""
    path = Path(path)
    atomic_write_bytes(path, dng_bytes(frame, camera_model))
    return path
