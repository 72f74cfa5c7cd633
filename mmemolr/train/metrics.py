"""Classification metrics of ERC papers: accuracy, weighted F1, macro F1, per-class F1, confusion."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import confusion_matrix, f1_score


def classification_metrics(gold: np.ndarray, pred: np.ndarray, labels: Sequence[str]) -> dict[str, Any]:
    """Fractions in [0, 1]; classes absent from gold and pred get F1 0 (sklearn zero_division=0).

    Rows with gold -1 (context-only utterances: no usable label) are not scored."""
    gold = np.asarray(gold, dtype=np.int64)
    pred = np.asarray(pred, dtype=np.int64)
    scored = gold >= 0
    gold, pred = gold[scored], pred[scored]
    if len(gold) == 0:
        raise ValueError("no labelled utterances to score")
    idx = list(range(len(labels)))
    per_class = f1_score(gold, pred, labels=idx, average=None, zero_division=0)
    support = np.bincount(gold, minlength=len(labels))
    return {
        "accuracy": float((gold == pred).mean()),
        "weighted_f1": float(f1_score(gold, pred, labels=idx, average="weighted", zero_division=0)),
        "macro_f1": float(f1_score(gold, pred, labels=idx, average="macro", zero_division=0)),
        "per_class_f1": {label: float(v) for label, v in zip(labels, per_class)},
        "confusion_matrix": confusion_matrix(gold, pred, labels=idx).tolist(),
        "support": {label: int(n) for label, n in zip(labels, support)},
    }


def summary(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: metrics[k] for k in ("accuracy", "weighted_f1", "macro_f1")}
