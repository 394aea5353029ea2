"""OTA packages: the container parser, bsdiff4 delta apply and the model-bundle tar.

Selector byte: 0 = the bytes are a whole package (``parse`` then ``apply`` against the running images);
1 = the bytes are a delta part's bsdiff4 patch in an otherwise well-formed package (hashes made to match, so the
patch reaches ``bsdiff4.patch``; the signed image hash cannot match, which ``apply`` must report as PackageError);
2 = the bytes are a model package's bundle tar (``untar_bundle``)."""
from __future__ import annotations

INSTRUMENT = ("device_sim.ota.package",)

RUNNING = {"kernel": bytes(range(256)) * 8, "rootfs": b"rootfs v1 " * 300}
NEW = {"kernel": bytes(range(256)) * 7 + b"new kernel" * 30, "rootfs": b"rootfs v2 " * 300 + b"more"}


def setup():
    from device_sim.ota import package as pkg

    def one(data: bytes) -> None:
        if not data:
            return
        mode, body = data[0] % 3, data[1:]
        if mode == 0:
            pkg.apply(pkg.parse(body), dict(RUNNING))
        elif mode == 1:
            part = pkg.Part("kernel", body, pkg.sha256(NEW["kernel"]), pkg.sha256(RUNNING["kernel"]))
            pkg.apply(pkg.parse(pkg.build("delta", "2.0.0", "hw", [part])), dict(RUNNING))
        else:
            pkg.untar_bundle(body)
    return one, (pkg.PackageError,)


def seeds() -> dict[str, bytes]:
    import io
    import tarfile

    import bsdiff4

    from device_sim.ota import package as pkg
    full = pkg.full_package("2.0.0", "hw", NEW["kernel"], NEW["rootfs"])
    delta = pkg.delta_package("2.0.0", "hw", RUNNING, NEW)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in (("manifest.json", b'{"schema_version": 1}'), ("model.onnx", b"\x08\x07onnx")):
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 0
            tar.addfile(info, io.BytesIO(data))
    tar_bytes = buf.getvalue()
    return {"full": b"\x00" + full, "delta": b"\x00" + delta,
            "model": b"\x00" + pkg.build("model", "1", "hw", [pkg.Part("bundle", tar_bytes, pkg.sha256(tar_bytes))]),
            "truncated": b"\x00" + full[:40], "bad-magic": b"\x00CAMOTA2\n\x00\x00\x00\x02{}",
            "patch": b"\x01" + bsdiff4.diff(RUNNING["kernel"], NEW["kernel"]),
            "patch-truncated": b"\x01" + bsdiff4.diff(RUNNING["kernel"], NEW["kernel"])[:30],
            "tar": b"\x02" + tar_bytes, "tar-truncated": b"\x02" + tar_bytes[:700]}
