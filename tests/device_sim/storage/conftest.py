"""Fixtures for the storage tests: synthetic HEVC sources, a card, and the cloud service as a real process."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from device_sim.storage.synth import SyntheticSource

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def src() -> SyntheticSource:
    """64x64 HEVC, 10 fps, a keyframe each second."""
    return SyntheticSource(64, 64, fps=10, gop=10)


class CloudProc:
    """The cloud process with its account service (``accounts.db``) and one tenant, ``alice``: an account with a
    camera bound to it. ``user_token`` (alice's app) and ``device_token`` (her camera) are their cloud credentials;
    ``tenant(name)`` enrolls another (or returns the same one again, also across restarts on the same state)."""

    def __init__(self, state: Path, *args: str):
        self.state = state
        self.cert, self.key = state / "cert.pem", state / "key.pem"
        self.accounts = state / "accounts.db"
        alice = self.tenant("alice")
        self.user_token, self.device_token, self.did = alice["user_token"], alice["device_token"], alice["did"]
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "device_sim.services.cloud", "--port", "0", "--state", str(state / "store"),
             "--cert", str(self.cert), "--key", str(self.key), "--accounts", str(self.accounts), *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)})
        line = self.proc.stdout.readline()
        if not line.strip().isdigit():
            self.proc.kill()
            raise RuntimeError(f"cloud did not start: {line!r} {self.proc.stderr.read()}")
        self.port = int(line)
        self.url = f"https://127.0.0.1:{self.port}"

    def tenant(self, name: str) -> dict:
        from device_sim.services.cloud import enroll_tenant
        return enroll_tenant(self.accounts, name, self.state / "devices" / name)

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(5)


@pytest.fixture
def start_cloud():
    """Factory: start_cloud(state_dir, *extra_args) -> a running cloud process, killed at teardown."""
    procs = []

    def start(state: Path, *args: str) -> CloudProc:
        procs.append(CloudProc(state, *args))
        return procs[-1]
    yield start
    for p in procs:
        p.stop()


@pytest.fixture
def cloud(tmp_path):
    c = CloudProc(tmp_path / "cloud")
    yield c
    c.stop()
