"""Does a refining target refine, or only smooth, or only add noise? Statistics of the target
distributions z of a split, each beside its chance level.

For N labelled utterances with target z (N, C), the *non-gold shape* of an utterance is z with the gold
entry removed, renormalised: how the mass that is not on the gold label is shared among the others.

  gold_mass      mean z[gold]; ``gold_mass_fixed`` when it is the same for every utterance (combine=mix fixes
                 it at 1 − ε + ε/C by construction: then it says nothing about the refiner)
  entropy        mean entropy of the non-gold shape / log(C − 1); its reference is 1, an even spread
                 (label smoothing)
  specificity    how far the classes' mean non-gold shapes are from one shared offset: the mean total-variation
                 distance between each class's mean shape and the best fit of the model "every class shares
                 one offset vector o, renormalised off its own label" (quasi-independence, fitted by iterative
                 proportional fitting; defined for C ≥ 3). Chance level: the same statistic with the gold
                 classes permuted among the utterances (``specificity_null``, ``specificity_p``), which is what
                 sampling noise alone gives on classes of these sizes.
  variation      mean total-variation distance of an utterance's non-gold shape from its class's mean shape
                 (0 = one target per class, nothing per utterance)
  neighbours     per-utterance structure, from the model's own states (``states``: one vector per utterance):
                 the mean TV distance between an utterance's shape and that of its nearest neighbour of the
                 same gold class, against the same with the shapes shuffled within each gold class (``null``,
                 ``p``). A shape that belongs to the utterance resembles its neighbours'; random jitter does not.
  people         where the corpus has annotator votes: the agreement of z with the annotators
                 (mmemolr.targets.agreement.shape_agreement), which then decides the verdict
  confusion      C x C: row g = the mean z over utterances of gold class g (the learned label confusions)

  verdict        drifted      gold mass not fixed and below 0.5 (the target no longer favours the gold label)
                 smoothing    entropy >= 0.95 (nearly even: label smoothing)
                 collapsed    class specificity not above its permutation null (p >= ALPHA): one offset for
                              every class, or no class structure at all
                 static       variation < 0.02 (a fixed target per class, nothing per utterance)
                 unconfirmed  per-utterance shapes vary, but the variation does not beat its chance level:
                              with votes, the shapes are no closer to the annotators' than the nulls of
                              mmemolr.targets.agreement; without, no closer to the shapes of neighbouring
                              utterances than to random ones of the class (or no states were given)
                 refines      class-specific and per-utterance structure, each beyond chance

Across the seeds of a sweep, :func:`seed_agreement` asks whether each utterance's deviation from its class
mean recurs from seed to seed (real structure does; noise does not), against the same within-class shuffle.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from mmemolr.corpus.agreement import class_confusion

DRIFTED_GOLD_MASS = 0.5
SMOOTHING_ENTROPY = 0.95
STATIC_VARIATION = 0.02
ALPHA = 0.01  # a statistic beats its chance level when the permutation p-value is below this
PERMUTATIONS = 500
VERDICTS = ("drifted", "smoothing", "collapsed", "static", "unconfirmed", "refines")


def nongold_shape(z: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """(N, C): z with the gold entry zeroed, rows renormalised (even over the others when all are 0)."""
    n, c = z.shape
    off = np.asarray(z, dtype=np.float64).copy()
    off[np.arange(n), gold] = 0.0
    total = off.sum(1, keepdims=True)
    even = np.full_like(off, 1.0 / max(1, c - 1))
    even[np.arange(n), gold] = 0.0
    return np.where(total > 1e-12, off / np.maximum(total, 1e-300), even)


def tv(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Total-variation distance between the rows of ``a`` and ``b`` (last axis)."""
    return 0.5 * np.abs(a - b).sum(-1)


def class_means(shape: np.ndarray, gold: np.ndarray, n_classes: int) -> np.ndarray:
    """(C, C) mean shape per gold class; NaN rows for absent classes."""
    return class_confusion(shape, gold, n_classes)[0]


