"""The context-free floor of a comparison: a logistic regression on each utterance's fused vector alone.

A dialogue model that does not beat it on the validation split has learned nothing from the dialogue
that a linear read-out of the single utterance does not already give. The floor reads what the sweep's
runs read (the same feature files, the train-fitted z-normalisation, the availability columns when the
config has them, the same splits), chooses C on the validation split by weighted F1 as the runs choose
their epoch, and scores the test split once with that C. It is deterministic and cheap (about 20 s for
MELD text on 2 cores), so it is computed once per sweep and cached in ``floor.json`` with the inputs it
was computed from; changed inputs recompute it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mmemolr.compare.plan import SweepPlan
from mmemolr.fileio import write_json_atomic

if TYPE_CHECKING:  # mmemolr.fuse imports torch; the table code reads floor.json without it
    from mmemolr.fuse import FusedData

FLOOR_FILE = "floor.json"
# Inverse regularisation strengths tried on the validation split.
C_GRID = (0.001, 0.01, 0.1, 1.0, 10.0)
# Presets whose table carries the floor: those that ask whether a dialogue model uses the dialogue.
FLOOR_PRESETS = ("generalization",)


def fit_floor(data: FusedData, grid: tuple[float, ...] = C_GRID) -> dict[str, Any]:
    """Fit the floor on ``data``'s train split for every C of ``grid``, choose C on dev (weighted F1; the
    smaller C on a tie), score test once. Metrics as fractions in [0, 1] (mmemolr.train.metrics)."""
    from sklearn.linear_model import LogisticRegression

    from mmemolr.train.metrics import classification_metrics

    x = data.features[:-1].numpy()  # the last row is the padding row

    def split(name: str) -> tuple[np.ndarray, np.ndarray]:
        dialogues = data.split(name)
        rows = np.concatenate([d.rows for d in dialogues])
        labels = np.concatenate([d.labels for d in dialogues])
        labelled = labels >= 0  # context-only utterances have no label to fit or score
        return x[rows[labelled]], labels[labelled]

    (x_train, y_train), (x_dev, y_dev), (x_test, y_test) = split("train"), split("dev"), split("test")
    tried, best = [], None
    for c in grid:
        model = LogisticRegression(C=c, max_iter=3000).fit(x_train, y_train)
        dev = _scalars(classification_metrics(y_dev, model.predict(x_dev), data.labels))
        tried.append({"C": c, "valid_weighted_f1": dev["weighted_f1"]})
        if best is None or dev["weighted_f1"] > best[1]["weighted_f1"]:
            best = (c, dev, model)
    c, dev, model = best
    return {
        "method": "logistic regression on each utterance's fused vector (no dialogue context)",
        "C": c,
        "grid": tried,
        "valid": dev,
        "test": _scalars(classification_metrics(y_test, model.predict(x_test), data.labels)),
    }


def _scalars(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: metrics[k] for k in ("weighted_f1", "accuracy", "macro_f1")}


def _inputs(fingerprint: str, modalities: list[str], availability_input: bool, grid: tuple[float, ...],
            contents: dict[str, str]) -> dict[str, Any]:
    return {"corpus_fingerprint": fingerprint, "modalities": sorted(modalities),
            "availability_input": bool(availability_input), "grid": list(grid), "content_sha256": contents}


def read_floor(sweep_dir: str | Path) -> dict[str, Any] | None:
    """The sweep's floor.json, or None when there is none (or it cannot be read: it is recomputed)."""
    path = Path(sweep_dir) / FLOOR_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def ensure_floor(plan: SweepPlan, sweep_dir: str | Path, inputs_required: bool = True) -> dict[str, Any] | None:
    """The floor of a sweep whose preset carries one: read from floor.json when it was computed from the
    sweep's current inputs, otherwise computed and written (atomically). None for other presets.

    Without ``inputs_required`` (``mmemolr report``, which needs only the run folders) a corpus or feature
    file that cannot be read leaves floor.json as it is, with a note on stderr."""
    if plan.preset not in FLOOR_PRESETS or not plan.runs:
        return None
    from mmemolr.compare.sweep import run_config
    from mmemolr.train.data import load_training_data

    config = run_config(plan, plan.runs[0].name)
    availability = True  # the runs read the availability columns, so the floor reads them too
    try:
        prepared = load_training_data(config.corpus, list(config.modalities), dict(config.features),
                                      plan.features_dir, availability)
    except (OSError, ValueError) as err:
        if inputs_required:
            raise
        print(f"note: the context-free floor is not recomputed ({err})", file=sys.stderr)
        return read_floor(sweep_dir)
    wanted = _inputs(prepared.corpus.fingerprint(), list(config.modalities), availability, C_GRID,
                     {code: ff.content_sha256() for code, ff in prepared.files.items()})
    stored = read_floor(sweep_dir)
    if stored is not None and stored.get("inputs") == wanted:
        return stored
    floor = {**fit_floor(prepared.data), "inputs": wanted}
    Path(sweep_dir).mkdir(parents=True, exist_ok=True)
    write_json_atomic(Path(sweep_dir) / FLOOR_FILE, floor)
    return floor
