"""Mean +- std over seeds and paired t-tests between two settings trained with the same seeds."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from scipy import stats


def summarize(values: Mapping[int, float]) -> dict:
    """Mean and sample standard deviation (ddof=1; None with one seed) of per-seed values."""
    seeds = sorted(values)
    x = np.array([values[s] for s in seeds], dtype=np.float64)
    return {
        "n": len(x),
        "mean": float(x.mean()) if len(x) else None,
        "std": float(x.std(ddof=1)) if len(x) > 1 else None,
        "seeds": seeds,
        "values": [float(v) for v in x],
    }


def paired_test(a: Mapping[int, float], b: Mapping[int, float]) -> dict:
    """a - b over the seeds both have: mean difference, its std, and the paired t-test (scipy ttest_rel).

    ``p`` is None with fewer than two pairs or when every difference is the same (t is undefined).
    """
    seeds = sorted(set(a) & set(b))
    x = np.array([a[s] for s in seeds], dtype=np.float64)
    y = np.array([b[s] for s in seeds], dtype=np.float64)
    d = x - y
    out = {
        "n_pairs": len(seeds),
        "seeds": seeds,
        "diff_mean": float(d.mean()) if len(d) else None,
        "diff_std": float(d.std(ddof=1)) if len(d) > 1 else None,
        "t": None,
        "p": None,
    }
    if len(d) >= 2 and not np.allclose(d, d[0]):
        result = stats.ttest_rel(x, y)
        if math.isfinite(result.statistic) and math.isfinite(result.pvalue):
            out["t"], out["p"] = float(result.statistic), float(result.pvalue)
    return out
