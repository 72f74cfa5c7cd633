"""The fused corpus: one matrix of normalised, concatenated features plus per-dialogue index arrays."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from mmemolr.corpus.model import Corpus
from mmemolr.fuse.normalize import ZNorm
from mmemolr.store import FeatureFile

TRAINING_SPLITS = ("train", "dev", "test")


@dataclass
class DialogueIndex:
    """One dialogue as rows of the fused matrix, party index per step and label index (-1: unknown)."""

    id: str
    split: str | None
    rows: np.ndarray
    speakers: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.rows)


@dataclass
class FusedData:
    """Fused features of a corpus; ``features`` has one extra all-zero row used for padding."""

    ids: list[str]
    labels: list[str]
    modalities: list[str]
    dims: dict[str, int]
    features: torch.Tensor  # (N + 1, F) float32
    available: np.ndarray  # (N, M) bool, one column per modality
    dialogues: list[DialogueIndex]
    # (N + 1, C) annotator votes per label (votes outside the label set left out; zeros where an utterance
    # has none, and on the padding row); None when the corpus records no votes.
    votes: torch.Tensor | None = None

    @property
    def input_dim(self) -> int:
        return int(self.features.shape[1])

    @property
    def pad_row(self) -> int:
        return len(self.ids)

    def split(self, name: str) -> list[DialogueIndex]:
        return [d for d in self.dialogues if d.split == name]


def check_training_corpus(corpus: Corpus, splits: Sequence[str] = TRAINING_SPLITS) -> None:
    """Every split present with labelled utterances, every label one of the corpus's labels.

    Utterances without a label (context-only) are allowed: the model reads them as context, and losses
    and metrics leave them out (``DialogueIndex.labels`` is -1 there)."""
    if corpus.dialogues and corpus.label_free:
        raise ValueError(f"corpus {corpus.name!r} is label-free (no utterance has a label): it can be extracted and "
                         f"predicted (`mmemolr predict RUN --corpus {corpus.name}`), not trained or scored")
    for split in splits:
        dialogues = corpus.split_dialogues(split)
        if not dialogues:
            raise ValueError(f"corpus {corpus.name!r} has no {split!r} dialogues; training needs train, dev "
                             f"and test splits (present: {', '.join(corpus.splits) or 'none'})")
        if all(u.label is None for d in dialogues for u in d.utterances):
            raise ValueError(f"the {split!r} split of corpus {corpus.name!r} has no labelled utterance (all "
                             f"{sum(len(d) for d in dialogues)} are context-only); training and scoring need labels")
        for d in dialogues:
            for u in d.utterances:
                if u.label is not None and u.label not in corpus.labels:
                    raise ValueError(f"utterance {u.id!r} (dialogue {d.id!r}, {split}) has label {u.label!r}, "
                                     f"which is not in the corpus's label set {corpus.labels}; "
                                     "fix the corpus and prepare it again")


def build_fused(corpus: Corpus, files: Mapping[str, FeatureFile], norm: ZNorm, labels: Sequence[str],
                availability_input: bool = True) -> FusedData:
    """Concatenate the normalised modalities (order of ``files``) and index the dialogues.

    With ``availability_input`` one 0/1 column per modality is appended, so the model can tell a
    missing modality (zeros) from a real vector that happens to be near the training mean.
    """
    ids = corpus.utterance_ids()
    label_index = {label: i for i, label in enumerate(labels)}
    blocks, avail_cols = [], []
    for code, ff in files.items():
        rows = ff.rows_for(ids)
        avail = ff.available[rows]
        blocks.append(norm.apply(code, ff.features[rows], avail))
        avail_cols.append(avail)
    available = np.stack(avail_cols, axis=1) if avail_cols else np.zeros((len(ids), 0), dtype=bool)
    if availability_input:
        blocks.append(available.astype(np.float32))
    matrix = np.concatenate(blocks, axis=1) if blocks else np.zeros((len(ids), 0), dtype=np.float32)
    matrix = np.concatenate([matrix, np.zeros((1, matrix.shape[1]), dtype=np.float32)], axis=0)
    dialogues = []
    row = 0
    for d in corpus.dialogues:
        n = len(d.utterances)
        party = {s: i for i, s in enumerate(d.speakers)}
        dialogues.append(DialogueIndex(
            id=d.id, split=d.split,
            rows=np.arange(row, row + n, dtype=np.int64),
            speakers=np.array([party[u.speaker] for u in d.utterances], dtype=np.int64),
            labels=np.array([label_index.get(u.label, -1) if u.label is not None else -1
                             for u in d.utterances], dtype=np.int64),
        ))
        row += n
    return FusedData(
        ids=ids, labels=list(labels), modalities=list(files), dims={c: ff.dim for c, ff in files.items()},
        features=torch.from_numpy(np.ascontiguousarray(matrix)), available=available, dialogues=dialogues,
        votes=vote_matrix(corpus, labels),
    )


def vote_matrix(corpus: Corpus, labels: Sequence[str]) -> torch.Tensor | None:
    """(N + 1, C) vote counts over ``labels`` in corpus order, a zero padding row last; None without votes."""
    if not corpus.has_votes:
        return None
    index = {label: i for i, label in enumerate(labels)}
    utts = list(corpus.utterances())
    counts = np.zeros((len(utts) + 1, len(labels)), dtype=np.float32)
    for row, u in enumerate(utts):
        for label, n in (u.votes or {}).items():
            if label in index:
                counts[row, index[label]] = n
    return torch.from_numpy(counts)
