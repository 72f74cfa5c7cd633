"""``lcm``: Label Confusion Model (Guo et al., AAAI 2021).

Label embeddings are compared with the utterance representation (the emotion state e_t) to give a
label-similarity distribution sim = softmax(V h); the target is z = softmax(sim + α·y), loss KL, with
α = 4 (the value of every lcm run here; it was a key until issue 25).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mmemolr.model.predictor import PredictorOutput
from mmemolr.targets.base import Target, register_target
from mmemolr.train.config import TargetConfig

ALPHA = 4.0  # weight of the one-hot label in z


@register_target
class LabelConfusion(Target):
    name = "lcm"
    description = "label confusion model: softmax(softmax(label_emb . h) + 4*y), KL loss"
    refines = True

    def __init__(self, config: TargetConfig, n_classes: int, hidden: int, label_dim: int,
                 emotion_dim: int | None = None) -> None:
        super().__init__(config, n_classes, hidden, label_dim, emotion_dim)
        self.label_emb = nn.Embedding(n_classes, label_dim)
        # LCM maps the label embeddings into the representation space (the emotion state) with a tanh
        # dense layer.
        self.label_proj = nn.Linear(label_dim, emotion_dim or hidden)

    def distribution(self, out: PredictorOutput, labels: torch.Tensor,
                     votes: torch.Tensor | None = None) -> torch.Tensor:
        labels_h = torch.tanh(self.label_proj(self.label_emb.weight))  # (C, D)
        sim = torch.softmax(out.emotion @ labels_h.t(), dim=-1)
        y = F.one_hot(labels, self.n_classes).to(sim.dtype)
        return torch.softmax(sim + ALPHA * y, dim=-1)
