"""``dialoguernn``: DialogueRNN (Majumder et al., AAAI 2019), written from the paper's equations.

Per direction, with u_t the utterance vector and s = the party speaking at t:

  g_t     = GRU_G(g_{t-1}, u_t ⊕ q_{s,t-1})                    global state (shared by all parties)
  c_t     = Σ_{i<t} softmax_i(u_t^T W_α g_i) g_i               attention over the global history
  q_{s,t} = GRU_P(q_{s,t-1}, u_t ⊕ c_t)                       the speaker's party state
  q_{i,t} = q_{i,t-1}                                          listeners (i ≠ s), or with ``listener``
          = GRU_L(q_{i,t-1}, u_t ⊕ q_{s,t})                    the active-listener update
  e_t     = GRU_E(e_{t-1}, q_{s,t})                            emotion state

The paper's listener update reads the listener's own visual cue v_{i,t}, which a fused utterance vector
does not have per listener; like the reference implementation (declare-lab/conv-emotion) it reads
u_t ⊕ q_{s,t} instead. The attention over the global history is the paper's "general" form.

With ``bidirectional`` (BiDialogueRNN) a second, independent set of cells reads each dialogue from its last
utterance to its first and every state is the two directions' concatenation. With ``emotion_attention``
(the paper's "+Att") each e_t is replaced by ẽ_t = Σ_j softmax_j(e_t^T W_β e_j) e_j before the
classifier: over the whole dialogue when bidirectional, over j ≤ t otherwise (no future context in the
one-directional model). Classifier: ReLU(W_h ẽ_t + b_h), dropout, then a linear layer to the labels.

Roles for label refinement: ``speaker`` = q_{s,t}, the speaking party's state after its update at t (a
state per party that changes only when the party speaks or, actively, listens: speaker-sensitive by
construction); ``context`` = g_t, the global GRU's state, shared by all parties and fed every utterance
(context-sensitive). ``emotion`` = ẽ_t (e_t without attention). ``global_size`` and ``party_size`` must be
equal (the refinement module scores both states against one label matrix); the published sizes are.

Published sizes (declare-lab/conv-emotion DialogueRNN/train_MELD.py, the MELD text run): D_g = D_p = 150,
D_e = D_h = 100, dropout 0.1, the bidirectional model with "+Att", no active listener; the reference's
recurrent dropout inside the cells is not used here.

Vectorised over the batch: the parts of every GRU input that depend on u_t only, and the attention query,
are one matrix product before the loop over time steps; a padded step leaves every state unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from mmemolr.model.backbones.base import Backbone, padded_softmax, register_backbone
from mmemolr.model.predictor import PredictorOutput, _attend, _gru, reverse_steps


@dataclass
class DialogueRNNOptions:
    global_size: int = 150  # D_g
    party_size: int = 150  # D_p (must equal D_g)
    emotion_size: int = 100  # D_e
    classifier_hidden: int = 100  # D_h
    listener: bool = False  # active listener update
    bidirectional: bool = True  # BiDialogueRNN
    emotion_attention: bool = True  # "+Att": attention over the emotion states before the classifier
    dropout: float = 0.1  # before the classifier's output layer
    input_dropout: float = 0.0  # on the fused features u_t


class DialogueRNNCells(nn.Module):
    """One direction's GRU_G, GRU_P, GRU_L (active listener), GRU_E and W_α."""

    def __init__(self, du: int, dg: int, dp: int, de: int, listener: bool) -> None:
        super().__init__()
        self.gru_g = nn.GRUCell(du + dp, dg)
        self.gru_p = nn.GRUCell(du + dg, dp)
        self.gru_l = nn.GRUCell(du + dp, dp) if listener else None
        self.gru_e = nn.GRUCell(dp, de)
        self.att = nn.Linear(du, dg, bias=False)  # q_t = W_α^T u_t: score of g_i is q_t · g_i


