"""Test/bench harness: service processes and a NAT lab built from Linux network namespaces.

The lab is the classic NAT-traversal testbed (RFC 4787 behaviours): a "public" namespace with a bridge where the
rendezvous and relay live, two home routers (iptables NAT) and a host behind each. NAT kinds:
``port_restricted`` (MASQUERADE: endpoint-independent mapping, address-and-port-dependent filtering),
``full_cone`` (MASQUERADE plus DNAT of every inbound UDP datagram to the host: endpoint-independent filtering) and
``symmetric`` (MASQUERADE --random-fully: address-and-port-dependent mapping). Routers drop unsolicited inbound
traffic addressed to themselves, as home routers do. Every address lives inside these namespaces
(10.200.0.0/24 public, 192.168.{11,12}.0/24 home networks); ``teardown`` removes them even after a failure.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NAT_KINDS = ("port_restricted", "full_cone", "symmetric")
PUBLIC_SERVER = "10.200.0.1"


def start_service(module: str, args: list[str], netns: str | None = None, timeout: float = 20.0,
                  env: dict | None = None) -> tuple[subprocess.Popen, int]:
    """Start ``python -m module args`` (inside ``netns`` if given) and wait for the number it prints (its port;
    agents print 1 once ready)."""
    cmd = [sys.executable, "-m", module, *args]
    if netns:
        cmd = ["ip", "netns", "exec", netns, *cmd]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO), **(env or {})})
    deadline = time.monotonic() + timeout
    line = ""
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.strip().isdigit():
            return proc, int(line.strip())
        if proc.poll() is not None:
            break
    err = proc.stderr.read() if proc.poll() is not None else ""
    stop(proc)
    raise RuntimeError(f"{module} did not print its port (last line {line!r}): {err[-2000:]}")


def stop(proc: subprocess.Popen | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


def netns_unavailable() -> str | None:
    """Why this machine cannot build the lab, or None if it can."""
    if os.geteuid() != 0:
        return "network namespaces need root (CAP_NET_ADMIN); run the tests as root"
    for tool in ("ip", "iptables"):
        if shutil.which(tool) is None:
            return f"'{tool}' is not installed (apt-get install iproute2 iptables)"
    name = f"clprobe{os.getpid()}"
    r = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if r.returncode:
        return f"'ip netns add' failed: {r.stderr.strip()}"
    try:
        r = subprocess.run(["ip", "netns", "exec", name, "iptables", "-t", "nat", "-L", "-n"], capture_output=True,
                           text=True)
        if r.returncode:
            return f"iptables NAT table unusable in a namespace: {r.stderr.strip()}"
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
    return None


_OURS = re.compile(r"^cl(\d+)x[0-9a-f]{3}(p|ra|rb|ha|hb)$")


def remove_stale_namespaces() -> list[str]:
    """Delete lab namespaces left by a test process that was killed (its pid is gone); never anyone else's."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    removed = []
    for line in out.splitlines():
        name = line.split()[0] if line.strip() else ""
        m = _OURS.match(name)
        if m and not Path(f"/proc/{m.group(1)}").exists():
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
            removed.append(name)
    return removed


def _sh(*cmd: str) -> None:
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        raise RuntimeError(f"{' '.join(cmd)}: {r.stderr.strip()}")


