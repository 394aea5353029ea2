"""Bundle manifests (``manifest.json`` of an export bundle or of a camera-side copy from flash / an OTA package):
``load_bundle`` parses, checks the schema and every listed file (sizes, sha256, nothing unlisted)."""
from __future__ import annotations

INSTRUMENT = ("camlab.contract.manifest",)
MODEL = b"int8-model"


def setup():
    import atexit
    import shutil
    import tempfile
    from pathlib import Path

    from camlab.contract.manifest import load_bundle
    from camlab.errors import InputFileError
    tmp = Path(tempfile.mkdtemp(prefix="camlab-fuzz-bundle-"))
    atexit.register(shutil.rmtree, tmp, True)
    (tmp / "model.onnx").write_bytes(MODEL)

    def one(data: bytes) -> None:
        (tmp / "manifest.json").write_bytes(data)
        load_bundle(tmp, verify=True, device=True)
    return one, (InputFileError,)


def seeds() -> dict[str, bytes]:
    import hashlib
    import json
    from pathlib import Path
    from tests.contract.test_manifest import _detector_manifest   # the contract tests' valid manifest

    # a camera-side copy: the FP32 reference is listed but stays on the host
    m = _detector_manifest({"model.onnx": {"bytes": len(MODEL), "sha256": hashlib.sha256(MODEL).hexdigest(),
                                           "role": "model_int8"},
                            "model_fp32.onnx": {"bytes": 3, "sha256": "0" * 64, "role": "model_fp32"}})
    good = json.dumps(m, indent=1).encode()
    out = {"device-copy": good, "truncated": good[:300], "not-json": b"{not json", "array": b"[]",
           "escape": good.replace(b'"model.onnx"', b'"../model.onnx"')}
    exports = sorted((Path(__file__).resolve().parents[3] / "exports").glob("*/*/manifest.json"))
    if exports:
        out["export"] = exports[-1].read_bytes()
    return out
