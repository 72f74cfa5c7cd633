"""One training epoch and one evaluation pass over dialogue batches."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from mmemolr.fuse import DialogueIndex, FusedData, iterate_batches
from mmemolr.model.dropout import draw_masks, dropout_sites, masks_installed
from mmemolr.train.build import EmoLRModel
from mmemolr.train.config import OptimConfig

# Dialogues a batch when predicting (no gradients are kept: wider batches than training's cost little).
EVAL_BATCH_DIALOGUES = 64


def train_epoch(model: EmoLRModel, data: FusedData, dialogues: Sequence[DialogueIndex],
                optimizer: torch.optim.Optimizer, optim: OptimConfig, generator: torch.Generator,
                device: torch.device, bar=None, epoch: int = 0, dropout: torch.Generator | None = None) -> float:
    """Train on ``dialogues`` once; returns the mean loss per labelled utterance.

    ``generator`` draws which dialogues share a batch, ``epoch`` (0 for the first) picks the order of the
    length buckets (mmemolr.fuse.batch_plan), ``dropout`` (a generator on ``device``) draws every dropout
    mask (mmemolr.model.dropout; None: the global random generator's ``F.dropout``)."""
    model.train()
    total, count = 0.0, 0
    sites = dropout_sites(model)
    dtype = next(model.parameters()).dtype  # of the masks: the same alone and in a group (mmemolr.train.batched)
    for batch in iterate_batches(data, dialogues, optim.batch_dialogues, generator, True, epoch):
        batch = batch.to(device)
        masks = draw_masks(sites, dropout, *batch.mask.shape, dtype) if dropout is not None else None
        # Every real utterance is read as context; the loss sees the labelled ones (context-only: label -1).
        scored = batch.mask & (batch.labels >= 0)
        if not bool(scored.any()):
            continue  # a batch of context-only dialogues holds nothing to learn from (its masks are drawn)
        with masks_installed(sites, masks):
            out = model.predictor(batch.x, batch.speakers, batch.mask, batch.n_parties)
        labels = batch.labels[scored]
        loss = model.target.loss(out.select(scored), labels, batch.votes[scored] if batch.votes is not None else None)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        n = int(labels.numel())
        total += float(loss.item()) * n
        count += n
        if bar is not None:
            bar.update(len(batch.x))
    if count == 0:
        raise ValueError("the training split has no labelled utterances")
    return total / count


@dataclass
class Evaluation:
    """Outputs for the utterances of some dialogues, in corpus order (rows of FusedData)."""

    rows: np.ndarray  # (N,) rows of FusedData.ids
    gold: np.ndarray  # (N,) label index, -1 when unknown
    probs: np.ndarray  # (N, C)
    loss: float | None  # mean cross-entropy over the labelled utterances (None without labels)
    emotion: np.ndarray | None = None  # (N, D) e_t
    # (N, C) the target distribution z (refining targets); NaN on context-only rows (z needs a gold label)
    refined: np.ndarray | None = None

    @property
    def pred(self) -> np.ndarray:
        return self.probs.argmax(axis=1)


@torch.no_grad()
def evaluate(model: EmoLRModel, data: FusedData, dialogues: Sequence[DialogueIndex], batch_size: int,
             device: torch.device, states: bool = False, refined: bool = False) -> Evaluation:
    """Predict with the predictor alone (eval mode: no dropout)."""
    model.eval()
    rows, gold, probs, emotion, dist = [], [], [], [], []
    for batch in iterate_batches(data, dialogues, batch_size, None, True):
        batch = batch.to(device)
        out = model.predictor(batch.x, batch.speakers, batch.mask, batch.n_parties)
        sel = out.select(batch.mask)
        labels = batch.labels[batch.mask]
        rows.append(batch.rows[batch.mask].cpu())
        gold.append(labels.cpu())
        probs.append(torch.softmax(sel.logits.float(), dim=-1).cpu())
        if states:
            emotion.append(sel.emotion.float().cpu())
        if refined and model.target.refines:
            dist.append(refined_rows(model, sel, labels, batch.votes[batch.mask] if batch.votes is not None else None))
    return collect_evaluation(rows, gold, probs, emotion if states else None, dist)


def refined_rows(model: EmoLRModel, out, labels: torch.Tensor, votes: torch.Tensor | None) -> torch.Tensor:
    """z (N, C) for selected outputs ``out``; NaN rows for the context-only utterances (label -1)."""
    z = torch.full((labels.shape[0], model.target.n_classes), float("nan"))
    scored = labels >= 0
    if bool(scored.any()):
        part = out.select(scored)
        z[scored.cpu()] = model.target.distribution(part, labels[scored],
                                                    votes[scored] if votes is not None else None).float().cpu()
    return z


def collect_evaluation(rows: list[torch.Tensor], gold: list[torch.Tensor], probs: list[torch.Tensor],
                       emotion: list[torch.Tensor] | None = None, dist: list[torch.Tensor] | None = None) -> Evaluation:
    """An Evaluation from per-batch pieces (CPU tensors), put in corpus order."""
    states = emotion is not None
    if not rows:
        raise ValueError("no dialogues to evaluate")
    row_arr = torch.cat(rows).numpy()
    order = np.argsort(row_arr, kind="stable")
    gold_arr = torch.cat(gold).numpy()[order]
    prob_t = torch.cat(probs)[torch.from_numpy(order)]
    labelled = gold_arr >= 0
    loss = None
    if labelled.any():
        loss = float(F.nll_loss(torch.log(prob_t[torch.from_numpy(labelled)].clamp_min(1e-12)),
                                torch.from_numpy(gold_arr[labelled])).item())
    return Evaluation(
        rows=row_arr[order], gold=gold_arr, probs=prob_t.numpy(), loss=loss,
        emotion=torch.cat(emotion).numpy()[order] if states else None,
        refined=torch.cat(dist).numpy()[order] if dist else None,
    )
