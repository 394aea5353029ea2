"""Fit CamDet's presence gate after training: a per-class logistic regression on the frozen detector's pooled
stride-16/32 features and its own highest class logit, folded into the graph as a logit offset.

For class c and an image with highest (ungated) class logit ``m`` and pooled features ``f``, the fit is a logistic
regression with ``m`` as a fixed offset: P(c present) = sigmoid(m + w.f + b). The graph keeps the suppressing
half of ``g = w.f + b``: it adds ``min(g, 0)`` to every cell's class logit (:class:`camlab.models.detector.
PresenceGate`), so an image the fit reads as free of the class has all its boxes of it lowered, an image it reads
as holding it keeps the detector's own scores, and within one image the boxes keep their order. Rows: the
images where the class is known (present, or its source labels it exhaustively: federated labels, Gupta et al.,
LVIS, CVPR 2019). L2 as scikit-learn's C, solved by L-BFGS; thresholds are picked on out-of-fold gates (k-fold
cross-fitting: no image's calibration score comes from a gate that saw it), the shipped gate is fitted on all
rows.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from camlab.data.classes import CLASSES
from camlab.errors import ConfigError


@dataclass
class GateRows:
    pooled: np.ndarray      # (N, D) pooled features
    max_logit: np.ndarray   # (N, C) highest ungated class logit over every cell and level
    present: np.ndarray     # (N, C) bool
    known: np.ndarray       # (N, C) bool: present, or absent in a source that labels the class exhaustively
    index: np.ndarray       # (N,) the sample each row came from (unreadable samples have no row)

    def take(self, mask: np.ndarray) -> "GateRows":
        return GateRows(self.pooled[mask], self.max_logit[mask], self.present[mask], self.known[mask],
                        self.index[mask])


@torch.no_grad()
def gate_rows(model, samples: list, *, show_progress: bool = False) -> GateRows:
    """The fit's inputs for each readable sample, through the contract's preprocessing (as the camera sees it)."""
    from camlab.contract.detection import preprocess
    from camlab.data.render import sample_rgb
    from camlab.errors import InputFileError
    from camlab.models.detector import manifest_io
    from camlab.train.common import progress

    if model.gate is None:
        raise ConfigError("gate_rows: the model has no presence gate (model_config.presence_gate)")
    in_spec = manifest_io(model.config)["inputs"][0]
    model.eval()
    pooled, max_logit, present, known, index = [], [], [], [], []
    for i, s in enumerate(progress(samples, desc="presence gate", enabled=show_progress)):
        try:
            rgb = sample_rgb(s)
        except InputFileError:
            continue
        x, _ = preprocess(rgb, in_spec)
        outs, (c4, c5) = model.forward_parts(torch.from_numpy(x))
        cls = torch.cat([o.flatten(2) for o in outs[1::2]], 2)       # (1, C, cells)
        pooled.append(model.gate.pooled(c4, c5).flatten().numpy())
        max_logit.append(cls.amax(2)[0].numpy())
        present.append([s.has(c) for c in range(len(CLASSES))])
        known.append([s.has(c) or s.exhaustive(c) for c in range(len(CLASSES))])
        index.append(i)
    n = len(CLASSES)
    return GateRows(np.asarray(pooled, np.float64).reshape(len(index), -1),
                    np.asarray(max_logit, np.float64).reshape(-1, n), np.asarray(present, bool).reshape(-1, n),
                    np.asarray(known, bool).reshape(-1, n), np.asarray(index, np.int64))


def _offset_logistic(m: np.ndarray, x: np.ndarray, y: np.ndarray, c: float) -> tuple[np.ndarray, float]:
    """argmin_w,b  sum BCE(sigmoid(m + x.w + b), y) + ||w||^2 / (2 c): logistic regression with the detector's
    logit as a fixed offset (its coefficient held at 1, as the graph adds the gate to it), L2 as scikit-learn's C."""
    mt, xt, yt = (torch.as_tensor(a, dtype=torch.float64) for a in (m, x, y.astype(np.float64)))
    w = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1.0, max_iter=500, tolerance_grad=1e-9, tolerance_change=1e-12,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(mt + xt @ w + b, yt, reduction="sum") \
            + (w * w).sum() / (2.0 * c)
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach().numpy(), float(b.detach())


