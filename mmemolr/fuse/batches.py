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


def _chunks(lengths: Sequence[int], batch_size: int, generator: torch.Generator | None,
            bucket: bool) -> tuple[list[list[int]], list[int]]:
    """:func:`batch_plan`'s batches before shuffling (in length order with ``bucket``) and the order it
    shuffles them into (identity without a generator); draws from ``generator`` exactly what it draws."""
    if batch_size < 1:
        raise ValueError(f"batch size must be at least 1, got {batch_size}")
    n = len(lengths)
    lengths_arr = np.asarray(lengths)
    if generator is not None:
        order = torch.randperm(n, generator=generator).numpy()
    else:
        order = np.arange(n)
    if bucket:
        order = order[np.argsort(lengths_arr[order], kind="stable")]
    batches = [order[i:i + batch_size].tolist() for i in range(0, n, batch_size)]
    shuffle = torch.randperm(len(batches), generator=generator).tolist() if generator is not None else \
        list(range(len(batches)))
    return batches, shuffle


def batch_plan(lengths: Sequence[int], batch_size: int, generator: torch.Generator | None = None,
               bucket: bool = True) -> list[list[int]]:
    """Indices of the dialogues in each batch.

    With a generator (training) the order is random: a random permutation, then (with ``bucket``) a
    stable sort by length, so dialogues of equal length are mixed at random, then the batches are
    shuffled. Without one (evaluation) dialogues are sorted by length and batched in order.
    """
    batches, shuffle = _chunks(lengths, batch_size, generator, bucket)
    return [batches[i] for i in shuffle]


def group_plans(lengths: Sequence[int], batch_size: int, generators: Sequence[torch.Generator],
                bucket: bool = True) -> list[list[list[int]]]:
    """The plans of runs trained as one batched group (mmemolr.train.batched), one per generator.

    Each run draws its batches as :func:`batch_plan` does (its own random membership, the same draws
    from its generator), but all runs take them in the order the first run's generator draws. With
    ``bucket`` the k-th batch in length order holds the same lengths for every run (only which of the
    dialogues of equal length it holds differs), so every step of the group is as long, and as wide, as
    each run's own batch: no run is padded to another's. The first run's plan is its
    :func:`batch_plan`; each other's is a uniformly random order of its own batches, as alone."""
    drawn = [_chunks(lengths, batch_size, g, bucket) for g in generators]
    shuffle = drawn[0][1]
    return [[batches[i] for i in shuffle] for batches, _ in drawn]


def iterate_batches(data: FusedData, dialogues: Sequence[DialogueIndex], batch_size: int,
                    generator: torch.Generator | None = None, bucket: bool = True):
    """Yield collated batches of ``dialogues`` following :func:`batch_plan`."""
    plan = batch_plan([len(d) for d in dialogues], batch_size, generator, bucket)
    for idx in plan:
        yield collate(data, [dialogues[i] for i in idx])
