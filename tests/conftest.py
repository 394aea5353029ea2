"""Shared fixtures: an isolated MLflow store and cache per test session; the data root."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from camlab import settings


@pytest.fixture(autouse=True, scope="session")
def _isolated_stores(tmp_path_factory):
    """Tests never write into the developer's mlruns.db or exports/."""
    root = tmp_path_factory.mktemp("camlab_stores")
    old = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "CAMLAB_EXPORTS", "CAMLAB_MLFLOW_ARTIFACTS")}
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{root / 'mlruns.db'}"
    os.environ["CAMLAB_MLFLOW_ARTIFACTS"] = str(root / "mlartifacts")
    os.environ["CAMLAB_EXPORTS"] = str(root / "exports")
    yield root
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real data root; tests that need it skip with the reason when it is absent."""
    root = settings.data_root()
    if not (root / "README.md").is_file():
        pytest.skip(f"real data not found at {root} (set CAMLAB_DATA)")
    return root
