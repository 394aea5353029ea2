"""The export bundle contract: manifest JSON Schema (versioned), loader and sha256 verification.

What the firmware build and device_sim consume from ``exports/<model>/<version>/``. The schema lives beside this file
(``manifest.schema.json``, JSON Schema draft 2020-12, https://json-schema.org/draft/2020-12/json-schema-core) and is
documented in ``exports/README.md``. File integrity uses SHA-256 (FIPS 180-4). Dependency-light on purpose (stdlib +
jsonschema): device_sim imports this module, never camlab.deploy.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from camlab.errors import InputFileError

SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"
SCHEMA_PATH = Path(__file__).with_name("manifest.schema.json")


@lru_cache(maxsize=1)
def schema() -> dict:
    """The manifest JSON Schema (``schema_version`` 1)."""
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, streamed."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while True:
            block = fh.read(chunk)
            if not block:
                break
            h.update(block)
    return h.hexdigest()


def file_entry(path: str | Path, role: str | None = None) -> dict:
    """``{"sha256", "bytes"[, "role"]}`` for one bundle file."""
    path = Path(path)
    entry: dict[str, Any] = {"sha256": sha256_file(path), "bytes": path.stat().st_size}
    if role:
        entry["role"] = role
    return entry


def _field_path(parts) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "<root>"


def schema_errors(manifest: Any) -> list[str]:
    """Every schema violation as ``'field.path': message`` (empty list when valid)."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema())
    errors = []
    for err in sorted(validator.iter_errors(manifest), key=lambda e: (list(map(str, e.absolute_path)), e.message)):
        # for oneOf/if-then failures the deepest cause names the real field
        leaf = err
        while leaf.context:
            leaf = min(leaf.context, key=lambda e: -len(e.absolute_path))
        where = _field_path(leaf.absolute_path if len(leaf.absolute_path) >= len(err.absolute_path)
                            else err.absolute_path)
        errors.append(f"field '{where}': {leaf.message if leaf is not err else err.message}")
    # semantic checks a JSON Schema cannot express
    if isinstance(manifest, dict) and not errors:
        files = manifest["files"]
        for key, rel in manifest["model_files"].items():
            if rel not in files:
                errors.append(f"field 'model_files.{key}': '{rel}' is not listed in 'files'")
        if manifest["model"]["task"] == "detection":
            dec = manifest["decode"]
            th = dec["score_thresholds"]
            if isinstance(th, list) and len(th) != len(dec["classes"]):
                errors.append(f"field 'decode.score_thresholds': {len(th)} values for {len(dec['classes'])} classes")
            if isinstance(th, dict) and set(th) != set(dec["classes"]):
                errors.append(f"field 'decode.score_thresholds': keys {sorted(th)} differ from decode.classes "
                              f"{dec['classes']}")
        for i, spec in enumerate(manifest["inputs"]):
            ch = spec["shape"][1] if len(spec["shape"]) == 4 else None
            for key in ("mean", "std"):
                v = spec[key]
                if isinstance(v, list) and ch is not None and len(v) not in (1, ch):
                    errors.append(f"field 'inputs[{i}].{key}': {len(v)} values for {ch} channels")
            std = spec["std"] if isinstance(spec["std"], list) else [spec["std"]]
            if any(s == 0 for s in std):
                errors.append(f"field 'inputs[{i}].std': must not be 0")
    return errors


def validate_manifest(manifest: Any, origin: str = MANIFEST_NAME) -> None:
    """Raise InputFileError listing every schema violation of ``manifest`` (a parsed dict)."""
    errors = schema_errors(manifest)
    if errors:
        more = f" (+{len(errors) - 5} more)" if len(errors) > 5 else ""
        raise InputFileError(f"{origin}: manifest fails schema v{SCHEMA_VERSION}: " + "; ".join(errors[:5]) + more)


def device_files(manifest: dict) -> list[str]:
    """Bundle-relative paths the camera stores in flash: the INT8 model (``model_files.int8``) and the manifest.

    The FP32 reference, the calibration set and reports stay on the host (export-side evidence); the partition
    packer, the OTA model package and device_sim's flash figure all count only these.
    """
    return [manifest["model_files"]["int8"], MANIFEST_NAME]


