"""Sound effects that Debian packages ship, gathered into one folder of no-cry training audio (issue 20).

Why: the cry student alarms on sounds it never heard (cartoon voices, animal and appliance effects of the held-out
Tux Paint and Hedgewars packages) far more often than its YAMNet teacher does. The teacher's knowledge reaches the
student only through the audio both hear, so the student needs *diverse* no-cry audio to be distilled on: animal
calls, toys, doors, water, machines, short voices ("hello", grunts), bells. These packages hold ~600 such effects:

==========================  ==================================================  ===========================
package                     what (folder or container)                          licence (debian/copyright)
==========================  ==================================================  ===========================
supertux-data               ``sounds/``, ``speech/`` (game effects, voices)     GPL-2+ / CC-BY-SA-3.0
colobot-common-sounds       ``sounds/`` (robots, machines, nature)              GPL-3+
extremetuxracer-data        ``sounds/`` (wind, snow, fish, tux)                 GPL-2+
frozen-bubble-data          ``snd/`` (pops, voices, effects)                    GPL-2+
sound-theme-freedesktop     ``stereo/`` (desktop alerts, phone ring, bells)     GPL-2+ / CC-BY-SA
warzone2100-data            ``base.wz`` (a zip): ``audio/`` voices, effects     GPL-2+
gcompris-qt-data            ``rcc/*.rcc`` (Qt resources): farm animals,         GPL-3+ / CC-BY-SA / CC0
                            instruments, world music, household effects
==========================  ==================================================  ===========================

They are installed by ``scripts/system_deps.sh --train-audio`` (``make models``) and used only to *train*: the audio
is never redistributed and no recipe ships it; the trained weights do not contain it. None of these packages is one
of the benchmark's held-out sources (Tux Paint, Hedgewars; ``camlab.eval.audio``), and a test keeps it so.

Containers are unpacked with the standard library: Warzone's ``.wz`` is a zip; a Qt ``.rcc`` is Qt's binary
resource format (``qres`` header, big-endian tree of 14/22-byte nodes, UTF-16 names, size-prefixed payloads that
are raw, zlib ``qCompress``-ed (flag 1) or zstd (flag 4); Qt's ``rcc.cpp``, ``RCCResourceLibrary::writeDataBlobs``).
The files land unchanged (no transcoding) under ``<cache>/packaged_audio/<package>/``, written atomically.
"""
from __future__ import annotations

import os
import shutil
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from camlab import settings
from camlab.errors import InputFileError

AUDIO_SUFFIXES = (".wav", ".ogg", ".oga", ".flac")
INSTALL_HINT = "`make models` installs them (scripts/system_deps.sh --train-audio)"
# written last, after every file: its presence means a finished gathering, so a re-run skips the copy
MARKER = ".complete"


@dataclass(frozen=True)
class PackagedSource:
    package: str
    kind: str            # "dir" (read the folder), "zip" (a zip archive), "rcc" (Qt resource files matching glob)
    path: str            # folder, archive, or folder of .rcc files
    inner: str = ""      # zip: member prefix kept; rcc: file glob


SOURCES: tuple[PackagedSource, ...] = (
    PackagedSource("supertux-data", "dir", "/usr/share/games/supertux2/sounds"),
    PackagedSource("supertux-data", "dir", "/usr/share/games/supertux2/speech"),
    PackagedSource("colobot-common-sounds", "dir", "/usr/share/games/colobot/sounds"),
    PackagedSource("extremetuxracer-data", "dir", "/usr/share/games/etr/sounds"),
    PackagedSource("frozen-bubble-data", "dir", "/usr/share/games/frozen-bubble/snd"),
    PackagedSource("sound-theme-freedesktop", "dir", "/usr/share/sounds/freedesktop/stereo"),
    PackagedSource("warzone2100-data", "zip", "/usr/share/games/warzone2100/base.wz", "audio/"),
    PackagedSource("gcompris-qt-data", "rcc", "/usr/share/gcompris-qt/rcc", "*.rcc"),
)
PACKAGES = tuple(dict.fromkeys(s.package for s in SOURCES))


