"""Training checkpoints: one self-describing file per save, written atomically so a killed run can resume.

Format (``torch.save`` of a dict): ``kind`` ("detector" | "cry"), ``model_config`` (plain dict that rebuilds the
model), ``state_dict``, ``meta`` (metrics, data split, git commit, MLflow run id), and for resume ``optimizer``,
``scheduler``, ``epoch``, ``rng``. Exporters and evaluators only need ``kind``, ``model_config`` and ``state_dict``.

A checkpoint path may come from a user, so a file is loaded with ``torch.load(weights_only=True)``: only tensors and
plain containers/scalars are rebuilt, never arbitrary objects (a pickle cannot run code). :func:`save_checkpoint`
therefore stores plain types only (numpy scalars/arrays, dataclasses and paths are converted on save).
"""
from __future__ import annotations

import collections
import io
import pickle
from pathlib import Path
from typing import Any

from camlab.errors import InputFileError
from camlab.io_utils import atomic_write_bytes

REQUIRED = ("kind", "model_config", "state_dict")


def _plain_key(k: Any) -> Any:
    if type(k) in (str, int):
        return k
    if isinstance(k, str):
        return str(k)
    try:
        return int(k) if int(k) == k else str(k)      # IntEnum, numpy integers
    except (TypeError, ValueError):
        return str(k)


def _plain(obj: Any) -> Any:
    """``obj`` as tensors, str/int/float/bool/None, lists and str-keyed dicts (what weights_only loading allows)."""
    import dataclasses
    import os

    import torch

    if obj is None or type(obj) in (bool, int, float, str, bytes) or isinstance(obj, torch.Tensor):
        return obj                                   # exact types: np.float64 is a float subclass, pickled as numpy
    if isinstance(obj, dict):
        items = [(_plain_key(k), _plain(v)) for k, v in obj.items()]
        if isinstance(obj, collections.OrderedDict):           # a module state_dict keeps its version metadata
            out = collections.OrderedDict(items)
            if isinstance(getattr(obj, "_metadata", None), dict):
                out._metadata = _plain(obj._metadata)
            return out
        return dict(items)
    if isinstance(obj, tuple):
        return tuple(_plain(v) for v in obj)
    if isinstance(obj, (list, set, frozenset)):
        return [_plain(v) for v in obj]
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return _plain(dataclasses.asdict(obj))
    if isinstance(obj, os.PathLike):
        return str(obj)
    tolist = getattr(obj, "tolist", None)            # numpy scalars and arrays
    if callable(tolist):
        return _plain(tolist())
    if hasattr(obj, "item") and callable(obj.item):
        return _plain(obj.item())
    raise TypeError(f"checkpoint: cannot store a {type(obj).__name__} (only tensors and plain data)")


def save_checkpoint(path: str | Path, *, kind: str, model_config: dict, state_dict: dict, meta: dict | None = None,
                    **resume_state: Any) -> Path:
    """Serialise a checkpoint to ``path`` (temp + fsync + rename)."""
    import torch

    payload = _plain({"kind": kind, "model_config": dict(model_config), "state_dict": state_dict,
                      "meta": dict(meta or {}), **resume_state})
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
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:     # weights_only refused it: never fall back to a full unpickle
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        what = next((ln for ln in lines if "Unsupported" in ln), lines[0] if lines else "")
        raise InputFileError(f"{path}: not a readable camlab checkpoint: only tensors and plain data are loaded, "
                             f"nothing else is unpickled ({what[:160]}); if it is an old or foreign checkpoint, "
                             "retrain (or re-save it with this camlab version from a copy you trust)") from None
    except Exception as exc:  # torch raises many types for a corrupt file
        raise InputFileError(f"{path}: not a readable camlab checkpoint ({type(exc).__name__}: {exc})") from None
    if not isinstance(payload, dict) or any(k not in payload for k in REQUIRED):
        raise InputFileError(f"{path}: checkpoint lacks {', '.join(k for k in REQUIRED if k not in (payload or {}))}"
                             if isinstance(payload, dict) else f"{path}: checkpoint is not a camlab checkpoint dict")
    if expect_kind is not None and payload["kind"] != expect_kind:
        raise InputFileError(f"{path}: checkpoint is a '{payload['kind']}' model, expected '{expect_kind}'")
    return payload
