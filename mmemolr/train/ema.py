"""Exponential moving average of the model's weights (Polyak averaging), an optional training aid.

With ``optim.ema_decay`` set, every optimizer step also updates an average of the weights,
``avg ← avg + (1 − d)(w − avg)``, and it is the average that is scored on dev, kept as best.pt and
tested. ``d`` ramps up as ``min(decay, (1 + n) / (10 + n))`` after ``n`` steps, so the first epochs are
not dominated by the random initial weights. Not in the EmoLR paper (docs/training.md).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


def cpu_copy(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A detached CPU copy of a state_dict (what checkpoints hold)."""
    return {k: v.detach().cpu().clone() for k, v in state.items()}


class WeightAverage:
    """Moving average of a module's floating-point parameters and buffers, on the module's device."""

    def __init__(self, module: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"ema decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.steps = 0
        live = module.state_dict()  # tensors that share storage with the module's own
        # Integer buffers (none today) are not averaged: the entry is the module's live tensor itself.
        self.average = {k: v.detach().clone() if v.is_floating_point() else v for k, v in live.items()}
        keys = [k for k, v in live.items() if v.is_floating_point()]
        self._averaged = [self.average[k] for k in keys]
        self._live = [live[k].detach() for k in keys]

    @torch.no_grad()
    def update(self) -> None:
        """After an optimizer step of the module given at construction."""
        decay = min(self.decay, (1 + self.steps) / (10 + self.steps))
        torch._foreach_lerp_(self._averaged, self._live, 1.0 - decay)
        self.steps += 1

    def state_dict(self) -> dict:
        return {"steps": self.steps, "average": cpu_copy(self.average)}

    def load_state_dict(self, state: dict) -> None:
        self.steps = int(state["steps"])
        for key, value in state["average"].items():
            self.average[key].copy_(value)


@contextmanager
def swapped_in(module: nn.Module, average: WeightAverage | None) -> Iterator[nn.Module]:
    """Inside, the module holds the averaged weights (if any); its own weights again after."""
    if average is None:
        yield module
        return
    saved = {k: v.detach().clone() for k, v in module.state_dict().items()}
    module.load_state_dict(average.average)
    try:
        yield module
    finally:
        module.load_state_dict(saved)
