"""MLflow tracking with the project's SQLite backend (``mlruns.db``) and a local artifact folder.

One place decides the tracking URI and creates experiments with the project's artifact root, so runs from the CLI,
notebooks, ``make demo`` and tests land in the same store (tests point ``MLFLOW_TRACKING_URI`` at a temp dir).
"""
from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, Iterator

from camlab import settings


def configure() -> str:
    """Point MLflow at the project store; returns the tracking URI."""
    import mlflow

    uri = settings.mlflow_tracking_uri()
    mlflow.set_tracking_uri(uri)
    os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
    return uri


def experiment_id(name: str) -> str:
    """Get or create an experiment whose artifacts live under the project's artifact root."""
    import mlflow

    configure()
    exp = mlflow.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    root = settings.mlflow_artifact_root()
    if settings.mlflow_tracking_uri().startswith("sqlite:///") and "CAMLAB_MLFLOW_ARTIFACTS" not in os.environ \
            and "MLFLOW_TRACKING_URI" in os.environ:
        # a test or user store elsewhere: keep its artifacts beside its database
        root = Path(settings.mlflow_tracking_uri()[len("sqlite:///"):]).parent / "mlartifacts"
    root.mkdir(parents=True, exist_ok=True)
    return mlflow.create_experiment(name, artifact_location=root.resolve().as_uri())


@contextlib.contextmanager
def run(experiment: str, run_name: str | None = None, nested: bool = False,
        tags: dict[str, Any] | None = None) -> Iterator[Any]:
    """Start an MLflow run in ``experiment``; yields the active run.

    When a run is already active (e.g. ``make demo``'s parent run) the new run is nested under it, so one parent run
    holds the ISP, training, export and device_sim child runs. Ctrl-C or SIGTERM ends the open runs KILLED (a
    killed job used to leave its runs RUNNING); any other exception ends them FAILED.
    """
    import mlflow

    exp_id = experiment_id(experiment)
    parent = mlflow.active_run()
    if parent is not None:
        nested = True
        exp_id = parent.info.experiment_id
    with _sigterm_raises(), mlflow.start_run(experiment_id=exp_id, run_name=run_name, nested=nested,
                                             tags={k: str(v) for k, v in (tags or {}).items()}) as active:
        try:
            yield active
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the run was killed, not a failure of the code
            current = mlflow.active_run()
            if current is not None and current.info.run_id == active.info.run_id:
                mlflow.end_run("KILLED")
            raise


class Terminated(KeyboardInterrupt):
    """SIGTERM raised as an exception, so open MLflow runs end KILLED instead of staying RUNNING."""


@contextlib.contextmanager
def _sigterm_raises() -> Iterator[None]:
    """While the outermost run is open (main thread, default SIGTERM handler), SIGTERM raises :class:`Terminated`."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return

    def _raise(signum: int, frame: Any) -> None:
        raise Terminated(f"terminated by signal {signum}")

    signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def git_commit() -> str:
    """The project's current git commit (``unknown`` outside a checkout)."""
    import subprocess

    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=settings.project_root(), capture_output=True,
                             text=True, timeout=5)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"
