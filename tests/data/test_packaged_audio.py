"""Packaged sound effects as cry-training negatives: Qt resource parsing, gathering, grouping, install errors."""
from __future__ import annotations

import struct
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

from camlab.data import packaged_audio as pa
from camlab.data.audio import Clip, group_folder, recording_group
from camlab.errors import InputFileError


def _rcc(files: dict[str, tuple[bytes, bool]], version: int = 2) -> bytes:
    """A Qt binary resource holding ``files`` (``name -> (bytes, qCompress?)``) under one folder ``res/``,
    laid out as Qt's rcc writes it (tree of nodes, UTF-16BE names, size-prefixed payloads)."""
    node = 14 if version == 1 else 22
    names = b""
    name_off: dict[str, int] = {}
    for n in ["res", *files]:
        name_off[n] = len(names)
        enc = n.encode("utf-16-be")
        names += struct.pack(">HI", len(n), 0) + enc
    data = b""
    data_off = {}
    for n, (payload, compress) in files.items():
        body = struct.pack(">I", len(payload)) + zlib.compress(payload) if compress else payload
        data_off[n] = len(data)
        data += struct.pack(">I", len(body)) + body
    pad = b"\0" * (node - 14)
    tree = struct.pack(">IHII", 0, 2, 1, 1) + pad                     # root: one child (index 1)
    tree += struct.pack(">IHII", name_off["res"], 2, len(files), 2) + pad   # res/: children from index 2
    for n, (_, compress) in files.items():
        tree += struct.pack(">IHHHI", name_off[n], 1 if compress else 0, 0, 0, data_off[n]) + pad
    header_len = 20 if version < 3 else 24
    t = header_len
    d = t + len(tree)
    m = d + len(data)
    header = b"qres" + struct.pack(">IIII", version, t, d, m) + (b"\0\0\0\0" if version >= 3 else b"")
    return header + tree + data + names


def _wav_bytes(seconds: float = 0.5, freq: float = 440.0) -> bytes:
    import io

    import soundfile as sf

    buf = io.BytesIO()
    t = np.arange(int(8000 * seconds)) / 8000
    sf.write(buf, (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32), 8000, format="WAV")
    return buf.getvalue()


@pytest.mark.parametrize("version", [1, 2, 3])
def test_rcc_files_reads_raw_and_qcompressed_entries(version):
    blob = _rcc({"a.ogg": (b"OggS-raw", False), "b.wav": (b"RIFF" + b"x" * 300, True)}, version)
    assert pa.rcc_files(blob) == [("res/a.ogg", b"OggS-raw"), ("res/b.wav", b"RIFF" + b"x" * 300)]


def test_rcc_files_refuses_what_is_not_a_resource():
    with pytest.raises(InputFileError, match="bad.rcc: not a Qt resource"):
        pa.rcc_files(b"PK\3\4 not qres at all", "bad.rcc")
    blob = _rcc({"a.ogg": (b"x" * 40, True)})
    with pytest.raises(InputFileError, match="cut.rcc: corrupt"):
        pa.rcc_files(blob[:-30], "cut.rcc")


def _fake_sources(tmp_path: Path) -> tuple[pa.PackagedSource, ...]:
    plain = tmp_path / "usr" / "sounds"
    plain.mkdir(parents=True)
    (plain / "door.wav").write_bytes(_wav_bytes(0.4, 300))
    (plain / "README").write_text("not audio")
    archive = tmp_path / "usr" / "base.wz"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("audio/voc/hello.wav", _wav_bytes(0.6, 500))
        z.writestr("texpages/x.png", b"png")
    rcc_dir = tmp_path / "usr" / "rcc"
    rcc_dir.mkdir()
    (rcc_dir / "farm.rcc").write_bytes(_rcc({"cow.wav": (_wav_bytes(0.7, 120), True), "x.svg": (b"<svg/>", False)}))
    return (pa.PackagedSource("pkg-plain", "dir", str(plain)),
            pa.PackagedSource("pkg-zip", "zip", str(archive), "audio/"),
            pa.PackagedSource("pkg-rcc", "rcc", str(rcc_dir), "*.rcc"))