@dataclass
class NatLab:
    nat_a: str
    nat_b: str
    tag: str = field(default_factory=lambda: f"{os.getpid()}x{os.urandom(2).hex()[:3]}")
    namespaces: list[str] = field(default_factory=list)

    @property
    def pub(self) -> str:
        return f"cl{self.tag}p"

    def host(self, side: str) -> str:
        return f"cl{self.tag}h{side}"

    def router(self, side: str) -> str:
        return f"cl{self.tag}r{side}"

    def wan_ip(self, side: str) -> str:
        return f"10.200.0.{11 if side == 'a' else 12}"

    def host_ip(self, side: str) -> str:
        return f"192.168.{11 if side == 'a' else 12}.2"

    def ns(self, name: str, *cmd: str) -> None:
        _sh("ip", "netns", "exec", name, *cmd)

    def build(self) -> "NatLab":
        remove_stale_namespaces()
        for kind in (self.nat_a, self.nat_b):
            if kind not in NAT_KINDS:
                raise ValueError(f"NAT kind {kind!r}: expected one of {NAT_KINDS}")
        try:
            for n in (self.pub, self.router("a"), self.router("b"), self.host("a"), self.host("b")):
                _sh("ip", "netns", "add", n)
                self.namespaces.append(n)
                self.ns(n, "ip", "link", "set", "lo", "up")
            self.ns(self.pub, "ip", "link", "add", "br0", "type", "bridge")
            self.ns(self.pub, "ip", "addr", "add", f"{PUBLIC_SERVER}/24", "dev", "br0")
            self.ns(self.pub, "ip", "link", "set", "br0", "up")
            for side, kind in (("a", self.nat_a), ("b", self.nat_b)):
                self._router(side, kind)
        except BaseException:
            self.teardown()
            raise
        return self

    def _router(self, side: str, kind: str) -> None:
        rt, host, t = self.router(side), self.host(side), self.tag
        wan, up = f"w{side}{t}"[:15], f"u{side}{t}"[:15]
        lan, hl = f"l{side}{t}"[:15], f"e{side}{t}"[:15]
        _sh("ip", "link", "add", wan, "netns", rt, "type", "veth", "peer", "name", up, "netns", self.pub)
        self.ns(self.pub, "ip", "link", "set", up, "master", "br0")
        self.ns(self.pub, "ip", "link", "set", up, "up")
        self.ns(rt, "ip", "link", "set", wan, "name", "wan")
        self.ns(rt, "ip", "addr", "add", f"{self.wan_ip(side)}/24", "dev", "wan")
        self.ns(rt, "ip", "link", "set", "wan", "up")
        _sh("ip", "link", "add", lan, "netns", rt, "type", "veth", "peer", "name", hl, "netns", host)
        self.ns(rt, "ip", "link", "set", lan, "name", "lan")
        lan_net = "11" if side == "a" else "12"
        self.ns(rt, "ip", "addr", "add", f"192.168.{lan_net}.1/24", "dev", "lan")
        self.ns(rt, "ip", "link", "set", "lan", "up")
        self.ns(host, "ip", "link", "set", hl, "name", "eth0")
        self.ns(host, "ip", "addr", "add", f"{self.host_ip(side)}/24", "dev", "eth0")
        self.ns(host, "ip", "link", "set", "eth0", "up")
        self.ns(host, "ip", "route", "add", "default", "via", f"192.168.{lan_net}.1")
        self.ns(rt, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        self.set_nat(side, kind)

    def set_nat(self, side: str, kind: str) -> None:
        """(Re)configure one router's NAT behaviour; existing mappings of other flows stay in conntrack."""
        if kind not in NAT_KINDS:
            raise ValueError(f"NAT kind {kind!r}: expected one of {NAT_KINDS}")
        rt = self.router(side)
        for table in ("nat", "filter"):
            self.ns(rt, "iptables", "-t", table, "-F")
        masq = ["iptables", "-t", "nat", "-A", "POSTROUTING", "-o", "wan", "-j", "MASQUERADE"]
        if kind == "symmetric":
            masq.append("--random-fully")
        self.ns(rt, *masq)
        if kind == "full_cone":
            self.ns(rt, "iptables", "-t", "nat", "-A", "PREROUTING", "-i", "wan", "-p", "udp", "-j", "DNAT",
                    "--to-destination", self.host_ip(side))
        # unsolicited datagrams to the router itself are dropped before conntrack confirms an entry for them
        self.ns(rt, "iptables", "-A", "INPUT", "-i", "wan", "-m", "conntrack", "--ctstate", "NEW", "-j", "DROP")
        if kind != "full_cone":
            self.ns(rt, "iptables", "-A", "FORWARD", "-i", "wan", "-m", "conntrack", "--ctstate", "NEW", "-j",
                    "DROP")
        if side == "a":
            self.nat_a = kind
        else:
            self.nat_b = kind

    def teardown(self) -> None:
        for n in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "pids", n], capture_output=True)
            out = subprocess.run(["ip", "netns", "pids", n], capture_output=True, text=True).stdout.split()
            for pid in out:
                try:
                    os.kill(int(pid), 9)
                except (ProcessLookupError, ValueError):
                    pass
            subprocess.run(["ip", "netns", "del", n], capture_output=True)
        self.namespaces.clear()

    def __enter__(self) -> "NatLab":
        return self.build()

    def __exit__(self, *exc) -> None:
        self.teardown()


