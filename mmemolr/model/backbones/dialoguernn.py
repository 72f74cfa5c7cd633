"""``dialoguernn``: DialogueRNN (Majumder et al., AAAI 2019), written from the paper's equations.

Per direction, with u_t the utterance vector and s = the party speaking at t:

  g_t     = GRU_G(g_{t-1}, u_t ⊕ q_{s,t-1})                    global state (shared by all parties)
  c_t     = Σ_{i<t} softmax_i(u_t^T W_α g_i) g_i               attention over the global history
  q_{s,t} = GRU_P(q_{s,t-1}, u_t ⊕ c_t)                       the speaker's party state
  q_{i,t} = q_{i,t-1}                                          listeners (i ≠ s)
  e_t     = GRU_E(e_{t-1}, q_{s,t})                            emotion state

The attention over the global history is the paper's "general" form. The model is BiDialogueRNN+Att, the
published MELD model: a second, independent set of cells reads each dialogue from its last utterance to
its first and every state is the two directions' concatenation, and ("+Att") each e_t is replaced by
ẽ_t = Σ_j softmax_j(e_t^T W_β e_j) e_j over the whole dialogue before the classifier. Classifier:
ReLU(W_h ẽ_t + b_h), dropout, then a linear layer to the labels. (The one-directional model, the model
without "+Att" and the active listener were options once: never used in a config nor measured, they were
removed with issue 25.)

Roles for label refinement: ``speaker`` = q_{s,t}, the speaking party's state after its update at t (a
state per party that changes only when the party speaks: speaker-sensitive by construction); ``context``
= g_t, the global GRU's state, shared by all parties and fed every utterance (context-sensitive).
``emotion`` = ẽ_t. D_g = D_p = ``global_size`` (the refinement module scores both states against one
label matrix; the published sizes are equal).

Published sizes (declare-lab/conv-emotion DialogueRNN/train_MELD.py, the MELD text run): D_g = D_p = 150,
D_e = D_h = 100, dropout 0.1, the bidirectional model with "+Att", no active listener; the reference's
recurrent dropout inside the cells is not used here.

Vectorised over the batch: the parts of every GRU input that depend on u_t only, and the attention query,
are products before the loop over time steps, and the two directions run in the same loop as one batched
product per step (the directions' weights stacked). Inside the loop, GRU_G and GRU_P (which read only
states of step t - 1) are one GRU update over the stacked groups, and GRU_E, which feeds nothing back,
runs after it: its input part (from q_{s,t}) for all steps in one product, then a loop over e alone. Both
loops have a hand-written backward pass through time (:mod:`~mmemolr.model.bptt`: a few batched ops per
step, every weight gradient one product after the loop); under torch.func transforms (batched groups of
runs), autograd runs through the per-step ops instead (:func:`_global_party_autograd`), with the per-step
products' weight gradients deferred by :class:`~mmemolr.model.steplinear.StepLinear`. The two paths agree
to float64 rounding (tests/test_backbones.py). Padding follows a dialogue's real steps and no real step
reads it; a padded step leaves the party states unchanged, and its g_t and e_t outputs are the last real
step's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from mmemolr.config import Removed, option
from mmemolr.model import bptt
from mmemolr.model.backbones.base import Backbone, padded_softmax, register_backbone
from mmemolr.model.bptt import global_party_recurrence, gru_sequence
from mmemolr.model.dropout import Dropout
from mmemolr.model.predictor import PredictorOutput, _attend, _gru, reverse_steps
from mmemolr.model.steplinear import StepLinear


@dataclass
class DialogueRNNOptions:
    """Published sizes: declare-lab/conv-emotion ``DialogueRNN/train_MELD.py``."""

    REMOVED_KEYS: ClassVar[dict[str, Removed]] = {
        "party_size": Removed(150, "`global_size` sizes both D_g and D_p", "it had to equal `global_size`"),
        "listener": Removed(False, "no active listener (the published MELD model)",
                            "never switched on in a config, preset or measurement"),
        "bidirectional": Removed(True, "always bidirectional (BiDialogueRNN, the published MELD model)",
                                 "never switched off in a config, preset or measurement"),
        "emotion_attention": Removed(True, "always \"+Att\" (the published MELD model)",
                                     "never switched off in a config, preset or measurement"),
    }

    global_size: int = option(150, range="[1, inf)", doc="D_g = D_p: the global and the party states",
                              why="published (150); the tests build 5- to 8-wide models with it")
    emotion_size: int = option(100, range="[1, inf)", doc="D_e: the emotion state",
                               why="published (100); the tests shrink it")
    classifier_hidden: int = option(100, range="[1, inf)", doc="D_h: the classifier's hidden layer",
                                    why="published (100); the tests shrink it")
    dropout: float = option(0.1, range="[0, 1)", doc="before the classifier's output layer",
                            why="published (0.1); the tests set 0 to compare with references exactly")
    input_dropout: float = option(0.0, range="[0, 1)", doc="on the fused features u_t",
                                  why="configs/meld.yaml 0.7, chosen on dev: 54.82 vs 52.60 at the published 0 "
                                  "(seed 0; the floor is 53.62)")


class DialogueRNNCells(nn.Module):
    """One direction's GRU_G, GRU_P, GRU_E and W_α (D_g = D_p = ``dg``)."""

    def __init__(self, du: int, dg: int, de: int) -> None:
        super().__init__()
        self.gru_g = nn.GRUCell(du + dg, dg)
        self.gru_p = nn.GRUCell(du + dg, dg)
        self.gru_e = nn.GRUCell(dg, de)
        self.att = nn.Linear(du, dg, bias=False)  # q_t = W_α^T u_t: score of g_i is q_t · g_i


