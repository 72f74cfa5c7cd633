"""The refinement diagnostics tell refinement from smoothing and from noise on distributions with a known
answer; each statistic is judged against its chance level, so the noise targets a reviewer would try
never get the verdict ``refines``."""

from __future__ import annotations

import numpy as np
import pytest

from mmemolr.targets.agreement import agreement_with_votes, annotator_class_shapes, kl_from_votes
from mmemolr.targets.diagnostics import (
    distance_from_class_mean,
    nongold_shape,
    partner_share,
    refinement_diagnostics,
    seed_agreement,
)

LABELS = ["neutral", "joy", "anger", "sadness"]
SEVEN = ["neutral", "joy", "surprise", "anger", "sadness", "disgust", "fear"]
# MELD's dev split: utterances per class in SEVEN's order (1,109 in all).
MELD_DEV = [470, 163, 150, 153, 111, 22, 40]


def _z(gold: np.ndarray, other: np.ndarray, mass: float = 0.1, n_labels: int | None = None) -> np.ndarray:
    """(1 - mass) on gold, ``mass`` spread by the rows of ``other`` over the non-gold labels."""
    n_labels = n_labels or other.shape[1]
    z = np.zeros((len(gold), n_labels))
    z[np.arange(len(gold)), gold] = 1 - mass
    off = other.copy()
    off[np.arange(len(gold)), gold] = 0
    return z + mass * off / off.sum(1, keepdims=True)


def _gold(counts: list[int], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).permutation(np.repeat(np.arange(len(counts)), counts))


GOLD = np.array([0, 1, 2, 3] * 25)


def _linked(gold: np.ndarray, n_labels: int, seed: int = 0, class_weight: float = 2.5):
    """A target whose non-gold shape is a class-specific part plus a part that is a smooth function of
    the utterance's state (what refinement should give), and those states."""
    rng = np.random.default_rng(seed)
    states = rng.normal(size=(len(gold), 8))
    mixing = rng.normal(size=(8, n_labels))
    per_class = rng.dirichlet(np.ones(n_labels), size=n_labels) * 3
    logits = class_weight * per_class[gold] + states @ mixing * 0.6
    other = np.exp(logits)
    return _z(gold, other), states


def test_one_constant_offset_is_collapsed():
    offset = np.tile([0.0, 0.0, 1.0, 0.0], (len(GOLD), 1)) + 1e-3  # "anger" for everyone
    d = refinement_diagnostics(_z(GOLD, offset), GOLD, LABELS)
    assert d["verdict"] == "collapsed" and d["specificity"] < 0.01 and d["specificity_p"] > 0.5
    assert d["gold_mass"] == pytest.approx(0.9) and d["gold_mass_fixed"] and d["variation"] < 0.01
    # an offset on the most frequent class: still one offset, still collapsed
    gold = np.array([2] * 50 + [0, 1, 3] * 10)
    d = refinement_diagnostics(_z(gold, np.tile([0.0, 0.0, 1.0, 0.0], (len(gold), 1)) + 1e-3), gold, LABELS)
    assert d["verdict"] == "collapsed"


def test_an_even_spread_is_smoothing():
    d = refinement_diagnostics(_z(GOLD, np.ones((len(GOLD), 4))), GOLD, LABELS)
    assert d["verdict"] == "smoothing" and d["entropy"] == pytest.approx(1.0)


def test_a_fixed_class_specific_target_is_static_and_a_state_linked_one_refines():
    partner = {0: 1, 1: 0, 2: 3, 3: 2}
    fixed = np.full((len(GOLD), 4), 0.05)
    fixed[np.arange(len(GOLD)), [partner[g] for g in GOLD]] = 1.0
    d = refinement_diagnostics(_z(GOLD, fixed), GOLD, LABELS, states=np.random.default_rng(0).normal(size=(100, 4)))
    assert d["verdict"] == "static" and d["specificity"] > 0.3 and d["specificity_p"] < 0.01
    assert partner_share(d["confusion"], 2, 3) == pytest.approx(1.0 / 1.1, abs=1e-5)
    z, states = _linked(GOLD, 4)
    d = refinement_diagnostics(z, GOLD, LABELS, states=states)
    assert d["verdict"] == "refines", d["verdict_reason"]
    assert d["neighbours"]["distance"] < 0.7 * d["neighbours"]["null"] and d["neighbours"]["p"] < 0.01
    # without states or votes nothing confirms the per-utterance part
    assert refinement_diagnostics(z, GOLD, LABELS)["verdict"] == "unconfirmed"


