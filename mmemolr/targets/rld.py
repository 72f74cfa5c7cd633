"""``rld``: EmoLR's refined label distribution, z = softmax(RLD + η·y), loss KL(z ‖ softmax(logits)).

RLD comes from the Label Refinement module reading the speaker state s_{p,t} and the context state
c_t of the predictor (mmemolr.model.refinement). Gradients: see ``target.gradient``. With
``target.rld_anchor`` λ > 0 (not in the paper) the loss also has λ·(−log RLD[gold]) (docs/training.md).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mmemolr.model.predictor import PredictorOutput
from mmemolr.model.refinement import LabelRefinement
from mmemolr.targets.base import Target, kl_to, register_target
from mmemolr.train.config import TargetConfig


@register_target
class RefinedLabels(Target):
    name = "rld"
    description = "EmoLR refined label distribution softmax(RLD + eta*y), KL loss"
    refines = True

    def __init__(self, config: TargetConfig, n_classes: int, hidden: int, label_dim: int) -> None:
        super().__init__(config, n_classes, hidden, label_dim)
        self.refinement = LabelRefinement(n_classes, hidden, label_dim, config.sim_speaker, config.sim_ctx,
                                          temperature=config.sim_temperature)

    def refined(self, out: PredictorOutput) -> torch.Tensor:
        """RLD (N, C), a distribution over the labels."""
        return self.refinement(self.states(out.speaker), self.states(out.context))

    def distribution(self, out: PredictorOutput, labels: torch.Tensor) -> torch.Tensor:
        return self._target(self.refined(out), labels)

    def _target(self, rld: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        y = F.one_hot(labels, self.n_classes).to(rld.dtype)
        return self.finish(torch.softmax(rld + self.config.eta * y, dim=-1))

    def loss(self, out: PredictorOutput, labels: torch.Tensor) -> torch.Tensor:
        rld = self.refined(out)
        loss = kl_to(out.logits, self._target(rld, labels))
        if self.config.rld_anchor:
            # RLD must also name the gold label on its own: a signal from outside the predictor's
            # output, against the self-consistent constant RLD that the KL term alone settles on.
            loss = loss + self.config.rld_anchor * F.nll_loss(torch.log(rld.clamp_min(1e-12)), labels)
        return loss
