"""``votes``: the annotators' own distribution: z = v, the utterance's share of votes per label.

The human reference that label refinement tries to approach without votes: where a corpus records every
annotator's label (EmotionLines, the raw IEMOCAP release, a manifest with a ``votes`` column), v is the share
of the utterance's votes per label, votes outside the label set left out. An utterance without a vote on any
label keeps its one-hot gold label. Five votes already spread the mass over the labels people saw; smoothing
them further towards an even spread, as label smoothing does, measured worse on dev (synthetic annotated
corpus, 5 seeds, mean KL(votes ‖ p) on dev: ε = 0 0.416, 0.05 0.427, 0.1 0.442; docs/training.md), so this
target reads no smoothing key.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mmemolr.model.predictor import PredictorOutput
from mmemolr.targets.base import Target, register_target


@register_target
class AnnotatorVotes(Target):
    name = "votes"
    description = "the annotators' vote shares per utterance, KL loss (corpora with votes)"
    needs_votes = True

    def distribution(self, out: PredictorOutput, labels: torch.Tensor,
                     votes: torch.Tensor | None = None) -> torch.Tensor:
        if votes is None:
            raise ValueError("target 'votes' needs the annotators' votes, and this corpus records none")
        return vote_shares(votes.to(out.logits.dtype), labels)


def vote_shares(votes: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """votes / Σvotes per row; the one-hot gold label where a row holds no vote."""
    total = votes.sum(-1, keepdim=True)
    gold = F.one_hot(labels, votes.shape[-1]).to(votes.dtype)
    return torch.where(total > 0, votes / total.clamp_min(1e-12), gold)
