"""``mmemolr predict``: a trained run applied to a prepared corpus or to recordings with transcripts.

The corpus may be label-free (a transcript, a manifest without labels): then nothing is scored. A
labelled corpus is scored per split where every gold label is one of the run's labels.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmemolr.corpus import UNSPLIT, Corpus, corpus_dir, load_corpus, load_prepared, save_prepared
from mmemolr.predict.features import RunFeatures, ensure_features
from mmemolr.predict.outputs import CSV_NAME, JSON_NAME, write_csv, write_json, write_timelines
from mmemolr.train.data import load_training_data
from mmemolr.train.inference import load_run
from mmemolr.train.loop import EVAL_BATCH_DIALOGUES, evaluate
from mmemolr.train.metrics import classification_metrics, summary


@dataclass
class Prediction:
    out_dir: Path
    csv: Path
    json: Path
    corpus: Corpus
    labels: list[str]
    records: list[dict[str, Any]]
    scores: dict[str, dict[str, float]] | None  # None: label-free corpus, nothing scored
    features: RunFeatures
    timelines: list[Path] = field(default_factory=list)
    untimed: list[str] = field(default_factory=list)  # dialogues without times: no timeline


def predict_corpus(run_dir: str | Path, corpus: str | Path, features_dir: str | Path = "features",
                   features: Mapping[str, str] | None = None, out: str | Path | None = None, device: str = "cpu",
                   models: Mapping[str, str] | None = None, max_failures: str | None = None,
                   timelines: bool = True, progress: bool = False) -> Prediction:
    """Label every utterance of a prepared corpus with a trained run, extracting (and caching in the
    corpus folder) the features the run was trained on when the folder does not hold them yet."""
    run = load_run(run_dir, device)
    prepared_corpus = load_prepared(corpus, features_dir)
    folder = corpus_dir(corpus, features_dir)
    found = ensure_features(run.run_dir, run.results, run.config.modalities, prepared_corpus, folder, features,
                            models, str(run.device), max_failures, progress)
    prepared = load_training_data(str(folder), run.config.modalities, {c: str(p) for c, p in found.paths.items()},
                                  features_dir, norm=run.norm, labels=run.labels,
                                  training=False)
    result = evaluate(run.model, prepared.data, prepared.data.dialogues, EVAL_BATCH_DIALOGUES,
                      run.device)
    data, labels = prepared.data, run.labels
    utts = {u.id: u for u in prepared.corpus.utterances()}
    records = []
    for row, probs in zip(result.rows, result.probs):
        u = utts[data.ids[row]]
        pred = int(np.argmax(probs))
        records.append({
            "dialogue_id": u.dialogue_id, "utterance_id": u.id, "speaker": u.speaker, "start": u.start, "end": u.end,
            "split": u.split, "gold": u.label, "pred": labels[pred], "confidence": float(probs[pred]),
            "probabilities": {lab: float(p) for lab, p in zip(labels, probs)}, "text": u.text,
        })
    scores = None if prepared.corpus.label_free else _scores(prepared.corpus, result, labels, data.ids)
    out_dir = Path(out) if out else run.run_dir / f"predictions-{prepared.corpus.name}"
    with_split = any(u.split is not None for u in utts.values())
    with_gold = not prepared.corpus.label_free
    csv_path, json_path = out_dir / CSV_NAME, out_dir / JSON_NAME
    write_csv(csv_path, records, labels, with_split, with_gold)
    header = {
        "run": str(run.run_dir.resolve()), "corpus": prepared.corpus.name,
        "corpus_fingerprint": prepared.corpus.fingerprint(), "labels": labels, "labelled": with_gold,
        "metrics": scores,
        "feature_files": {code: {k: info.get(k) for k in ("path", "extractor", "model_id", "weights_sha256", "dim")}
                          for code, info in _records(prepared.files).items()},
    }
    write_json(json_path, header, records, with_split, with_gold)
    made, untimed = write_timelines(out_dir, records, labels, run.run_dir.name) if timelines else ([], [])
    return Prediction(out_dir, csv_path, json_path, prepared.corpus, labels, records, scores, found, made, untimed)


def _records(files) -> dict[str, dict[str, Any]]:
    from mmemolr.fuse import describe_file

    return {code: describe_file(ff) for code, ff in files.items()}


def _scores(corpus: Corpus, result, labels: list[str], ids: list[str]) -> dict[str, dict[str, float]]:
    """Metrics per split (``unsplit`` for dialogues without one) where every gold label is the run's.
    Context-only utterances (no label) are read as context and not scored."""
    utts = {u.id: u for u in corpus.utterances()}
    groups = np.array([utts[ids[r]].split or UNSPLIT for r in result.rows], dtype=object)
    has_label = np.array([utts[ids[r]].label is not None for r in result.rows], dtype=bool)
    scores = {}
    for group in dict.fromkeys(groups.tolist()):
        sel = (groups == group) & has_label
        if sel.any() and (result.gold[sel] >= 0).all():
            scores[group] = summary(classification_metrics(result.gold[sel], result.pred[sel], labels))
    return scores


def prepare_transcript(transcript: str | Path, features_dir: str | Path = "features", media: str | None = None,
                       name: str | None = None) -> Path:
    """Read recording(s) with transcript(s) into a label-free corpus at ``features_dir/<name>``.

    The folder is a cache: the same transcript again reuses it (and its feature files); an edited
    transcript of the same file replaces it; a folder of another corpus is refused (choose --name).
    """
    options: dict[str, Any] = {}
    if media:
        options["media"] = media
    if name:
        options["name"] = name
    corpus = load_corpus("transcript", transcript, **options)
    folder = Path(features_dir) / corpus.name
    if (folder / "corpus.json").exists():
        try:
            existing = load_prepared(folder)
        except ValueError as err:
            raise ValueError(f"{folder} holds a prepared corpus that cannot be read ({err}); choose another --name "
                             "or delete that folder") from None
        if existing.fingerprint() == corpus.fingerprint():
            return folder
        same_source = (existing.provenance.get("format") == "transcript"
                       and existing.provenance.get("files") == corpus.provenance.get("files"))
        if not same_source:
            source = existing.provenance.get("files") or existing.provenance.get("root") or existing.provenance.get("adapter")
            raise ValueError(f"{folder} holds another prepared corpus ({existing.name!r}, from {source}); name this one "
                             f"with --name")
    save_prepared(corpus, folder)
    return folder


def predict_transcript(run_dir: str | Path, transcript: str | Path, media: str | None = None, name: str | None = None,
                       features_dir: str | Path = "features", **kwargs: Any) -> Prediction:
    """From recording(s) and transcript(s) to emotions: prepare, extract what the run needs, predict."""
    folder = prepare_transcript(transcript, features_dir, media, name)
    return predict_corpus(run_dir, folder, features_dir, **kwargs)