# --------------------------------------------------------------------------------------------------- Qt resources
def rcc_files(blob: bytes, where: str = "<rcc>") -> list[tuple[str, bytes]]:
    """Every file of a Qt binary resource (``.rcc``) as ``(path, bytes)``; zstd entries are skipped (none here)."""
    if len(blob) < 20 or blob[:4] != b"qres":
        raise InputFileError(f"{where}: not a Qt resource file (expected the 'qres' magic)")
    version, tree, data, names = struct.unpack(">IIII", blob[4:20])
    if version not in (1, 2, 3):
        raise InputFileError(f"{where}: Qt resource format version {version}; expected 1, 2 or 3")
    node = 14 if version == 1 else 22
    out: list[tuple[str, bytes]] = []

    def name_at(offset: int) -> str:
        n = struct.unpack(">H", blob[names + offset:names + offset + 2])[0]
        start = names + offset + 6
        return blob[start:start + 2 * n].decode("utf-16-be")

    def walk(index: int, prefix: str, depth: int) -> None:
        if depth > 64:
            raise InputFileError(f"{where}: resource tree deeper than 64 levels (corrupt)")
        base = tree + index * node
        name_offset, flags = struct.unpack(">IH", blob[base:base + 6])
        name = name_at(name_offset) if index else ""
        if flags & 2:
            count, first = struct.unpack(">II", blob[base + 6:base + 14])
            for k in range(count):
                walk(first + k, f"{prefix}{name}/" if index else "", depth + 1)
            return
        offset = data + struct.unpack(">I", blob[base + 10:base + 14])[0]
        size = struct.unpack(">I", blob[offset:offset + 4])[0]
        payload = blob[offset + 4:offset + 4 + size]
        if flags & 4:
            return
        if flags & 1:
            payload = zlib.decompress(payload[4:])   # qCompress: 4-byte big-endian length, then zlib
        out.append((prefix + name, payload))

    try:
        walk(0, "", 0)
    except (struct.error, zlib.error, UnicodeDecodeError) as exc:
        raise InputFileError(f"{where}: corrupt Qt resource file ({type(exc).__name__}: {exc})") from None
    return out


# --------------------------------------------------------------------------------------------------- gathering
def _members(source: PackagedSource) -> list[tuple[str, bytes | Path]]:
    """``(relative name, bytes or file path)`` of the audio files of one source."""
    path = Path(source.path)
    if source.kind == "dir":
        return [(f.name, f) for f in sorted(path.iterdir()) if f.suffix.lower() in AUDIO_SUFFIXES and f.is_file()]
    if source.kind == "zip":
        with zipfile.ZipFile(path) as z:
            return [(n[len(source.inner):].replace("/", "_"), z.read(n)) for n in sorted(z.namelist())
                    if n.startswith(source.inner) and Path(n).suffix.lower() in AUDIO_SUFFIXES]
    if source.kind == "rcc":
        out: list[tuple[str, bytes | Path]] = []
        for rcc in sorted(path.glob(source.inner)):
            for name, payload in rcc_files(rcc.read_bytes(), str(rcc)):
                if Path(name).suffix.lower() in AUDIO_SUFFIXES:
                    out.append((f"{rcc.stem}_{Path(name).name}", payload))
        return out
    raise ValueError(f"unknown packaged source kind {source.kind!r}")


def _write_atomic(dst: Path, content: bytes | Path) -> None:
    tmp = dst.with_name(dst.name + ".tmp")
    with open(tmp, "wb") as f:
        if isinstance(content, Path):
            with open(content, "rb") as src:
                shutil.copyfileobj(src, f)
        else:
            f.write(content)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, dst)


def missing_sources() -> list[str]:
    """Packages whose files are not on this machine (empty when everything is installed)."""
    return list(dict.fromkeys(s.package for s in SOURCES if not Path(s.path).exists()))


def packaged_folder(root: Path | None = None) -> Path:
    """The gathered folder (``<cache>/packaged_audio``), built on first use; one sub-folder per package.

    Raises :class:`InputFileError` naming the install step when a package is missing."""
    missing = missing_sources()
    if missing:
        raise InputFileError(f"packaged training audio missing: {', '.join(missing)}; {INSTALL_HINT}")
    root = Path(root) if root is not None else settings.cache_root() / "packaged_audio"
    marker = root / MARKER
    if marker.is_file():
        return root
    for source in SOURCES:
        folder = root / source.package
        folder.mkdir(parents=True, exist_ok=True)
        for name, content in _members(source):
            dst = folder / name
            if not dst.is_file():
                _write_atomic(dst, content)
    _write_atomic(marker, b"\n".join(p.encode() for p in PACKAGES) + b"\n")
    return root


def resolve_negative_folder(entry: str) -> str:
    """An ``extra_negatives`` entry: ``@packaged`` is this module's gathered folder; anything else a folder path."""
    return str(packaged_folder()) if entry == "@packaged" else entry


if __name__ == "__main__":
    print(packaged_folder())
