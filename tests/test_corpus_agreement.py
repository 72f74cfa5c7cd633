"""Annotator agreement: hand-computed examples, a textbook kappa, and chance levels on random votes."""

from __future__ import annotations

import numpy as np
import pytest
from test_corpus_emotionlines import write_friends

from mmemolr.corpus import Corpus, Dialogue, Utterance, load_corpus
from mmemolr.corpus.agreement import (
    agreement_stats,
    annotator_confusion,
    fleiss_kappa,
    vote_columns,
    vote_counts,
    vote_shares,
)


def _corpus(rows: list[tuple[str | None, dict | None]], labels=("a", "b", "c"), split="train") -> Corpus:
    utterances = [Utterance(f"u{i}", "d", i, "S", "", label, split, votes=votes)
                  for i, (label, votes) in enumerate(rows)]
    corpus = Corpus("toy", list(labels), [Dialogue("d", split, utterances)])
    corpus.validate()
    return corpus


def test_emotionlines_train_by_hand(tmp_path):
    """train: neutral 5/5, joy 3 (+neutral 1, surprise 1), surprise 5/5, anger 3 (+disgust 2); one non-neutral row."""
    corpus = load_corpus("emotionlines", write_friends(tmp_path))
    s = agreement_stats(corpus, "train")
    assert s.utterances == 4  # the context-only row is left out
    assert s.unanimous == 0.5 and s.with_other_vote == 0.5
    assert s.mean_votes == 5 and s.mean_gold_votes == 4 and s.mean_gold_share == pytest.approx(0.8)
    # pairwise agreement per row: 1, (0+6+0)/20, 1, (6+2)/20 -> 0.675; vote shares .3 .15 .3 .15 .1 -> 0.235
    assert s.kappa == pytest.approx((0.675 - 0.235) / (1 - 0.235))
    assert s.unanimous_chance == pytest.approx(2 * 0.3 ** 5 + 2 * 0.15 ** 5 + 0.1 ** 5)
    assert s.columns == ["neutral", "joy", "sadness", "fear", "anger", "surprise", "disgust", "other"]
    confusion = annotator_confusion(corpus, "train")
    np.testing.assert_allclose(confusion, s.confusion)
    np.testing.assert_allclose(confusion[1], [0.2, 0.6, 0, 0, 0, 0.2, 0, 0])  # joy
    np.testing.assert_allclose(confusion[4], [0, 0, 0, 0, 0.6, 0, 0.4, 0])  # anger
    assert np.isnan(confusion[2]).all() and list(s.support) == [1, 1, 0, 0, 1, 1, 0]
    assert agreement_stats(corpus, "test").unanimous == 0


def test_varying_votes_other_and_utterances_without_votes():
    corpus = _corpus([("a", {"a": 2, "b": 1}), ("a", {"a": 1, "other": 1}), ("b", {"b": 4}),
                      ("c", None), (None, {"c": 3})])
    counts = vote_counts(list(corpus.utterances()), corpus.labels)
    assert vote_columns(corpus.labels) == ["a", "b", "c", "other"]
    assert counts.tolist() == [[2, 1, 0, 0], [1, 0, 0, 1], [0, 4, 0, 0], [0, 0, 0, 0], [0, 0, 3, 0]]
    shares = vote_shares(list(corpus.utterances()), corpus.labels)
    np.testing.assert_allclose(shares[1], [0.5, 0, 0, 0.5])
    assert np.isnan(shares[3]).all()
    s = agreement_stats(corpus, "train")
    assert s.utterances == 3  # without votes (u3) and context-only (u4) left out
    assert s.unanimous == pytest.approx(1 / 3) and s.with_other_vote == pytest.approx(2 / 3)
    assert s.mean_votes == 3 and s.mean_gold_votes == pytest.approx(7 / 3)
    assert s.mean_gold_share == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    np.testing.assert_allclose(s.confusion[0], [(2 / 3 + 1 / 2) / 2, 1 / 6, 0, 1 / 4])
    np.testing.assert_allclose(s.confusion[1], [0, 1, 0, 0])
    assert np.isnan(s.confusion[2]).all()  # c: its only labelled utterance has no votes
    # votes 3, 2, 4 with shares a .3 b .5 other .2 (9 votes: a 3, b 5, other 1 -> /9)
    p = np.array([3, 5, 0, 1]) / 9
    assert s.unanimous_chance == pytest.approx(np.mean([np.sum(p ** n) for n in (3, 2, 4)]))
    assert agreement_stats(corpus, "dev") is None
    assert agreement_stats(_corpus([("a", None)]), "train") is None


def test_fleiss_kappa_textbook_example():
    """Fleiss (1971) as tabulated in most references: 10 subjects, 14 raters, 5 categories -> 0.210."""
    table = np.array([[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
                      [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]])
    assert fleiss_kappa(table) == pytest.approx(0.2099, abs=1e-4)
    assert fleiss_kappa(np.array([[5, 0], [0, 5]])) == 1
    assert np.isnan(fleiss_kappa(np.array([[1, 0], [0, 1]])))  # one vote each: no pair to agree
    assert np.isnan(fleiss_kappa(np.array([[5, 0], [5, 0]])))  # one category: chance agreement is 1


def test_random_votes_sit_at_their_chance_level():
    """Votes drawn independently of the gold label: kappa ~ 0 and unanimity ~ its chance level, while votes
    that follow the gold label agree far above both."""
    rng = np.random.default_rng(0)
    labels = ["a", "b", "c"]
    rows = []
    for _ in range(3000):
        votes = rng.choice(3, size=5, p=[0.6, 0.3, 0.1])
        rows.append((labels[rng.integers(3)], {labels[k]: int((votes == k).sum()) for k in set(votes.tolist())}))
    s = agreement_stats(_corpus(rows, labels), "train")
    assert abs(s.kappa) < 0.02
    assert s.unanimous == pytest.approx(s.unanimous_chance, abs=0.02)
    assert s.unanimous_chance == pytest.approx(0.6 ** 5 + 0.3 ** 5 + 0.1 ** 5, abs=0.01)
    # the confusion of random votes: every row close to the vote marginals
    np.testing.assert_allclose(s.confusion[:, :3], np.tile([0.6, 0.3, 0.1], (3, 1)), atol=0.03)
    faithful = []
    for _ in range(3000):
        gold = int(rng.integers(3))
        votes = np.where(rng.random(5) < 0.8, gold, rng.integers(3, size=5))
        faithful.append((labels[gold], {labels[k]: int((votes == k).sum()) for k in set(votes.tolist())}))
    f = agreement_stats(_corpus(faithful, labels), "train")
    assert f.kappa > 0.5 and f.unanimous > 5 * f.unanimous_chance
