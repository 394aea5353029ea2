"""Storage bench: power cuts, 24 h on a full card, notification and clip-to-cloud latency, IV reuse.

Writes ``benchmarks/results/storage.json`` with ``power_loss`` (cuts on the power-loss layer, the real recorder
and two mutants that must fail), ``card_full_tmpfs`` (real ENOSPC and SQLITE_FULL), ``power_cuts`` (kill -9), ``corrupt_files``, ``unindexed_files``,
``max_gap_s_full_card``, ``notify_p95_ms``, ``clip_cloud_p95_s``, ``iv_reuse`` and the anchors measured in the same
run (a bare HTTPS POST round trip for the notification; the post-roll length, the floor under clip latency).

IV reuse (issue 15) is counted from the bytes, not from :class:`IvLedger` (which redraws on a repeat, so it cannot
report one): :func:`audit_ivs` reads every ``playlist.m3u8`` under the cloud's store (every uploaded clip) and the
bulk clips, takes each segment's IV as written in its EXT-X-KEY tag (RFC 8216 §4.3.2.4), decrypts the stored segment
with it (AES-128-CBC must give PKCS7 padding and MPEG-TS sync bytes, so the IV counted is the IV used) and counts
repeats per key. A control in the same run (``iv_control_reuse``) feeds the same counter clips made with a ledger that
hands out one fixed IV: it must count reuse, or the audit is blind.
"""
from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

NAME = "storage"
ROOT = Path(__file__).resolve().parents[1]
EPOCH = 1_763_769_600.0


def _power_cuts(tmp: Path, n: int) -> dict:
    from device_sim.storage.faults import run_power_cuts
    from device_sim.storage.synth import SyntheticSource
    t0 = time.perf_counter()
    rep = run_power_cuts(tmp / "cuts", n, seed=2026, src=SyntheticSource(64, 64, fps=10, gop=10), torn_fraction=0.3)
    return {"power_cuts": rep.power_cuts, "corrupt_files": rep.corrupt_files, "unindexed_files": rep.unindexed_files,
            "missing_files": rep.missing_files, "partial_files_left": rep.partial_left,
            "torn_writes_injected": rep.torn_writes, "recovery_kills_injected": rep.recovery_kills,
            "overlapping_files": rep.overlapping, "minutes_repaired": rep.repaired,
            "minutes_discarded": rep.discarded, "orphans_indexed": rep.indexed_orphans,
            "max_lost_s_per_cut": round(rep.max_lost_s, 2), "power_cut_wall_s": round(time.perf_counter() - t0, 1)}


def _loss_summary(rep) -> dict:
    return {"recorder": rep.recorder, "cuts": rep.power_cuts, "cuts_by_kind": rep.cuts_by_kind,
            "recovery_cuts": rep.recovery_cuts, "files_torn_at_cut": rep.files_torn,
            "files_lost_at_cut": rep.files_lost_at_cut,
            "before_reconcile": {"indexed_missing": rep.pre_indexed_missing, "indexed_corrupt": rep.pre_indexed_corrupt,
                                 "unindexed_files": rep.pre_unindexed, "partial_files": rep.pre_partials},
            "reconcile": {"repaired": rep.repaired, "discarded": rep.discarded, "deferred": rep.deferred,
                          "quarantined": rep.quarantined,
                          "orphans_indexed": rep.indexed_orphans, "rows_dropped": rep.dropped_rows},
            "after_reconcile": {"corrupt_files": rep.corrupt_files, "unindexed_files": rep.unindexed_files,
                                "missing_files": rep.missing_files, "partial_files_left": rep.partial_left,
                                "overlapping_files": rep.overlapping},
            "footage_lost_min": round(rep.lost_s / 60, 2), "max_lost_s_per_cut": round(rep.max_lost_s, 2),
            "holes_min": round(rep.hole_s / 60, 2), "cuts_with_holes": rep.cuts_with_holes,
            "violations": rep.violations, "passed": rep.ok, "first_failures": rep.failures[:3]}


