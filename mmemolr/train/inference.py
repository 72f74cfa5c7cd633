"""Use a finished run folder: load it, recompute its metrics (``evaluate``); ``mmemolr.predict`` labels
new corpora with it.

Both load best.pt with ``weights_only=True`` and use the Emotion Predictor alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmemolr.config import from_dict
from mmemolr.fuse import ZNorm, describe_file, normalise_modalities
from mmemolr.store import feature_mismatches
from mmemolr.train import rundir
from mmemolr.train.build import EmoLRModel, build_model
from mmemolr.train.checkpoint import load_checkpoint
from mmemolr.train.config import TrainConfig, upgrade_stored_config
from mmemolr.train.data import PreparedData, load_training_data
from mmemolr.train.device import resolve_device
from mmemolr.train.loop import EVAL_BATCH_DIALOGUES, evaluate
from mmemolr.train.metrics import classification_metrics, summary


@dataclass
class LoadedRun:
    run_dir: Path
    config: TrainConfig
    results: dict[str, Any]
    norm: ZNorm
    model: EmoLRModel
    device: torch.device

    @property
    def labels(self) -> list[str]:
        return list(self.results["labels"])


def load_run(run_dir: str | Path, device: str = "cpu") -> LoadedRun:
    run_dir = Path(run_dir)
    results = rundir.read_results(run_dir)
    if results is None or results.get("status") != "complete":
        state = "is not a run folder" if not (run_dir / rundir.CONFIG).exists() else "holds an unfinished run"
        raise FileNotFoundError(f"{run_dir} {state} (no complete results.json); run `mmemolr train` to finish it")
    config = from_dict(TrainConfig, upgrade_stored_config(results["config"]), str(run_dir / rundir.RESULTS))
    norm = ZNorm.load(run_dir / rundir.NORMALIZATION)
    codes = normalise_modalities(config.modalities)
    input_dim = sum(int(results["feature_files"][c]["dim"]) for c in codes)
    input_dim += len(codes)  # the availability columns
    dev = resolve_device(device)
    model = build_model(config, input_dim, len(results["labels"]))
    model.load_state_dict(load_checkpoint(run_dir / rundir.BEST))
    model.to(dev).eval()
    return LoadedRun(run_dir, config, results, norm, model, dev)


def load_run_data(run: LoadedRun) -> PreparedData:
    """The corpus and feature files a run was trained on, normalised with its training statistics.

    A recorded file that moved is found in the corpus folder by its content identity; a file that now
    holds other features (another encoder, other options) is refused."""
    from mmemolr.predict.features import matching_files, trained_record

    corpus_ref = run.results.get("corpus_dir") or run.config.corpus
    features = {}
    for code, info in run.results["feature_files"].items():
        path = Path(info["path"])
        if not path.exists() and (Path(corpus_ref) / "corpus.json").exists():
            found, rejected = matching_files(Path(corpus_ref), code, trained_record(run.results, code),
                                             run.results["corpus_fingerprint"])
            if not found:
                raise FileNotFoundError(
                    f"{path}, the {info.get('modality') or code} feature file {run.run_dir} was trained on, is gone, "
                    f"and no file of {corpus_ref} holds the same features"
                    + (f" ({'; '.join(rejected)})" if rejected else "") + "; extract them again as recorded in "
                    f"{run.run_dir / rundir.RESULTS}")
            path = found[0]
        features[code] = str(path)
    prepared = load_training_data(corpus_ref, run.config.modalities, features, Path(corpus_ref).parent,
                                  norm=run.norm, labels=run.labels)
    if prepared.corpus.fingerprint() != run.results["corpus_fingerprint"]:
        raise ValueError(f"the corpus at {prepared.corpus_folder} has changed since {run.run_dir} was trained "
                         "(fingerprint differs); its metrics cannot be recomputed on it")
    changed = feature_mismatches(run.results["feature_files"],
                                 {code: (ff.path, describe_file(ff)) for code, ff in prepared.files.items()})
    if changed:
        raise ValueError(f"the feature files of {run.run_dir} now hold other features than it was trained on: "
                         + "; ".join(changed) + "; extract them again as recorded in its results.json")
    rundir.check_same_inputs(run.run_dir, run.results["feature_files"],
                             {code: describe_file(ff) for code, ff in prepared.files.items()},
                             "its metrics cannot be recomputed on other features; restore the files it was trained on")
    return prepared


def refined_on_split(run_dir: str | Path, split: str = "test") -> tuple[np.ndarray, np.ndarray, list[str]]:
    """A refining run's target distributions z (N, C) on ``split`` from best.pt, gold label indices (N,)
    and utterance ids, in corpus order."""
    run = load_run(run_dir)
    prepared = load_run_data(run)
    result = evaluate(run.model, prepared.data, prepared.data.split(split), EVAL_BATCH_DIALOGUES,
                      run.device, refined=True)
    if result.refined is None:
        raise ValueError(f"{run_dir}: target {run.config.target.name!r} has no refined distribution")
    return result.refined, result.gold, [prepared.data.ids[r] for r in result.rows]


def evaluate_run(run_dir: str | Path, device: str = "cpu") -> dict[str, Any]:
    """Recompute dev and test metrics of a run from best.pt and the feature files it was trained on."""
    run = load_run(run_dir, device)
    prepared = load_run_data(run)
    batch = EVAL_BATCH_DIALOGUES
    valid = evaluate(run.model, prepared.data, prepared.data.split("dev"), batch, run.device)
    test = evaluate(run.model, prepared.data, prepared.data.split("test"), batch, run.device)
    return {"valid": summary(classification_metrics(valid.gold, valid.pred, run.labels)),
            "test": classification_metrics(test.gold, test.pred, run.labels)}


def compare_metrics(stored: dict[str, Any], recomputed: dict[str, Any], tol: float = 1e-6) -> list[str]:
    """Names of the metrics that differ between results.json and a recomputation."""
    diffs = []
    for split in ("valid", "test"):
        for key in ("accuracy", "weighted_f1", "macro_f1"):
            if abs(stored[split][key] - recomputed[split][key]) > tol:
                diffs.append(f"{split} {key}: stored {stored[split][key]:.6f}, recomputed {recomputed[split][key]:.6f}")
    if stored["test"].get("confusion_matrix") != recomputed["test"]["confusion_matrix"]:
        diffs.append("test confusion matrix")
    return diffs
