"""Training utilities shared by the detector and the cry model: seeding, progress bars, MLflow figure/param logging.

Seeding follows PyTorch's reproducibility notes (https://pytorch.org/docs/stable/notes/randomness.html): one seed
drives Python, NumPy and torch; per-rank offsets keep DDP workers' augmentation streams distinct. Figures are
rendered with matplotlib's Agg backend and logged as MLflow image artifacts.
"""
from __future__ import annotations

import os
import random
import sys
import time
from typing import Any, Iterable, Mapping

import numpy as np


def seed_everything(seed: int, rank: int = 0) -> np.random.Generator:
    """Seed python/numpy/torch (offset by rank); returns a numpy Generator for the caller's own draws."""
    import torch

    s = int(seed) + 1000 * int(rank)
    random.seed(s)
    np.random.seed(s % 2 ** 32)
    torch.manual_seed(s)
    return np.random.default_rng(s)


def set_threads(n: int) -> None:
    """Cap torch intra-op threads (the training machine's cores are shared)."""
    import torch

    if n > 0:
        torch.set_num_threads(n)
        os.environ.setdefault("OMP_NUM_THREADS", str(n))


def progress(iterable: Iterable, *, desc: str, total: int | None = None, enabled: bool = True, **kw):
    """A tqdm bar on stderr when it is a terminal (or in a notebook); when it is not (a log file, CI), one line per
    pass instead of hundreds of carriage-return updates. Nothing on non-main ranks or when ``enabled`` is False.
    Not ``tqdm.auto``: its asyncio class opens an iterator over ``iterable`` as soon as it is built, and a DataLoader
    with workers starts them and prefetches batches for that iterator, which is then dropped."""
    if _in_jupyter_kernel():
        from tqdm.notebook import tqdm
    else:
        from tqdm.std import tqdm

    stream = kw.get("file") or sys.stderr
    if enabled and not _interactive(stream):
        return LineProgress(iterable, desc=desc, total=total, stream=stream)
    return tqdm(iterable, desc=desc, total=total, disable=not enabled, dynamic_ncols=True, leave=False, **kw)


def _in_jupyter_kernel() -> bool:
    """True inside a running Jupyter kernel (not merely with ipykernel imported, as a test runner may have it)."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def _interactive(stream: Any) -> bool:
    """A terminal, or a Jupyter kernel (tqdm.notebook draws a widget there)."""
    if _in_jupyter_kernel():
        return True
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # closed stream
        return False


class LineProgress:
    """The part of tqdm's interface the loops use (iterate, ``set_postfix``, ``close``): one summary line at the end,
    ``desc: N items in S s (postfix)``."""

    def __init__(self, iterable: Iterable, *, desc: str, total: int | None, stream: Any):
        self.iterable, self.desc, self.total, self.stream = iterable, desc, total, stream
        self.n, self.postfix, self._closed = 0, "", False
        self._t0 = time.perf_counter()

    def __iter__(self):
        try:
            for item in self.iterable:
                yield item
                self.n += 1
        finally:
            self.close()

    def __len__(self) -> int:
        return self.total if self.total is not None else len(self.iterable)  # type: ignore[arg-type]

    def set_postfix(self, ordered_dict: Mapping[str, Any] | None = None, refresh: bool = True, **kw: Any) -> None:
        items = {**(ordered_dict or {}), **kw}
        self.postfix = ", ".join(f"{k}={v}" for k, v in items.items())

    def update(self, n: int = 1) -> None:
        self.n += n

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        of = f"/{self.total}" if self.total is not None and self.total != self.n else ""
        extra = f" ({self.postfix})" if self.postfix else ""
        print(f"{self.desc}: {self.n}{of} in {time.perf_counter() - self._t0:.1f} s{extra}", file=self.stream,
              flush=True)


def flatten_params(d: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested config dict -> flat ``a.b.c`` -> str mapping for ``mlflow.log_params`` (values cut to 500 chars)."""
    out: dict[str, str] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten_params(v, key + "."))
        else:
            out[key] = str(v)[:500]
    return out


def log_figure(fig, artifact_file: str) -> None:
    """Log a matplotlib figure into the active MLflow run and close it."""
    import matplotlib.pyplot as plt
    import mlflow

    mlflow.log_figure(fig, artifact_file)
    plt.close(fig)


def plot_pr_curves(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], title: str = "Precision-recall (IoU 0.5)"):
    """{name: (recall, precision)} -> a matplotlib Figure."""
    import matplotlib.pyplot as plt  # headless default backend is Agg; notebooks keep their inline backend

    fig, ax = plt.subplots(figsize=(5, 4), dpi=100)
    for name, (rec, prec) in curves.items():
        ax.plot(rec, prec, label=name)
    ax.set_xlabel("recall")
    ax.set_ylabel("precision")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.set_title(title)
    ax.legend(loc="lower left")
    fig.tight_layout()
    return fig


def plot_confusion(matrix: np.ndarray, labels: list[str], title: str = "Confusion matrix"):
    """Square count matrix (rows: truth, columns: prediction) -> a matplotlib Figure with counts."""
    import matplotlib.pyplot as plt  # headless default backend is Agg; notebooks keep their inline backend

    m = np.asarray(matrix)
    fig, ax = plt.subplots(figsize=(5, 4.5), dpi=100)
    ax.imshow(m, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=30)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    for i in range(m.shape[0]):
        for j in range(m.shape[1]):
            ax.text(j, i, str(int(m[i, j])), ha="center", va="center",
                    color="white" if m[i, j] > m.max() / 2 else "black")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_group_alarm_rates(by_group: dict, title: str = "Alarm rate by group"):
    """``camlab.eval.audio.group_summary`` output -> horizontal bars: recall for cry groups (green), false-alarm share
    for no-cry groups (red), each labelled with alarms / clips, so a user sees which sounds fool the model."""
    import matplotlib.pyplot as plt  # headless default backend is Agg; notebooks keep their inline backend

    names = list(by_group)
    fig, ax = plt.subplots(figsize=(6, 0.3 * len(names) + 1.2), dpi=100)
    for i, name in enumerate(names):
        g = by_group[name]
        ax.barh(i, g["alarm_rate"], color="tab:green" if g["label"] else "tab:red")
        ax.text(min(g["alarm_rate"], 0.85) + 0.01, i, f"{g['alarms']}/{g['clips']}", va="center", fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1.0)
    ax.set_xlabel("share of clips that alarm (cry: recall; no cry: false alarms)")
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_losses(history: list[dict], keys: Iterable[str], title: str = "training"):
    """Per-epoch history rows -> a line plot of ``keys``."""
    import matplotlib.pyplot as plt  # headless default backend is Agg; notebooks keep their inline backend

    fig, ax = plt.subplots(figsize=(5, 3.5), dpi=100)
    for k in keys:
        xs = [r["epoch"] for r in history if k in r]
        ax.plot(xs, [r[k] for r in history if k in r], marker="o", label=k)
    ax.set_xlabel("epoch")
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(title)
    fig.tight_layout()
    return fig
