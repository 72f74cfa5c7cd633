"""Small synthetic prepared corpora and feature files for the fuse/model/train tests."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch

from mmemolr.corpus import Corpus, Dialogue, Utterance, save_prepared
from mmemolr.store import FeatureWriter

LABELS = ["neutral", "joy", "anger"]


def make_corpus(name: str = "synth", sizes: dict[str, int] | None = None, seed: int = 0, max_len: int = 8,
                labels: list[str] | None = None) -> Corpus:
    """Dialogues of 1..max_len utterances by up to 3 speakers; labels drawn at random."""
    sizes = sizes or {"train": 24, "dev": 8, "test": 8}
    labels = labels or LABELS
    rng = np.random.default_rng(seed)
    dialogues = []
    for split, n in sizes.items():
        for k in range(n):
            did = f"{split}/d{k}"
            length = int(rng.integers(1, max_len + 1))
            utts = []
            for i in range(length):
                utts.append(Utterance(
                    id=f"{did}_u{i}", dialogue_id=did, index=i, speaker=f"spk{int(rng.integers(0, 3))}",
                    text=f"utterance {i} of {did}", label=labels[int(rng.integers(0, len(labels)))], split=split,
                ))
            dialogues.append(Dialogue(did, split, utts))
    corpus = Corpus(name=name, labels=list(labels), dialogues=dialogues)
    corpus.validate()
    return corpus


def write_features(corpus: Corpus, folder: Path, modality: str = "text", dim: int = 12, seed: int = 0,
                   missing: Iterable[str] = (), file_name: str | None = None, signal: float = 2.0,
                   ids: list[str] | None = None, fingerprint: str | None = None) -> Path:
    """Class prototype * signal + noise per utterance; ``missing`` ids are recorded as failures."""
    rng = np.random.default_rng(seed)
    protos = rng.normal(size=(len(corpus.labels), dim)).astype(np.float32)
    ids = ids if ids is not None else corpus.utterance_ids()
    by_id = {u.id: u for u in corpus.utterances()}
    path = folder / (file_name or f"{modality}-synth.h5")
    attrs = {"corpus_name": corpus.name, "corpus_fingerprint": fingerprint or corpus.fingerprint(),
             "modality": modality, "extractor": f"synth-{modality}", "dim": dim, "model_id": "synthetic"}
    missing = set(missing)
    with FeatureWriter(path, ids, attrs) as writer:
        good = [uid for uid in ids if uid not in missing]
        vectors = np.stack([
            protos[corpus.labels.index(by_id[uid].label)] * signal + rng.normal(size=dim)
            if uid in by_id and by_id[uid].label is not None else rng.normal(size=dim) for uid in good
        ]).astype(np.float32) if good else np.zeros((0, dim), np.float32)
        if good:
            writer.write(good, vectors)
        for uid in missing:
            writer.fail(uid, "missing", "synthetic failure")
    return path


def prepare(root: Path, corpus: Corpus | None = None, modalities: Iterable[str] = ("text",), **kwargs) -> Path:
    """A features dir holding <name>/corpus.json and one feature file per modality; returns the dir."""
    corpus = corpus or make_corpus()
    folder = root / corpus.name
    folder.mkdir(parents=True, exist_ok=True)
    save_prepared(corpus, folder)
    for i, modality in enumerate(modalities):
        write_features(corpus, folder, modality=modality, seed=i, **kwargs)
    return root


TIMING_KEYS = {"seconds", "seconds_total", "seconds_per_epoch", "created"}


def untimed(value):
    if isinstance(value, dict):
        return {k: untimed(v) for k, v in value.items() if k not in TIMING_KEYS}
    if isinstance(value, list):
        return [untimed(v) for v in value]
    return value


def assert_same_run(a: Path, b: Path) -> None:
    """Two run folders hold the same run: every file equal, bit for bit (timings aside)."""
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir())
    assert "last.pt" not in names and not any(n.endswith(".tmp") for n in names)
    for name in names:
        if name.endswith(".json"):
            assert untimed(json.loads((a / name).read_text())) == untimed(json.loads((b / name).read_text())), name
        elif name.endswith(".pt"):
            x, y = torch.load(a / name, weights_only=True), torch.load(b / name, weights_only=True)
            assert x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x), name
        elif name.endswith(".npz"):
            with np.load(a / name) as x, np.load(b / name) as y:
                assert x.files == y.files and all(np.array_equal(x[k], y[k]) for k in x.files), name
        elif name == "metrics.csv":
            assert _csvuntimed(a / name) == _csvuntimed(b / name)
        else:
            assert (a / name).read_bytes() == (b / name).read_bytes(), name


def _csvuntimed(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return [{k: v for k, v in row.items() if k not in TIMING_KEYS} for row in csv.DictReader(fh)]