def _stack(weights: list[torch.Tensor]) -> torch.Tensor:
    """Per-group (out, in) weights -> (K, in, out), for a batched product over the groups."""
    return torch.stack([w.t() for w in weights])


def _global_party_autograd(cells: list[DialogueRNNCells], u: torch.Tensor, onehot: torch.Tensor,
                           ) -> tuple[torch.Tensor, torch.Tensor]:
    """g_t (K, B, T, D) and q_{s,t} (K, T, B, D) through autograd over per-step ops (see
    :func:`_run_directions`): the path under torch.func transforms."""
    k, b, t_max, du = u.shape
    first = cells[0]
    d = first.gru_g.hidden_size
    p = onehot.shape[-1]
    # Split, not sliced: the backward of a split is one cat, that of two slices two zero-filled copies.
    w_g = [c.gru_g.weight_ih.split((du, d), 1) for c in cells]  # (u part, q_{s,t-1} part)
    w_p = [c.gru_p.weight_ih.split((du, d), 1) for c in cells]  # (u part, c_t part)

    # Everything that depends on u_t only, for all steps: (T, ·, B, ·) time-major, per direction.
    u_tm = u.transpose(1, 2)  # (K, T, B, du)
    pre_g = [F.linear(u_tm[i], w_g[i][0], c.gru_g.bias_ih) for i, c in enumerate(cells)]
    pre_p = [F.linear(u_tm[i], w_p[i][0], c.gru_p.bias_ih) for i, c in enumerate(cells)]
    hid_bias = [c.gru_g.bias_hh.expand_as(pre_g[0]) for c in cells] + [c.gru_p.bias_hh.expand_as(pre_g[0]) for c in cells]
    # Added to the 4K-group product of every step: [GRU_G input, GRU_P input, GRU_G hidden, GRU_P hidden].
    add_gp = torch.stack(pre_g + pre_p + hid_bias, 1).unbind(0)  # (4K, B, 3D) per step
    query = torch.stack([F.linear(u_tm[i], c.att.weight) for i, c in enumerate(cells)], 1)
    query = query.reshape(t_max, k * b, d, 1).unbind(0)  # q_t = W_α^T u_t: (KB, D, 1) per step
    gp = StepLinear(_stack([w[1] for w in w_g] + [w[1] for w in w_p]
                           + [c.gru_g.weight_hh for c in cells] + [c.gru_p.weight_hh for c in cells]))
    onehot_t = onehot.reshape(k, t_max, b, 1, p).unbind(1)  # (K, B, 1, P) per step
    speaks_t = (onehot > 0).unsqueeze(-1).unbind(1)  # (K, B, P, 1) per step

    g = u.new_zeros(k, b, d)
    parties = u.new_zeros(k, b, p, d)
    history: list[torch.Tensor] = []
    out_g, out_q = [], []
    for t in range(t_max):
        q_prev = torch.matmul(onehot_t[t], parties).squeeze(2)  # q_{s,t-1}: (K, B, D)
        c = _attend(history, query[t], k * b, d).view(k, b, d)  # over g_0 .. g_{t-1}
        states = torch.cat([q_prev, c, g, q_prev])  # inputs of GRU_G, GRU_P; hidden states of GRU_G, GRU_P
        gi, gh = gp(states, add_gp[t]).chunk(2)
        g_new, q_new = _gru(gi, gh, states[2 * k:]).chunk(2)
        parties = torch.where(speaks_t[t], q_new.unsqueeze(2), parties)
        g = g_new
        history.append(g.reshape(k * b, d))
        out_g.append(g)
        out_q.append(q_new)
    return torch.stack(out_g, 2), torch.stack(out_q, 1)