def fit_gate(rows: GateRows, classes: tuple[str, ...], c: float) -> tuple[np.ndarray, np.ndarray, dict]:
    """(weight (C, D), bias (C,), report) of the gate for ``classes`` (the others stay zero): per class, on its
    known rows, P(present) = sigmoid(m + w.f + b) with ``m`` the highest ungated class logit and ``f`` the
    pooled features (standardised for the fit, folded back into the weights)."""
    n_cls, dim = rows.max_logit.shape[1], rows.pooled.shape[1]
    weight, bias, report = np.zeros((n_cls, dim)), np.zeros(n_cls), {}
    for name in classes:
        ci = CLASSES.index(name)
        sel = rows.known[:, ci]
        y = rows.present[sel, ci]
        if y.all() or not y.any():
            report[name] = {"fitted": False, "why": f"{int(y.sum())} positives of {int(sel.sum())} known rows"}
            continue
        f = rows.pooled[sel]
        mu, sd = f.mean(0), f.std(0) + 1e-6
        w, b = _offset_logistic(rows.max_logit[sel, ci], (f - mu) / sd, y, c)
        weight[ci] = w / sd
        bias[ci] = b - float((w * mu / sd).sum())
        g = (f - mu) / sd @ w + b
        report[name] = {"fitted": True, "rows": int(sel.sum()), "positives": int(y.sum()),
                        "gate_mean_positives": round(float(g[y].mean()), 3),
                        "gate_mean_negatives": round(float(g[~y].mean()), 3)}
    return weight, bias, report


def fold_of(n: int, folds: int, seed: int) -> np.ndarray:
    """A seeded assignment of ``n`` rows to ``folds`` folds (balanced)."""
    if folds < 2:
        raise ConfigError(f"calibrate.presence_gate_folds must be >= 2 (cross-fitting), got {folds}")
    return np.random.default_rng(seed).permutation(np.arange(n) % folds)


def set_gate(model, weight: np.ndarray, bias: np.ndarray) -> None:
    """Put the fitted offset g = weight.f + bias into the graph, which cuts min(g, 0) (the convs hold -g, split by
    pooled vector)."""
    w = -torch.from_numpy(np.asarray(weight)).float()
    if w.shape[1] != sum(model.gate.widths):
        raise ConfigError(f"set_gate: {w.shape[1]} weights per class, the gate reads {sum(model.gate.widths)}")
    with torch.no_grad():
        start = 0
        for conv, width in zip(model.gate.fc, model.gate.widths):
            conv.weight.copy_(w[:, start:start + width, None, None])
            start += width
        model.gate.fc[0].bias.copy_(-torch.from_numpy(np.asarray(bias)).float())


def with_gate(model):
    """A copy of an ungated CamDet with a (zero) presence gate: same weights, same outputs until fitted."""
    import dataclasses

    from camlab.models.detector import CamDet

    gated = CamDet(dataclasses.replace(model.config, presence_gate=True))
    missing, unexpected = gated.load_state_dict(model.state_dict(), strict=False)
    if unexpected or any(not k.startswith("gate.") for k in missing):
        raise ConfigError(f"with_gate: state dicts differ beyond the gate (missing {missing}, unexpected {unexpected})")
    return gated.eval()


def cross_fitted_scores(model, samples: list, classes: tuple[str, ...], c: float, folds: int, seed: int,
                        score_fn, *, show_progress: bool = False) -> tuple[list, dict]:
    """Fit the gate of a gated ``model`` k-fold: for each fold, the gate fitted on the other folds' rows is set and
    ``score_fn(model, fold_samples)`` scores that fold; then the gate fitted on every row is left in ``model``.
    Returns (the per-fold results of ``score_fn`` in fold order, report)."""
    rows = gate_rows(model, samples, show_progress=show_progress)
    fold = fold_of(len(samples), folds, seed)
    results, fold_reports = [], []
    for k in range(folds):
        w, b, rep = fit_gate(rows.take(fold[rows.index] != k), classes, c)
        set_gate(model, w, b)
        results.append(score_fn(model, [s for i, s in enumerate(samples) if fold[i] == k]))
        fold_reports.append(rep)
    w, b, rep = fit_gate(rows, classes, c)
    set_gate(model, w, b)
    return results, {"classes": list(classes), "c": c, "folds": folds, "rows": int(len(rows.index)),
                     "fit": rep, "fold_fits": fold_reports}
