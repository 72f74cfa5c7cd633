"""``run_training``: train the Emotion Predictor with a target, select on validation, test once.

Protocol: each epoch trains on the train split and scores the dev split; the checkpoint with the best
dev weighted F1 (earliest on ties) is kept as best.pt; training stops after ``optim.patience`` epochs
without improvement or at ``optim.max_epochs`` (counted in optimiser steps when null: mmemolr.train.budget). Only then is the test split evaluated, once, with
best.pt. Nothing reads test metrics before that, and no option selects on test.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mmemolr.config import to_dict
from mmemolr.corpus.agreement import class_confusion
from mmemolr.fileio import remove_stale_temporaries
from mmemolr.fuse import FusedData, describe_file
from mmemolr.model import bptt
from mmemolr.model.dropout import dropout_generator
from mmemolr.progress import Progress
from mmemolr.targets.agreement import agreement_with_votes, annotator_class_shapes
from mmemolr.targets.diagnostics import epoch_diagnostics, refinement_diagnostics
from mmemolr.train import commit, rundir, tblog
from mmemolr.train.budget import resolve_budget
from mmemolr.train.build import EmoLRModel, build_model
from mmemolr.train.checkpoint import (
    LAST_FORMAT,
    check_last_format,
    cpu_copy,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from mmemolr.train.config import TrainConfig, check_train_config
from mmemolr.train.data import PreparedData, load_training_data
from mmemolr.train.device import resolve_device, set_threads
from mmemolr.train.loop import EVAL_BATCH_DIALOGUES, Evaluation, evaluate, train_epoch
from mmemolr.train.metrics import classification_metrics, summary

log = logging.getLogger(__name__)
INPUTS_REMEDY = ("restore the original file(s) to resume, or train into another --out folder (or delete this one) "
                 "to start over on the new ones")


def run_training(config: TrainConfig, run_dir: Path, features_dir: Path = Path("features"),
                 progress: bool | str = True,
                 threads: int | None = None,
                 on_epoch_end: Callable[[int, dict[str, Any]], None] | None = None,
                 tensorboard: str | Path | None = None) -> dict:
    """Train (resuming from run_dir/last.pt if present; returning the stored results if run_dir/results.json
    says complete), write the run folder, return the results dict. Resuming or reusing a run needs the
    same config and the same feature file contents it started with (rundir.check_same_inputs).

    ``on_epoch_end(epoch, row)`` is called after each epoch's checkpoint is on disk. ``progress``: True a
    bar on a terminal and one line per epoch otherwise, ``"lines"`` lines always, False nothing.
    ``tensorboard``: also log into ``<tensorboard>/<run folder name>`` (mmemolr.train.tblog).
    """
    check_train_config(config)
    config = resolve_budget(config, features_dir)
    run_dir = Path(run_dir)
    commit.settle(run_dir)  # a run of a batched group killed mid-epoch-commit
    start = begin_run(config, run_dir, features_dir, tensorboard=tensorboard)
    if start.complete is not None:
        return start.complete
    prepared, inputs = start.prepared, start.inputs

    set_threads(threads)
    device = resolve_device(config.device)
    bptt.usable(device)  # checks the hand-written recurrences on a device the tests have not verified
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    dropout = dropout_generator(config.seed, device)
    data = prepared.data
    train, dev = data.split("train"), data.split("dev")
    model = build_model(config, data.input_dim, len(data.labels)).to(device)
    optimizer = make_optimizer(model, config)

    run_dir.mkdir(parents=True, exist_ok=True)
    state = new_state()
    if (run_dir / rundir.LAST).exists():
        # On CPU: RNG states must stay CPU tensors; load_state_dict moves the rest to the device.
        ckpt = load_checkpoint(run_dir / rundir.LAST, map_location="cpu")
        check_last_format(ckpt, run_dir / rundir.LAST)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        generator.set_state(ckpt["generator"])
        dropout.set_state(ckpt["dropout_generator"])
        set_rng_state(ckpt["rng"])
        state = ckpt["state"]
        _check_same_features(run_dir, state.get("feature_files") or {},
                             {code: (ff.path, describe_file(ff)) for code, ff in prepared.files.items()})
        log.info("resuming %s after epoch %d", run_dir, state["epoch"])
    else:
        write_run_start(run_dir, config, prepared, inputs)
    # What the run trains on, by content (checked when it resumes): paths are provenance only.
    state["feature_files"] = {code: _identity_record(ff) for code, ff in prepared.files.items()}

    bar = Progress(config.optim.max_epochs, f"train {run_dir.name}", "epoch", initial=state["epoch"],
                   progress=progress, every=1)
    try:
        while not state["stopped"] and state["epoch"] < config.optim.max_epochs:
            epoch = state["epoch"] + 1
            t0 = time.perf_counter()
            train_loss = train_epoch(model, data, train, optimizer, config.optim, generator, device,
                                     epoch=state["epoch"], dropout=dropout)
            valid = evaluate(model, data, dev, EVAL_BATCH_DIALOGUES, device, refined=True)
            scores = classification_metrics(valid.gold, valid.pred, data.labels)
            row = epoch_row(epoch, train_loss, valid.loss, scores, time.perf_counter() - t0)
            row.update(epoch_diagnostics(valid.refined, valid.gold, data.labels))
            record_epoch(config, run_dir, state, row, lambda: cpu_copy(model.state_dict()))
            last = {"format": LAST_FORMAT, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                    "generator": generator.get_state(), "dropout_generator": dropout.get_state(), "rng": rng_state(),
                    "state": state}
            save_checkpoint(last, run_dir / rundir.LAST)
            bar.update(1, f"loss {train_loss:.4f}, dev W-F1 {scores['weighted_f1']:.4f}, "
                          f"best {state['best_score']:.4f}@{state['best_epoch']}")
            if on_epoch_end is not None:
                on_epoch_end(epoch, row)
    finally:
        bar.close()

    return finish_run(config, run_dir, prepared, inputs, model, device, state)


@dataclass
class RunStart:
    """What :func:`begin_run` found: the stored results of a complete run (then nothing else is needed),
    or the data to train on and the records of its feature files; ``resuming`` when last.pt exists."""

    complete: dict[str, Any] | None
    prepared: PreparedData | None
    inputs: dict[str, dict]
    resuming: bool


def begin_run(config: TrainConfig, run_dir: Path, features_dir: Path,
              prepared: PreparedData | None = None, tensorboard: str | Path | None = None) -> RunStart:
    """The checks before a run trains or is reused: same config and same feature files as the run folder
    holds (if any); loads the data unless ``prepared`` (the same data, e.g. cut from a group's union by
    mmemolr.train.batched) is given. Removes a killed process's half-written files when resuming.
    ``tensorboard``: the run's TensorBoard log goes into that folder (mmemolr.train.tblog)."""
    wanted = json.loads(json.dumps(to_dict(config), default=str))  # as results.json will hold it
    stored = rundir.read_results(run_dir)
    complete = stored is not None and stored.get("status") == "complete"
    resuming = not complete and (run_dir / rundir.LAST).exists()
    if complete or resuming:
        rundir.check_same_config(run_dir, stored.get("config") if complete else rundir.read_config_dict(run_dir),
                                 wanted)
    if complete:
        # By identity first (extractor, options, weights), then by content below (inputs.json).
        _check_same_features(run_dir, stored.get("feature_files") or {}, _current_files(config, features_dir))
    if prepared is None:
        prepared = load_training_data(config.corpus, config.modalities, config.features, features_dir)
    check_target_data(config, prepared)
    inputs = {code: describe_file(ff) for code, ff in prepared.files.items()}
    if complete or resuming:
        rundir.check_same_inputs(run_dir, rundir.recorded_inputs(run_dir), inputs, INPUTS_REMEDY)
    tblog.attach(tensorboard, run_dir, wanted, complete=stored if complete else None)
    if complete:
        return RunStart(stored, None, inputs, False)
    if run_dir.exists():
        remove_stale_temporaries(run_dir)  # half-written files of a killed process
    return RunStart(None, prepared, inputs, resuming)


