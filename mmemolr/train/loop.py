"""One training epoch and one evaluation pass over dialogue batches."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from mmemolr.fuse import DialogueIndex, FusedData, iterate_batches
from mmemolr.train.build import EmoLRModel
from mmemolr.train.config import OptimConfig

# Dialogues a batch when predicting (no gradients are kept: wider batches than training's cost little).
EVAL_BATCH_DIALOGUES = 64


def train_epoch(model: EmoLRModel, data: FusedData, dialogues: Sequence[DialogueIndex],
                optimizer: torch.optim.Optimizer, optim: OptimConfig, generator: torch.Generator,
                device: torch.device, bar=None) -> float:
    """Train on ``dialogues`` once; returns the mean loss per utterance."""
    model.train()
    total, count = 0.0, 0
    for batch in iterate_batches(data, dialogues, optim.batch_dialogues, generator):
        batch = batch.to(device)
        out = model.predictor(batch.x, batch.speakers, batch.mask, batch.n_parties)
        labels = batch.labels[batch.mask]
        loss = model.target.loss(out.select(batch.mask), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        n = int(labels.numel())
        total += float(loss.item()) * n
        count += n
        if bar is not None:
            bar.update(len(batch.x))
    if count == 0:
        raise ValueError("the training split has no utterances")
    return total / count


@dataclass
class Evaluation:
    """Outputs for the utterances of some dialogues, in corpus order (rows of FusedData)."""

    rows: np.ndarray  # (N,) rows of FusedData.ids
    gold: np.ndarray  # (N,) label index, -1 when unknown
    probs: np.ndarray  # (N, C)
    loss: float | None  # mean cross-entropy over the labelled utterances (None without labels)
    emotion: np.ndarray | None = None  # (N, D) e_t
    refined: np.ndarray | None = None  # (N, C) the target distribution z (rld, lcm), needs gold labels

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
            if bool((labels < 0).any()):
                raise ValueError("the refined label distribution needs gold labels for every utterance")
            dist.append(model.target.distribution(sel, labels).float().cpu())
    return collect_evaluation(rows, gold, probs, emotion if states else None, dist)


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
