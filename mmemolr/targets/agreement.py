"""Agreement with people: how a model's distributions compare with the annotators' votes.

Where a corpus records every annotator's label (votes over the corpus labels; votes outside the label set
are left out here), three numbers per split and distribution:

  kl_votes      mean KL(v ‖ p) over the utterances with a vote, v their vote shares and p the predicted
                distribution (every target)
  voted_share   on the utterances with at least one non-gold vote: the share of the distribution's non-gold
                mass that falls on labels an annotator voted for (higher is better)
  tv            on the same utterances: the total-variation distance between the distribution's non-gold
                shape and the annotators' non-gold shape (lower is better)

The last two are computed for the refined target z of refining targets (``target``) and for the predicted
distribution p of every target (``predicted``), always beside three nulls computed the same way, each a
distribution that knows nothing of the utterance beyond its gold class:

  even          an even spread over the other labels (label smoothing's shape)
  class_mean    the distribution's own mean non-gold shape per gold class on this split (a constant offset
                per class: everything the distribution says about classes, nothing about utterances)
  annotators    the annotators' own mean non-gold shape per gold class, taken from the train split (the best
                a class-level refiner could know)

and a within-class shuffle of the distribution's shapes (``shuffle_null``, ``shuffle_p``): whether an
utterance's own shape matches its own votes better than another utterance's of the same class does. A
distribution *beats the nulls* when its voted share is above every null's, its TV below every null's, and
the shuffle p-value below mmemolr.targets.diagnostics.ALPHA; with at least ``MIN_UTTERANCES`` utterances
this decides the refinement verdict (mmemolr.targets.diagnostics.verdict).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mmemolr.targets.diagnostics import (
    ALPHA,
    PERMUTATIONS,
    class_means,
    nongold_shape,
    tv,
    within_class_permutations,
)

MIN_UTTERANCES = 30  # fewer utterances with a non-gold vote: too few to decide the verdict
NULLS = ("even", "class_mean", "annotators")


def _nongold_votes(votes: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """(N,) the number of votes each utterance got for labels other than its gold label."""
    off = np.asarray(votes, dtype=np.float64).copy()
    off[np.arange(len(gold)), gold] = 0.0
    return off.sum(1)


def annotator_class_shapes(votes: np.ndarray, gold: np.ndarray, n_classes: int) -> np.ndarray:
    """(C, C) the annotators' mean non-gold shape per gold class over the utterances with a non-gold vote
    (labelled rows only); NaN rows for classes without one."""
    votes, gold = np.asarray(votes, dtype=np.float64), np.asarray(gold, dtype=np.int64)
    keep = gold >= 0
    votes, gold = votes[keep], gold[keep]
    keep = _nongold_votes(votes, gold) > 0
    return class_means(nongold_shape(votes[keep], gold[keep]), gold[keep], n_classes)


def kl_from_votes(probs: np.ndarray, votes: np.ndarray, gold: np.ndarray) -> tuple[float | None, int]:
    """Mean KL(v ‖ p) over the labelled utterances with at least one vote on a label, and their number."""
    probs, votes = np.asarray(probs, dtype=np.float64), np.asarray(votes, dtype=np.float64)
    total = votes.sum(1)
    keep = (np.asarray(gold) >= 0) & (total > 0) & np.isfinite(probs).all(1)
    if not keep.any():
        return None, 0
    v = votes[keep] / total[keep, None]
    p = np.clip(probs[keep], 1e-12, None)
    kl = np.where(v > 0, v * (np.log(np.clip(v, 1e-300, None)) - np.log(p)), 0.0).sum(1)
    return float(kl.mean()), int(keep.sum())


def shape_agreement(dist: np.ndarray, gold: np.ndarray, votes: np.ndarray, annotators: np.ndarray,
                    seed: int = 0, permutations: int = PERMUTATIONS) -> dict[str, Any] | None:
    """voted_share and tv of ``dist`` (N, C) against ``votes`` (N, C) beside the nulls (module docstring).
    ``annotators``: annotator_class_shapes of the train split. None when no utterance has a non-gold vote."""
    dist = np.asarray(dist, dtype=np.float64)
    gold = np.asarray(gold, dtype=np.int64)
    votes = np.asarray(votes, dtype=np.float64)
    labelled = (gold >= 0) & np.isfinite(dist).all(1)
    dist, gold, votes = dist[labelled], gold[labelled], votes[labelled]
    n_classes = dist.shape[1]
    shape = nongold_shape(dist, gold)
    own_means = class_means(shape, gold, n_classes)  # over every labelled utterance of the split
    rows = _nongold_votes(votes, gold) > 0
    if not rows.any():
        return None
    shape, gold, votes, own = shape[rows], gold[rows], votes[rows], own_means[gold[rows]]
    people = nongold_shape(votes, gold)
    voted = votes > 0
    voted[np.arange(len(gold)), gold] = False
    even = nongold_shape(np.ones_like(shape), gold)
    annot = np.asarray(annotators, dtype=np.float64)[gold]
    annot = np.where(np.isfinite(annot).all(1, keepdims=True), annot, even)  # a class without train votes

    def share(s: np.ndarray) -> np.ndarray:
        return (s * voted).sum(1)

    candidates = {"model": shape, "even": even, "class_mean": own, "annotators": annot}
    voted_share = {name: float(share(s).mean()) for name, s in candidates.items()}
    distance = {name: float(tv(s, people).mean()) for name, s in candidates.items()}
    perms = within_class_permutations(gold, np.random.default_rng(seed), permutations)
    null = np.array([share(shape[perm]).mean() for perm in perms])
    p = float((1 + (null >= voted_share["model"]).sum()) / (1 + permutations))
    beats = (all(voted_share["model"] > voted_share[k] for k in NULLS)
             and all(distance["model"] < distance[k] for k in NULLS) and p < ALPHA)
    summary = (f"voted share {voted_share['model']:.3f} vs even {voted_share['even']:.3f}, class mean "
               f"{voted_share['class_mean']:.3f}, annotators {voted_share['annotators']:.3f}; TV {distance['model']:.3f} "
               f"vs {distance['even']:.3f}, {distance['class_mean']:.3f}, {distance['annotators']:.3f}; shuffle p {p:.3f}")
    return {"n": int(len(gold)), "voted_share": voted_share, "tv": distance, "shuffle_null": float(null.mean()),
            "shuffle_p": p, "beats_nulls": bool(beats), "decides": bool(len(gold) >= MIN_UTTERANCES),
            "summary": summary}


def agreement_with_votes(probs: np.ndarray, gold: np.ndarray, votes: np.ndarray, annotators: np.ndarray,
                         z: np.ndarray | None = None, seed: int = 0) -> dict[str, Any]:
    """The agreement of one split: KL(votes ‖ p), and the shape agreement of p and (refining targets) of z."""
    kl, n_votes = kl_from_votes(probs, votes, gold)
    return {
        "kl_votes": kl,
        "n_votes": n_votes,
        "predicted": shape_agreement(probs, gold, votes, annotators, seed),
        "target": shape_agreement(z, gold, votes, annotators, seed) if z is not None else None,
    }
