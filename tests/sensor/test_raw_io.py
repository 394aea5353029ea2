"""raw_io: real files, DNG round trip through rawpy/LibRaw, headerless and MIPI packing, bad input."""
from __future__ import annotations

import numpy as np
import pytest
import rawpy
from hypothesis import given, settings
from hypothesis import strategies as st

from camlab.errors import CamlabError, InputFileError
from camlab.sensor.cfa import PATTERNS, channel_offsets
from camlab.sensor.raw_io import (RawFrame, pack_mipi_raw10, pack_mipi_raw12, read_headerless, read_raw,
                                  unpack_mipi_raw10, unpack_mipi_raw12, write_dng, write_headerless)

CCM = np.array([[1.62, -0.41, -0.21], [-0.28, 1.51, -0.23], [0.02, -0.52, 1.50]])


def test_colorchart_dng_levels(shared_data):
    f = read_raw(shared_data / "raw" / "colorchart.dng")
    assert f.pattern == "RGGB"
    assert f.black_levels().tolist() == [2056.0] * 4
    assert f.white_level == 15000.0
    assert f.data.dtype == np.uint16 and f.data.shape == (1156, 1734)  # LibRaw's visible crop of 1888x1182
    assert f.wb_gains is not None and f.wb_gains[1] == 1.0 and 2.0 < f.wb_gains[0] < 3.0
    assert f.ccm is not None and np.allclose(f.ccm.sum(axis=1), 1.0, atol=0.02)
    norm = f.normalized()
    assert -0.05 < float(np.median(norm)) < 1.0


def test_dsc1339_rggb_grbg_relation(shared_data):
    kw = dict(width=768, height=512, bits=14, black_level=600, white_level=15520)
    r = read_headerless(shared_data / "raw" / "DSC_1339_768x512_rggb.raw", pattern="RGGB", **kw)
    g = read_headerless(shared_data / "raw" / "DSC_1339_768x512_grbg.raw", pattern="GRBG", **kw)
    assert r.data.max() <= 16383 and r.black_level == 600.0
    # The GRBG dump holds the RGGB frame with the columns of each pair exchanged: every colour plane, located
    # through its own pattern, is identical.
    for name in ("R", "Gr", "Gb", "B"):
        (ry, rx), (gy, gx) = channel_offsets("RGGB")[name], channel_offsets("GRBG")[name]
        np.testing.assert_array_equal(r.data[ry::2, rx::2], g.data[gy::2, gx::2])
    assert not np.array_equal(r.data, g.data)


def test_openisp_10bit(shared_data):
    f = read_raw(shared_data / "raw" / "openisp_1920x1080_rggb_10bit.raw", width=1920, height=1080, bits=10,
                 pattern="rggb")
    assert f.data.shape == (1080, 1920) and f.bits == 10 and f.white_level == 1023.0
    assert 0 <= f.data.min() and f.data.max() <= 1023
    with pytest.raises(InputFileError, match="8-bit maximum"):
        read_headerless(shared_data / "raw" / "openisp_1920x1080_rggb_10bit.raw", 1920, 1080, 8, "RGGB")
    with pytest.raises(InputFileError, match="endianness"):
        read_headerless(shared_data / "raw" / "openisp_1920x1080_rggb_10bit.raw", 1920, 1080, 10, "RGGB", "big")


@pytest.mark.parametrize("pattern", PATTERNS)
def test_dng_roundtrip_through_rawpy(tmp_path, pattern):
    rng = np.random.default_rng(7)
    data = rng.integers(0, 4096, (47, 62)).astype(np.uint16)  # odd height
    f = RawFrame(data, pattern, (240, 241, 242, 243), 4095, 12, wb_gains=(2.1, 1.0, 1.6), ccm=CCM, iso=800,
                 exposure_s=1 / 30)
    p = write_dng(f, tmp_path / f"{pattern}.dng")
    with rawpy.imread(str(p)) as raw:
        np.testing.assert_array_equal(raw.raw_image, data)
        desc = raw.color_desc.decode()
        assert "".join(desc[i] for i in raw.raw_pattern.ravel()) == pattern
        assert raw.white_level == 4095
        np.testing.assert_allclose(np.asarray(raw.color_matrix)[:, :3], CCM, atol=2e-3)
    g = read_raw(p)
    np.testing.assert_array_equal(g.data, data)
    assert g.pattern == pattern
    assert g.black_levels().tolist() == [240, 241, 242, 243]
    assert g.white_level == 4095 and g.bits == 12
    np.testing.assert_allclose(g.wb_gains, (2.1, 1.0, 1.6), rtol=1e-5)
    assert g.iso == 800 and g.analog_gain == 8.0 and abs(g.exposure_s - 1 / 30) < 1e-6


