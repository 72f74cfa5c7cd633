"""Read what figures need from run folders: results, test predictions and emotion states."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmemolr.compare.aggregate import read_results


@dataclass
class RunData:
    """One complete run folder."""

    path: Path
    results: dict[str, Any]
    title: str = ""

    @property
    def labels(self) -> list[str]:
        return list(self.results["labels"])

    @property
    def target(self) -> dict[str, Any]:
        return dict(self.results.get("config", {}).get("target", {}))

    @property
    def modalities(self) -> list[str]:
        return list(self.results.get("config", {}).get("modalities", []))

    @property
    def seed(self) -> int:
        return int(self.results.get("seed", self.results.get("config", {}).get("seed", 0)))

    def verdict(self) -> str | None:
        """The refinement verdict on the test split (collapsed / smoothing / static / refines), if any."""
        return ((self.results.get("refinement") or {}).get("test") or {}).get("verdict")

    def states(self) -> dict[str, np.ndarray] | None:
        """test_states.npz: ids, labels, preds, emotion_states; None when the run has none."""
        path = self.path / "test_states.npz"
        if not path.exists():
            return None
        with np.load(path, allow_pickle=False) as data:
            return {key: data[key] for key in ("ids", "labels", "preds", "emotion_states")}

    def history(self) -> list[dict[str, Any]]:
        """metrics.json: one row per epoch (train and dev loss, dev metrics, diagnostics)."""
        from mmemolr.train.rundir import read_history

        return read_history(self.path)

    def predictions(self) -> list[dict[str, str]] | None:
        path = self.path / "predictions.csv"
        if not path.exists():
            return None
        with open(path, newline="", encoding="utf-8") as fh:
            return list(csv.DictReader(fh))

    def refined_prefix(self) -> str | None:
        """Column prefix of the refined target distribution in predictions.csv (rld_, lcm_), if any."""
        rows = self.predictions()
        if not rows:
            return None
        name = self.target.get("name", "rld")
        first = self.labels[0]
        for prefix in (name, "rld"):
            if f"{prefix}_{first}" in rows[0]:
                return prefix
        return None


def load_run(path: str | Path, title: str = "") -> RunData | None:
    """The run at ``path`` when its results.json says complete, else None."""
    path = Path(path)
    results = read_results(path)
    if results is None:
        return None
    for key in ("labels", "test"):
        if key not in results:
            raise ValueError(f"{path / 'results.json'} has no {key!r}; it was not written by `mmemolr train`")
    return RunData(path, results, title or path.name)
