"""The run folder: every file written atomically; results.json last, so its presence means complete.

  config.yaml        resolved TrainConfig
  normalization.npz  train-split mean/std per modality (needed to apply the model to new features)
  metrics.csv/.json  one row per epoch
  best.pt            state_dict of the selected epoch (weights_only=True)
  last.pt            resume checkpoint, removed once the run is complete
  next.pt            a batched group's epoch before it is committed (mmemolr.train.commit), then last.pt
  predictions.csv    test split: ids, gold, pred, prob_<label>, (<target>_<label> for refining targets,
                     votes_<label>: annotator vote counts where the corpus has them), text
  test_states.npz    ids, labels, preds, emotion_states (N x D) of the test utterances
  inputs.json        per modality, the feature file read: path, extractor, its config, model and weights
                     hash, content checksum (written at the start; checked on resume and evaluate)
  results.json       status complete, config, metrics, provenance (feature_files: as inputs.json)
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from mmemolr.config import ConfigError, dump_yaml, from_dict, to_dict
from mmemolr.fileio import atomic_path, write_json_atomic, write_text_atomic
from mmemolr.train import tblog
from mmemolr.train.config import TrainConfig, upgrade_stored_config

CONFIG = "config.yaml"
METRICS_CSV = "metrics.csv"
METRICS_JSON = "metrics.json"
BEST = "best.pt"
LAST = "last.pt"
NEXT = "next.pt"
PREDICTIONS = "predictions.csv"
STATES = "test_states.npz"
RESULTS = "results.json"
NORMALIZATION = "normalization.npz"
INPUTS = "inputs.json"
# What identifies a feature file's content and origin. Not its path: a moved but identical file matches.
INPUT_IDENTITY = ("content_sha256", "dim", "extractor", "extractor_config", "model_id", "weights_sha256")
METRIC_COLUMNS = ("epoch", "train_loss", "valid_loss", "valid_accuracy", "valid_weighted_f1", "valid_macro_f1",
                  "seconds")


def read_results(run_dir: str | Path) -> dict[str, Any] | None:
    path = Path(run_dir) / RESULTS
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err}); delete it to redo the final evaluation") from None


def read_config_dict(run_dir: str | Path) -> dict[str, Any] | None:
    path = Path(run_dir) / CONFIG
    if not path.exists():
        return None
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def write_config(run_dir: Path, config: Any) -> None:
    write_text_atomic(run_dir / CONFIG, dump_yaml(config))


def write_metrics(run_dir: Path, history: Sequence[dict[str, Any]]) -> None:
    """metrics.csv: METRIC_COLUMNS, then any other columns of the rows (e.g. the refinement diagnostics
    valid_refine_*), empty where a row has none; metrics.json: the rows as they are. The run's TensorBoard
    log, if it has one, follows (mmemolr.train.tblog)."""
    columns = list(METRIC_COLUMNS)
    for row in history:
        columns += [c for c in row if c not in columns]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for row in history:
        writer.writerow([_fmt(row.get(c)) for c in columns])
    write_text_atomic(run_dir / METRICS_CSV, buf.getvalue())
    write_json_atomic(run_dir / METRICS_JSON, list(history))
    tblog.log_epochs(run_dir, history)


def read_history(run_dir: str | Path) -> list[dict[str, Any]]:
    """The per-epoch rows of metrics.json; empty when the run has none yet."""
    path = Path(run_dir) / METRICS_JSON
    if not path.exists():
        return []
    try:
        return list(json.loads(path.read_text(encoding="utf-8")))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err}); delete it (it is rewritten after the next epoch)") from None


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6f}"
    return str(value)


def write_predictions(path: Path, ids: Sequence[str], dialogue_ids: Sequence[str], gold: Sequence[str | None],
                      probs: np.ndarray, labels: Sequence[str], refined: np.ndarray | None = None,
                      refined_prefix: str = "rld", texts: Sequence[str] | None = None,
                      extra: dict[str, Sequence[str]] | None = None, votes: np.ndarray | None = None) -> None:
    """One row per utterance; probabilities with 6 decimals (empty where a context-only utterance has no
    refined target); ``votes`` (N, C) annotator vote counts."""
    pred = probs.argmax(axis=1)
    header = ["utterance_id", "dialogue_id", *(extra or {}), "gold", "pred", *[f"prob_{lab}" for lab in labels]]
    if refined is not None:
        header += [f"{refined_prefix}_{lab}" for lab in labels]
    if votes is not None:
        header += [f"votes_{lab}" for lab in labels]
    if texts is not None:
        header.append("text")
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for i, uid in enumerate(ids):
        row = [uid, dialogue_ids[i], *[values[i] for values in (extra or {}).values()],
               gold[i] if gold[i] is not None else "", labels[pred[i]], *[f"{p:.6f}" for p in probs[i]]]
        if refined is not None:
            row += [f"{p:.6f}" if np.isfinite(p) else "" for p in refined[i]]
        if votes is not None:
            row += [str(int(v)) for v in votes[i]]
        if texts is not None:
            row.append(texts[i])
        writer.writerow(row)
    write_text_atomic(path, buf.getvalue())


def write_states(path: Path, ids: Sequence[str], labels: np.ndarray, preds: np.ndarray, emotion: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, ids=np.array(list(ids), dtype=str), labels=np.asarray(labels, dtype=np.int64),
                     preds=np.asarray(preds, dtype=np.int64), emotion_states=np.asarray(emotion, dtype=np.float32))


def write_results(run_dir: Path, results: dict[str, Any]) -> None:
    write_json_atomic(run_dir / RESULTS, results)


def check_same_config(run_dir: Path, stored: dict | None, wanted: dict) -> None:
    """Refuse to reuse a run folder that holds a run of another config; the message lists the keys.

    A config stored by an older version lacks the keys added since; they count as their defaults.
    """
    if stored is not None and stored != wanted:
        try:
            stored = to_dict(from_dict(TrainConfig, upgrade_stored_config(stored)))
        except ConfigError:
            pass  # a key this version does not know: compared as stored, so it shows in the message
        if stored == wanted:
            return
        flat_stored, flat_wanted = flatten(stored), flatten(wanted)
        diffs = [key for key, value in flat_wanted.items() if flat_stored.get(key) != value]
        diffs += [key for key in flat_stored if key not in flat_wanted]
        raise ValueError(f"{run_dir} holds a run with another config (differs in {', '.join(diffs) or 'layout'}); "
                         "choose another --out folder or delete that one")


def flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    """Nested dicts as dotted keys: {"optim": {"lr": 1}} -> {"optim.lr": 1}."""
    out: dict[str, Any] = {}
    for key, value in d.items():
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def write_inputs(run_dir: Path, inputs: dict[str, dict[str, Any]]) -> None:
    write_json_atomic(run_dir / INPUTS, inputs)


def recorded_inputs(run_dir: str | Path) -> dict[str, dict[str, Any]] | None:
    """The feature files a run read: results.json's record once complete, else inputs.json; None for a
    run folder without either (not started, or written before inputs were recorded)."""
    results = read_results(run_dir)
    if results is not None:
        return results.get("feature_files")
    path = Path(run_dir) / INPUTS
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not valid JSON ({err}); delete the run folder to start the run again") from None


def check_same_inputs(run_dir: str | Path, recorded: dict[str, dict[str, Any]] | None,
                      current: dict[str, dict[str, Any]], remedy: str) -> None:
    """Refuse to go on with a run on feature files other than those it started with (compared by content
    checksum, extractor, its config, model and weights; not by path). The message names each file, what
    changed and ``remedy``. Keys a record lacks (older runs) are not compared."""
    if not recorded:
        return
    changed = []
    for code, now in current.items():
        before = recorded.get(code)
        if before is None:
            continue
        diffs = [_change(key, before[key], now[key]) for key in INPUT_IDENTITY
                 if key in before and key in now and before[key] != now[key]]
        if diffs:
            moved = f" (recorded at {before.get('path')})" if before.get("path") != now.get("path") else ""
            changed.append(f"{now.get('path')}{moved}: {'; '.join(diffs)}")
    if changed:
        raise ValueError(f"{run_dir} was started on other feature files than it reads now: " + " | ".join(changed)
                         + f"; {remedy}")


def _change(key: str, before: Any, after: Any) -> str:
    if key.endswith("sha256"):
        name = "content checksum" if key == "content_sha256" else key
        return f"{name} was {str(before)[:12]}…, now {str(after)[:12]}…"
    if isinstance(before, dict) and isinstance(after, dict):
        keys = sorted(k for k in {*before, *after} if before.get(k) != after.get(k))
        return f"{key} differs in " + ", ".join(f"{k} ({before.get(k)!r} -> {after.get(k)!r})" for k in keys)
    return f"{key} was {before!r}, now {after!r}"