def test_packaged_folder_gathers_every_container_and_groups_by_package_and_file(tmp_path, monkeypatch):
    import soundfile as sf

    monkeypatch.setattr(pa, "SOURCES", _fake_sources(tmp_path))
    root = pa.packaged_folder(tmp_path / "cache" / "packaged_audio")
    got = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    assert got == [".complete", "pkg-plain/door.wav", "pkg-rcc/farm_cow.wav", "pkg-zip/voc_hello.wav"]
    assert sf.info(str(root / "pkg-rcc" / "farm_cow.wav")).duration == pytest.approx(0.7)
    cow = root / "pkg-rcc" / "farm_cow.wav"
    assert recording_group(cow) == ("packaged", "packaged:pkg-rcc/farm_cow")
    assert group_folder(Clip(cow, 0, "packaged", "packaged:pkg-rcc/farm_cow")) == "packaged_pkg-rcc"
    assert not list(root.rglob("*.tmp"))


def test_a_missing_package_names_the_install_step(tmp_path, monkeypatch):
    srcs = _fake_sources(tmp_path) + (pa.PackagedSource("pkg-gone", "dir", str(tmp_path / "nowhere")),)
    monkeypatch.setattr(pa, "SOURCES", srcs)
    with pytest.raises(InputFileError, match=r"pkg-gone.*make models"):
        pa.packaged_folder(tmp_path / "cache")
    with pytest.raises(InputFileError, match=r"pkg-gone.*make models"):
        pa.resolve_negative_folder("@packaged")
    assert pa.resolve_negative_folder("/usr/share/asterisk/moh") == "/usr/share/asterisk/moh"


def test_no_packaged_source_is_a_held_out_benchmark_source():
    from camlab.data.audio import HEDGEWARS_SOUNDS, TUXPAINT_STAMPS

    held_out = [HEDGEWARS_SOUNDS, TUXPAINT_STAMPS.parent]
    for s in pa.SOURCES:
        p = Path(s.path)
        assert not any(p == h or h in p.parents or p in h.parents for h in held_out), s
        assert s.package not in ("tuxpaint-stamps-default", "hedgewars-data")


@pytest.mark.skipif(not Path("/usr/share/gcompris-qt/rcc/explore_farm_animals.rcc").is_file(),
                    reason="gcompris-qt-data not installed (make models installs it)")
def test_the_real_gcompris_resource_yields_decodable_animal_sounds():
    import io

    import soundfile as sf

    files = pa.rcc_files(Path("/usr/share/gcompris-qt/rcc/explore_farm_animals.rcc").read_bytes())
    sounds = [(n, b) for n, b in files if n.endswith(".ogg")]
    assert len(sounds) >= 5
    for _, blob in sounds:
        assert sf.info(io.BytesIO(blob)).duration > 0.1


def test_the_install_script_installs_every_packaged_source():
    """scripts/system_deps.sh --train-audio (run by make models) is where the packages come from: it must list
    exactly these plus the music the release cry recipe reads in place; --data (make bench) implies it."""
    import re

    from camlab.data.audio import MUSIC_NEGATIVES, MUSIC_PACKAGE
    from camlab.train.cry import RELEASE_RECIPE, load_train_config

    script = (Path(__file__).resolve().parents[2] / "scripts" / "system_deps.sh").read_text()
    m = re.search(r"TRAIN_AUDIO=\(([^)]*)\)", script)
    assert m, "scripts/system_deps.sh: no TRAIN_AUDIO=(...) list"
    assert MUSIC_NEGATIVES in load_train_config(RELEASE_RECIPE).data.extra_negatives
    assert sorted(m.group(1).split()) == sorted([*pa.PACKAGES, MUSIC_PACKAGE])
    data = re.search(r'"--data" \] && PKGS\+=\(([^)]*)\)', script)
    assert data and '"${TRAIN_AUDIO[@]}"' in data.group(1).split()


def test_a_missing_negative_folder_names_the_step_that_installs_the_release_sources(tmp_path):
    """The release recipe's music comes from --train-audio (make models), so the error must say so."""
    from camlab.data.audio import build_index

    (tmp_path / "infant_cry").mkdir()
    (tmp_path / "household").mkdir()
    with pytest.raises(InputFileError, match=r"absent_music: .*system_deps.sh --train-audio.*make models"):
        build_index(tmp_path, extra_negatives=(str(tmp_path / "absent_music"),))