class NatDeployment:
    """A NAT lab with a cloud: account store, one factory-made camera bound to ``alice``, a stranger ``mallory``,
    relay + rendezvous in the public namespace and the camera's agent behind NAT ``a``. Apps run behind NAT ``b``
    via :meth:`run_app`. Everything is torn down on exit, also after a failure."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.lab = NatLab("port_restricted", "port_restricted")
        self.procs: list[subprocess.Popen] = []
        self.did = ""
        self.rendezvous = ""

    def __enter__(self) -> "NatDeployment":
        from .accounts import AccountStore
        from .identity import create_account, manufacture

        store = AccountStore(self.root / "accounts.db")
        try:
            dev = manufacture(self.root / "dev", store)
            for name in ("alice", "mallory"):
                create_account(store, name).save(self.root / f"{name}.key")
            tok = store.issue_bind_token("alice")
            store.bind(dev.did, tok, dev.bind_proof(tok))
            self.did = dev.did
        finally:
            store.close()
        try:
            self.lab.build()
            relay, rport = start_service("device_sim.services.relay", [
                "--port", "0", "--host", PUBLIC_SERVER, "--state", str(self.root / "relay")], netns=self.lab.pub)
            self.procs.append(relay)
            rdv, port = start_service("device_sim.services.rendezvous", [
                "--port", "0", "--host", PUBLIC_SERVER, "--state", str(self.root / "rdv"), "--accounts",
                str(self.root / "accounts.db"), "--relay", f"{PUBLIC_SERVER}:{rport}", "--relay-secret",
                str(self.root / "relay" / "relay.secret")], netns=self.lab.pub)
            self.procs.append(rdv)
            self.rendezvous = f"{PUBLIC_SERVER}:{port}"
            devp, _ = start_service("device_sim.net.agent", [
                "device", "--device-dir", str(self.root / "dev"), "--accounts", str(self.root / "accounts.db"),
                "--rendezvous", self.rendezvous], netns=self.lab.host("a"))
            self.procs.append(devp)
        except BaseException:
            self.__exit__()
            raise
        return self

    def run_app(self, nat_kind: str, count: int, who: str = "alice", deadline_s: float = 1.0) -> dict:
        """Set both routers to ``nat_kind`` and connect ``count`` times from behind NAT b; the app's JSON report."""
        import json

        self.lab.set_nat("a", nat_kind)
        self.lab.set_nat("b", nat_kind)
        r = subprocess.run(["ip", "netns", "exec", self.lab.host("b"), sys.executable, "-m", "device_sim.net.agent",
                            "app", "--app-key", str(self.root / f"{who}.key"), "--accounts",
                            str(self.root / "accounts.db"), "--did", self.did, "--rendezvous", self.rendezvous,
                            "--count", str(count), "--deadline", str(deadline_s)],
                           capture_output=True, text=True, timeout=60 + 5 * count, cwd=REPO,
                           env={**os.environ, "PYTHONPATH": str(REPO)})
        if r.returncode:
            raise RuntimeError(f"app agent failed: {r.stderr[-2000:]}")
        return json.loads(r.stdout.strip().splitlines()[-1])

    def __exit__(self, *exc) -> None:
        for p in reversed(self.procs):
            stop(p)
        self.procs.clear()
        self.lab.teardown()
