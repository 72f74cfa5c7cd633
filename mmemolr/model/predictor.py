"""Emotion Predictor (EmoLR eqs. 2-5): context, per-party speaker and emotion GRUs over a dialogue.

  c_t     = GRU_C(c_{t-1}, u_t ⊕ s_{p,t-1})                  context
  att_t   = Σ_{i<t} softmax_i(u_t^T W_α c_i) c_i              attention over the context history
  s_{p,t} = GRU_S(s_{p,t-1}, u_t ⊕ att_t)                     only the speaking party p is updated
  e_t     = GRU_E(e_{t-1}, u_t ⊕ s_{p,t-1})                   emotion, then dropout and a linear classifier

With ``skip=True`` (not in the paper; off by default) the classifier reads e_t ⊕ u_t, so the utterance
vector reaches it directly as well as through the recurrences.

The batch of dialogues is processed at once; the only Python loop is over time steps. The GRUs are
plain ``nn.GRUCell`` modules (their state_dicts are the usual ones) but the gate arithmetic is written
out so that (a) the ``u_t`` part of every GRU input, and the attention query, are computed for all
steps in one matrix product before the loop, and (b) the context and emotion GRUs, which read the
same inputs, run as one batched product per step. Padded steps leave every state unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class PredictorOutput:
    """Per-step outputs, (B, T, ·) for a batch or (N, ·) after :meth:`select`."""

    logits: torch.Tensor
    context: torch.Tensor  # c_t
    speaker: torch.Tensor  # s_{p,t}: the speaking party's state after its update at t
    emotion: torch.Tensor  # e_t (before dropout)
    party_states: torch.Tensor | None = None  # (B, T, P, D) every party's state after step t (trace only)

    def select(self, mask: torch.Tensor) -> PredictorOutput:
        """Keep the real (unpadded) steps: (B, T, ·) -> (N, ·) in row-major order."""
        return PredictorOutput(**{f.name: (getattr(self, f.name)[mask] if getattr(self, f.name) is not None
                                           else None) for f in fields(self)})


def _gru(gi: torch.Tensor, gh: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """GRUCell update from input and hidden pre-activations (PyTorch's gate order r, z, n).

    Written with fused ops (addcmul, lerp): the per-step cost on CPU is mostly per-op overhead.
    """
    d = h.shape[-1]
    gi_rz, gi_n = gi.split((2 * d, d), dim=-1)
    gh_rz, gh_n = gh.split((2 * d, d), dim=-1)
    r, z = torch.sigmoid(gi_rz + gh_rz).chunk(2, dim=-1)
    n = torch.tanh(torch.addcmul(gi_n, r, gh_n))
    return torch.lerp(n, h, z)  # (1 - z) * n + z * h


class EmotionPredictor(nn.Module):
    def __init__(self, input_dim: int, n_classes: int, hidden: int = 150, input_proj: int | None = None,
                 dropout: float = 0.5, attention: bool = True, input_dropout: float = 0.0,
                 skip: bool = False) -> None:
        super().__init__()
        self.input_dim = input_dim
        self.hidden = hidden
        self.attention = attention
        self.input_dropout = nn.Dropout(input_dropout)
        self.proj = nn.Linear(input_dim, input_proj) if input_proj else None
        du = input_proj or input_dim
        self.utt_dim = du
        self.gru_c = nn.GRUCell(du + hidden, hidden)  # input u_t ⊕ s_{p,t-1}
        self.gru_s = nn.GRUCell(du + hidden, hidden)  # input u_t ⊕ att_t
        self.gru_e = nn.GRUCell(du + hidden, hidden)  # input u_t ⊕ s_{p,t-1}
        # q_t = u_t^T W_α, so that the attention score of c_i is q_t · c_i.
        self.att = nn.Linear(du, hidden, bias=False)
        self.dropout = nn.Dropout(dropout)
        self.skip = skip
        self.classifier = nn.Linear(hidden + du if skip else hidden, n_classes)

    def forward(self, x: torch.Tensor, speakers: torch.Tensor, mask: torch.Tensor,
                n_parties: int | None = None, trace: bool = False) -> PredictorOutput:
        """``x`` (B, T, F), ``speakers`` (B, T) party index, ``mask`` (B, T) True on real steps."""
        b, t_max, _ = x.shape
        d, du = self.hidden, self.utt_dim
        u = self.input_dropout(x)
        u = self.proj(u) if self.proj is not None else u
        p = int(n_parties) if n_parties is not None else int(speakers.max().item()) + 1 if speakers.numel() else 1

        wc, we, ws = self.gru_c.weight_ih, self.gru_e.weight_ih, self.gru_s.weight_ih
        # Everything that depends on u_t only, for all steps in one product: (T, B, 10D), time-major.
        w_u = torch.cat([wc[:, :du], we[:, :du], ws[:, :du], self.att.weight], 0)
        b_u = torch.cat([self.gru_c.bias_ih, self.gru_e.bias_ih, self.gru_s.bias_ih, self.att.weight.new_zeros(d)])
        pre = torch.addmm(b_u, u.transpose(0, 1).reshape(t_max * b, du), w_u.t()).view(t_max, b, 10 * d)
        pre_ce = pre[..., : 6 * d].reshape(t_max, b, 2, 3 * d).transpose(1, 2)  # (T, 2, B, 3D)
        pre_s = pre[..., 6 * d: 9 * d]
        query = pre[..., 9 * d:]

        w_sp = torch.cat([wc[:, du:], we[:, du:]], 0).t()  # s_{p,t-1} -> both GRU_C and GRU_E inputs
        w_hh = torch.stack([self.gru_c.weight_hh.t(), self.gru_e.weight_hh.t()])  # (2, D, 3D)
        b_hh = torch.stack([self.gru_c.bias_hh, self.gru_e.bias_hh]).unsqueeze(1)  # (2, 1, 3D)
        w_s_att, w_s_hh, b_s_hh = ws[:, du:].t(), self.gru_s.weight_hh.t(), self.gru_s.bias_hh

        # One-hot of the speaking party, zero on padded steps: the party state is read as a product
        # with it and written where it is 1, so a padded step reads zeros and writes nothing.
        onehot = (F.one_hot(speakers.clamp(min=0), p).to(x.dtype) * mask.unsqueeze(-1)).transpose(0, 1)
        valid = mask.transpose(0, 1).unsqueeze(-1)  # (T, B, 1)

        # unbind once: indexing [t] inside the loop would make backward zero-fill a full-size
        # gradient per step (quadratic in T); unbind's backward is a single stack.
        pre_ce_t, pre_s_t, query_t = pre_ce.unbind(0), pre_s.unbind(0), query.unsqueeze(-1).unbind(0)
        onehot_t, valid_t = onehot.unbind(0), valid.unbind(0)
        speaks_t = (onehot > 0).unsqueeze(-1).unbind(0)  # (B, P, 1) per step

        h = x.new_zeros(2, b, d)  # [c; e]
        parties = x.new_zeros(b, p, d)
        history: list[torch.Tensor] = []
        out_ce, out_s, trace_states = [], [], []
        for t in range(t_max):
            oh = onehot_t[t]
            s_prev = torch.bmm(oh.unsqueeze(1), parties).squeeze(1)  # (B, D)
            gi = pre_ce_t[t] + (s_prev @ w_sp).view(b, 2, 3 * d).transpose(0, 1)
            gh = torch.baddbmm(b_hh, h, w_hh)
            h_new = _gru(gi, gh, h)
            if not history:
                att = x.new_zeros(b, d)
            elif self.attention:
                ctx = torch.stack(history, 1)  # (B, t, D): c_0 .. c_{t-1}
                alpha = torch.softmax(torch.bmm(ctx, query_t[t]), dim=1)  # (B, t, 1)
                att = (alpha * ctx).sum(1)
            else:
                att = history[-1]
            gi_s = pre_s_t[t] + att @ w_s_att
            gh_s = torch.addmm(b_s_hh, s_prev, w_s_hh)
            s_new = _gru(gi_s, gh_s, s_prev)
            parties = torch.where(speaks_t[t], s_new.unsqueeze(1), parties)
            h = torch.where(valid_t[t], h_new, h)
            history.append(h[0])
            out_ce.append(h)
            out_s.append(s_new)
            if trace:
                trace_states.append(parties)
        if t_max:
            ce = torch.stack(out_ce, 2)  # (2, B, T, D)
            context, emotion = ce[0], ce[1]
            speaker = torch.stack(out_s, 1)
        else:
            context = emotion = speaker = x.new_zeros(b, 0, d)
        features = torch.cat([emotion, u], -1) if self.skip else emotion
        logits = self.classifier(self.dropout(features))
        party_states = torch.stack(trace_states, 1) if trace and trace_states else None
        return PredictorOutput(logits, context, speaker, emotion, party_states)