def check_target_data(config: TrainConfig, prepared: PreparedData) -> None:
    """A target built from the annotators' votes needs a corpus that records them."""
    from mmemolr.targets import TARGETS, load_builtin_targets

    load_builtin_targets()
    # the corpus, not the fused data: a batched group checks its runs with the data left out (restrict)
    if TARGETS[config.target.name].needs_votes and not prepared.corpus.has_votes:
        raise ValueError(
            f"target {config.target.name!r} trains on the annotators' votes, and corpus {prepared.corpus.name!r} "
            "records none; use a corpus with votes (emotionlines, the raw IEMOCAP release, a manifest with a votes "
            "column) or another target (onehot, rld, ls, lcm)")


def write_run_start(run_dir: Path, config: TrainConfig, prepared: PreparedData, inputs: dict[str, dict]) -> None:
    """A new run folder: config.yaml, inputs.json, normalization.npz."""
    run_dir.mkdir(parents=True, exist_ok=True)
    rundir.write_config(run_dir, config)
    rundir.write_inputs(run_dir, inputs)
    prepared.norm.save(run_dir / rundir.NORMALIZATION)


def new_state() -> dict[str, Any]:
    return {"epoch": 0, "best_score": -math.inf, "best_epoch": 0, "bad_epochs": 0, "stopped": False, "history": []}


