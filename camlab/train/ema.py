"""Exponential moving average of a model's weights, the copy that is evaluated and shipped (Polyak averaging).

Polyak & Juditsky, "Acceleration of stochastic approximation by averaging", SIAM J. Control Optim. 1992; the form used
here is TensorFlow's ``ExponentialMovingAverage`` with ``num_updates`` (the decay ramps up as min(d, (1+t)/(10+t)) so
the average does not remember the random init) and, like timm's ``ModelEmaV3``, it averages every floating-point
tensor of the state dict, BatchNorm running statistics included; integer buffers (``num_batches_tracked``) are copied.
The training loop keeps optimising the live model; the average only reads it after each optimiser step.
"""
from __future__ import annotations

import copy


def check_horizon(epochs: float, field: str) -> None:
    """One-line refusal of a negative horizon: 0 turns the average off."""
    if not float(epochs) >= 0.0:
        raise ValueError(f"{field} must be >= 0 epochs (0 = no weight averaging), got {epochs!r}")


def decay_for_horizon(epochs: float, steps_per_epoch: int) -> float:
    """The per-step decay whose average spans ``epochs`` epochs (time constant 1 / (1 - d) optimiser steps), so one
    setting means the same stretch of training in a short and a long schedule."""
    check_horizon(epochs, "horizon")
    steps = float(epochs) * max(1, int(steps_per_epoch))
    if steps <= 1.0:
        raise ValueError(f"a weight average over {epochs} epochs of {steps_per_epoch} steps spans <= 1 step")
    return 1.0 - 1.0 / steps


class WeightAverage:
    """A frozen copy of ``model`` whose tensors follow the live ones: ema = d * ema + (1 - d) * live."""

    def __init__(self, model, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"weight-average decay must be in (0, 1), got {decay}")
        self.decay = float(decay)
        self.updates = 0
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)

    def effective_decay(self) -> float:
        """The decay of the next update: TF's warm-up min(d, (1 + t) / (10 + t)), t = updates so far."""
        return min(self.decay, (1.0 + self.updates) / (10.0 + self.updates))

    def update(self, live) -> None:
        import torch

        d = self.effective_decay()
        with torch.no_grad():
            averaged = self.model.state_dict()
            for name, value in live.state_dict().items():
                target = averaged[name]
                if target.dtype.is_floating_point:
                    target.mul_(d).add_(value.detach(), alpha=1.0 - d)
                else:
                    target.copy_(value)
        self.updates += 1

    def state_dict(self) -> dict:
        return self.model.state_dict()

    def load_state_dict(self, state: dict, updates: int) -> None:
        """Restore an average saved with a checkpoint (a resumed run continues the same average)."""
        self.model.load_state_dict(state)
        self.updates = int(updates)


__all__ = ["WeightAverage", "check_horizon", "decay_for_horizon"]