def test_a_target_that_leaves_the_gold_label_is_drifted_unless_its_gold_mass_is_fixed():
    rng = np.random.default_rng(0)
    z = _z(GOLD, rng.uniform(size=(len(GOLD), 4)), mass=0.6)
    z[::2] = _z(GOLD[::2], rng.uniform(size=(50, 4)), mass=0.5)  # gold mass varies: 0.4 and 0.5
    d = refinement_diagnostics(z, GOLD, LABELS)
    assert not d["gold_mass_fixed"] and d["verdict"] == "drifted" and d["gold_mass"] == pytest.approx(0.45)


@pytest.mark.parametrize("counts", [MELD_DEV, [60, 20, 19, 19, 14, 2, 5]], ids=["meld-dev", "139-utterances"])
def test_random_offgold_shapes_are_not_refinement(counts):
    """A purely random off-gold shape (Dirichlet(0.1)), linked to neither class nor input, on MELD-dev-sized
    classes and on a 139-utterance split: sampling noise alone makes the class means differ, and the
    permutation null says by how much."""
    gold = _gold(counts)
    rng = np.random.default_rng(1)
    z = _z(gold, rng.dirichlet(np.full(7, 0.1), size=len(gold)) + 1e-12)
    states = rng.normal(size=(len(gold), 16))
    d = refinement_diagnostics(z, gold, SEVEN, states=states)
    assert d["verdict"] != "refines", d
    assert d["specificity_p"] > 0.01 and d["specificity"] < 2 * d["specificity_null"]
    votes = rng.multinomial(5, np.full(7, 1 / 7), size=len(gold)).astype(float)
    people = agreement_with_votes(z, gold, votes, annotator_class_shapes(votes, gold, 7), z=z)["target"]
    assert refinement_diagnostics(z, gold, SEVEN, people=people)["verdict"] != "refines"


def test_one_row_per_class_plus_jitter_is_not_refinement():
    """A fixed row per class plus 10 % random jitter: class-specific, and its per-utterance variation is
    noise: neighbours in state space share no more of it than random utterances of the class do."""
    gold = _gold(MELD_DEV)
    rng = np.random.default_rng(2)
    rows = rng.dirichlet(np.ones(7), size=7)
    other = rows[gold] * (1 + 0.1 * rng.uniform(-1, 1, size=(len(gold), 7)))
    z = _z(gold, other)
    d = refinement_diagnostics(z, gold, SEVEN, states=rng.normal(size=(len(gold), 16)))
    assert d["specificity_p"] < 0.01 and d["variation"] > 0.02  # class-specific and it varies ...
    assert d["verdict"] == "unconfirmed" and d["neighbours"]["p"] > 0.01  # ... but the variation is noise


def test_three_classes_have_a_class_specificity_and_noise_does_not_pass_it():
    labels = ["neg", "neu", "pos"]
    gold = _gold([200, 300, 150])
    rng = np.random.default_rng(3)
    noise = _z(gold, rng.dirichlet(np.full(3, 0.1), size=len(gold)) + 1e-12)
    d = refinement_diagnostics(noise, gold, labels, states=rng.normal(size=(len(gold), 8)))
    assert d["specificity"] is not None and d["verdict"] == "collapsed", d["verdict_reason"]
    # a cyclic preference (neg -> neu, neu -> pos, pos -> neg) is no shared offset
    cyclic = np.full((len(gold), 3), 0.1)
    cyclic[np.arange(len(gold)), (gold + 1) % 3] = 0.9
    z, states = _linked(gold, 3)
    both = 0.5 * _z(gold, cyclic) + 0.5 * z
    d = refinement_diagnostics(both, gold, labels, states=states)
    assert d["specificity_p"] < 0.01 and d["verdict"] == "refines", d["verdict_reason"]


def test_context_only_rows_are_left_out():
    z, states = _linked(GOLD, 4)
    gold = GOLD.copy()
    gold[:10] = -1
    z[10:20] = np.nan
    d = refinement_diagnostics(z, gold, LABELS, states=states)
    assert d["n"] == 80


