"""Emotion Predictor (EmoLR eqs. 2-5): context, per-party speaker and emotion GRUs over a dialogue.

  c_t     = GRU_C(c_{t-1}, u_t ⊕ s_{p,t-1})                  context
  att_t   = Σ_{i<t} softmax_i(u_t^T W_α c_i) c_i              attention over the context history
  s_{p,t} = GRU_S(s_{p,t-1}, u_t ⊕ att_t)                     only the speaking party p is updated
  e_t     = GRU_E(e_{t-1}, u_t ⊕ s_{p,t-1})                   emotion, then dropout and a linear classifier

With ``emotion_speaker="updated"`` (not in the EmoLR paper; DialogueRNN's emotion GRU reads the updated
state) the emotion GRU reads u_t ⊕ s_{p,t}: the speaker's state after this utterance's update, which
carries the attention over the context history into the prediction of the same utterance. With the
paper's ``"previous"`` the attention at step t first reaches a prediction at the speaker's next turn.

The batch of dialogues is processed at once; the only Python loop is over time steps. The GRUs are
plain ``nn.GRUCell`` modules (their state_dicts are the usual ones) but the gate arithmetic is written
out so that (a) the ``u_t`` part of every GRU input, and the attention query, are computed for all
steps in one matrix product before the loop, and (b) the context and emotion GRUs, which read the
same inputs, run as one batched product per step (with ``emotion_speaker="updated"`` the context and
speaker GRUs, which are then the independent pair). Padded steps leave every state unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from mmemolr.model import bptt
from mmemolr.model.bptt import global_party_recurrence, gru_sequence
from mmemolr.model.dropout import Dropout


@dataclass
class PredictorOutput:
    """Per-step outputs, (B, T, ·) for a batch or (N, ·) after :meth:`select`."""

    logits: torch.Tensor
    context: torch.Tensor  # c_t
    speaker: torch.Tensor  # s_{p,t}: the speaking party's state after its update at t (zero on padded steps)
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


def _attend(history: list[torch.Tensor], query: torch.Tensor, b: int, d: int) -> torch.Tensor:
    """att_t over c_0 .. c_{t-1} (``history``), query (B, D, 1); zeros at t = 0."""
    if not history:
        return query.new_zeros(b, d)
    ctx = torch.stack(history, 1)  # (B, t, D): c_0 .. c_{t-1}
    alpha = torch.softmax(torch.bmm(ctx, query), dim=1)  # (B, t, 1)
    return (alpha * ctx).sum(1)


def _recur(cells: nn.Module, u: torch.Tensor, onehot: torch.Tensor, valid: torch.Tensor,
           trace: bool, emotion_reads_updated: bool = False,
           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Run the recurrences of ``cells`` (GRU_C, GRU_S, GRU_E and W_α) over the steps of ``u`` (B, T, du).

    ``onehot`` (T, B, P) is the speaking party, zero on padded steps; ``valid`` (T, B, 1) is True on real
    steps. Returns context, speaker, emotion (B, T, D) and, with ``trace``, party states (B, T, P, D).
    ``emotion_reads_updated``: GRU_E reads s_{p,t} instead of s_{p,t-1} (then it runs after GRU_S, on its
    own, and GRU_C is batched with GRU_S instead).
    """
    b, t_max, du = u.shape
    if t_max and not trace and bptt.usable(u.device):
        return _recur_hand_written(cells, u, onehot, valid, emotion_reads_updated)
    d = cells.gru_c.hidden_size
    p = onehot.shape[-1]
    wc, we, ws = cells.gru_c.weight_ih, cells.gru_e.weight_ih, cells.gru_s.weight_ih
    # Everything that depends on u_t only, for all steps in one product: (T, B, 10D), time-major.
    w_u = torch.cat([wc[:, :du], we[:, :du], ws[:, :du], cells.att.weight], 0)
    b_u = torch.cat([cells.gru_c.bias_ih, cells.gru_e.bias_ih, cells.gru_s.bias_ih, cells.att.weight.new_zeros(d)])
    pre = torch.addmm(b_u, u.transpose(0, 1).reshape(t_max * b, du), w_u.t()).view(t_max, b, 10 * d)
    query_t = pre[..., 9 * d:].unsqueeze(-1).unbind(0)
    # unbind once: indexing [t] inside the loop would make backward zero-fill a full-size
    # gradient per step (quadratic in T); unbind's backward is a single stack.
    if emotion_reads_updated:
        # GRU_E needs s_{p,t}, so it runs last, alone; GRU_C and GRU_S are independent within a step
        # (the attention reads c_0 .. c_{t-1} only) and run as one batched product instead.
        pre_cs_t = torch.stack([pre[..., : 3 * d], pre[..., 6 * d: 9 * d]], 1).unbind(0)  # (2, B, 3D) per step
        pre_e_t = pre[..., 3 * d: 6 * d].unbind(0)
        w_in_cs = torch.stack([wc[:, du:].t(), ws[:, du:].t()])  # s_{p,t-1} -> GRU_C, att_t -> GRU_S
        w_hh_cs = torch.stack([cells.gru_c.weight_hh.t(), cells.gru_s.weight_hh.t()])
        b_hh_cs = torch.stack([cells.gru_c.bias_hh, cells.gru_s.bias_hh]).unsqueeze(1)
        w_sp_e, w_e_hh, b_e_hh = we[:, du:].t(), cells.gru_e.weight_hh.t(), cells.gru_e.bias_hh
    else:
        # GRU_C and GRU_E read the same s_{p,t-1}: one batched product.
        pre_ce_t = pre[..., : 6 * d].reshape(t_max, b, 2, 3 * d).transpose(1, 2).unbind(0)  # (2, B, 3D) per step
        pre_s_t = pre[..., 6 * d: 9 * d].unbind(0)
        w_sp = torch.cat([wc[:, du:], we[:, du:]], 0).t()  # s_{p,t-1} -> both GRU_C and GRU_E inputs
        w_hh = torch.stack([cells.gru_c.weight_hh.t(), cells.gru_e.weight_hh.t()])  # (2, D, 3D)
        b_hh = torch.stack([cells.gru_c.bias_hh, cells.gru_e.bias_hh]).unsqueeze(1)  # (2, 1, 3D)
        w_s_att, w_s_hh, b_s_hh = ws[:, du:].t(), cells.gru_s.weight_hh.t(), cells.gru_s.bias_hh
    onehot_t, valid_t = onehot.unbind(0), valid.unbind(0)
    speaks_t = (onehot > 0).unsqueeze(-1).unbind(0)  # (B, P, 1) per step

    h = u.new_zeros(2, b, d)  # [c; e]
    parties = u.new_zeros(b, p, d)
    history: list[torch.Tensor] = []
    out_ce, out_s, trace_states = [], [], []
    for t in range(t_max):
        # The party state is read as a product with the speaker's one-hot and written where it is 1,
        # so a padded step reads zeros and writes nothing.
        s_prev = torch.bmm(onehot_t[t].unsqueeze(1), parties).squeeze(1)  # (B, D)
        if emotion_reads_updated:
            att = _attend(history, query_t[t], b, d)
            hidden_cs = torch.stack([h[0], s_prev])
            gi = torch.baddbmm(pre_cs_t[t], torch.stack([s_prev, att]), w_in_cs)
            cs_new = _gru(gi, torch.baddbmm(b_hh_cs, hidden_cs, w_hh_cs), hidden_cs)
            s_new = cs_new[1]
            e_new = _gru(torch.addmm(pre_e_t[t], s_new, w_sp_e), torch.addmm(b_e_hh, h[1], w_e_hh), h[1])
            h_new = torch.stack([cs_new[0], e_new])
        else:
            gi = pre_ce_t[t] + (s_prev @ w_sp).view(b, 2, 3 * d).transpose(0, 1)
            gh = torch.baddbmm(b_hh, h, w_hh)
            h_new = _gru(gi, gh, h)
            att = _attend(history, query_t[t], b, d)
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
    if not t_max:
        empty = u.new_zeros(b, 0, d)
        return empty, empty, empty, None
    ce = torch.stack(out_ce, 2)  # (2, B, T, D)
    party_states = torch.stack(trace_states, 1) if trace else None
    return ce[0], torch.stack(out_s, 1), ce[1], party_states