def distance_from_class_mean(z: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """(N,) total-variation distance of each utterance's non-gold shape from its gold class's mean shape."""
    shape = nongold_shape(z, gold)
    return tv(shape, class_means(shape, gold, z.shape[1])[gold])


def _shared_offset_distance(means: np.ndarray, present: np.ndarray, iterations: int = 200) -> np.ndarray:
    """For stacked tables ``means`` (P, K, C) of K present classes' mean non-gold shapes (the class's own
    label, ``present[k]``, is a structural zero), the mean TV distance of each row from the quasi-independence
    fit a_k·o_j (one offset o shared by all classes), per table (P,)."""
    p, k, c = means.shape
    allowed = np.ones((k, c))
    allowed[np.arange(k), present] = 0.0
    t = means * allowed
    t = t / np.maximum(t.sum(-1, keepdims=True), 1e-300)
    rows, cols = t.sum(-1), t.sum(-2)  # (P, K) = 1, (P, C)
    fit = np.broadcast_to(allowed, t.shape).copy()
    for _ in range(iterations):
        fit *= (rows / np.maximum(fit.sum(-1), 1e-300))[..., None]
        fit *= (cols / np.maximum(fit.sum(-2), 1e-300))[:, None, :]
    fit = fit / np.maximum(fit.sum(-1, keepdims=True), 1e-300)
    return tv(t, fit).mean(-1)


def _specificity(shape: np.ndarray, gold: np.ndarray, n_classes: int, rng: np.random.Generator,
                 permutations: int) -> tuple[float | None, float | None, float | None]:
    """Class specificity, the mean of its permutation null and the permutation p-value."""
    present = np.unique(gold)
    if len(present) < 3 or n_classes < 3:
        return None, None, None
    golds = np.stack([gold] + [rng.permutation(gold) for _ in range(permutations)])  # (1 + P, N)
    onehot = (golds[..., None] == present).astype(np.float64)  # (1 + P, N, K)
    sums = np.einsum("pnk,nc->pkc", onehot, shape)
    means = sums / onehot.sum(1)[..., None]
    stats = _shared_offset_distance(means, present)
    observed, null = float(stats[0]), stats[1:]
    return observed, float(null.mean()), float((1 + (null >= observed).sum()) / (1 + permutations))


def within_class_permutations(gold: np.ndarray, rng: np.random.Generator, permutations: int) -> np.ndarray:
    """(P, N) index arrays, each a random permutation of the utterances within each gold class."""
    out = np.tile(np.arange(len(gold)), (permutations, 1))
    for g in np.unique(gold):
        rows = np.flatnonzero(gold == g)
        out[:, rows] = rows[np.argsort(rng.random((permutations, len(rows))), axis=1)]
    return out


def nearest_same_class(states: np.ndarray, gold: np.ndarray) -> np.ndarray:
    """(N,) for each utterance, its nearest other utterance of the same gold class (standardised Euclidean
    distance over ``states``); itself when it is alone in its class."""
    x = np.asarray(states, dtype=np.float64)
    x = (x - x.mean(0)) / np.maximum(x.std(0), 1e-12)
    out = np.arange(len(x))
    for g in np.unique(gold):
        rows = np.flatnonzero(gold == g)
        if len(rows) < 2:
            continue
        xs = x[rows]
        sq = (xs * xs).sum(1)
        dist = sq[:, None] + sq[None, :] - 2.0 * xs @ xs.T
        np.fill_diagonal(dist, np.inf)
        out[rows] = rows[dist.argmin(1)]
    return out


def neighbour_test(shape: np.ndarray, gold: np.ndarray, states: np.ndarray, rng: np.random.Generator,
                   permutations: int) -> dict[str, float]:
    """Mean TV between an utterance's shape and its nearest same-class neighbour's, against the same with
    the shapes shuffled within each gold class (a random utterance of the class in place of the neighbour)."""
    nearest = nearest_same_class(states, gold)
    observed = float(tv(shape, shape[nearest]).mean())
    perms = within_class_permutations(gold, rng, permutations)
    null = np.array([tv(shape, shape[perm[nearest]]).mean() for perm in perms])
    return {"distance": observed, "null": float(null.mean()),
            "p": float((1 + (null <= observed).sum()) / (1 + permutations))}


def refinement_diagnostics(z: np.ndarray, gold: np.ndarray, labels: Sequence[str], states: np.ndarray | None = None,
                           people: dict[str, Any] | None = None, seed: int = 0,
                           permutations: int = PERMUTATIONS) -> dict[str, Any]:
    """The statistics above for one split. Rows with gold -1 or a NaN z (context-only utterances) are left
    out. ``states`` (N, D): the model's per-utterance states, for the neighbour test; ``people``: the
    agreement of these targets with the annotators (mmemolr.targets.agreement.shape_agreement), when the
    corpus has votes. ``confusion`` rows of absent classes are null."""
    z = np.asarray(z, dtype=np.float64)
    gold = np.asarray(gold, dtype=np.int64)
    keep = (gold >= 0) & np.isfinite(z).all(1)
    z, gold = z[keep], gold[keep]
    states = np.asarray(states)[keep] if states is not None else None
    n, c = z.shape
    if n == 0 or c < 3:
        raise ValueError("refinement diagnostics need at least one labelled utterance and three labels")
    rng = np.random.default_rng(seed)
    shape = nongold_shape(z, gold)
    gold_mass = z[np.arange(n), gold]
    entropy = -(shape * np.log(np.clip(shape, 1e-300, None))).sum(1) / np.log(c - 1)
    specificity, specificity_null, specificity_p = _specificity(shape, gold, c, rng, permutations)
    result: dict[str, Any] = {
        "n": int(n),
        "gold_mass": float(gold_mass.mean()),
        "gold_mass_fixed": bool(np.ptp(gold_mass) < 1e-6),
        "entropy": float(entropy.mean()),
        "specificity": specificity,
        "specificity_null": specificity_null,
        "specificity_p": specificity_p,
        "variation": float(tv(shape, class_means(shape, gold, c)[gold]).mean()),
        "neighbours": neighbour_test(shape, gold, states, rng, permutations) if states is not None else None,
        "people": people,
        "confusion": [z[gold == g].mean(0).round(6).tolist() if (gold == g).any() else None for g in range(c)],
        "labels": list(labels),
    }
    result["verdict"], result["verdict_reason"] = verdict(result)
    return result


# Per-epoch columns of metrics.csv (valid_refine_<name>): the dev split's diagnostics after each epoch (the
# neighbour test needs the model's states and is left to the final evaluation). The chance level of class
# specificity from 100 permutations instead of 500: on MELD dev the diagnostics then cost 1.4% of an epoch
# instead of 6.8% (benchmarks/bench_epoch_diagnostics.py).
EPOCH_DIAGNOSTICS = ("gold_mass", "specificity", "specificity_null", "variation", "entropy")
EPOCH_PERMUTATIONS = 100


def epoch_diagnostics(z: np.ndarray | None, gold: np.ndarray, labels: Sequence[str]) -> dict[str, float | None]:
    """The metrics.csv columns ``valid_refine_<name>`` of one epoch (the dev split's target distributions
    ``z``); empty when the target does not refine (``z`` None)."""
    if z is None:
        return {}
    d = refinement_diagnostics(z, gold, labels, permutations=EPOCH_PERMUTATIONS)
    return {f"valid_refine_{key}": d[key] for key in EPOCH_DIAGNOSTICS}


def verdict(d: dict[str, Any]) -> tuple[str, str]:
    """(verdict, the check that decided it)."""
    if not d.get("gold_mass_fixed") and d["gold_mass"] < DRIFTED_GOLD_MASS:
        return "drifted", f"mean z[gold] {d['gold_mass']:.3f} < {DRIFTED_GOLD_MASS}"
    if d["entropy"] >= SMOOTHING_ENTROPY:
        return "smoothing", f"non-gold entropy {d['entropy']:.3f} >= {SMOOTHING_ENTROPY} (1 = even)"
    if d.get("specificity") is None:
        return "collapsed", "fewer than three classes present: class structure cannot be told from an offset"
    if d["specificity_p"] >= ALPHA:
        return "collapsed", (f"class specificity {d['specificity']:.3f} is within its permutation null "
                             f"({d['specificity_null']:.3f}, p {d['specificity_p']:.3f})")
    if d["variation"] < STATIC_VARIATION:
        return "static", f"variation {d['variation']:.3f} < {STATIC_VARIATION}"
    people = d.get("people")
    if people is not None and people.get("decides"):
        if people["beats_nulls"]:
            return "refines", "closer to the annotators' votes than every null (" + people["summary"] + ")"
        return "unconfirmed", "not closer to the annotators' votes than the nulls (" + people["summary"] + ")"
    nb = d.get("neighbours")
    if nb is None:
        return "unconfirmed", "no per-utterance check was possible (no states, no votes)"
    if nb["p"] >= ALPHA:
        return "unconfirmed", (f"neighbours' shapes are no closer than random ones of the class "
                               f"(TV {nb['distance']:.3f} vs {nb['null']:.3f}, p {nb['p']:.3f})")
    return "refines", (f"class specificity {d['specificity']:.3f} vs null {d['specificity_null']:.3f}; neighbours "
                       f"TV {nb['distance']:.3f} vs {nb['null']:.3f} (p {nb['p']:.3f})")


def seed_agreement(shapes: Sequence[np.ndarray], gold: np.ndarray, seed: int = 0,
                   permutations: int = 200) -> dict[str, float] | None:
    """Do the seeds agree on each utterance's deviation from its class mean? ``shapes``: per seed the (N, C)
    targets z of the same utterances (gold -1 or NaN rows are left out). The statistic is the mean over
    pairs of seeds of the Pearson correlation of the deviations (non-gold entries); the null shuffles the
    second seed's deviations within each gold class. None with fewer than two seeds."""
    if len(shapes) < 2:
        return None
    gold = np.asarray(gold, dtype=np.int64)
    keep = (gold >= 0) & np.all([np.isfinite(z).all(1) for z in shapes], axis=0)
    gold = gold[keep]
    n_classes = shapes[0].shape[1]
    off = np.ones((len(gold), n_classes), dtype=bool)
    off[np.arange(len(gold)), gold] = False
    deviations = []
    for z in shapes:
        shape = nongold_shape(np.asarray(z, dtype=np.float64)[keep], gold)
        deviations.append(shape - class_means(shape, gold, n_classes)[gold])
    rng = np.random.default_rng(seed)
    perms = within_class_permutations(gold, rng, permutations)
    rows, cols = np.nonzero(off)  # the entries off the gold label, in the order of ``[off]``
    observed, null = [], []
    for i in range(len(deviations)):
        for j in range(i + 1, len(deviations)):
            a, b = deviations[i][off], deviations[j][off]
            a, b_mean = a - a.mean(), b.mean()
            denom = np.sqrt((a * a).sum() * ((b - b_mean) ** 2).sum())
            if denom == 0:
                observed.append(0.0)
                null.append(np.zeros(permutations))
                continue
            observed.append(float((b - b_mean) @ a / denom))
            # Shuffled within class, row k takes row perm[k]: the gold label is the same, so the entries off
            # the gold label are the same values in another order (same mean and norm): one product for all.
            shuffled = deviations[j][perms[:, rows], cols] - b_mean  # (P, entries)
            null.append(shuffled @ a / denom)
    obs, null_mean = float(np.mean(observed)), np.mean(null, axis=0)
    return {"r": obs, "null": float(null_mean.mean()), "null_sd": float(null_mean.std()),
            "p": float((1 + (null_mean >= obs).sum()) / (1 + permutations)), "seeds": len(shapes)}


def partner_share(confusion: Sequence[Sequence[float] | None], gold: int, partner: int) -> float:
    """Of the mean non-gold mass of class ``gold``, the share that goes to ``partner``."""
    row = confusion[gold]
    if row is None:
        raise ValueError(f"class {gold} has no utterances")
    rest = 1.0 - row[gold]
    return float(row[partner] / rest) if rest > 0 else 0.0
