"""Label Refinement (EmoLR eqs. 6-11): label scores from label embeddings and the predictor's speaker and
context states, in one of three forms (``target.refiner``).

  R          = MLP(label embeddings)                       (C, D)     eq. 6
  S_speak    = (R s_{p,t}) W + b                           (C,)       eq. 7
  S_ctx      = (R c_t) W + b                               (C,)       eq. 8
  H          = tanh([S_speak; S_ctx] W_F)                  (2, C)     eq. 9
  α          = softmax(H w_F) over the two sources                    eq. 10
  RLD        = α_1 S_speak + α_2 S_ctx                                eq. 11

Forms:
  paper       eqs. 6-11 as written: one W and b shared by both sources, raw (unbounded) scores.
  bounded     each source's scores pass a softmax, with its own W and b, so RLD is a distribution
              (the stabilised variant this toolkit shipped first: with raw scores the jointly trained
              module made them large and training drifted away from the labels).
  supervised  the paper's scores, read as logits: ``forward`` returns them and the target trains them
              with cross-entropy against the gold label (mmemolr.targets.rld).

With one source switched off (ablations -Sim_speaker / -Sim_ctx) RLD is the other source alone.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

RefinerForm = Literal["paper", "bounded", "supervised"]
FORMS: tuple[str, ...] = ("paper", "bounded", "supervised")


class LabelRefinement(nn.Module):
    def __init__(self, n_classes: int, hidden: int, label_dim: int = 100, sim_speaker: bool = True,
                 sim_ctx: bool = True, form: RefinerForm = "bounded") -> None:
        super().__init__()
        if not (sim_speaker or sim_ctx):
            raise ValueError("label refinement needs at least one source: keep sim_speaker or sim_ctx on")
        if form not in FORMS:
            raise ValueError(f"unknown refiner form {form!r}; choose one of {', '.join(FORMS)}")
        self.form = form
        self.use_speaker, self.use_ctx = sim_speaker, sim_ctx
        self.label_emb = nn.Embedding(n_classes, label_dim)
        self.encoder = nn.Sequential(nn.Linear(label_dim, hidden), nn.Tanh(), nn.Linear(hidden, hidden))
        if form == "bounded":
            # Parameter names kept from the first version, so its checkpoints still load.
            self.sim_speaker = nn.Linear(n_classes, n_classes) if sim_speaker else None
            self.sim_ctx = nn.Linear(n_classes, n_classes) if sim_ctx else None
        else:
            self.sim = nn.Linear(n_classes, n_classes)  # eqs. 7-8: one W, b for both sources
        if sim_speaker and sim_ctx:
            self.w_f = nn.Linear(n_classes, n_classes, bias=False)
            self.v_f = nn.Linear(n_classes, 1, bias=False)

    def label_matrix(self) -> torch.Tensor:
        """R: one D-dimensional row per label."""
        return self.encoder(self.label_emb.weight)

    def sources(self, speaker: torch.Tensor, context: torch.Tensor) -> list[torch.Tensor]:
        """Per enabled source, its (N, C) scores: softmax-bounded for ``bounded``, raw otherwise."""
        r = self.label_matrix()
        out = []
        for used, state, own in ((self.use_speaker, speaker, "sim_speaker"), (self.use_ctx, context, "sim_ctx")):
            if not used:
                continue
            if self.form == "bounded":
                out.append(torch.softmax(getattr(self, own)(state @ r.t()), dim=-1))
            else:
                out.append(self.sim(state @ r.t()))
        return out

    def forward(self, speaker: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """RLD (N, C) from speaker states s_{p,t} (N, D) and context states c_t (N, D): a distribution for
        ``bounded``, raw scores (logits for ``supervised``) otherwise."""
        sources = self.sources(speaker, context)
        if len(sources) == 1:
            return sources[0]
        sims = torch.stack(sources, 1)  # (N, 2, C)
        alpha = torch.softmax(self.v_f(torch.tanh(self.w_f(sims))), dim=1)  # (N, 2, 1)
        return (alpha * sims).sum(1)
