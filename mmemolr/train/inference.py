"""Use a finished run folder: recompute its metrics (``evaluate``) or label a corpus (``predict``).

Both load best.pt with ``weights_only=True`` and use the Emotion Predictor alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmemolr.config import from_dict
from mmemolr.corpus import corpus_dir
from mmemolr.fuse import MODALITY_NAMES, ZNorm, describe_file, normalise_modalities, resolve_feature_files
from mmemolr.fuse.sources import CHOOSE_BY_FLAG
from mmemolr.train import rundir
from mmemolr.train.build import EmoLRModel, build_model
from mmemolr.train.checkpoint import load_checkpoint
from mmemolr.train.config import TrainConfig, upgrade_stored_config
from mmemolr.train.data import PreparedData, load_training_data
from mmemolr.train.device import resolve_device
from mmemolr.train.loop import Evaluation, evaluate
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
    input_dim += len(codes) if config.model.availability_input else 0
    dev = resolve_device(device)
    model = build_model(config, input_dim, len(results["labels"]))
    model.load_state_dict(load_checkpoint(run_dir / rundir.BEST))
    model.to(dev).eval()
    return LoadedRun(run_dir, config, results, norm, model, dev)


def load_run_data(run: LoadedRun) -> PreparedData:
    """The corpus and feature files a run was trained on, normalised with its training statistics."""
    features = {code: info["path"] for code, info in run.results["feature_files"].items()}
    corpus_ref = run.results.get("corpus_dir") or run.config.corpus
    prepared = load_training_data(corpus_ref, run.config.modalities, features, Path(corpus_ref).parent,
                                  run.config.model.availability_input, norm=run.norm, labels=run.labels)
    if prepared.corpus.fingerprint() != run.results["corpus_fingerprint"]:
        raise ValueError(f"the corpus at {prepared.corpus_folder} has changed since {run.run_dir} was trained "
                         "(fingerprint differs); its metrics cannot be recomputed on it")
    rundir.check_same_inputs(run.run_dir, run.results["feature_files"],
                             {code: describe_file(ff) for code, ff in prepared.files.items()},
                             "its metrics cannot be recomputed on other features; restore the files it was trained on")
    return prepared


def refined_on_split(run_dir: str | Path, split: str = "test") -> tuple[np.ndarray, np.ndarray, list[str]]:
    """A refining run's target distributions z (N, C) on ``split`` from best.pt, gold label indices (N,)
    and utterance ids, in corpus order."""
    run = load_run(run_dir)
    prepared = load_run_data(run)
    result = evaluate(run.model, prepared.data, prepared.data.split(split), run.config.optim.eval_batch_dialogues,
                      run.device, refined=True)
    if result.refined is None:
        raise ValueError(f"{run_dir}: target {run.config.target.name!r} has no refined distribution")
    return result.refined, result.gold, [prepared.data.ids[r] for r in result.rows]


def evaluate_run(run_dir: str | Path, device: str = "cpu") -> dict[str, Any]:
    """Recompute dev and test metrics of a run from best.pt and the feature files it was trained on."""
    run = load_run(run_dir, device)
    prepared = load_run_data(run)
    batch = run.config.optim.eval_batch_dialogues
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


def predict_corpus(run_dir: str | Path, corpus: str, features_dir: str | Path = "features",
                   features: dict[str, str] | None = None, out: str | Path | None = None,
                   device: str = "cpu") -> tuple[Path, dict[str, dict[str, Any]]]:
    """Label every utterance of a prepared corpus with a trained run; returns the CSV path and the
    metrics per split where every gold label is one of the run's labels."""
    run = load_run(run_dir, device)
    folder = corpus_dir(corpus, features_dir)
    paths = resolve_feature_files(folder, run.config.modalities, features, choose_with=CHOOSE_BY_FLAG)
    _check_compatible(run, paths)
    prepared = load_training_data(corpus, run.config.modalities, {c: str(p) for c, p in paths.items()},
                                  features_dir, run.config.model.availability_input, norm=run.norm,
                                  labels=run.labels, training=False)
    result = evaluate(run.model, prepared.data, prepared.data.dialogues, run.config.optim.eval_batch_dialogues,
                      run.device)
    out_path = Path(out) if out else run.run_dir / f"predictions-{prepared.corpus.name}.csv"
    _write(out_path, prepared, result, run.labels)
    utts = {u.id: u for u in prepared.corpus.utterances()}
    scores = {}
    splits = np.array([utts[prepared.data.ids[r]].split for r in result.rows])
    for split in dict.fromkeys(splits.tolist()):
        sel = splits == split
        if (result.gold[sel] >= 0).all():
            scores[split] = summary(classification_metrics(result.gold[sel], result.pred[sel], run.labels))
    return out_path, scores


def _check_compatible(run: LoadedRun, paths: dict[str, Path]) -> None:
    from mmemolr.store import read_attrs

    for code, path in paths.items():
        trained = run.results["feature_files"][code]
        attrs = read_attrs(path)
        got = (str(attrs.get("extractor", "")), str(attrs.get("model_id", "")), int(attrs.get("dim", -1)))
        want = (trained["extractor"], trained["model_id"], int(trained["dim"]))
        if got != want:
            raise ValueError(
                f"{path} holds {MODALITY_NAMES[code]} features from extractor {got[0]!r} (model {got[1]!r}, {got[2]}-d); "
                f"{run.run_dir} was trained on {want[0]!r} (model {want[1]!r}, {want[2]}-d); extract the same "
                "features for this corpus"
            )


def _write(path: Path, prepared: PreparedData, result: Evaluation, labels: list[str]) -> None:
    utts = {u.id: u for u in prepared.corpus.utterances()}
    ids = [prepared.data.ids[r] for r in result.rows]
    rundir.write_predictions(
        path, ids, [utts[i].dialogue_id for i in ids], [utts[i].label for i in ids], result.probs, labels,
        texts=[utts[i].text for i in ids] if any(utts[i].text for i in ids) else None,
        extra={"split": [utts[i].split for i in ids]},
    )