def test_headerless_to_dng(tmp_path, shared_data):
    f = read_headerless(shared_data / "raw" / "DSC_1339_768x512_grbg.raw", 768, 512, 14, "GRBG",
                        black_level=600, white_level=15520)
    g = read_raw(write_dng(f, tmp_path / "dsc.dng"))
    assert g.pattern == "GRBG" and g.black_levels().tolist() == [600.0] * 4 and g.white_level == 15520
    np.testing.assert_array_equal(g.data, f.data)


@pytest.mark.parametrize("endianness", ["little", "big"])
def test_headerless_stride_and_endianness(tmp_path, endianness):
    rng = np.random.default_rng(1)
    data = rng.integers(0, 4096, (9, 13)).astype(np.uint16)
    padded = np.zeros((9, 16), np.uint16)
    padded[:, :13] = data
    p = tmp_path / "f.raw"
    p.write_bytes(padded.astype("<u2" if endianness == "little" else ">u2").tobytes())
    f = read_headerless(p, 13, 9, 12, "BGGR", endianness, stride=32)
    np.testing.assert_array_equal(f.data, data)
    write_headerless(f, tmp_path / "g.raw", endianness)
    assert read_headerless(tmp_path / "g.raw", 13, 9, 12, "BGGR", endianness).data.tolist() == data.tolist()


def test_headerless_bad_sizes(tmp_path):
    p = tmp_path / "f.raw"
    p.write_bytes(np.zeros(100 * 50, "<u2").tobytes())
    with pytest.raises(InputFileError, match=r"truncated.*need 10200 bytes, the file has 10000"):
        read_headerless(p, 100, 51, 12, "RGGB")
    with pytest.raises(InputFileError, match=r"oversized.*f\.raw|f\.raw.*oversized"):
        read_headerless(p, 100, 49, 12, "RGGB")
    with pytest.raises(CamlabError, match="pattern.*'RGBG'"):
        read_headerless(p, 100, 50, 12, "RGBG")
    with pytest.raises(InputFileError, match="not found"):
        read_headerless(tmp_path / "missing.raw", 100, 50, 12, "RGGB")
    with pytest.raises(CamlabError, match="width must be a positive integer"):
        read_headerless(p, 0, 50, 12, "RGGB")
    with pytest.raises(InputFileError, match="needs --width"):
        read_raw(p)


def test_unreadable_dng_is_one_clear_error(tmp_path):
    p = tmp_path / "broken.dng"
    p.write_bytes(b"II*\x00" + bytes(200))
    with pytest.raises(InputFileError, match=r"broken\.dng.*LibRaw cannot open"):
        read_raw(p)
    with pytest.raises(InputFileError, match="not found"):
        read_raw(tmp_path / "nope.dng")


def test_write_dng_rejects_tiny_frames(tmp_path):
    with pytest.raises(CamlabError, match="LibRaw rejects"):
        write_dng(RawFrame(np.zeros((8, 8), np.uint16), "RGGB", 0, 1023, 10), tmp_path / "t.dng")


def test_rawframe_validation():
    with pytest.raises(CamlabError, match="uint16"):
        RawFrame(np.zeros((4, 4), np.float32), "RGGB", 0, 1023, 10)
    with pytest.raises(CamlabError, match="white_level"):
        RawFrame(np.zeros((4, 4), np.uint16), "RGGB", 64, 64, 10)
    with pytest.raises(CamlabError, match="pattern"):
        RawFrame(np.zeros((4, 4), np.uint16), "XGGB", 64, 1023, 10)
    f = RawFrame(np.full((4, 4), 1023, np.uint16), "GBRG", (64, 64, 64, 64), 1023, 10)
    assert np.allclose(f.normalized(), 1.0)


