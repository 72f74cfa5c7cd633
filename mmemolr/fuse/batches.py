"""Dialogue batches: padded, masked, bucketed by length so little time is spent on padding."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from mmemolr.fuse.dataset import DialogueIndex, FusedData


@dataclass
class Batch:
    """B dialogues padded to the longest, T steps. Padded steps have mask False and label -1."""

    x: torch.Tensor  # (B, T, F) fused features
    speakers: torch.Tensor  # (B, T) long, party index within the dialogue
    labels: torch.Tensor  # (B, T) long, -1 where padded or unknown
    mask: torch.Tensor  # (B, T) bool, True on real utterances
    rows: torch.Tensor  # (B, T) long, row of the utterance in FusedData.ids (pad row where padded)
    n_parties: int
    votes: torch.Tensor | None = None  # (B, T, C) annotator vote counts (FusedData.votes), if the corpus has them

    def to(self, device: torch.device | str) -> Batch:
        if str(device) == "cpu":
            return self
        return Batch(self.x.to(device), self.speakers.to(device), self.labels.to(device), self.mask.to(device),
                     self.rows.to(device), self.n_parties, self.votes.to(device) if self.votes is not None else None)


def collate(data: FusedData, dialogues: Sequence[DialogueIndex]) -> Batch:
    b = len(dialogues)
    t = max(len(d) for d in dialogues)
    rows = np.full((b, t), data.pad_row, dtype=np.int64)
    speakers = np.zeros((b, t), dtype=np.int64)
    labels = np.full((b, t), -1, dtype=np.int64)
    for i, d in enumerate(dialogues):
        n = len(d)
        rows[i, :n] = d.rows
        speakers[i, :n] = d.speakers
        labels[i, :n] = d.labels
    rows_t = torch.from_numpy(rows)
    return Batch(
        x=data.features[rows_t], speakers=torch.from_numpy(speakers), labels=torch.from_numpy(labels),
        mask=rows_t != data.pad_row, rows=rows_t, n_parties=int(speakers.max()) + 1,
        votes=data.votes[rows_t] if data.votes is not None else None,
    )


SCHEDULE_SEED = 0x6D6D656D  # seeds the order of the length buckets, with the epoch: the same for every run


def schedule(n_batches: int, epoch: int) -> list[int]:
    """The order in which epoch ``epoch`` (0 for the first) takes its ``n_batches`` batches, by their
    position in length order. It depends on the epoch only, not on any run: every run, alone or in any
    batched group (mmemolr.train.batched), takes the same length bucket at the same step of an epoch, so
    the runs of a group are never padded to one another."""
    generator = torch.Generator().manual_seed(SCHEDULE_SEED + epoch)
    return torch.randperm(n_batches, generator=generator).tolist()


def batch_plan(lengths: Sequence[int], batch_size: int, generator: torch.Generator | None = None,
               bucket: bool = True, epoch: int = 0) -> list[list[int]]:
    """Indices of the dialogues in each batch.

    With a generator (training) the run's own generator draws which dialogues share a batch: a random
    permutation (its only draw), then (with ``bucket``) a stable sort by length, so dialogues of equal
    length are mixed at random, cut into batches of ``batch_size``. The batches are then taken in the
    order :func:`schedule` gives for ``epoch``, the same for every run. Without a generator (evaluation)
    dialogues are sorted by length and batched in order.
    """
    if batch_size < 1:
        raise ValueError(f"batch size must be at least 1, got {batch_size}")
    n = len(lengths)
    order = torch.randperm(n, generator=generator).numpy() if generator is not None else np.arange(n)
    if bucket:
        order = order[np.argsort(np.asarray(lengths)[order], kind="stable")]
    batches = [order[i:i + batch_size].tolist() for i in range(0, n, batch_size)]
    if generator is None:
        return batches
    return [batches[i] for i in schedule(len(batches), epoch)]


def iterate_batches(data: FusedData, dialogues: Sequence[DialogueIndex], batch_size: int,
                    generator: torch.Generator | None = None, bucket: bool = True, epoch: int = 0):
    """Yield collated batches of ``dialogues`` following :func:`batch_plan`."""
    plan = batch_plan([len(d) for d in dialogues], batch_size, generator, bucket, epoch)
    for idx in plan:
        yield collate(data, [dialogues[i] for i in idx])