def _recur_hand_written(cells: nn.Module, u: torch.Tensor, onehot: torch.Tensor, valid: torch.Tensor,
                        emotion_reads_updated: bool,
                        ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, None]:
    """:func:`_recur` through the recurrences of :mod:`mmemolr.model.bptt` (their backward is written by
    hand): GRU_C, the attention and GRU_S as one recurrence, then GRU_E, which feeds nothing back, over
    its inputs u_t ⊕ s_{p,t-1} (or s_{p,t}) computed for all steps in one product."""
    b, t_max, _ = u.shape
    u_tm = u.transpose(0, 1)  # (T, B, du)
    gru = (cells.gru_c, cells.gru_s)
    context, speaker, speaker_prev = global_party_recurrence(
        u_tm.unsqueeze(0), onehot.unsqueeze(0), [m.weight_ih for m in gru], [m.weight_hh for m in gru],
        [m.bias_ih for m in gru], [m.bias_hh for m in gru], [cells.att.weight])
    read = (speaker if emotion_reads_updated else speaker_prev)[0]  # (T, B, D)
    pre_e = F.linear(torch.cat([u_tm, read], -1), cells.gru_e.weight_ih, cells.gru_e.bias_ih)
    emotion = gru_sequence(pre_e.unsqueeze(1), cells.gru_e.weight_hh.unsqueeze(0),
                           cells.gru_e.bias_hh.unsqueeze(0))[:, 0].transpose(0, 1)  # (B, T, D)
    # The autograd loop leaves c and e unchanged on padded steps: hold the last real step's there too.
    lengths = valid.sum(0).view(b, 1, 1)
    held = torch.minimum(torch.arange(t_max, device=u.device).view(1, -1, 1), (lengths - 1).clamp(min=0))
    context, emotion = ((x.gather(1, held.expand_as(x)) * (lengths > 0)) for x in (context[0], emotion))
    return context, speaker[0].transpose(0, 1), emotion, None


