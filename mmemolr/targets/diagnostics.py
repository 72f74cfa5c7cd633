"""Does a refining target refine, or only smooth? Statistics of the target distributions z of a split.

For N utterances with target z (N, C) and gold labels, the *non-gold shape* of an utterance is z with the
gold entry removed, renormalised: how the mass that is not on the gold label is shared among the others.

  gold_mass       mean z[gold]
  confusion       C x C: row g = the mean z over utterances of gold class g (the learned label confusions)
  mode_share      share of utterances whose strongest other label is the single most common one
                  (1.0 = the same secondary label for every utterance: one constant offset)
  variation       mean total-variation distance of an utterance's non-gold shape from the mean shape of its
                  gold class (0 = every utterance of a class gets the same target: nothing per utterance)
  entropy         mean entropy of the non-gold shape / log(C - 1) (1 = spread evenly = label smoothing)
  specificity     how much the classes' mean non-gold shapes differ: mean over pairs of classes (g, h) of
                  the total-variation distance between their mean shapes on the labels other than g and h
                  (0 = one offset vector shared by every class, whatever it is; needs C >= 4)
  verdict         drifted    gold_mass < 0.5 (the target no longer favours the gold label)
                  smoothing  entropy >= 0.95 (nearly even: label smoothing)
                  collapsed  specificity < 0.1 (one constant offset for every class)
                  static     variation < 0.02 (a fixed target per class, nothing per utterance)
                  refines    otherwise: class-specific and per-utterance shapes

mode_share alone does not detect a constant offset: when the offset's label is a frequent gold class,
the utterances of that class put their mass elsewhere and the share drops (an offset on a class holding
half the utterances gives about 0.5), hence ``specificity``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

DRIFTED_GOLD_MASS = 0.5
SMOOTHING_ENTROPY = 0.95
COLLAPSED_SPECIFICITY = 0.1
STATIC_VARIATION = 0.02


def nongold_shape(z: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """(N, C): z with the gold entry zeroed, rows renormalised (even over the others when all are 0)."""
    n, c = z.shape
    off = np.asarray(z, dtype=np.float64).copy()
    off[np.arange(n), gold] = 0.0
    total = off.sum(1, keepdims=True)
    even = np.full_like(off, 1.0 / max(1, c - 1))
    even[np.arange(n), gold] = 0.0
    return np.where(total > 1e-12, off / np.maximum(total, 1e-300), even)


def distance_from_class_mean(z: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """(N,) total-variation distance of each utterance's non-gold shape from its gold class's mean shape."""
    shape = nongold_shape(z, gold)
    out = np.zeros(len(z))
    for g in np.unique(gold):
        rows = gold == g
        out[rows] = 0.5 * np.abs(shape[rows] - shape[rows].mean(0)).sum(1)
    return out


def class_specificity(shape: np.ndarray, gold: np.ndarray) -> float | None:
    """Mean TV distance between the mean non-gold shapes of two classes, on the labels neither is."""
    c = shape.shape[1]
    present = [g for g in range(c) if (gold == g).any()]
    if c < 4 or len(present) < 2:
        return None
    means = {g: shape[gold == g].mean(0) for g in present}
    distances = []
    for i, g in enumerate(present):
        for h in present[i + 1:]:
            keep = np.ones(c, dtype=bool)
            keep[[g, h]] = False
            a, b = means[g][keep], means[h][keep]
            if a.sum() > 0 and b.sum() > 0:
                distances.append(0.5 * np.abs(a / a.sum() - b / b.sum()).sum())
    return float(np.mean(distances)) if distances else None


def refinement_diagnostics(z: np.ndarray, gold: np.ndarray, labels: Sequence[str]) -> dict[str, Any]:
    """The statistics above for one split; ``confusion`` rows of absent classes are null."""
    z = np.asarray(z, dtype=np.float64)
    gold = np.asarray(gold, dtype=np.int64)
    n, c = z.shape
    if n == 0 or c < 3:
        raise ValueError("refinement diagnostics need at least one utterance and three labels")
    shape = nongold_shape(z, gold)
    top = shape.argmax(1)
    counts = np.bincount(top, minlength=c)
    mode = int(counts.argmax())
    entropy = -(shape * np.log(np.clip(shape, 1e-300, None))).sum(1) / np.log(c - 1)
    confusion = [z[gold == g].mean(0).round(6).tolist() if (gold == g).any() else None for g in range(c)]
    result = {
        "n": int(n),
        "gold_mass": float(z[np.arange(n), gold].mean()),
        "mode_label": labels[mode],
        "mode_share": float(counts[mode] / n),
        "variation": float(distance_from_class_mean(z, gold).mean()),
        "entropy": float(entropy.mean()),
        "specificity": class_specificity(shape, gold),
        "confusion": confusion,
        "labels": list(labels),
    }
    result["verdict"] = verdict(result)
    return result


def verdict(d: dict[str, Any]) -> str:
    if d["gold_mass"] < DRIFTED_GOLD_MASS:
        return "drifted"
    if d["entropy"] >= SMOOTHING_ENTROPY:
        return "smoothing"
    if d.get("specificity") is not None and d["specificity"] < COLLAPSED_SPECIFICITY:
        return "collapsed"
    if d["variation"] < STATIC_VARIATION:
        return "static"
    return "refines"


def partner_share(confusion: Sequence[Sequence[float] | None], gold: int, partner: int) -> float:
    """Of the mean non-gold mass of class ``gold``, the share that goes to ``partner``."""
    row = confusion[gold]
    if row is None:
        raise ValueError(f"class {gold} has no utterances")
    rest = 1.0 - row[gold]
    return float(row[partner] / rest) if rest > 0 else 0.0
