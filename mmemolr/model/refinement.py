"""Label Refinement (EmoLR eqs. 6-11): a refined label distribution from label embeddings and the
predictor's speaker and context states.

  R          = MLP(label embeddings)                      (C, D)
  Sim_speak  = softmax((R s_{p,t}) W_s + b_s)             (C,)
  Sim_ctx    = softmax((R c_t) W_c + b_c)                 (C,)
  H          = tanh([Sim_speak; Sim_ctx] W_F)             (2, C)
  α          = softmax(H w_F) over the two sources
  RLD        = α_1 Sim_speak + α_2 Sim_ctx                a distribution over the C labels

With one source switched off (ablations -Sim_speaker / -Sim_ctx) RLD is the other source alone.
``temperature`` (target.sim_temperature, default 1) divides the scores inside the two softmaxes: at 1
they saturate in training and RLD ends up close to one-hot on a single label (docs/training.md).

Why the softmax on each similarity: the target is softmax(RLD + η·y). With raw, unbounded scores the
jointly trained module learns to make them large, the η·y term stops mattering and z (and with it the
predictor) drifts away from the labels: on MELD text features valid weighted F1 fell from 0.29 after
one epoch to 0.04 after eight. As distributions (as in the Label Confusion Model, whose α = 4 plays the
role of η) RLD lies in [0, 1], so the gold label keeps at least e^η / (e^η + (C-1)e) of z's mass
(0.77 for η = 4, C = 7) and RLD redistributes the rest.
"""

from __future__ import annotations

import torch
from torch import nn


class LabelRefinement(nn.Module):
    def __init__(self, n_classes: int, hidden: int, label_dim: int = 100, sim_speaker: bool = True,
                 sim_ctx: bool = True, temperature: float = 1.0) -> None:
        super().__init__()
        # Divides the similarity scores before their softmax; > 1 keeps them from saturating.
        self.temperature = temperature
        if not (sim_speaker or sim_ctx):
            raise ValueError("label refinement needs at least one source: keep sim_speaker or sim_ctx on")
        self.label_emb = nn.Embedding(n_classes, label_dim)
        self.encoder = nn.Sequential(nn.Linear(label_dim, hidden), nn.Tanh(), nn.Linear(hidden, hidden))
        self.sim_speaker = nn.Linear(n_classes, n_classes) if sim_speaker else None
        self.sim_ctx = nn.Linear(n_classes, n_classes) if sim_ctx else None
        if sim_speaker and sim_ctx:
            self.w_f = nn.Linear(n_classes, n_classes, bias=False)
            self.v_f = nn.Linear(n_classes, 1, bias=False)

    def label_matrix(self) -> torch.Tensor:
        """R: one D-dimensional row per label."""
        return self.encoder(self.label_emb.weight)

    def forward(self, speaker: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """RLD (N, C) from speaker states s_{p,t} (N, D) and context states c_t (N, D)."""
        r = self.label_matrix()
        sources = []
        if self.sim_speaker is not None:
            sources.append(torch.softmax(self.sim_speaker(speaker @ r.t()) / self.temperature, dim=-1))
        if self.sim_ctx is not None:
            sources.append(torch.softmax(self.sim_ctx(context @ r.t()) / self.temperature, dim=-1))
        if len(sources) == 1:
            return sources[0]
        sims = torch.stack(sources, 1)  # (N, 2, C)
        alpha = torch.softmax(self.v_f(torch.tanh(self.w_f(sims))), dim=1)  # (N, 2, 1)
        return (alpha * sims).sum(1)
