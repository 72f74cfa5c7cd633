"""``ls``: label smoothing, z = (1 - ε) y + ε / C."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mmemolr.model.predictor import PredictorOutput
from mmemolr.targets.base import Target, register_target


@register_target
class LabelSmoothing(Target):
    name = "ls"
    description = "label smoothing with epsilon = target.smoothing"

    def distribution(self, out: PredictorOutput, labels: torch.Tensor,
                     votes: torch.Tensor | None = None) -> torch.Tensor:
        eps = self.config.smoothing
        y = F.one_hot(labels, self.n_classes).to(out.logits.dtype)
        return (1.0 - eps) * y + eps / self.n_classes