def _power_loss(tmp: Path, n: int, n_mutant: int) -> dict:
    """Power cuts on the power-loss layer (unsynced writes dropped/torn, names durable after the folder's fsync),
    the real recorder and the two mutants (each must FAIL)."""
    from device_sim.storage.faults import run_power_loss
    from device_sim.storage.synth import SyntheticSource
    src = SyntheticSource(64, 64, fps=10, gop=10)
    t0 = time.perf_counter()
    real = _loss_summary(run_power_loss(tmp / "loss-real", n, seed=2026, src=src))
    real["wall_s"] = round(time.perf_counter() - t0, 1)
    mutants = {}
    for name in ("no_fsync", "row_before_rename"):
        t0 = time.perf_counter()
        mutants[name] = _loss_summary(run_power_loss(tmp / f"loss-{name}", n_mutant, seed=2026, src=src,
                                                     recorder=name))
        mutants[name]["wall_s"] = round(time.perf_counter() - t0, 1)
    return {"power_loss": real, "power_loss_cuts": real["cuts"], "power_loss_violations": real["violations"],
            "power_loss_max_lost_s": real["max_lost_s_per_cut"], "power_loss_holes_min": real["holes_min"],
            "power_loss_mutants": mutants,
            "power_loss_mutants_failing": sum(not m["passed"] for m in mutants.values()),
            "power_loss_mutants_total": len(mutants)}


def _card_full_tmpfs(trials: int) -> dict:
    from device_sim.storage.cardfull import run_card_full, tmpfs_available
    if not tmpfs_available():
        return {"card_full_tmpfs": None, "card_full_tmpfs_note": "no unprivileged tmpfs (unshare -rm) here"}
    t0 = time.perf_counter()
    r = run_card_full(size_bytes=4_000_000, trials=trials, minutes=45.0, seed=2026)
    tr = r["trials"]
    return {"card_full_tmpfs": r, "card_full_trials": len(tr),
            "card_full_escaped_exceptions": sum(t["escaped"] is not None for t in tr),
            "card_full_stored_minutes_lost": sum(len(t["stored_minutes_lost"]) for t in tr),
            "card_full_check_failures": sum(not t["check_ok"] for t in tr),
            "card_full_enospc_seen": sum(t["enospc_errors"] for t in tr),
            "card_full_sqlite_full_seen": sum(t["index_full"] for t in tr) + int(r["index_probe"]["index_full_raised"]),
            "card_full_recording_at_end": sum(t["recording_at_end"] for t in tr),
            "card_full_wall_s": round(time.perf_counter() - t0, 1)}


def _full_card(tmp: Path, hours: float) -> dict:
    from device_sim.hal.sdcard import SdCard
    from device_sim.storage.index import Index
    from device_sim.storage.recorder import Recorder
    from device_sim.storage.retention import Retention
    from device_sim.storage.synth import SyntheticSource
    src = SyntheticSource(64, 64, fps=2, gop=2)                 # tiny segments: 2 fps, a keyframe a second
    card = SdCard(tmp / "full", 2_000_000)
    index = Index(card.mount_point / ".index/index.db")
    ret = Retention(card, index)
    rec = Recorder(card, index, ret, info=src.info, epoch_base=EPOCH)
    t0 = time.perf_counter()
    n = int(hours * 3600 * src.fps)
    max_used = 0
    loop_start = None
    for i in range(n):
        rec.write(src.packet(i))
        if i % 600 == 0:
            max_used = max(max_used, card.used_bytes())
        if loop_start is None and ret.stats.deleted:
            loop_start = i / src.fps / 3600
    rec.close()
    closed = rec.stats.closed
    gaps = [b[1] - a[2] for a, b in zip(closed, closed[1:])]
    return {"max_gap_s_full_card": round(max(gaps), 3), "full_card_sim_hours": hours,
            "full_card_minutes_written": len(closed), "full_card_files_deleted": len(ret.stats.deleted),
            "full_card_looping_from_h": round(loop_start or -1, 2), "full_card_dropped_packets": rec.stats.dropped_packets,
            "full_card_max_used_fraction": round(max_used / card.capacity_bytes, 3),
            "full_card_wall_s": round(time.perf_counter() - t0, 1)}