def verify_files(bundle_dir: Path, manifest: dict, *, device: bool = False) -> None:
    """Check that every listed file exists with its byte count and sha256, and that nothing unlisted is present.

    ``device``: the folder is a camera-side copy (unpacked from the flash partition or an OTA package), so only the
    :func:`device_files` must be present; a host-only file that is present is still checked.
    """
    bundle_dir = Path(bundle_dir)
    required = set(device_files(manifest)) - {MANIFEST_NAME} if device else set(manifest["files"])
    for rel, entry in manifest["files"].items():
        path = bundle_dir / rel
        if rel not in required and not path.exists():
            continue
        if not path.is_file():
            raise InputFileError(f"{path}: listed in manifest 'files' but missing from the bundle")
        size = path.stat().st_size
        if size != entry["bytes"]:
            raise InputFileError(f"{path}: size {size} bytes, manifest 'files.{rel}.bytes' says {entry['bytes']}")
        digest = sha256_file(path)
        if digest != entry["sha256"]:
            raise InputFileError(f"{path}: sha256 mismatch (file {digest[:16]}..., manifest 'files.{rel}.sha256' "
                                 f"{entry['sha256'][:16]}...): the bundle was modified or corrupted")
    listed = set(manifest["files"]) | {MANIFEST_NAME}
    for path in sorted(bundle_dir.rglob("*")):
        if path.is_file() and path.relative_to(bundle_dir).as_posix() not in listed:
            raise InputFileError(f"{path}: file in the bundle is not listed in manifest 'files'")


@dataclass(frozen=True)
class Bundle:
    """A loaded export bundle: its folder and its validated manifest."""

    root: Path
    manifest: dict

    @property
    def name(self) -> str:
        return self.manifest["model"]["name"]

    @property
    def task(self) -> str:
        return self.manifest["model"]["task"]

    @property
    def version(self) -> str:
        return self.manifest["model"]["version"]

    @property
    def input(self) -> dict:
        """The single input spec (name, shape, layout, dtype, color_format, mean, std, value_range, resize)."""
        return self.manifest["inputs"][0]

    @property
    def inputs(self) -> list[dict]:
        return self.manifest["inputs"]

    @property
    def outputs(self) -> list[dict]:
        return self.manifest["outputs"]

    @property
    def decode(self) -> dict:
        return self.manifest["decode"]

    @property
    def features(self) -> dict | None:
        return self.manifest.get("features")

    @property
    def quantization(self) -> dict:
        return self.manifest["quantization"]

    @property
    def chips(self) -> list[str]:
        return self.manifest["chips"]

    def model_path(self, variant: str = "int8") -> Path:
        """Path of ``model.onnx`` (``int8``, QDQ) or ``model_fp32.onnx`` (``fp32``)."""
        if variant not in ("int8", "fp32"):
            raise InputFileError(f"{self.root}: model variant must be 'int8' or 'fp32', got {variant!r}")
        return self.root / self.manifest["model_files"][variant]

    def normalize(self, source):
        """Source samples (``value_range`` units, NCHW float) -> model input: ``(x - mean) / std`` per channel."""
        import numpy as np

        spec = self.input
        x = np.asarray(source, dtype=np.float32)
        mean = np.asarray(spec["mean"], dtype=np.float32)
        std = np.asarray(spec["std"], dtype=np.float32)
        if mean.ndim == 1 and x.ndim == 4:
            mean, std = mean.reshape(1, -1, 1, 1), std.reshape(1, -1, 1, 1)
        return (x - mean) / std


def read_manifest(path: str | Path) -> dict:
    """Parse a manifest.json (no schema check), naming the file on failure."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{path}: manifest not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise InputFileError(f"{path}: manifest is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise InputFileError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}") from None
    return data


def load_bundle(bundle_dir: str | Path, verify: bool = True, *, device: bool = False) -> Bundle:
    """Load ``bundle_dir/manifest.json``, validate it against the schema and (``verify``) every file's sha256.

    ``device``: a camera-side copy, which holds only :func:`device_files` (see :func:`verify_files`).

    Raises :class:`camlab.errors.InputFileError` naming the file or the manifest field that is wrong.
    """
    root = Path(bundle_dir)
    if not root.is_dir():
        raise InputFileError(f"{root}: bundle folder not found")
    mpath = root / MANIFEST_NAME
    manifest = read_manifest(mpath)
    if isinstance(manifest, dict) and manifest.get("schema_version") not in (None, SCHEMA_VERSION):
        raise InputFileError(f"{mpath}: field 'schema_version' is {manifest.get('schema_version')!r}; this reader "
                             f"understands schema_version {SCHEMA_VERSION}")
    validate_manifest(manifest, str(mpath))
    if verify:
        verify_files(root, manifest, device=device)
    return Bundle(root=root.resolve(), manifest=manifest)
