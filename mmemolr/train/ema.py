"""Exponential moving average of the model's weights (Polyak averaging), an optional training aid.

With ``optim.ema_decay`` set, every optimizer step also updates an average of the weights,
``avg ← avg + (1 − d)(w − avg)``, and it is the average that is scored on dev, kept as best.pt and
tested. ``d`` ramps up as ``min(decay, (1 + n) / (10 + n))`` after ``n`` steps, so the first epochs are
not dominated by the random initial weights. Not in the EmoLR paper (docs/training.md).
"""

from __future__ import annotations

import torch
from torch import nn


class WeightAverage:
    """Moving average of a module's floating-point parameters and buffers, on the module's device."""

    def __init__(self, module: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ValueError(f"ema decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.steps = 0
        self.average = {k: v.detach().clone() for k, v in module.state_dict().items()}

    def _float_pairs(self, module: nn.Module) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        current = module.state_dict()
        keys = [k for k, v in self.average.items() if v.is_floating_point()]
        return [self.average[k] for k in keys], [current[k].detach() for k in keys]

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        decay = min(self.decay, (1 + self.steps) / (10 + self.steps))
        averages, weights = self._float_pairs(module)
        torch._foreach_lerp_(averages, weights, 1.0 - decay)
        for key, value in module.state_dict().items():  # integer buffers (none today) follow the module
            if not value.is_floating_point():
                self.average[key].copy_(value)
        self.steps += 1

    def state_dict(self) -> dict:
        return {"steps": self.steps, "average": {k: v.detach().cpu().clone() for k, v in self.average.items()}}

    def load_state_dict(self, state: dict) -> None:
        self.steps = int(state["steps"])
        for key, value in state["average"].items():
            self.average[key].copy_(value)

    def weights(self) -> dict[str, torch.Tensor]:
        """The averaged state_dict, on the CPU (for best.pt)."""
        return {k: v.detach().cpu().clone() for k, v in self.average.items()}


class swapped_in:
    """Context manager: the module holds the averaged weights inside, its own weights again after."""

    def __init__(self, module: nn.Module, average: WeightAverage | None) -> None:
        self.module, self.average, self.saved = module, average, None

    def __enter__(self) -> nn.Module:
        if self.average is not None:
            self.saved = {k: v.detach().clone() for k, v in self.module.state_dict().items()}
            self.module.load_state_dict(self.average.average)
        return self.module

    def __exit__(self, *exc) -> None:
        if self.saved is not None:
            self.module.load_state_dict(self.saved)
            self.saved = None
