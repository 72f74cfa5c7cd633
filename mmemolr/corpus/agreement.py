"""Annotator agreement from per-utterance votes (``Utterance.votes``): vote matrices, per-split statistics
with their chance levels, and the annotators' own class confusion.

Vote columns are the corpus labels in order, then OTHER (votes outside the label set). Statistics that need
a gold label use the labelled utterances that carry votes; context-only utterances (label None) are left
out of them, like every other metric.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from mmemolr.corpus.model import OTHER, Corpus, Utterance


def vote_columns(labels: Sequence[str]) -> list[str]:
    """The columns of a vote matrix: the labels in order, then OTHER."""
    return [*labels, OTHER]


def vote_counts(utterances: Sequence[Utterance], labels: Sequence[str]) -> np.ndarray:
    """``(n, len(labels) + 1)`` integer vote counts, columns :func:`vote_columns`; zeros for an utterance
    without votes. A vote naming neither a label nor OTHER is an error (``Corpus.validate`` rules it out)."""
    column = {name: i for i, name in enumerate(vote_columns(labels))}
    counts = np.zeros((len(utterances), len(column)), dtype=np.int64)
    for row, u in enumerate(utterances):
        for name, n in (u.votes or {}).items():
            if name not in column:
                raise ValueError(f"utterance {u.id!r}: votes name {name!r}, not one of {', '.join(column)}")
            counts[row, column[name]] = n
    return counts


def vote_shares(utterances: Sequence[Utterance], labels: Sequence[str]) -> np.ndarray:
    """:func:`vote_counts` divided by each utterance's number of votes (rows sum to 1); NaN rows for
    utterances without votes. Usable as a soft target (the annotators' label distribution)."""
    counts = vote_counts(utterances, labels).astype(np.float64)
    totals = counts.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, counts / np.where(totals > 0, totals, 1), np.nan)


def labelled_with_votes(corpus: Corpus, split: str | None = None) -> list[Utterance]:
    """The labelled utterances of ``split`` (None: every split) that carry votes."""
    return [u for u in corpus.utterances(split) if u.label is not None and u.votes]


def gold_indices(utterances: Iterable[Utterance], labels: Sequence[str]) -> np.ndarray:
    index = {label: i for i, label in enumerate(labels)}
    return np.array([index[u.label] for u in utterances], dtype=np.int64)


def class_confusion(shares: np.ndarray, gold: np.ndarray, n_labels: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean vote shares per gold class: ``(n_labels, shares.shape[1])`` (NaN rows for a class without
    utterances) and the number of utterances per class."""
    support = np.bincount(gold, minlength=n_labels)
    sums = np.zeros((n_labels, shares.shape[1]))
    np.add.at(sums, gold, shares)
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / support[:, None], support


def annotator_confusion(corpus: Corpus, split: str | None = "train") -> np.ndarray:
    """The annotators' own class confusion on ``split`` (None: every split).

    ``(len(labels), len(labels) + 1)``: row c is the mean, over the labelled utterances of gold label c that
    carry votes, of their vote shares (columns :func:`vote_columns`, OTHER last); each row sums to 1, a class
    without such utterances is a NaN row. The diagonal is how often the annotators agree with the gold
    label, an off-diagonal cell how much of a class's votes go to another label.
    """
    utterances = labelled_with_votes(corpus, split)
    shares = vote_shares(utterances, corpus.labels)
    return class_confusion(shares, gold_indices(utterances, corpus.labels), len(corpus.labels))[0]


def fleiss_kappa(counts: np.ndarray) -> float:
    """Fleiss' kappa over the rows of a vote-count matrix, for a varying number of votes per row (rows with
    fewer than two votes carry no agreement and are left out): observed pairwise agreement against the
    agreement expected from the vote marginals. NaN when undefined (no row with two votes, one category)."""
    counts = counts[counts.sum(axis=1) >= 2].astype(np.float64)
    if not len(counts):
        return float("nan")
    totals = counts.sum(axis=1)
    observed = float(np.mean((counts * (counts - 1)).sum(axis=1) / (totals * (totals - 1))))
    marginal = counts.sum(axis=0) / totals.sum()
    expected = float(np.sum(marginal ** 2))
    return float("nan") if expected >= 1 else (observed - expected) / (1 - expected)


@dataclass
class AgreementStats:
    """Agreement on one split, over its labelled utterances with votes (see :func:`agreement_stats`)."""

    split: str | None
    utterances: int  # labelled utterances with votes
    unanimous: float  # share whose votes all name one label (or all OTHER)
    unanimous_chance: float  # the same share expected if every vote were drawn from the split's vote marginals
    mean_votes: float  # votes per utterance
    mean_gold_votes: float  # votes for the gold label per utterance
    mean_gold_share: float  # share of an utterance's votes that name its gold label
    with_other_vote: float  # share with at least one vote not for the gold label
    kappa: float  # Fleiss' kappa (chance-corrected agreement; 0 = chance, 1 = perfect)
    columns: list[str]  # the confusion's columns: labels, then OTHER
    confusion: np.ndarray  # (labels, columns): mean vote shares per gold label (annotator_confusion)
    support: np.ndarray  # utterances per gold label


def agreement_stats(corpus: Corpus, split: str | None) -> AgreementStats | None:
    """Agreement statistics of ``split`` (None: every split); None when it has no labelled utterance with
    votes. The chance level of unanimity is the mean over utterances of sum_j p_j ** n_i (p: the split's
    share of votes per column, n_i: the utterance's votes): what independent votes would give."""
    utterances = labelled_with_votes(corpus, split)
    if not utterances:
        return None
    counts = vote_counts(utterances, corpus.labels)
    totals = counts.sum(axis=1)
    gold = gold_indices(utterances, corpus.labels)
    gold_votes = counts[np.arange(len(gold)), gold]
    marginal = counts.sum(axis=0) / totals.sum()
    confusion, support = class_confusion(counts / totals[:, None], gold, len(corpus.labels))
    return AgreementStats(
        split=split,
        utterances=len(utterances),
        unanimous=float(np.mean(counts.max(axis=1) == totals)),
        unanimous_chance=float(np.mean([np.sum(marginal ** n) for n in totals])),
        mean_votes=float(totals.mean()),
        mean_gold_votes=float(gold_votes.mean()),
        mean_gold_share=float(np.mean(gold_votes / totals)),
        with_other_vote=float(np.mean(gold_votes < totals)),
        kappa=fleiss_kappa(counts),
        columns=vote_columns(corpus.labels),
        confusion=confusion,
        support=support,
    )