def reverse_steps(tensor: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse the first ``lengths[b]`` steps of every dialogue b of ``tensor`` (B, T, ...); padding stays.

    Its own inverse, so it also maps a backward direction's outputs back to the original order.
    """
    b, t_max = tensor.shape[:2]
    steps = torch.arange(t_max, device=tensor.device).expand(b, t_max)
    index = torch.where(steps < lengths.unsqueeze(1), lengths.unsqueeze(1) - 1 - steps, steps)
    index = index.view(b, t_max, *([1] * (tensor.dim() - 2))).expand_as(tensor)
    return tensor.gather(1, index)


class EmotionPredictor(nn.Module):
    """state_dict keys: gru_c, gru_s, gru_e, att and classifier."""

    def __init__(self, input_dim: int, n_classes: int, hidden: int = 150, dropout: float = 0.5,
                 input_dropout: float = 0.0, emotion_speaker: Literal["previous", "updated"] = "previous") -> None:
        super().__init__()
        if emotion_speaker not in ("previous", "updated"):
            raise ValueError(f"emotion_speaker must be 'previous' or 'updated', not {emotion_speaker!r}")
        self.emotion_speaker = emotion_speaker
        self.input_dim = input_dim
        self.hidden = hidden
        self.input_dropout = Dropout(input_dropout, input_dim, input_at=0)
        self.gru_c = nn.GRUCell(input_dim + hidden, hidden)  # input u_t ⊕ s_{p,t-1}
        self.gru_s = nn.GRUCell(input_dim + hidden, hidden)  # input u_t ⊕ att_t
        self.gru_e = nn.GRUCell(input_dim + hidden, hidden)  # input u_t ⊕ s_{p,t-1} (or s_{p,t}, "updated")
        # q_t = u_t^T W_α, so that the attention score of c_i is q_t · c_i.
        self.att = nn.Linear(input_dim, hidden, bias=False)
        self.dropout = Dropout(dropout, hidden)
        self.classifier = nn.Linear(hidden, n_classes)

    @property
    def state_dim(self) -> int:
        """Width of the context, speaker and emotion states."""
        return self.hidden

    def forward(self, x: torch.Tensor, speakers: torch.Tensor, mask: torch.Tensor,
                n_parties: int | None = None, trace: bool = False) -> PredictorOutput:
        """``x`` (B, T, F), ``speakers`` (B, T) party index, ``mask`` (B, T) True on real steps, which come
        first in each row (dialogues are padded at the end)."""
        u = self.input_dropout(x)
        p = int(n_parties) if n_parties is not None else int(speakers.max().item()) + 1 if speakers.numel() else 1
        onehot = F.one_hot(speakers.clamp(min=0), p).to(x.dtype) * mask.unsqueeze(-1)  # (B, T, P)
        valid = mask.transpose(0, 1).unsqueeze(-1)  # (T, B, 1)
        updated = self.emotion_speaker == "updated"
        context, speaker, emotion, party_states = _recur(self, u, onehot.transpose(0, 1), valid, trace, updated)
        # s_{p,t} of a padded step is computed (by both paths, from different histories) but no real step
        # reads it: zero, so that every output on padding is the same whichever path ran
        speaker = speaker.masked_fill(~mask.unsqueeze(-1), 0.0)
        logits = self.classifier(self.dropout(emotion))
        return PredictorOutput(logits, context, speaker, emotion, party_states)
