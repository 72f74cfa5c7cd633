"""``rld``: EmoLR's refined label distribution as the training target, loss KL(z ‖ softmax(logits)).

The Label Refinement module (mmemolr.model.refinement) reads the speaker state s_{p,t} and the context
state c_t. ``target.refiner`` picks how its output becomes RLD, ``target.combine`` how RLD and the gold
one-hot y become z (docs/training.md, Targets, has the equations and measurements):

  refiner  paper       RLD = the raw scores of eqs. 6-11 (one W, b for both sources)
           bounded     RLD = α_1 softmax(S_speak) + α_2 softmax(S_ctx), a distribution
           supervised  the paper's scores are also trained with cross-entropy against the gold label;
                       RLD = q = softmax(scores), detached (online self-distillation)
  combine  eta         z = softmax(RLD + η·y)                                   (the paper's eq. 13;
                       for supervised softmax(log q + η·y): η = 0 gives z = q)
           mix         z = (1 − ε)·y + ε·m,  m = (y + (C−1)·RLD̃) / C            (not in the paper)
                       RLD̃ = RLD without the gold label, renormalised. m keeps label smoothing's 1/C on
                       the gold label, so z[gold] = 1 − ε + ε/C exactly as for ``ls`` with the same ε,
                       and RLD alone decides how the remaining ε(C−1)/C is shared among the other labels.
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
    description = "EmoLR refined label distribution (target.refiner, target.combine), KL loss"
    refines = True

    def __init__(self, config: TargetConfig, n_classes: int, hidden: int, label_dim: int,
                 emotion_dim: int | None = None) -> None:
        super().__init__(config, n_classes, hidden, label_dim, emotion_dim)
        self.refinement = LabelRefinement(n_classes, hidden, label_dim, config.sim_speaker, config.sim_ctx,
                                          form=config.refiner)

    def scores(self, out: PredictorOutput) -> torch.Tensor:
        """The refinement module's output (N, C): a distribution (bounded) or raw scores."""
        return self.refinement(out.speaker, out.context)

    def refined(self, out: PredictorOutput) -> torch.Tensor:
        """RLD (N, C) as it enters z."""
        return self._rld(self.scores(out))

    def _rld(self, scores: torch.Tensor) -> torch.Tensor:
        if self.config.refiner == "supervised":
            return torch.softmax(scores.detach(), dim=-1)
        return scores

    def distribution(self, out: PredictorOutput, labels: torch.Tensor,
                     votes: torch.Tensor | None = None) -> torch.Tensor:
        return self.combine(self.refined(out), labels)

    def combine(self, rld: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """z from RLD (N, C) and the gold labels (N,)."""
        y = F.one_hot(labels, self.n_classes).to(rld.dtype)
        if self.config.combine == "eta":
            # The supervised RLD is a probability vector q; eq. 13 reads it as log-probabilities, so that
            # η = 0 gives z = q (plain self-distillation) and η > 0 multiplies the gold entry by e^η.
            base = torch.log(rld.clamp_min(1e-12)) if self.config.refiner == "supervised" else rld
            return torch.softmax(base + self.config.eta * y, dim=-1)
        return mix_with_onehot(rld, y, self.config.smoothing)

    def loss(self, out: PredictorOutput, labels: torch.Tensor, votes: torch.Tensor | None = None) -> torch.Tensor:
        scores = self.scores(out)
        loss = kl_to(out.logits, self.combine(self._rld(scores), labels))
        if self.config.refiner == "supervised":
            # The refiner learns from the gold label, not from the prediction it is a target for:
            # a KL-only refiner's optimum is z = p, and it settles on one constant offset (docs).
            loss = loss + F.cross_entropy(scores, labels)
        return loss


def mix_with_onehot(rld: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    """(1 − ε)·y + ε·(y + (C−1)·RLD̃)/C with RLD̃ = RLD off the gold label, renormalised."""
    n_classes = y.shape[-1]
    # The tiny floor keeps the shape a distribution (even) when every other label underflows to 0.
    off = rld * (1.0 - y) + 1e-12 * (1.0 - y)
    shape = off / off.sum(-1, keepdim=True)
    return (1.0 - eps + eps / n_classes) * y + eps * (n_classes - 1) / n_classes * shape