def _run_direction(cells: DialogueRNNCells, u: torch.Tensor, onehot: torch.Tensor, valid: torch.Tensor,
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Global, speaker and emotion states (B, T, ·) of one direction over ``u`` (B, T, du).

    ``onehot`` (T, B, P): the speaking party, zero on padded steps; ``valid`` (T, B, 1): real steps."""
    b, t_max, du = u.shape
    dg, dp, de = cells.gru_g.hidden_size, cells.gru_p.hidden_size, cells.gru_e.hidden_size
    p = onehot.shape[-1]
    wg, wp = cells.gru_g.weight_ih, cells.gru_p.weight_ih
    blocks = [(wg[:, :du], cells.gru_g.bias_ih), (wp[:, :du], cells.gru_p.bias_ih),
              (cells.att.weight, cells.att.weight.new_zeros(dg))]
    if cells.gru_l is not None:
        blocks.append((cells.gru_l.weight_ih[:, :du], cells.gru_l.bias_ih))
    w_u = torch.cat([w for w, _ in blocks], 0)
    b_u = torch.cat([bias for _, bias in blocks], 0)
    pre = torch.addmm(b_u, u.transpose(0, 1).reshape(t_max * b, du), w_u.t()).view(t_max, b, -1)
    sizes = [3 * dg, 3 * dp, dg] + ([3 * dp] if cells.gru_l is not None else [])
    parts = [x.unbind(0) for x in pre.split(sizes, dim=-1)]
    pre_g, pre_p, query = parts[0], parts[1], [q.unsqueeze(-1) for q in parts[2]]
    pre_l = parts[3] if cells.gru_l is not None else None
    w_gq, w_pc = wg[:, du:].t(), wp[:, du:].t()
    onehot_t, valid_t = onehot.unbind(0), valid.unbind(0)
    speaks_t = (onehot > 0).unsqueeze(-1).unbind(0)

    g = u.new_zeros(b, dg)
    e = u.new_zeros(b, de)
    parties = u.new_zeros(b, p, dp)
    history: list[torch.Tensor] = []
    out_g, out_q, out_e = [], [], []
    for t in range(t_max):
        q_prev = torch.bmm(onehot_t[t].unsqueeze(1), parties).squeeze(1)  # q_{s,t-1}
        g_new = _gru(torch.addmm(pre_g[t], q_prev, w_gq), F.linear(g, cells.gru_g.weight_hh, cells.gru_g.bias_hh), g)
        c = _attend(history, query[t], True, b, dg)  # over g_0 .. g_{t-1}
        q_new = _gru(torch.addmm(pre_p[t], c, w_pc), F.linear(q_prev, cells.gru_p.weight_hh, cells.gru_p.bias_hh),
                     q_prev)
        if cells.gru_l is not None:
            gi_l = (pre_l[t] + q_new @ cells.gru_l.weight_ih[:, du:].t()).unsqueeze(1)
            heard = _gru(gi_l.expand(b, p, -1), F.linear(parties, cells.gru_l.weight_hh, cells.gru_l.bias_hh), parties)
            parties = torch.where(valid_t[t].unsqueeze(1), heard, parties)
        parties = torch.where(speaks_t[t], q_new.unsqueeze(1), parties)
        e_new = _gru(F.linear(q_new, cells.gru_e.weight_ih, cells.gru_e.bias_ih),
                     F.linear(e, cells.gru_e.weight_hh, cells.gru_e.bias_hh), e)
        g = torch.where(valid_t[t], g_new, g)
        e = torch.where(valid_t[t], e_new, e)
        history.append(g)
        out_g.append(g)
        out_q.append(q_new)
        out_e.append(e)
    if not t_max:
        return u.new_zeros(b, 0, dg), u.new_zeros(b, 0, dp), u.new_zeros(b, 0, de)
    return torch.stack(out_g, 1), torch.stack(out_q, 1), torch.stack(out_e, 1)


@register_backbone
class DialogueRNN(Backbone):
    name = "dialoguernn"
    description = "DialogueRNN (Majumder et al. 2019): global, party and emotion GRUs; Bi and +Att variants"
    Options = DialogueRNNOptions
    RANGES = {"global_size": "[1, inf)", "party_size": "[1, inf)", "emotion_size": "[1, inf)",
              "classifier_hidden": "[1, inf)", "dropout": "[0, 1)", "input_dropout": "[0, 1)"}

    @staticmethod
    def check(options: DialogueRNNOptions) -> list[str]:
        if options.global_size != options.party_size:
            return [f"model.backbone_options.dialoguernn: global_size ({options.global_size}) and party_size "
                    f"({options.party_size}) must be equal (label refinement reads both states against one "
                    "label matrix)"]
        return []

    def __init__(self, input_dim: int, n_classes: int, options: DialogueRNNOptions | None = None) -> None:
        super().__init__()
        o = options or DialogueRNNOptions()
        problems = self.check(o)
        if problems:
            raise ValueError(problems[0])
        self.options = o
        self.input_dropout = nn.Dropout(o.input_dropout)
        args = (input_dim, o.global_size, o.party_size, o.emotion_size, o.listener)
        self.forward_cells = DialogueRNNCells(*args)
        self.backward_cells = DialogueRNNCells(*args) if o.bidirectional else None
        width = 2 if o.bidirectional else 1
        self._state_dim = width * o.global_size
        self.emotion_dim = width * o.emotion_size
        self.emotion_att = nn.Linear(self.emotion_dim, self.emotion_dim, bias=False) if o.emotion_attention else None
        self.hidden = nn.Linear(self.emotion_dim, o.classifier_hidden)
        self.dropout = nn.Dropout(o.dropout)
        self.classifier = nn.Linear(o.classifier_hidden, n_classes)

    @property
    def state_dim(self) -> int:
        return self._state_dim

    @classmethod
    def from_config(cls, model, options: DialogueRNNOptions, input_dim: int, n_classes: int) -> DialogueRNN:
        return cls(input_dim, n_classes, options)

    def forward(self, x: torch.Tensor, speakers: torch.Tensor, mask: torch.Tensor,
                n_parties: int | None = None) -> PredictorOutput:
        u = self.input_dropout(x)
        p = int(n_parties) if n_parties is not None else int(speakers.max().item()) + 1 if speakers.numel() else 1
        onehot = F.one_hot(speakers.clamp(min=0), p).to(x.dtype) * mask.unsqueeze(-1)  # (B, T, P)
        valid = mask.transpose(0, 1).unsqueeze(-1)
        g, q, e = _run_direction(self.forward_cells, u, onehot.transpose(0, 1), valid)
        if self.backward_cells is not None:
            lengths = mask.sum(1)
            back = _run_direction(self.backward_cells, reverse_steps(u, lengths),
                                  reverse_steps(onehot, lengths).transpose(0, 1), valid)
            g, q, e = (torch.cat([fwd, reverse_steps(bwd, lengths)], -1) for fwd, bwd in zip((g, q, e), back))
        if self.emotion_att is not None:
            allowed = mask.unsqueeze(1).expand(-1, mask.shape[1], -1)  # (B, T, T): step t may read step j
            if self.backward_cells is None:
                allowed = allowed & torch.ones_like(allowed).tril()
            scores = torch.bmm(self.emotion_att(e), e.transpose(1, 2))  # e_t^T W_β e_j
            e = torch.bmm(padded_softmax(scores, allowed), e)
        logits = self.classifier(self.dropout(F.relu(self.hidden(e))))
        return PredictorOutput(logits, g, q, e)
