"""``onehot``: plain cross-entropy with the gold label."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mmemolr.model.predictor import PredictorOutput
from mmemolr.targets.base import Target, register_target


@register_target
class OneHot(Target):
    name = "onehot"
    description = "cross-entropy with the one-hot gold label"

    def distribution(self, out: PredictorOutput, labels: torch.Tensor,
                     votes: torch.Tensor | None = None) -> torch.Tensor:
        return F.one_hot(labels, self.n_classes).to(out.logits.dtype)

    def loss(self, out: PredictorOutput, labels: torch.Tensor, votes: torch.Tensor | None = None) -> torch.Tensor:
        return F.cross_entropy(out.logits, labels)