def _start_cloud(state: Path):
    """The cloud process with its account service at ``state/accounts.db`` and one tenant, ``home`` (an account
    with a bound camera); returns (proc, url, cert, tenant) with the tenant's cloud API tokens."""
    from device_sim.services.cloud import enroll_tenant
    tenant = enroll_tenant(state / "accounts.db", "home", state / "devices" / "home")
    proc = subprocess.Popen([sys.executable, "-m", "device_sim.services.cloud", "--port", "0", "--state",
                             str(state / "store"), "--cert", str(state / "cert.pem"), "--key", str(state / "key.pem"),
                             "--accounts", str(state / "accounts.db")],
                            stdout=subprocess.PIPE, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    port = int(proc.stdout.readline())
    return proc, f"https://127.0.0.1:{port}", state / "cert.pem", tenant


def _events(tmp: Path, n_events: int, pre_s: float, post_s: float) -> dict:
    import http.client
    import ssl

    from device_sim.storage.clips import ClipMaker
    from device_sim.storage.crypto import IvLedger, new_user_key
    from device_sim.storage.notify import Notifier
    from device_sim.storage.synth import SyntheticSource
    from device_sim.storage.uploader import Uploader

    proc, url, cert, tenant = _start_cloud(tmp / "cloud")
    auth = {"Authorization": f"Bearer {tenant['device_token']}"}
    try:
        # anchor: a bare HTTPS POST on a warm connection, sent -> received by the cloud (what notify_ms measures)
        ctx = ssl.create_default_context(cafile=str(cert))
        conn = http.client.HTTPSConnection("127.0.0.1", int(url.rsplit(":", 1)[1]), context=ctx)
        rtt = []
        # TLS handshake outside the timing
        conn.request("POST", "/v1/push", body=b'{"event_id": "anchor-warmup"}', headers=auth)
        conn.getresponse().read()
        for i in range(20):
            t = time.time()
            conn.request("POST", "/v1/push", body=b'{"event_id": "anchor-%d"}' % i, headers=auth)
            rtt.append(json.loads(conn.getresponse().read())["received_at"] - t)
            time.sleep(0.05)
        conn.close()
        src = SyntheticSource(160, 96, fps=10, gop=10, texture=0.05, seed=1)
        key = new_user_key()
        up = Uploader(url, cert, token=tenant["device_token"], seed=0).start()
        notifier = Notifier(url, cert, token=tenant["device_token"]).start()
        ledger = IvLedger()
        maker = ClipMaker(tmp / "clips", key, segment_s=10, pre_roll_s=pre_s, post_roll_s=post_s, epoch_base=EPOCH,
                          ledger=ledger, on_segment=up.enqueue_segment, on_finish=up.enqueue_clip)
        ring: collections.deque = collections.deque(maxlen=int(15 * src.fps))
        sessions, clips, decided = [], [], {}
        event_every = int(1.7 * src.fps)
        first_event = int((pre_s + 1) * src.fps)
        last_frame = first_event + n_events * event_every + int((post_s + 2) * src.fps)
        t_start = time.monotonic()
        for i in range(last_frame):                         # the camera's real-time frame loop
            delay = t_start + i / src.fps - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            pkt = src.packet(i)
            ring.append(pkt)
            for s in list(sessions):
                if not s.add(pkt):
                    sessions.remove(s)
                    clips.append(s.clip)
            k = i - first_event
            if k >= 0 and k % event_every == 0 and k // event_every < n_events:
                ev = {"event_id": f"ev-{k // event_every:03d}", "type": "person", "pts_s": pkt.pts_s}
                notifier.notify(ev)                         # first the notification...
                sessions.append(maker.start(ev, list(ring), src.info))   # ...then the clip
                decided[ev["event_id"]] = sessions[-1].clip.decided_at
        for s in sessions:
            clips.append(s.finish())
        up.wait_idle(60)
        notifier.wait_idle(10)
        notify_ms = [1000 * (p["received_at"] - p["decided_at"]) for p in notifier.sent]
        clip_s = [up.completed[e] - decided[e] for e in decided if e in up.completed]
        audit = audit_ivs(tmp / "cloud/store/clips", key)
        up.stop()
        notifier.stop()
        return {"notify_p95_ms": round(float(np.percentile(notify_ms, 95)), 1),
                "notify_max_ms": round(max(notify_ms), 1), "notify_count": len(notify_ms),
                "anchor_bare_https_post_p95_ms": round(1000 * float(np.percentile(rtt, 95)), 1),
                "notify_over_anchor_p95": round(float(np.percentile(notify_ms, 95)) / (1000 * float(np.percentile(rtt, 95))), 2),
                "clip_cloud_p95_s": round(float(np.percentile(clip_s, 95)), 2), "clip_cloud_max_s": round(max(clip_s), 2),
                "clips_in_cloud": len(clip_s), "clips_made": len(clips), "clip_post_roll_s": post_s,
                "clip_pre_roll_s": pre_s, "upload_failures": len(up.failed) + len(notifier.failed),
                "segments_checked_for_iv_reuse": audit["segments"], "iv_reuse": audit["iv_reuse"],
                "iv_audit_uploaded": audit, "iv_ledger_size": len(ledger)}
    finally:
        proc.kill()
        proc.wait(5)


def audit_ivs(clips_root: Path, key) -> dict:
    """Segments, distinct IVs, reused IVs and IV/segment mismatches of every playlist under ``clips_root``."""
    from device_sim.storage.crypto import DecryptionError, decrypt_segment
    from device_sim.storage.playback import parse_playlist
    ivs: list[bytes] = []
    mismatch = missing = 0
    playlists = sorted(Path(clips_root).glob("*/playlist.m3u8"))
    for pl in playlists:
        for e in parse_playlist(pl.read_text())[0]:
            ivs.append(e.iv)
            seg = pl.parent / e.uri
            if not seg.is_file():
                missing += 1
                continue
            try:
                decrypt_segment(key, seg.read_bytes(), e.iv, name=e.uri)
            except DecryptionError:
                mismatch += 1
    return {"playlists": len(playlists), "segments": len(ivs), "distinct_ivs": len(set(ivs)),
            "iv_reuse": len(ivs) - len(set(ivs)), "iv_segment_mismatch": mismatch, "segments_missing": missing}


class _StuckLedger:
    """Control for :func:`audit_ivs`: a broken IV source that hands out one IV forever."""

    def __init__(self) -> None:
        from device_sim.storage.crypto import new_iv
        self.iv = new_iv()

    def __len__(self) -> int:
        return 1

    def claim(self) -> bytes:
        return self.iv


def _iv_control(tmp: Path, n_clips: int = 3) -> dict:
    """Clips made with :class:`_StuckLedger`, audited by :func:`audit_ivs` (must show reuse)."""
    from device_sim.storage.clips import ClipMaker
    from device_sim.storage.crypto import new_user_key
    from device_sim.storage.synth import SyntheticSource
    src = SyntheticSource(64, 64, fps=10, gop=10)
    key = new_user_key()
    ring = list(src.packets(0.0, 15.0))
    post = [src.packet(i) for i in range(150, 400)]
    maker = ClipMaker(tmp / "ivcontrol", key, segment_s=10, pre_roll_s=10, post_roll_s=20, ledger=_StuckLedger())
    for k in range(n_clips):
        maker.make_clip({"event_id": f"c{k}", "pts_s": 14.95}, ring, post, src.info)
    return audit_ivs(tmp / "ivcontrol", key)


def _iv_bulk(tmp: Path, n_clips: int) -> dict:
    """Many clips (10 s segments) across three "reboots" sharing one persisted IV ledger: count reused IVs."""
    from device_sim.storage.clips import ClipMaker
    from device_sim.storage.crypto import IvLedger, new_user_key
    from device_sim.storage.synth import SyntheticSource
    src = SyntheticSource(64, 64, fps=10, gop=10)
    key = new_user_key()
    ring = list(src.packets(0.0, 15.0))
    post = [src.packet(i) for i in range(150, 400)]
    for boot in range(3):
        maker = ClipMaker(tmp / "ivbulk", key, segment_s=10, pre_roll_s=10, post_roll_s=20,
                          ledger=IvLedger(tmp / "ivbulk-ledger.bin"))
        for k in range(n_clips // 3):
            maker.make_clip({"event_id": f"b{boot}-{k}", "pts_s": 14.95}, ring, post, src.info)
    audit = audit_ivs(tmp / "ivbulk", key)
    return {"iv_bulk_segments": audit["segments"], "iv_bulk_reuse": audit["iv_reuse"], "iv_audit_bulk": audit}


def run(power_cuts: int | None = None, full_card_hours: float = 24.0, n_events: int = 12,
        power_loss_cuts: int | None = None, mutant_cuts: int | None = None, card_full_trials: int = 4) -> dict:
    """Counts default from the environment (``BENCH_STORAGE_KILL_CUTS`` 150, ``BENCH_STORAGE_LOSS_CUTS`` 300,
    ``BENCH_STORAGE_MUTANT_CUTS`` 60) so a run stays within minutes on the shared machine."""
    power_cuts = power_cuts if power_cuts is not None else int(os.environ.get("BENCH_STORAGE_KILL_CUTS", 150))
    power_loss_cuts = (power_loss_cuts if power_loss_cuts is not None
                       else int(os.environ.get("BENCH_STORAGE_LOSS_CUTS", 300)))
    mutant_cuts = mutant_cuts if mutant_cuts is not None else int(os.environ.get("BENCH_STORAGE_MUTANT_CUTS", 60))
    with tempfile.TemporaryDirectory(prefix="bench_storage_") as d:
        tmp = Path(d)
        out = {}
        out.update(_power_loss(tmp, power_loss_cuts, mutant_cuts))
        out.update(_card_full_tmpfs(card_full_trials))
        out.update(_power_cuts(tmp, power_cuts))
        out.update(_full_card(tmp, full_card_hours))
        out.update(_events(tmp, n_events, pre_s=5.0, post_s=8.0))
        bulk = _iv_bulk(tmp, 90)
        out.update(bulk)
        out["iv_reuse"] += bulk["iv_bulk_reuse"]
        out["segments_checked_for_iv_reuse"] += bulk["iv_bulk_segments"]
        out["iv_segment_mismatch"] = (out["iv_audit_uploaded"]["iv_segment_mismatch"]
                                      + bulk["iv_audit_bulk"]["iv_segment_mismatch"])
        control = _iv_control(tmp)
        out["iv_control_reuse"] = control["iv_reuse"]
        out["iv_control_note"] = ("clips made with a ledger stuck on one IV, through the same audit: reuse must be "
                                  "counted (> 0) for iv_reuse = 0 to mean anything")
    out["notes_power_loss"] = (
        "power_loss: in-process cuts on device_sim.storage.powerloss.PowerLossLayer: the cut lands inside a write "
        "(40%), an fsync (20%) or a namespace op (40%: create/rename/unlink/mkdir/rmdir/folder fsync); data not "
        "fsynced is dropped or torn (a random prefix of pending writes survives, the next one cut at a 512 B sector); "
        "a name is durable only after its folder's fsync; 20% of boots cut the power inside reconcile too. The index "
        "is checked BEFORE reconcile (an indexed file must exist and decode) and after; footage lost = fed seconds no "
        "index row covers after reconcile, holes = the part of it before the last covered instant. The recorder "
        "fsyncs every 5 s of media time. SQLite is outside the layer: with synchronous=FULL a commit is durable "
        "when it returns and no cut lands inside a SQLite call. Mutants: no_fsync (no fsync of file or folder), "
        "row_before_rename (index row before the rename). card_full_tmpfs: a 4 MB tmpfs in a user namespace (real "
        "ENOSPC / SQLITE_FULL), a foreign file fills it at a random moment or between a rename and its index row.")
    out["notes"] = ("2-core shared machine, other engineers' jobs running: timings are noisy. Power cuts are SIGKILL "
                    "of a forked recording child at seeded random times (30% also tear the in-flight file at a random "
                    "byte, ignoring fsync: the worst case, hence up to a whole in-flight minute lost; 20% also SIGKILL "
                    "the recovery itself); full card is a simulated clock (2 fps, 2 MB card). Clip latency counts "
                    "from the event decision and includes the post-roll (8 s) captured in real time.")
    return out


if __name__ == "__main__":
    print(json.dumps(run(*(int(a) for a in sys.argv[1:2])), indent=2))
