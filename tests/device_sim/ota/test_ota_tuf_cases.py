"""TUF client attack cases (ported from the tuf-conformance suite's list, which does not install here) run against
the OTA client over HTTPS on loopback: fast-forward recovery, slow retrieval, threshold > 1, malicious root rotation."""
from __future__ import annotations

import logging
import time

import pytest

from device_sim.ota.client import HttpsTransport, TransportError
from device_sim.ota.metadata import count_valid_signatures, sign, SigningKey
from device_sim.ota.tuf_cases import CASES, Mirror, _fleet


@pytest.fixture(autouse=True)
def _quiet_ota_log():
    logging.getLogger("device_sim.ota").setLevel(logging.CRITICAL)


@pytest.mark.parametrize("name", sorted(CASES))
def test_tuf_case(tmp_path, name):
    ok, detail = CASES[name](tmp_path)
    assert ok, detail


def test_slow_retrieval_hits_the_per_request_deadline_not_the_socket_timeout(tmp_path):
    fleet = _fleet(tmp_path, "slow")
    with Mirror(fleet.repo.root, mode="trickle", trickle_prefix="metadata/") as m:
        t = HttpsTransport(m.url, cafile=m.cafile, timeout=5.0, deadline_s=1.5)
        t0 = time.monotonic()
        with pytest.raises(TransportError, match="slow retrieval"):
            t.fetch("metadata/timestamp.json", 512 * 1024)
        assert 1.4 < time.monotonic() - t0 < 4.0                     # bytes kept coming: no socket timeout fired
        assert m.trickled_bytes > 3


def test_duplicate_keyids_for_one_key_count_once():
    k = SigningKey.generate()
    env = sign({"_type": "targets", "version": 1}, [k])
    env["signatures"].append({"keyid": "f" * 64, "sig": env["signatures"][0]["sig"]})
    keys = {k.keyid: k.public_entry(), "f" * 64: k.public_entry()}
    assert count_valid_signatures(env, keys, [k.keyid, "f" * 64]) == 1


def test_https_transport_validates_its_input():
    with pytest.raises(ValueError, match="https://"):
        HttpsTransport("http://127.0.0.1:1")
    with pytest.raises(ValueError, match="deadline_s"):
        HttpsTransport("https://127.0.0.1:1", deadline_s=0)
