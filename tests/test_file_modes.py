"""Written files honour the umask (a firmware build running as another user reads the bundles); secrets stay 0600."""
from __future__ import annotations

import os
import stat
from contextlib import contextmanager

from camlab.io_utils import atomic_write_bytes, atomic_write_json


@contextmanager
def _umask(mask: int):
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_atomic_writes_honour_the_umask(tmp_path):
    with _umask(0o022):
        atomic_write_json(tmp_path / "results.json", {"a": 1})
        atomic_write_bytes(tmp_path / "model.onnx", b"x")
        atomic_write_bytes(tmp_path / "model.onnx", b"y")  # replacing keeps the umask mode
    assert _mode(tmp_path / "results.json") == 0o644 and _mode(tmp_path / "model.onnx") == 0o644
    with _umask(0o077):
        atomic_write_bytes(tmp_path / "private.bin", b"x")
    assert _mode(tmp_path / "private.bin") == 0o600


def test_secrets_stay_owner_only(tmp_path):
    with _umask(0o022):
        atomic_write_bytes(tmp_path / "key.pem", b"k", mode=0o600)
    assert _mode(tmp_path / "key.pem") == 0o600


def test_report_and_bundle_files_are_readable_by_others(tmp_path):
    from camlab.report_html import write_report

    with _umask(0o022):
        page = write_report(tmp_path / "report.html", "t", "s", [("c", "m", 1.0, "<= 2", "", "", "PASS")], [])
    assert _mode(page) == 0o644


def test_device_sim_private_keys_stay_0600_under_umask_022(tmp_path):
    from device_sim.ota.repository import Repository
    from device_sim.services.relay import load_secret
    from device_sim.services.tls import make_self_signed

    with _umask(0o022):
        make_self_signed(tmp_path / "cert.pem", tmp_path / "key.pem")
        repo = Repository.create(tmp_path / "repo")
        load_secret(tmp_path)
    assert _mode(tmp_path / "key.pem") == 0o600 and _mode(tmp_path / "cert.pem") == 0o644
    pems = list(repo.keys_dir.rglob("*.pem"))
    assert pems and all(_mode(p) == 0o600 for p in pems)
    assert _mode(tmp_path / "relay.secret") == 0o600