def epoch_row(epoch: int, train_loss: float, valid_loss: float | None, scores: dict[str, Any],
              seconds: float) -> dict[str, Any]:
    """One row of metrics.csv."""
    return {"epoch": epoch, "train_loss": train_loss, "valid_loss": valid_loss,
            "valid_accuracy": scores["accuracy"], "valid_weighted_f1": scores["weighted_f1"],
            "valid_macro_f1": scores["macro_f1"], "seconds": seconds}


def select_epoch(config: TrainConfig, state: dict[str, Any], row: dict[str, Any]) -> bool:
    """Dev selection and early stopping after an epoch, in ``state``: append ``row`` to the history, count
    patience; True when dev weighted F1 improved (earliest on ties): this epoch's weights are then best.pt."""
    state["history"].append(row)
    state["epoch"] = row["epoch"]
    improved = row["valid_weighted_f1"] > state["best_score"]
    if improved:
        state.update(best_score=row["valid_weighted_f1"], best_epoch=row["epoch"], bad_epochs=0)
    else:
        state["bad_epochs"] += 1
    if state["bad_epochs"] >= config.optim.patience:
        state["stopped"] = True
    return improved


def record_epoch(config: TrainConfig, run_dir: Path, state: dict[str, Any], row: dict[str, Any],
                 best_weights: Callable[[], dict[str, torch.Tensor]]) -> None:
    """:func:`select_epoch`, then best.pt (``best_weights()``, a CPU state_dict) when the epoch improved, and
    metrics. The caller writes last.pt after this."""
    if select_epoch(config, state, row):
        save_checkpoint(best_weights(), run_dir / rundir.BEST)
    rundir.write_metrics(run_dir, state["history"])


def _identity_record(ff) -> dict[str, Any]:
    record = describe_file(ff)
    return {k: record[k] for k in ("modality", "extractor", "extractor_config", "model_id", "weights_sha256", "dim")}


def _current_files(config: TrainConfig, features_dir: Path) -> dict[str, tuple[Path, dict[str, Any]]]:
    """The feature files the config resolves to now, with their attributes; empty when they cannot be
    resolved (a finished run is then returned as stored: there is nothing to contradict it)."""
    from mmemolr.corpus import corpus_dir
    from mmemolr.fuse import resolve_feature_files
    from mmemolr.store import read_attrs

    try:
        paths = resolve_feature_files(corpus_dir(config.corpus, features_dir), config.modalities, config.features)
        return {code: (path, read_attrs(path)) for code, path in paths.items()}
    except (OSError, ValueError):
        return {}


def _check_same_features(run_dir: Path, trained: dict[str, Any], found: dict[str, tuple[Any, dict[str, Any]]]) -> None:
    """Refuse a run folder whose run was trained on other features than the config resolves to now."""
    from mmemolr.store import feature_mismatches

    problems = feature_mismatches(trained, found)
    if problems:
        raise ValueError(f"{run_dir} holds a run trained on other features than the files it would use now: "
                         + "; ".join(problems) + "; choose another --out folder or delete that one")


def make_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """Adam with L2 (weight_decay); the fused kernel when the device supports it (about 3x faster on CPU)."""
    kwargs = {"lr": config.optim.lr, "weight_decay": config.optim.weight_decay}
    try:
        return torch.optim.Adam(model.parameters(), fused=True, **kwargs)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(model.parameters(), **kwargs)


