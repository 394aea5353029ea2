"""An interrupted or terminated run ends KILLED in MLflow (parent and nested child), never left RUNNING."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _status(run_id: str) -> str:
    from mlflow.tracking import MlflowClient

    from camlab import tracking

    tracking.configure()
    return MlflowClient().get_run(run_id).info.status


def test_keyboard_interrupt_marks_parent_and_child_killed():
    from camlab import tracking

    ids = []
    with pytest.raises(KeyboardInterrupt):
        with tracking.run("killed-test", run_name="parent") as parent:
            ids.append(parent.info.run_id)
            with tracking.run("killed-test", run_name="child") as child:
                ids.append(child.info.run_id)
                raise KeyboardInterrupt
    assert [_status(i) for i in ids] == ["KILLED", "KILLED"]
    with pytest.raises(RuntimeError):
        with tracking.run("killed-test", run_name="bug") as run:
            ids.append(run.info.run_id)
            raise RuntimeError("a bug is a failure, not a kill")
    assert _status(ids[-1]) == "FAILED"


def test_sigterm_marks_the_run_killed(tmp_path):
    code = ("import sys, time\n"
            "from camlab import tracking\n"
            "with tracking.run('killed-test', run_name='terminated') as r:\n"
            "    print(r.info.run_id, flush=True)\n"
            "    time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=dict(os.environ), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    run_id = proc.stdout.readline().strip()
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    assert run_id and _status(run_id) == "KILLED", proc.stderr.read()[-2000:]
