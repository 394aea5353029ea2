"""Training checkpoints: one self-describing file per save, written atomically so a killed run can resume.

Format (``torch.save`` of a dict): ``kind`` ("detector" | "cry"), ``model_config`` (plain dict that rebuilds the
model), ``state_dict``, ``meta`` (metrics, data split, git commit, MLflow run id), and for resume ``optimizer``,
``scheduler``, ``epoch``, ``rng``. Exporters and evaluators only need ``kind``, ``model_config`` and ``state_dict``.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from camlab.errors import InputFileError
from camlab.io_utils import atomic_write_bytes

REQUIRED = ("kind", "model_config", "state_dict")


def save_checkpoint(path: str | Path, *, kind: str, model_config: dict, state_dict: dict, meta: dict | None = None,
                    **resume_state: Any) -> Path:
    """Serialise a checkpoint to ``path`` (temp + fsync + rename)."""
    import torch

    payload = {"kind": kind, "model_config": dict(model_config), "state_dict": state_dict, "meta": dict(meta or {}),
               **resume_state}
    buf = io.BytesIO()
    torch.save(payload, buf)
    path = Path(path)
    atomic_write_bytes(path, buf.getvalue())
    return path


def load_checkpoint(path: str | Path, expect_kind: str | None = None) -> dict:
    """Load and check a checkpoint; raises InputFileError naming the file and what is wrong."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{path}: checkpoint not found")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # torch raises many types for a corrupt file
        raise InputFileError(f"{path}: not a readable camlab checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(payload, dict) or any(k not in payload for k in REQUIRED):
        raise InputFileError(f"{path}: checkpoint lacks {', '.join(k for k in REQUIRED if k not in (payload or {}))}"
                             if isinstance(payload, dict) else f"{path}: checkpoint is not a camlab checkpoint dict")
    if expect_kind is not None and payload["kind"] != expect_kind:
        raise InputFileError(f"{path}: checkpoint is a '{payload['kind']}' model, expected '{expect_kind}'")
    return payload
