"""Project-wide settings: where the data, outputs and the MLflow store live.

The data root comes from ``CAMLAB_DATA`` (default ``../shared/data`` beside the project root). The MLflow store is a
SQLite file in the project (``mlruns.db``) with artifacts under ``mlartifacts/``; both are git-ignored.
"""
from __future__ import annotations

import os
from pathlib import Path

from camlab.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def project_root() -> Path:
    """The repository root (the folder holding ``pyproject.toml``)."""
    return Path(os.environ.get("CAMLAB_ROOT", PROJECT_ROOT)).resolve()


DATA_FOLDERS = ("images", "audio", "raw")


def data_root() -> Path:
    """Root of the real data sets: ``$CAMLAB_DATA`` or ``<project>/../shared/data``.

    An explicit ``CAMLAB_DATA`` must be a folder holding at least one of ``images/``, ``audio/``, ``raw/``: an empty
    or mistyped one raises :class:`ConfigError` instead of letting the loaders fall back to the demo slice (a
    "full" config once trained on the slice that way, silently)."""
    env = os.environ.get("CAMLAB_DATA")
    if not env:
        return (project_root().parent / "shared" / "data").resolve()
    root = Path(env).expanduser().resolve()
    if not root.is_dir():
        raise ConfigError(f"CAMLAB_DATA={env}: is not a folder (point it at the data root, or unset it)")
    if not any((root / d).is_dir() for d in DATA_FOLDERS):
        raise ConfigError(f"CAMLAB_DATA={env}: no {', '.join(d + '/' for d in DATA_FOLDERS[:-1])} or "
                          f"{DATA_FOLDERS[-1]}/ folder in it (point it at the data root, or unset it)")
    return root


def has_full_data() -> bool:
    """True when the full shared data sets are reachable (not the embedded demo slice)."""
    root = data_root()
    return (root / "images").is_dir() and (root / "audio").is_dir() and root != demo_data_root().resolve()


def detector_split_manifest() -> Path:
    """The detector's split manifest: ``$CAMLAB_DETECTOR_SPLIT`` or ``datasets/detector_split.json``.

    The manifest's paths are relative to the data root, so a run on another data root (the demo slice) points this
    at a manifest built from that root.
    """
    env = os.environ.get("CAMLAB_DETECTOR_SPLIT")
    return Path(env).resolve() if env else project_root() / "datasets" / "detector_split.json"


def demo_data_root() -> Path:
    """The small attributed slice committed under ``datasets/demo`` (``make demo`` on a clone with no ../shared)."""
    return project_root() / "datasets" / "demo"


def data_or_demo(sub: str) -> Path:
    """``<data root>/<sub>`` when it exists, else the demo slice's ``datasets/demo/<sub>`` (a fresh clone with no
    ``../shared/data``: notebooks fall back the way ``make demo`` does)."""
    full = data_root() / sub
    return full if full.is_dir() else demo_data_root() / sub


def exports_root() -> Path:
    """Where export bundles are written: ``$CAMLAB_EXPORTS`` or ``<project>/exports``."""
    env = os.environ.get("CAMLAB_EXPORTS")
    return Path(env).resolve() if env else project_root() / "exports"


def cache_root() -> Path:
    """Cache for expensive derived data (rendered camera-domain images, features): ``$CAMLAB_CACHE`` or ``.cache``."""
    env = os.environ.get("CAMLAB_CACHE")
    return Path(env).resolve() if env else project_root() / ".cache"


def mlflow_tracking_uri() -> str:
    """``$MLFLOW_TRACKING_URI`` or the project's SQLite store ``sqlite:///<project>/mlruns.db``."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{project_root() / 'mlruns.db'}"


def mlflow_artifact_root() -> Path:
    """Artifact folder for experiments created by camlab (next to ``mlruns.db``)."""
    env = os.environ.get("CAMLAB_MLFLOW_ARTIFACTS")
    return Path(env).resolve() if env else project_root() / "mlartifacts"
