"""Fixtures for the network tests: a cloud account store, a factory-made device, accounts, real service processes."""
from __future__ import annotations

import pytest

from device_sim.net.accounts import AccountStore
from device_sim.net.harness import start_service, stop
from device_sim.net.identity import create_account, manufacture


@pytest.fixture
def cloud(tmp_path):
    """Account store with one device bound to 'alice', shared view-only with 'bob'; 'mallory' has nothing."""
    store = AccountStore(tmp_path / "cloud" / "accounts.db")
    dev = manufacture(tmp_path / "device", store)
    users = {n: create_account(store, n) for n in ("alice", "bob", "mallory")}
    token = store.issue_bind_token("alice", ttl_s=60)
    store.bind(dev.did, token, dev.bind_proof(token))
    store.share("alice", dev.did, "bob", ("view",))
    yield store, dev, users
    store.close()


@pytest.fixture
def services(tmp_path, cloud):
    """Relay and rendezvous as real processes on loopback."""
    relay, rport = start_service("device_sim.services.relay", ["--port", "0", "--state", str(tmp_path / "relay")])
    try:
        rdv, port = start_service("device_sim.services.rendezvous", [
            "--port", "0", "--state", str(tmp_path / "rdv"), "--accounts", str(cloud[0].path),
            "--relay", f"127.0.0.1:{rport}", "--relay-secret", str(tmp_path / "relay" / "relay.secret")])
    except BaseException:
        stop(relay)
        raise
    yield {"rendezvous": ("127.0.0.1", port), "relay": ("127.0.0.1", rport), "procs": (relay, rdv)}
    stop(rdv)
    stop(relay)
