"""The refinement diagnostics tell refinement from smoothing on distributions with a known answer."""

from __future__ import annotations

import numpy as np
import pytest

from mmemolr.targets.diagnostics import (
    distance_from_class_mean,
    nongold_shape,
    partner_share,
    refinement_diagnostics,
)

LABELS = ["neutral", "joy", "anger", "sadness"]


def _z(gold: np.ndarray, other: np.ndarray, mass: float = 0.1) -> np.ndarray:
    """(1 - mass) on gold, ``mass`` spread by the rows of ``other`` over the non-gold labels."""
    z = np.zeros((len(gold), len(LABELS)))
    z[np.arange(len(gold)), gold] = 1 - mass
    off = other.copy()
    off[np.arange(len(gold)), gold] = 0
    return z + mass * off / off.sum(1, keepdims=True)


GOLD = np.array([0, 1, 2, 3] * 25)


def test_one_constant_offset_is_collapsed():
    offset = np.tile([0.0, 0.0, 1.0, 0.0], (len(GOLD), 1)) + 1e-3  # "anger" for everyone
    d = refinement_diagnostics(_z(GOLD, offset), GOLD, LABELS)
    assert d["verdict"] == "collapsed" and d["mode_label"] == "anger" and d["mode_share"] == pytest.approx(0.75)
    assert d["gold_mass"] == pytest.approx(0.9) and d["variation"] < 0.01 and d["specificity"] < 0.01
    # an offset on the most frequent class: mode share is low, the class specificity still catches it
    gold = np.array([0] * 60 + [1, 2, 3] * 14)
    offset = np.tile([1.0, 0.2, 0.1, 0.05], (len(gold), 1))
    d = refinement_diagnostics(_z(gold, offset), gold, LABELS)
    assert d["mode_share"] < 0.6 and d["verdict"] == "collapsed"


def test_even_non_gold_mass_is_smoothing():
    d = refinement_diagnostics(_z(GOLD, np.ones((len(GOLD), 4))), GOLD, LABELS)
    assert d["verdict"] == "smoothing" and d["entropy"] == pytest.approx(1.0)
    assert d["confusion"][1] == pytest.approx([0.1 / 3, 0.9, 0.1 / 3, 0.1 / 3], abs=1e-6)


def test_a_fixed_shape_per_class_is_static_and_per_utterance_shapes_refine():
    partner = np.array([1, 0, 3, 2])  # neutral<->joy, anger<->sadness
    fixed = np.eye(4)[partner[GOLD]] * 0.9 + 0.05
    d = refinement_diagnostics(_z(GOLD, fixed), GOLD, LABELS)
    assert d["verdict"] == "static" and d["mode_share"] == pytest.approx(0.25)
    assert d["specificity"] > 0.5
    assert partner_share(d["confusion"], 2, 3) == pytest.approx(0.95 / 1.05, abs=1e-5)
    rng = np.random.default_rng(0)
    varied = fixed + rng.uniform(0, 0.8, size=fixed.shape)
    d = refinement_diagnostics(_z(GOLD, varied), GOLD, LABELS)
    assert d["verdict"] == "refines" and d["variation"] > 0.05
    assert all(partner_share(d["confusion"], g, partner[g]) > 0.4 for g in range(4))


def test_a_target_that_left_the_gold_label_is_drifted():
    rng = np.random.default_rng(1)
    d = refinement_diagnostics(_z(GOLD, rng.uniform(size=(len(GOLD), 4)), mass=0.6), GOLD, LABELS)
    assert d["verdict"] == "drifted" and d["gold_mass"] == pytest.approx(0.4)


def test_shapes_and_distances():
    z = np.array([[0.8, 0.2, 0.0], [0.8, 0.0, 0.2], [1.0, 0.0, 0.0]])
    gold = np.array([0, 0, 0])
    assert nongold_shape(z, gold).tolist() == [[0, 1, 0], [0, 0, 1], [0, 0.5, 0.5]]  # even when all are 0
    assert distance_from_class_mean(z, gold) == pytest.approx([0.5, 0.5, 0.0])
    with pytest.raises(ValueError, match="at least one utterance and three labels"):
        refinement_diagnostics(z[:, :2], gold, ["a", "b"])