def test_distance_from_class_mean_and_the_input_checks():
    gold = np.array([0, 0, 1])
    z = np.array([[0.8, 0.2, 0.0], [0.8, 0.0, 0.2], [0.1, 0.8, 0.1]])
    assert nongold_shape(z, gold)[0].tolist() == [0.0, 1.0, 0.0]
    assert distance_from_class_mean(z, gold) == pytest.approx([0.5, 0.5, 0.0])
    with pytest.raises(ValueError, match="three labels"):
        refinement_diagnostics(z[:, :2], gold, ["a", "b"])


def test_seed_agreement_tells_recurring_structure_from_noise():
    gold = _gold([120, 80, 60, 40])
    z1, states = _linked(gold, 4, seed=5)
    rng = np.random.default_rng(6)
    # a second seed: the same state-linked structure, its own noise
    z2 = _z(gold, nongold_shape(z1, gold) + 0.02 * rng.uniform(size=z1.shape))
    real = seed_agreement([z1, z2], gold)
    assert real["r"] > 0.8 and real["p"] < 0.01 and abs(real["null"]) < 0.05
    noise = [_z(gold, rng.dirichlet(np.full(4, 0.3), size=len(gold))) for _ in range(3)]
    chance = seed_agreement(noise, gold)
    assert chance["p"] > 0.01 and abs(chance["r"] - chance["null"]) < 4 * chance["null_sd"] + 0.02
    assert seed_agreement([z1], gold) is None


def test_agreement_with_votes_known_answers():
    gold = np.array([0, 0, 1, 1])
    votes = np.array([[4, 1, 0], [3, 0, 2], [0, 5, 0], [1, 4, 0]], dtype=float)
    probs = np.array([[0.8, 0.15, 0.05], [0.6, 0.1, 0.3], [0.1, 0.8, 0.1], [0.3, 0.6, 0.1]])
    kl, n = kl_from_votes(probs, votes, gold)
    expected = np.mean([0.8 * np.log(0.8 / 0.8) + 0.2 * np.log(0.2 / 0.15),
                        0.6 * np.log(0.6 / 0.6) + 0.4 * np.log(0.4 / 0.3),
                        np.log(1 / 0.8), 0.2 * np.log(0.2 / 0.3) + 0.8 * np.log(0.8 / 0.6)])
    assert n == 4 and kl == pytest.approx(expected)
    annotators = annotator_class_shapes(votes, gold, 3)
    # class 0: shapes (0, 1, 0) and (0, 0, 1); class 1: only utterance 3 has a non-gold vote
    np.testing.assert_allclose(annotators, [[0.0, 0.5, 0.5], [1.0, 0.0, 0.0], [np.nan] * 3])
    a = agreement_with_votes(probs, gold, votes, annotators, z=probs, seed=0)
    target = a["target"]
    # utterances 0, 1, 3 have a non-gold vote; the model's non-gold mass on voted labels: 0.75, 0.75, 0.75
    assert target["n"] == 3 and target["voted_share"]["model"] == pytest.approx(0.75)
    assert target["voted_share"]["even"] == pytest.approx(0.5)
    assert not target["decides"]  # three utterances are too few to decide a verdict


def test_agreement_with_votes_rewards_per_utterance_structure_and_not_class_constants():
    """Votes drawn from each utterance's own secondary emotion: a target that knows it beats every null; the
    run's own class means (a constant per class) and the annotators' class means cannot."""
    rng = np.random.default_rng(7)
    gold = _gold([100, 100, 100, 100, 100])
    secondary = (gold + rng.integers(1, 5, size=len(gold))) % 5
    votes = np.zeros((len(gold), 5))
    votes[np.arange(len(gold)), gold] = 3
    votes[np.arange(len(gold)), secondary] += 2
    knows = np.full((len(gold), 5), 0.02)
    knows[np.arange(len(gold)), secondary] = 1.0
    z = _z(gold, knows, n_labels=5)
    annotators = annotator_class_shapes(votes, gold, 5)
    target = agreement_with_votes(z, gold, votes, annotators, z=z)["target"]
    assert target["beats_nulls"] and target["decides"] and target["shuffle_p"] < 0.01
    assert target["voted_share"]["model"] > 0.9 > 0.3 > target["voted_share"]["annotators"]
    constant = _z(gold, np.tile(nongold_shape(z, gold).mean(0), (len(gold), 1)) + 1e-9, n_labels=5)
    assert not agreement_with_votes(constant, gold, votes, annotators, z=constant)["target"]["beats_nulls"]
