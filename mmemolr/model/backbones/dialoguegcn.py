"""``dialoguegcn``: DialogueGCN (Ghosal et al., EMNLP 2019), written from the paper's equations.

  g_i       = BiGRU(u_1 .. u_N)_i                                         sequential context encoder
  α_ij      = softmax_{j ∈ W(i)}(g_i^T W_e g_j)                           edge weights, W(i) = the window
                                                                          [i - p, i + f] of i's dialogue
  h_i^(1)   = ReLU(Σ_r Σ_{j ∈ N_i^r} α_ij / c_{i,r} · W_r g_j + α_ii W_0 g_i)   relational graph convolution
  h_i^(2)   = ReLU(Σ_{j ∈ N_i} W^(2) h_j^(1) + W_0^(2) h_i^(1))                 graph convolution
  logits_i  = W_o dropout(ReLU(W_l [g_i ⊕ h_i^(2)] + b_l)) + b_o

The relation r of edge j → i is (speaker of i, speaker of j, whether j comes after i): 2·S² relations for
S speaker slots (``n_speakers``; parties beyond the last slot share it), and N_i^r the neighbours of i
in the window with relation r, c_{i,r} = |N_i^r|. The relation matrices use the basis decomposition of
R-GCN, W_r = Σ_b a_rb V_b (``n_bases``), as the reference implementation does.

Vectorised over the batch with dense (B, T, T) adjacency: the window, the edge weights and the relation
index of every pair are (B, T, T) tensors; the relational convolution is one einsum over
(B, T, T, bases) coefficients and the bases' transforms of every node. No graph library; no loop at all
(the encoder is ``nn.GRU`` over packed sequences, so padding never reaches a real step).

Roles for label refinement: ``speaker`` = h_i^(2), the graph state built from speaker- and
direction-dependent relations (the only speaker-sensitive state of the model); ``context`` = g_i, the
sequential encoder's state (context-sensitive: the whole dialogue read in order). ``emotion`` = the
classifier's input g_i ⊕ h_i^(2). The graph width is 2·``encoder_hidden`` so that both states share one
width (the refinement module reads them against one label matrix); the reference code's graph_h is 100
with D_e = 100 (g is 200 wide).

Published sizes (declare-lab/conv-emotion DialogueGCN/train_IEMOCAP.py): D_e = 100, D_h = 100, window 10
past and 10 future, 30 bases, dropout 0.5; 2 speakers for IEMOCAP, 9 for MELD in the reference MELD
scripts. The reference encoder is a 2-layer bidirectional LSTM; the paper describes a bidirectional GRU,
which is what this module uses (``encoder_layers`` layers, 2 by default as in the reference).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from mmemolr.config import Removed, option
from mmemolr.model.backbones.base import Backbone, padded_softmax, register_backbone
from mmemolr.model.dropout import Dropout
from mmemolr.model.predictor import PredictorOutput, _gru, reverse_steps


@dataclass
class DialogueGCNOptions:
    """Published sizes: declare-lab/conv-emotion ``DialogueGCN/train_IEMOCAP.py`` (9 speaker slots: its
    MELD scripts)."""

    REMOVED_KEYS: ClassVar[dict[str, Removed]] = {
        "input_dropout": Removed(0.0, "no dropout on the input (as published)",
                                 "0.7 on MELD: dev W-F1 53.17 vs 54.61 without; 0.5 on EmoryNLP: 37.06 vs "
                                 "36.82 (seed 0)"),
    }

    encoder_hidden: int = option(100, range="[1, inf)", doc="D_e per direction of the GRU encoder (g_i and the "
                                 "graph are 2·D_e wide)",
                                 why="published (100); 50 was no better on EmoryNLP dev (35.59 vs 36.82, seed "
                                 "0); the tests shrink it")
    encoder_layers: int = option(2, range="[1, inf)", doc="layers of the bidirectional GRU encoder",
                                 why="published (2); 1 was within the seed spread on EmoryNLP dev (37.45 ± 0.98 "
                                 "vs 36.95 ± 0.78); the tests use 1")
    window_past: int = option(10, range="[0, inf)", doc="p: utterances before i in its graph window",
                              why="published (10); 2 was no better on EmoryNLP dev (36.38 ± 0.97 with f = 2); "
                              "the tests set small windows to check the window against a per-node reference")
    window_future: int = option(10, range="[0, inf)", doc="f: utterances after i in its graph window",
                                why="as `window_past`; the tests also set 0 (a graph without future edges)")
    n_speakers: int = option(9, range="[1, inf)", doc="speaker slots of the relations (parties beyond the last "
                             "share it)", why="published per corpus: configs/iemocap.yaml 2, MELD's 9")
    n_bases: int = option(30, range="[1, inf)", doc="bases of the R-GCN decomposition of the 2·S² relation "
                          "matrices", why="published (30); the tests shrink it")
    classifier_hidden: int = option(100, range="[1, inf)", doc="D_h: the classifier's hidden layer",
                                    why="published (100); the tests shrink it")
    dropout: float = option(0.5, range="[0, 1)", doc="before the classifier's output layer",
                            why="published (0.5); the tests set 0 to compare with references exactly")


def window_mask(mask: torch.Tensor, past: int, future: int) -> torch.Tensor:
    """(B, T, T): True where j is in i's window [i - past, i + future] and both are real steps."""
    t_max = mask.shape[1]
    idx = torch.arange(t_max, device=mask.device)
    offset = idx.view(1, -1) - idx.view(-1, 1)  # j - i
    inside = (offset >= -past) & (offset <= future)
    return inside.unsqueeze(0) & mask.unsqueeze(1) & mask.unsqueeze(2)


