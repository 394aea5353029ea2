"""``make bench``: run every ``benchmarks/bench_*.py`` and write ``benchmarks/results/<name>.json``.

Each bench module exposes ``run() -> dict`` (anchors measured in the same run) and ``NAME`` (the JSON file stem).
The machine the figures came from is recorded beside them. ``python -m benchmarks.run isp export`` runs a subset.
"""
from __future__ import annotations

import importlib
import json
import os
import platform
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def git_commit() -> dict:
    """HEAD of the repo the bench ran from and whether tracked files differed from it."""
    import subprocess
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                                    capture_output=True, text=True, check=True).stdout.strip())
    except (OSError, subprocess.CalledProcessError):
        return {"commit": None, "dirty": None}
    return {"commit": head, "dirty": dirty}


def machine() -> dict:
    """Machine, date, load and the git commit a result came from (issue 15: every JSON records them)."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "python": platform.python_version(),
            "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "load_average_1_5_15": [round(x, 2) for x in load] if load else None, "git": git_commit()}


def main(argv: list[str] | None = None) -> int:
    wanted = set(argv if argv is not None else sys.argv[1:])
    RESULTS.mkdir(parents=True, exist_ok=True)
    modules = sorted(p.stem for p in Path(__file__).parent.glob("bench_*.py"))
    benches = []
    for stem in modules:
        mod = importlib.import_module(f"benchmarks.{stem}")
        benches.append((getattr(mod, "NAME", stem.removeprefix("bench_")), mod))
    unknown = sorted(wanted - {name for name, _ in benches})
    if unknown:   # running nothing and exiting 0 would read as a finished run
        print(f"no bench named {', '.join(unknown)}; known: {', '.join(name for name, _ in benches)}",
              file=sys.stderr)
        return 2
    failed = []
    for name, mod in benches:
        if wanted and name not in wanted:
            continue
        print(f"== bench {name}", flush=True)
        t0 = time.perf_counter()
        m0 = machine()
        try:
            result = mod.run()
        except Exception as exc:  # a failed bench is reported, the others still run
            print(f"bench {name} failed: {exc!r}", file=sys.stderr)
            failed.append(name)
            continue
        load_before = m0["load_average_1_5_15"]
        result = {**result, "machine": {**machine(), "load_average_at_start": load_before},
                  "bench_wall_s": round(time.perf_counter() - t0, 1)}
        out = RESULTS / f"{name}.json"
        out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"   -> {out}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
