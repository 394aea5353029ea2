"""Cross-tenant and unauthorised-access audit: many accounts, many cameras, random requests, changing ownership.

An independent oracle (a plain dict of who may do what, kept by this module, never read from the account service)
decides for every request whether it should succeed; the real stack (handshake, session crypto, channel mux,
camera endpoint, account service queried on every request) answers it. A request the oracle forbids that returns
data is a cross-tenant read; a forbidden live-view or talk-back that starts, or talk audio that reaches the
speaker, is an unauthorised success. Ownership changes mid-run (revocations, transfers, new shares) so a cached
mapping anywhere would show up. The account service is opened fresh (cold) for the run.

Every camera holds its own recording (distinct bytes), so a read is judged by its content: a ``file_get`` whose
returned sha256 is the recording of a camera on which the requester holds no ``files`` right (per the oracle) is a
foreign read (``details["foreign_content_reads"]``), whichever session served it. ``n_strangers`` handshakes
come from accounts with no right on the camera, and the session phase runs until ``n_requests`` requests were
answered (closed sessions do not count); ``details["foreign_requests"]`` = stranger handshakes + requests on a
camera the requester had no right on at the time.
"""
from __future__ import annotations

import asyncio
import random
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from .accounts import AccountStore
from .endpoint import AccessLog, AppSession, CommandError, DeviceEndpoint, LiveHub, accept_session, open_session
from .identity import create_account, manufacture
from .session import DeviceHandshake, HandshakeError

READ_OPS = {"spec_get": "view", "file_list": "files", "file_get": "files", "live_start": "view"}
TALK_OPS = {"talk_start": "talk"}
CONTROL_OPS = {"spec_set": "control"}
ALL_OPS = {**READ_OPS, **TALK_OPS, **CONTROL_OPS}


class _Link:
    """In-memory datagram link (both ends in one event loop)."""

    def __init__(self):
        self.q = (asyncio.Queue(), asyncio.Queue())
        self.tap: list[bytes] = []               # what an eavesdropper on the path captured (app -> camera)

    def end(self, side: int):
        link = self

        class End:
            async def send(self, data):
                if side == 0:
                    link.tap.append(data)
                link.q[1 - side].put_nowait(data)

            async def recv(self):
                d = await link.q[side].get()
                if d is None:
                    raise ConnectionError("closed")
                return d

            async def close(self):
                link.q[1 - side].put_nowait(None)
        return End()


@dataclass
class AuditResult:
    cross_tenant_requests: int = 0
    cross_tenant_reads: int = 0
    unauthorised_attempts: int = 0
    unauthorised_successes: int = 0
    forbidden_requests: int = 0         # includes a shared user's ops beyond the shared permissions
    forbidden_successes: int = 0
    allowed_requests: int = 0
    allowed_failures: int = 0
    requests: int = 0
    ownership_changes: int = 0
    db_queries: int = 0
    details: dict = field(default_factory=dict)