def relation_index(speakers: torch.Tensor, n_speakers: int) -> torch.Tensor:
    """(B, T, T) relation of edge j → i: (s_i · S + s_j) · 2 + [j > i]."""
    s = speakers.clamp(min=0, max=n_speakers - 1)
    t_max = speakers.shape[1]
    idx = torch.arange(t_max, device=speakers.device)
    future = (idx.view(1, -1) > idx.view(-1, 1)).long()
    return (s.unsqueeze(2) * n_speakers + s.unsqueeze(1)) * 2 + future.unsqueeze(0)


@register_backbone
class DialogueGCN(Backbone):
    name = "dialoguegcn"
    description = "DialogueGCN (Ghosal et al. 2019): BiGRU encoder, speaker/direction relational graph, GCN"
    Options = DialogueGCNOptions

    def __init__(self, input_dim: int, n_classes: int, options: DialogueGCNOptions | None = None) -> None:
        super().__init__()
        o = options or DialogueGCNOptions()
        self.options = o
        d = 2 * o.encoder_hidden
        n_rel = 2 * o.n_speakers ** 2
        self.encoder = nn.GRU(input_dim, o.encoder_hidden, num_layers=o.encoder_layers, bidirectional=True,
                              batch_first=True)
        self.edge_att = nn.Linear(d, d, bias=False)  # W_e
        self.bases = nn.Parameter(torch.empty(o.n_bases, d, d))  # V_b
        self.coefficients = nn.Parameter(torch.empty(n_rel, o.n_bases))  # a_rb
        self.root1 = nn.Linear(d, d)  # W_0^(1) (and the layer's bias)
        self.conv2 = nn.Linear(d, d, bias=False)  # W^(2)
        self.root2 = nn.Linear(d, d)  # W_0^(2)
        self.hidden = nn.Linear(2 * d, o.classifier_hidden)
        self.dropout = Dropout(o.dropout, o.classifier_hidden)
        self.classifier = nn.Linear(o.classifier_hidden, n_classes)
        nn.init.xavier_uniform_(self.bases)
        nn.init.xavier_uniform_(self.coefficients)
        self._state_dim = d
        self.emotion_dim = 2 * d

    @property
    def state_dim(self) -> int:
        return self._state_dim

    @classmethod
    def from_config(cls, model, options: DialogueGCNOptions, input_dim: int, n_classes: int) -> DialogueGCN:
        return cls(input_dim, n_classes, options)

    def encode(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """g (B, T, 2·D_e) from the bidirectional GRU over each dialogue's real steps (zeros on padding)."""
        if x.shape[1] == 0:
            return x.new_zeros(*x.shape[:2], self._state_dim)
        if torch._C._are_functorch_transforms_active():  # vmap (mmemolr.train.stacked): no packed sequences
            return self._encode_steps(x, mask)
        lengths = mask.sum(1)
        if int(lengths.max()) == 0:
            return x.new_zeros(*x.shape[:2], self._state_dim)
        packed = pack_padded_sequence(x, lengths.clamp(min=1).cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.encoder(packed)
        g, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
        return g * mask.unsqueeze(-1).to(g.dtype)

    def _encode_steps(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """:meth:`encode` step by step with the encoder's weights, for torch.func transforms (which cannot
        pack sequences): per layer the forward direction reads the padded batch (padding follows the real
        steps, so it reaches none of them) and the backward one each dialogue reversed within its length."""
        lengths = mask.sum(1)
        h = x
        for layer in range(self.encoder.num_layers):
            outs = []
            for suffix in ("", "_reverse"):
                w_ih, w_hh, b_ih, b_hh = (getattr(self.encoder, f"{name}_l{layer}{suffix}")
                                          for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
                inp = reverse_steps(h, lengths) if suffix else h
                pre = F.linear(inp, w_ih, b_ih).unbind(1)
                state = x.new_zeros(x.shape[0], w_hh.shape[1])
                steps = []
                for t in range(x.shape[1]):
                    state = _gru(pre[t], F.linear(state, w_hh, b_hh), state)
                    steps.append(state)
                out = torch.stack(steps, 1)
                outs.append(reverse_steps(out, lengths) if suffix else out)
            h = torch.cat(outs, -1)
        return h * mask.unsqueeze(-1).to(h.dtype)

    def graph(self, g: torch.Tensor, speakers: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """h^(2) (B, T, D) from g (B, T, D): the relational then the plain graph convolution."""
        o = self.options
        adj = window_mask(mask, o.window_past, o.window_future)  # (B, T, T) j ∈ W(i)
        alpha = padded_softmax(torch.bmm(self.edge_att(g), g.transpose(1, 2)), adj)  # g_i^T W_e g_j
        rel = relation_index(speakers, o.n_speakers)  # (B, T, T)
        n_rel = self.coefficients.shape[0]
        # c_{i,r}: neighbours of i with relation r, read back at every edge's own relation.
        counts = torch.zeros(*rel.shape[:2], n_rel, dtype=g.dtype, device=g.device).scatter_add(2, rel, adj.to(g.dtype))
        norm = counts.gather(2, rel).clamp(min=1.0)
        weight = alpha / norm * adj.to(g.dtype)  # α_ij / c_{i,r} on edges, 0 elsewhere
        coeff = self.coefficients[rel] * weight.unsqueeze(-1)  # (B, T, T, bases)
        transformed = torch.einsum("bjd,kde->bjke", g, self.bases)  # V_b g_j: (B, T, bases, D)
        message = torch.einsum("bijk,bjke->bie", coeff, transformed)
        diag = torch.diagonal(alpha, dim1=1, dim2=2).unsqueeze(-1)  # α_ii
        h1 = F.relu(message + diag * F.linear(g, self.root1.weight) + self.root1.bias)
        h1 = h1 * mask.unsqueeze(-1).to(h1.dtype)
        h2 = F.relu(torch.bmm(adj.to(h1.dtype), self.conv2(h1)) + self.root2(h1))
        return h2 * mask.unsqueeze(-1).to(h2.dtype)

    def forward(self, x: torch.Tensor, speakers: torch.Tensor, mask: torch.Tensor,
                n_parties: int | None = None) -> PredictorOutput:
        g = self.encode(x, mask)
        h = self.graph(g, speakers, mask)
        features = torch.cat([g, h], -1)
        logits = self.classifier(self.dropout(F.relu(self.hidden(features))))
        return PredictorOutput(logits, g, h, features)