def test_mipi_known_bytes():
    # RAW10: pixels 0x3FF, 0x001, 0x2AA, 0x155 -> MSB bytes 0xFF, 0x00, 0xAA, 0x55; LSB byte 0b01_10_01_11.
    px = np.array([[0x3FF, 0x001, 0x2AA, 0x155]], np.uint16)
    assert pack_mipi_raw10(px) == bytes([0xFF, 0x00, 0xAA, 0x55, 0b01100111])
    # RAW12: 0xABC, 0x123 -> 0xAB, 0x12, 0x3C.
    assert pack_mipi_raw12(np.array([[0xABC, 0x123]], np.uint16)) == bytes([0xAB, 0x12, 0x3C])


@settings(max_examples=40, deadline=None)
@given(w=st.integers(1, 23), h=st.integers(1, 5), pad=st.integers(0, 7), seed=st.integers(0, 2**16),
       bits=st.sampled_from([10, 12]))
def test_mipi_roundtrip(w, h, pad, seed, bits):
    data = np.random.default_rng(seed).integers(0, 1 << bits, (h, w)).astype(np.uint16)
    pack, unpack = (pack_mipi_raw10, unpack_mipi_raw10) if bits == 10 else (pack_mipi_raw12, unpack_mipi_raw12)
    need = (w + 3) // 4 * 5 if bits == 10 else (w + 1) // 2 * 3
    stride = need + pad
    buf = pack(data, stride=stride)
    assert len(buf) == stride * h
    np.testing.assert_array_equal(unpack(buf, w, h, stride=stride), data)


def test_mipi_file_reader_and_errors(tmp_path):
    data = np.random.default_rng(3).integers(0, 4096, (6, 10)).astype(np.uint16)
    p = tmp_path / "f.raw12"
    p.write_bytes(pack_mipi_raw12(data, stride=16))
    f = read_headerless(p, 10, 6, 12, "GRBG", packing="mipi_raw12", stride=16)
    np.testing.assert_array_equal(f.data, data)
    p.write_bytes(pack_mipi_raw12(data, stride=16)[:-20])
    with pytest.raises(InputFileError, match="truncated"):
        read_headerless(p, 10, 6, 12, "GRBG", packing="mipi_raw12", stride=16)
    with pytest.raises(CamlabError, match="less than"):
        unpack_mipi_raw10(bytes(100), 10, 2, stride=5)
    with pytest.raises(CamlabError, match="0..1023"):
        pack_mipi_raw10(np.full((2, 4), 1024, np.uint16))


@settings(max_examples=25, deadline=None)
@given(blob=st.binary(min_size=0, max_size=600), tiff=st.booleans())
def test_garbage_dng_always_one_clear_error(tmp_path_factory, blob, tiff):
    p = tmp_path_factory.mktemp("fuzz") / "x.dng"
    p.write_bytes((b"II*\x00\x08\x00\x00\x00" if tiff else b"") + blob)
    with pytest.raises(InputFileError, match=r"x\.dng"):
        read_raw(p)


@settings(max_examples=30, deadline=None)
@given(w=st.integers(1, 40), h=st.integers(1, 12), bits=st.integers(8, 16), big=st.booleans(),
       pattern=st.sampled_from(PATTERNS), seed=st.integers(0, 1000))
def test_headerless_roundtrip_property(tmp_path_factory, w, h, bits, big, pattern, seed):
    data = np.random.default_rng(seed).integers(0, 1 << bits, (h, w)).astype(np.uint16)
    end = "big" if big else "little"
    f = RawFrame(data, pattern, 0, (1 << bits) - 1, bits)
    p = tmp_path_factory.mktemp("hl") / "f.raw"
    write_headerless(f, p, end)
    g = read_headerless(p, w, h, bits, pattern, end)
    np.testing.assert_array_equal(g.data, data)
    assert g.pattern == pattern and g.white_level == (1 << bits) - 1
