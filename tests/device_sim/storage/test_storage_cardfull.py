"""A really full card: recorder and SQLite index on a small tmpfs (unshare -rm), real ENOSPC and SQLITE_FULL."""
from __future__ import annotations

import pytest

from device_sim.storage.cardfull import run_card_full, tmpfs_available

pytestmark = pytest.mark.skipif(not tmpfs_available(), reason="no unprivileged tmpfs mount (unshare -rm) here")


def test_full_tmpfs_sqlite_full_is_enospc_and_nothing_stored_is_lost():
    r = run_card_full(size_bytes=4_000_000, trials=2, minutes=40.0, seed=1)
    probe = r["index_probe"]
    assert probe["index_full_raised"] and probe["index_full_errno"] == 28 and "SQLITE_FULL" in probe["index_full_message"]
    assert probe["rows_after_full"] == probe["rows_after_reopen"] == probe["rows_stored_before_full"]
    assert probe["integrity_check"] == "ok"
    random_fill, rename_fill = r["trials"]
    for t in r["trials"]:
        assert t["escaped"] is None, t["escaped"]                   # the recorder never raised
        assert t["check_ok"] and t["integrity_check"] == "ok" and t["recording_at_end"]
        assert t["stored_minutes_lost"] == []                       # only retention deleted footage, on purpose
        assert t["foreign_bytes"] > 0
    assert random_fill["enospc_errors"] >= 1                        # the kernel's ENOSPC reached the recorder
    assert rename_fill["index_full"] >= 1 and rename_fill["index_full_events"] >= 1   # SQLITE_FULL, a clear event


def test_run_card_full_validates_its_input():
    with pytest.raises(ValueError, match="size_bytes"):
        run_card_full(size_bytes=10)