async def _audit(n_requests: int, n_accounts: int, n_devices: int, seed: int, root: Path,
                 n_strangers: int, serve_files_of=lambda did: did) -> AuditResult:
    rnd = random.Random(seed)
    factory = AccountStore(root / "accounts.db")
    accounts = [f"user{i:03d}" for i in range(n_accounts)]
    apps = {a: create_account(factory, a) for a in accounts}
    devs = [manufacture(root / f"dev{i}", factory) for i in range(n_devices)]
    oracle: dict[tuple[str, str], set[str]] = {}
    full = {"view", "talk", "control", "files"}

    def bind(dev, owner):
        tok = factory.issue_bind_token(owner)
        factory.bind(dev.did, tok, dev.bind_proof(tok))
        for k in [k for k in oracle if k[1] == dev.did]:
            del oracle[k]
        oracle[(owner, dev.did)] = set(full)

    for d in devs:
        bind(d, rnd.choice(accounts))
    for d in devs:
        owner = factory.owner(d.did)
        for a in rnd.sample(accounts, 3):
            if a != owner:
                perms = tuple(rnd.choice([("view",), ("view", "talk"), ("view", "files"), ("view", "control")]))
                factory.share(owner, d.did, a, perms)
                oracle[(a, d.did)] = set(perms)
    factory.close()

    # the cameras' and the audit's own handle on the cloud: opened cold, no state carried over
    store = AccountStore(root / "accounts.db")
    res = AuditResult()
    import hashlib
    content_owner: dict[str, str] = {}            # sha256 of a camera's recording -> that camera's did
    files_of: dict[str, Path] = {}
    for d in devs:
        fdir = root / "recordings" / d.did
        fdir.mkdir(parents=True)
        data = d.did.encode() + rnd.randbytes(2048)
        (fdir / "clip.mp4").write_bytes(data)
        content_owner[hashlib.sha256(data).hexdigest()] = d.did
        files_of[d.did] = fdir
    foreign_content = other_tenant = 0
    speaker: list[tuple[str, str]] = []
    endpoints, sessions = [], {}
    hs = {d.did: DeviceHandshake(d, store) for d in devs}

    async def connect(account: str, dev) -> AppSession | None:
        link = _Link()
        dev_task = asyncio.create_task(accept_session(link.end(1), hs[dev.did], timeout=2.0))
        try:
            app = await open_session(link.end(0), apps[account], dev.did, store.device_public_key(dev.did),
                                     timeout=2.0)
        except HandshakeError:
            dev_task.cancel()
            return None
        mux = await dev_task
        ep = DeviceEndpoint(mux, dev.did, store, LiveHub(), AccessLog(root / f"{dev.did}.log"),
                            spec=_spec(), files_dir=files_of[serve_files_of(dev.did)], on_talk=lambda acc, u, d=dev.did: speaker.append((acc, d)))
        endpoints.append((ep, asyncio.create_task(ep.run())))
        app.link = link
        return app

    # connections: every pair the oracle allows now, plus strangers (refused at the handshake)
    for (a, did), perms in list(oracle.items()):
        dev = next(d for d in devs if d.did == did)
        s = await connect(a, dev)
        if s is None:
            res.allowed_failures += 1
        sessions[(a, did)] = s
    strangers = 0
    while strangers < n_strangers:
        a, dev = rnd.choice(accounts), rnd.choice(devs)
        if (a, dev.did) in oracle:
            continue
        strangers += 1
        res.requests += 1
        res.cross_tenant_requests += 1
        res.unauthorised_attempts += 1
        s = await connect(a, dev)
        if s is not None:                        # a stranger got a session: that is a cross-tenant read
            res.cross_tenant_reads += 1
            res.unauthorised_successes += 1

    keys = list(sessions)
    answered = loops = 0
    while answered < n_requests and loops < 20 * n_requests:
        loops += 1
        if rnd.random() < 0.03:                  # ownership churn
            res.ownership_changes += 1
            dev = rnd.choice(devs)
            owner = store.owner(dev.did)
            if rnd.random() < 0.5:
                shared = [a for (a, d) in oracle if d == dev.did and a != owner]
                if shared:
                    victim = rnd.choice(shared)
                    store.unshare(owner, dev.did, victim)
                    del oracle[(victim, dev.did)]
            else:
                new_owner = rnd.choice(accounts)
                store.unbind(owner, dev.did)
                oracle = {k: v for k, v in oracle.items() if k[1] != dev.did}
                tok = store.issue_bind_token(new_owner)
                store.bind(dev.did, tok, dev.bind_proof(tok))
                oracle[(new_owner, dev.did)] = set(full)
        a, did = rnd.choice(keys)
        s = sessions[(a, did)]
        if s is None or s.mux.closed.is_set():
            continue
        op = rnd.choice(list(ALL_OPS))
        args = {"spec_get": {"params": [{"siid": 2, "piid": 1}]}, "file_get": {"name": "clip.mp4", "offset": 2000},
                "spec_set": {"params": [{"siid": 7, "piid": 1, "value": True}]}, "live_start": {"stream": "sub"}}.get(
            op, {})
        allowed = ALL_OPS[op] in oracle.get((a, did), set())
        res.requests += 1
        answered += 1
        reply = None
        try:
            reply = await s.request(op, **args)
            ok = True
        except CommandError:
            ok = False
        if op == "file_get" and ok and isinstance(reply, dict):
            src = content_owner.get(reply.get("sha256"))
            if src is None or "files" not in oracle.get((a, src), set()):
                foreign_content += 1
        if op == "talk_start" and ok:
            s.send_talk(b"voice", 0.0)
        if allowed:
            res.allowed_requests += 1
            res.allowed_failures += 0 if ok else 1
        else:
            res.forbidden_requests += 1
            res.forbidden_successes += 1 if ok else 0
            if (a, did) not in oracle:           # no rights at all on this camera: another tenant's device
                other_tenant += 1
                res.cross_tenant_requests += 1
                res.cross_tenant_reads += 1 if ok and op in READ_OPS else 0
            if op in ("live_start", "talk_start"):
                res.unauthorised_attempts += 1
                res.unauthorised_successes += 1 if ok else 0

    # talk audio pushed by sessions that may not talk (no talk_start accepted, or revoked): must not play
    speaker_before = len(speaker)
    sent_by_unauthorised = 0
    for (a, did), s in sessions.items():
        if s is None or s.mux.closed.is_set() or "talk" in oracle.get((a, did), set()):
            continue
        for k in range(3):
            s.send_talk(b"stranger's voice", k * 0.02)
            sent_by_unauthorised += 1
    await asyncio.sleep(0.3)
    leaked = [x for x in speaker[speaker_before:] if "talk" not in oracle.get(x, set())]
    res.unauthorised_attempts += sent_by_unauthorised
    res.unauthorised_successes += len(leaked)

    # replay: an eavesdropper re-injects captured app->camera records into the camera's side of the link
    replayed = 0
    for (a, did), s in list(sessions.items())[:20]:
        if s is None or s.mux.closed.is_set():
            continue
        ep = next(e for e, _ in endpoints if e.mux.session.session_id == s.mux.session.session_id)
        before = ep.counters["requests"]
        for rec in s.link.tap[-20:]:
            s.link.q[1].put_nowait(rec)
            replayed += 1
        await asyncio.sleep(0.05)
        res.unauthorised_attempts += 1
        res.unauthorised_successes += 1 if ep.counters["requests"] != before else 0
    res.cross_tenant_reads += foreign_content
    res.details = {"foreign_content_reads": foreign_content, "stranger_handshakes": strangers,
                   "other_tenant_requests": other_tenant, "foreign_requests": strangers + other_tenant,
                   "session_requests": answered, "replayed_records": replayed, "speaker_units": len(speaker), "sessions": len(sessions),
                   "forged_rejected": sum(e.mux.session.rejected for e, _ in endpoints)}
    res.db_queries = store.queries
    for s in sessions.values():
        if s is not None:
            await s.close()
    for _, t in endpoints:
        t.cancel()
    store.close()
    return res


def _spec():
    from device_sim.spec.service import SpecService
    return SpecService()


def run_audit(n_requests: int = 10_000, n_accounts: int = 40, n_devices: int = 30, seed: int = 0,
              root: Path | None = None, quiet: bool = True, n_strangers: int | None = None,
              serve_files_of=lambda did: did) -> AuditResult:
    """Run the audit; ``quiet`` keeps the (expected, numerous) refusal warnings out of the console.
    ``serve_files_of`` (did -> did whose recordings that camera serves) exists to inject a mix-up in tests."""
    import logging
    net_log = logging.getLogger("device_sim.net")
    level = net_log.level
    if quiet:
        net_log.setLevel(logging.ERROR)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            return asyncio.run(_audit(n_requests, n_accounts, n_devices, seed, Path(root or tmp),
                                      max(10, n_requests // 100) if n_strangers is None else n_strangers,
                                      serve_files_of))
    finally:
        net_log.setLevel(level)