def _run_directions(cells: list[DialogueRNNCells], u: torch.Tensor, onehot: torch.Tensor, valid: torch.Tensor,
                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Global, speaker and emotion states (K, B, T, ·) of K directions at once, one set of cells each.

    ``u`` (K, B, T, du): each direction's utterance order; ``onehot`` (K, T, B, P): the speaking party, zero
    on padded steps; ``valid`` (T, B, 1): real steps (the same in every direction). The loop over time
    carries g and the party states only; per step:

    * GRU_G and GRU_P read only states of step t - 1 (the attention reads g_0 .. g_{t-1}), so their four
      state products (q_{s,t-1} and c_t into the inputs, g_{t-1} and q_{s,t-1} into the hidden parts) are
      one product batched over 4K groups (D_g = D_p), and their gates one GRU update over 2K groups;
    * the u_t parts of the GRU inputs and the attention query are computed for all steps before the loop,
      GRU_E's input part (from q_{s,t}) for all steps after it, in a second loop over e only;
    * both loops have a hand-written backward (``mmemolr.model.bptt``) where it applies, else autograd runs
      through them with the per-step products' weight gradients deferred (:class:`StepLinear`).
    """
    k, b, t_max, du = u.shape
    first = cells[0]
    d, de = first.gru_g.hidden_size, first.gru_e.hidden_size  # D_g = D_p
    if not t_max:
        return u.new_zeros(k, b, 0, d), u.new_zeros(k, b, 0, d), u.new_zeros(k, b, 0, de)
    hand_written = bptt.usable(u.device)
    if hand_written:
        gru = [c.gru_g for c in cells] + [c.gru_p for c in cells]
        g_out, q_all, _ = global_party_recurrence(
            u.transpose(1, 2), onehot, [m.weight_ih for m in gru], [m.weight_hh for m in gru],
            [m.bias_ih for m in gru], [m.bias_hh for m in gru], [c.att.weight for c in cells])
    else:
        g_out, q_all = _global_party_autograd(cells, u, onehot)
    # GRU_E reads q_{s,t}: its input part for all steps in one product, then the recurrence over e alone.
    pre_e = torch.baddbmm(torch.stack([c.gru_e.bias_ih for c in cells]).unsqueeze(1), q_all.reshape(k, t_max * b, d),
                          _stack([c.gru_e.weight_ih for c in cells])).view(k, t_max, b, 3 * de)
    if hand_written:
        e_out = gru_sequence(pre_e.transpose(0, 1), torch.stack([c.gru_e.weight_hh for c in cells]),
                             torch.stack([c.gru_e.bias_hh for c in cells])).permute(1, 2, 0, 3)  # (K, B, T, De)
    else:
        e_hid = StepLinear(_stack([c.gru_e.weight_hh for c in cells]))
        # expanded to every step (views): its gradient is summed once, not at every step
        b_eh = torch.stack([c.gru_e.bias_hh for c in cells]).unsqueeze(1).expand(t_max, k, b, 3 * de).unbind(0)
        pre_e = pre_e.unbind(1)
        e = u.new_zeros(k, b, de)
        out_e = []
        for t in range(t_max):
            e = _gru(pre_e[t], e_hid(e, b_eh[t]), e)
            out_e.append(e)
        e_out = torch.stack(out_e, 2)
    # Padding follows a dialogue's real steps, so g and e of its padded steps reach no real step; in the
    # outputs they are the last real step's (a padded step leaves the states unchanged).
    lengths = valid.sum(0).view(1, b, 1, 1)
    held = torch.minimum(torch.arange(t_max, device=u.device).view(1, 1, -1, 1), (lengths - 1).clamp(min=0))
    g_out, e_out = ((x.gather(2, held.expand_as(x)) * (lengths > 0)) for x in (g_out, e_out))
    return g_out, q_all.transpose(1, 2), e_out


@register_backbone
class DialogueRNN(Backbone):
    name = "dialoguernn"
    description = "DialogueRNN (Majumder et al. 2019): BiDialogueRNN+Att, global, party and emotion GRUs"
    Options = DialogueRNNOptions

    def __init__(self, input_dim: int, n_classes: int, options: DialogueRNNOptions | None = None) -> None:
        super().__init__()
        o = options or DialogueRNNOptions()
        self.options = o
        self.input_dropout = Dropout(o.input_dropout, input_dim, input_at=0)
        args = (input_dim, o.global_size, o.emotion_size)
        self.forward_cells = DialogueRNNCells(*args)
        self.backward_cells = DialogueRNNCells(*args)
        self._state_dim = 2 * o.global_size
        self.emotion_dim = 2 * o.emotion_size
        self.emotion_att = nn.Linear(self.emotion_dim, self.emotion_dim, bias=False)
        self.hidden = nn.Linear(self.emotion_dim, o.classifier_hidden)
        self.dropout = Dropout(o.dropout, o.classifier_hidden)
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
        lengths = mask.sum(1)
        both = _run_directions([self.forward_cells, self.backward_cells],
                               torch.stack([u, reverse_steps(u, lengths)]),
                               torch.stack([onehot, reverse_steps(onehot, lengths)]).transpose(1, 2), valid)
        g, q, e = (torch.cat([out[0], reverse_steps(out[1], lengths)], -1) for out in both)
        allowed = mask.unsqueeze(1).expand(-1, mask.shape[1], -1)  # (B, T, T): step t may read step j
        scores = torch.bmm(self.emotion_att(e), e.transpose(1, 2))  # e_t^T W_β e_j
        e = torch.bmm(padded_softmax(scores, allowed), e)
        logits = self.classifier(self.dropout(F.relu(self.hidden(e))))
        return PredictorOutput(logits, g, q, e)