def finish_run(config: TrainConfig, run_dir: Path, prepared: PreparedData, inputs: dict[str, dict], model: EmoLRModel,
            device: torch.device, state: dict[str, Any]) -> dict[str, Any]:
    """Load best.pt, score dev and (once) test, write predictions/states and results.json."""
    t0 = time.perf_counter()
    data, corpus = prepared.data, prepared.corpus
    model.load_state_dict(load_checkpoint(run_dir / rundir.BEST, map_location=device))
    batch = EVAL_BATCH_DIALOGUES
    valid = evaluate(model, data, data.split("dev"), batch, device, states=True, refined=True)
    test = evaluate(model, data, data.split("test"), batch, device, states=True, refined=True)
    test_metrics = classification_metrics(test.gold, test.pred, data.labels)
    write_test_outputs(run_dir, prepared, test, model.target.name if model.target.refines else None)
    history = state["history"]
    train_seconds = sum(r["seconds"] for r in history)
    warnings = capped_warning(config, state)  # printed by `mmemolr train`, counted by `mmemolr compare`
    results = {
        "status": "complete",
        "config": to_dict(config),
        "corpus": corpus.name,
        "corpus_fingerprint": corpus.fingerprint(),
        "corpus_dir": str(prepared.corpus_folder.resolve()),
        "labels": list(data.labels),
        "feature_files": inputs,
        "best_epoch": state["best_epoch"],
        "epochs_run": state["epoch"],
        "valid": summary(classification_metrics(valid.gold, valid.pred, data.labels)),
        "test": test_metrics,
        "seconds_total": train_seconds + (time.perf_counter() - t0),
        "seconds_per_epoch": train_seconds / max(1, len(history)),
        "device": str(device),
        "seed": config.seed,
        "warnings": warnings,
    }
    evaluations = (("valid", valid), ("test", test))
    agreement = people_agreement(data, evaluations) if data.votes is not None else None
    if agreement is not None:
        results["agreement"] = agreement  # with the annotators' votes (mmemolr.targets.agreement)
        results["annotator_confusion"] = annotator_confusion(data)
    if valid.refined is not None:
        # Does the target refine, only smooth, or add noise? (mmemolr.targets.diagnostics)
        results["refinement"] = {
            name: refinement_diagnostics(ev.refined, ev.gold, data.labels, states=ev.emotion,
                                         people=agreement[name]["target"] if agreement else None)
            for name, ev in evaluations}
    rundir.write_results(run_dir, results)
    (run_dir / rundir.LAST).unlink(missing_ok=True)
    tblog.log_final(run_dir, history, results)
    return results


def people_agreement(data: FusedData, evaluations: Sequence[tuple[str, Evaluation]]) -> dict[str, Any]:
    """Per split, the agreement of the predicted (and refined) distributions with the annotators' votes,
    beside the nulls of mmemolr.targets.agreement (the annotators' class shapes from the train split)."""
    votes, gold = train_votes(data)
    annotators = annotator_class_shapes(votes, gold, len(data.labels))
    return {name: agreement_with_votes(ev.probs, ev.gold, data.votes.numpy()[ev.rows], annotators, z=ev.refined)
            for name, ev in evaluations}


def annotator_confusion(data: FusedData) -> list[list[float] | None]:
    """C x C: row g = the mean vote shares (over the labels) of the train utterances of gold class g with a
    vote: the annotators' own label confusions, drawn beside the learned ones (null rows: no such utterance)."""
    votes, gold = train_votes(data)
    total = votes.sum(1)
    keep = (gold >= 0) & (total > 0)
    matrix, _ = class_confusion(votes[keep] / total[keep, None], gold[keep], len(data.labels))
    return [None if np.isnan(row).any() else row.round(6).tolist() for row in matrix]


def train_votes(data: FusedData) -> tuple[np.ndarray, np.ndarray]:
    """The train split's vote counts (N, C) and gold label indices (N,; -1: context-only)."""
    train = data.split("train")
    rows = np.concatenate([d.rows for d in train])
    return data.votes.numpy()[rows], np.concatenate([d.labels for d in train])


def capped_warning(config: TrainConfig, state: dict[str, Any]) -> list[str]:
    """A warning when optim.max_epochs ended training before early stopping could: dev weighted F1 had
    improved within the last optim.patience epochs, so more epochs might have helped."""
    if state["stopped"] or state["epoch"] < config.optim.max_epochs:
        return []
    return [f"training stopped at optim.max_epochs={config.optim.max_epochs} while dev weighted F1 was still "
            f"improving (best epoch {state['best_epoch']} of {state['epoch']}, within optim.patience="
            f"{config.optim.patience}); raise optim.max_epochs to let early stopping end it"]


def write_test_outputs(run_dir: Path, prepared: PreparedData, test, refined_name: str | None) -> None:
    data, corpus = prepared.data, prepared.corpus
    utts = {u.id: u for u in corpus.utterances()}
    ids = [data.ids[r] for r in test.rows]
    has_text = any(utts[uid].text for uid in ids)
    rundir.write_predictions(
        run_dir / rundir.PREDICTIONS, ids, [utts[uid].dialogue_id for uid in ids],
        [data.labels[g] if g >= 0 else None for g in test.gold], test.probs, data.labels,
        refined=test.refined if refined_name else None, refined_prefix=refined_name or "rld",
        texts=[utts[uid].text for uid in ids] if has_text else None,
        votes=data.votes.numpy()[test.rows] if data.votes is not None else None,
    )
    rundir.write_states(run_dir / rundir.STATES, ids, test.gold, test.pred, test.emotion)
