"""Does a retraining reproduce a checkpoint? Compare two training checkpoints tensor by tensor.

``python -m benchmarks.checkpoint_match A.pt B.pt NAME`` writes ``benchmarks/results/NAME.json``: per file, how many
weight tensors are bit-equal, the largest absolute weight difference, whether the per-epoch training losses and the
calibrated presence thresholds agree, and the machine it ran on. It is how a claim such as "``make models`` trains
the checkpoint the README measures" is checked (and can fail): retrain the recipe into another folder, then compare.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from benchmarks.run import RESULTS, machine


def compare(a: str | Path, b: str | Path) -> dict:
    """Tensor-by-tensor comparison of two camlab training checkpoints (``state_dict``, ``model_config``, ``meta``),
    loaded by :func:`camlab.train.checkpoint.load_checkpoint` (tensors and plain data only; a bad file is named)."""
    import torch

    from camlab.train.checkpoint import load_checkpoint

    ca, cb = load_checkpoint(a), load_checkpoint(b)
    sa, sb = ca["state_dict"], cb["state_dict"]
    common = sorted(set(sa) & set(sb))
    equal = [k for k in common if sa[k].shape == sb[k].shape and torch.equal(sa[k], sb[k])]
    diffs = [float((sa[k].double() - sb[k].double()).abs().max()) for k in common
             if sa[k].shape == sb[k].shape and sa[k].numel()]
    losses = [[h.get("train_loss") for h in c.get("meta", {}).get("history", [])] for c in (ca, cb)]
    thr = [c.get("model_config", {}).get("class_score_thresholds") for c in (ca, cb)]
    return {"a": str(a), "b": str(b), "tensors_a": len(sa), "tensors_b": len(sb), "tensors_equal": len(equal),
            "only_in_one": sorted(set(sa) ^ set(sb)), "max_abs_weight_diff": max(diffs) if diffs else 0.0,
            "train_loss_equal": losses[0] == losses[1], "epochs": [len(x) for x in losses],
            "thresholds": thr, "thresholds_equal": thr[0] == thr[1],
            "identical": len(equal) == len(sa) == len(sb) and losses[0] == losses[1] and thr[0] == thr[1]}


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print("usage: python -m benchmarks.checkpoint_match A.pt B.pt RESULT_NAME", file=sys.stderr)
        return 2
    from camlab.errors import InputFileError

    a, b, name = argv
    try:
        out = {**compare(a, b), "machine": machine()}
    except InputFileError as exc:
        print(exc, file=sys.stderr)
        return 2
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"{'identical' if out['identical'] else 'DIFFERENT'}: {out['tensors_equal']}/{out['tensors_a']} tensors equal, "
          f"max |diff| {out['max_abs_weight_diff']:.3g} -> {path}")
    return 0 if out["identical"] else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
