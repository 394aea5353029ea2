"""Run the fuzz targets: ``python -m tests.fuzz.run [--seconds N] [--target T ...] [--json PATH] [--write-seeds]``.

Each target runs as its own subprocess (``python -m tests.fuzz.harness``, atheris + libFuzzer, coverage from
atheris' bytecode instrumentation of the target's modules) with:

* a per-case timeout (libFuzzer ``-timeout``, default 10 s): a case running longer is a hang;
* a memory limit: RLIMIT_AS on the process (default 6 GiB of address space; Python raises MemoryError past it, which
  is a crash) and libFuzzer's ``-rss_limit_mb`` (default 2048): an ``oom``;
* the saved corpus ``tests/fuzz/corpus/<target>/`` as seeds (read only; the inputs libFuzzer finds go to a scratch
  corpus, or to ``--keep-corpus DIR/<target>`` for the long run).

Per target it reports cases (executed inputs), coverage (libFuzzer ``cov``: instrumented edges reached, and ``ft``:
features), new corpus units and crashes / hangs / ooms; the failing inputs are copied to
``out/fuzz/artifacts/<target>/``. libFuzzer stops a target at its first failure, so "crashes" is 0 or 1 per run.
Exit status 1 when any target failed. ``--write-seeds`` (re)writes the seed files ``seed-*`` from the targets'
``seeds()`` (the project's own writers); regression inputs (``crash-*``) in the corpus folders are kept.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.fuzz.targets import NAMES, load

ROOT = Path(__file__).resolve().parents[2]
CORPUS = Path(__file__).resolve().parent / "corpus"
ARTIFACTS = ROOT / "out" / "fuzz" / "artifacts"
STATUS_RE = re.compile(r"^#(\d+)\s+(?:INITED|NEW|REDUCE|pulse|DONE|RELOAD)\s+cov: (\d+) ft: (\d+)", re.M)
FAIL_KINDS = {"crash": "crashes", "timeout": "hangs", "oom": "ooms", "leak": "crashes"}


def write_seeds(names=NAMES) -> int:
    n = 0
    for name in names:
        d = CORPUS / name
        d.mkdir(parents=True, exist_ok=True)
        for old in d.glob("seed-*"):
            old.unlink()
        for key, data in load(name).seeds().items():
            (d / f"seed-{key}").write_bytes(data)
            n += 1
    return n


def _limit(as_mb: int):
    def apply():
        resource.setrlimit(resource.RLIMIT_AS, (as_mb << 20, as_mb << 20))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    return apply


def run_target(name: str, seconds: float, *, timeout_s: int = 10, rss_mb: int = 2048, as_mb: int = 6144,
               keep_corpus: Path | None = None, seed: int = 1) -> dict:
    """One target for ``seconds`` of fuzzing (after its seed corpus ran). Returns the figures."""
    load(name)                                   # unknown names fail here, not in the child
    seeds = CORPUS / name
    with tempfile.TemporaryDirectory(prefix=f"camlab-fuzz-{name}-") as tmp:
        work = Path(keep_corpus) / name if keep_corpus else Path(tmp) / "corpus"
        art = Path(tmp) / "artifacts"
        work.mkdir(parents=True, exist_ok=True)
        art.mkdir()
        cmd = [sys.executable, "-m", "tests.fuzz.harness", name, f"-max_total_time={max(1, int(seconds))}",
               f"-timeout={timeout_s}", f"-rss_limit_mb={rss_mb}", f"-seed={seed}", "-print_final_stats=1",
               f"-artifact_prefix={art}/", str(work)] + ([str(seeds)] if seeds.is_dir() else [])
        t0 = time.perf_counter()
        try:
            p = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace",
                               preexec_fn=_limit(as_mb), timeout=seconds + 10 * timeout_s + 180)
            log, rc = p.stdout, p.returncode
        except subprocess.TimeoutExpired as exc:
            out = exc.stdout or b""
            log = (out.decode(errors="replace") if isinstance(out, bytes) else out)
            log += "\n[runner] the fuzzer process did not finish in time; killed"
            rc = -9
        wall = time.perf_counter() - t0
        status = STATUS_RE.findall(log)
        stats = dict(re.findall(r"^stat::(\w+):\s+(\d+)", log, re.M))
        res = {"cases": int(stats.get("number_of_executed_units", status[-1][0] if status else 0)),
               "coverage_edges": int(status[-1][1]) if status else 0,
               "coverage_features": int(status[-1][2]) if status else 0,
               "seed_inputs": len(list(seeds.glob("*"))) if seeds.is_dir() else 0,
               "new_units": int(stats.get("new_units_added", 0)),
               "peak_rss_mb": int(stats.get("peak_rss_mb", 0)),
               "crashes": 0, "hangs": 0, "ooms": 0, "wall_s": round(wall, 1), "artifacts": []}
        res["exec_per_s"] = round(res["cases"] / wall, 1) if wall else 0.0
        found = sorted(art.iterdir())
        if found:
            dest = ARTIFACTS / name
            dest.mkdir(parents=True, exist_ok=True)
        for f in found:
            kind = f.name.split("-", 1)[0]
            res[FAIL_KINDS.get(kind, "crashes")] += 1
            shutil.copy2(f, dest / f.name)
            res["artifacts"].append(str((dest / f.name).relative_to(ROOT)))
        if rc != 0 and not found:                # the harness itself died (import error, signal): a crash too
            res["crashes"] += 1
        if rc != 0 or found:
            res["log_tail"] = log[-3000:]
        res["failed"] = bool(res["crashes"] or res["hangs"] or res["ooms"])
        return res


def run_all(seconds: float, names=NAMES, **kw) -> dict:
    per = {}
    for name in names:
        per[name] = run_target(name, seconds, **kw)
        r = per[name]
        print(f"fuzz {name:14s} cases {r['cases']:>9d}  cov {r['coverage_edges']:>5d}  ft {r['coverage_features']:>6d}"
              f"  crashes {r['crashes']}  hangs {r['hangs']}  ooms {r['ooms']}  {r['wall_s']:6.1f} s", flush=True)
    return {"engine": f"atheris {_atheris_version()} (libFuzzer)", "seconds_per_target": seconds,
            "per_case_timeout_s": kw.get("timeout_s", 10), "rss_limit_mb": kw.get("rss_mb", 2048),
            "address_space_limit_mb": kw.get("as_mb", 6144), "targets": per,
            "cases": sum(r["cases"] for r in per.values()),
            "crashes": sum(r["crashes"] + r["hangs"] + r["ooms"] for r in per.values())}


def _atheris_version() -> str:
    from importlib.metadata import version
    return version("atheris")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.fuzz.run", description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="fuzzing time per target (default 10)")
    ap.add_argument("--target", action="append", choices=NAMES, help="run only these (repeatable)")
    ap.add_argument("--timeout", type=int, default=10, help="per-case timeout in seconds (default 10)")
    ap.add_argument("--rss-mb", type=int, default=2048)
    ap.add_argument("--as-mb", type=int, default=6144, help="RLIMIT_AS of each target process, MiB")
    ap.add_argument("--keep-corpus", type=Path, help="keep the inputs found under DIR/<target>/")
    ap.add_argument("--json", type=Path, help="write the report here")
    ap.add_argument("--write-seeds", action="store_true", help="rewrite tests/fuzz/corpus/<target>/seed-* and exit")
    a = ap.parse_args(argv)
    names = tuple(a.target or NAMES)
    if a.write_seeds:
        print(f"wrote {write_seeds(names)} seed files under {CORPUS}")
        return 0
    rep = run_all(a.seconds, names, timeout_s=a.timeout, rss_mb=a.rss_mb, as_mb=a.as_mb, keep_corpus=a.keep_corpus)
    if a.json:
        a.json.parent.mkdir(parents=True, exist_ok=True)
        a.json.write_text(json.dumps(rep, indent=2) + "\n")
    for name, r in rep["targets"].items():
        if r["failed"]:
            print(f"--- {name}: {r['artifacts']}\n{r.get('log_tail', '')}", file=sys.stderr)
    return 1 if rep["crashes"] else 0


if __name__ == "__main__":
    sys.exit(main())
