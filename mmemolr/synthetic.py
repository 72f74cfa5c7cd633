"""Synthetic corpora of a real corpus's shape, for checking a training config without the corpus.

How many optimiser steps an epoch holds depends on the corpus's shape (dialogues per split, their
lengths), not on its content. A synthetic corpus of the same shape, with features whose class signal is
weak and labels that persist within a speaker's turns (so context pays, as in real dialogues), shows
whether a config's epoch cap leaves training room to reach its plateau. Used by the tests and by
``benchmarks/iemocap_plateau.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmemolr.corpus import Corpus, Dialogue, Utterance, save_prepared
from mmemolr.store import FeatureWriter


@dataclass(frozen=True)
class CorpusShape:
    """Dialogues per split, utterances per dialogue (inclusive range), speakers per dialogue, labels."""

    splits: dict[str, int]
    length: tuple[int, int]
    speakers: int
    labels: tuple[str, ...]


# IEMOCAP as the processed releases split it: 120 training sessions' dialogues, 12 of them held out for
# validation, 31 test dialogues (Session 5); two speakers; about 50 utterances a dialogue (5,810 training
# and 1,623 test utterances in all); the six classes of the processed release.
IEMOCAP_SHAPE = CorpusShape(
    splits={"train": 108, "dev": 12, "test": 31}, length=(30, 70), speakers=2,
    labels=("hap", "sad", "neu", "ang", "exc", "fru"),
)


def make_shaped_corpus(shape: CorpusShape, name: str = "synthetic", seed: int = 0,
                       persistence: float = 0.8) -> Corpus:
    """A corpus of ``shape`` with random labels: each speaker keeps their previous label with probability
    ``persistence``, else draws one uniformly."""
    rng = np.random.default_rng(seed)
    labels = list(shape.labels)
    dialogues = []
    for split, count in shape.splits.items():
        for k in range(count):
            did = f"{split}{k:03d}"
            length = int(rng.integers(shape.length[0], shape.length[1] + 1))
            last: dict[int, int] = {}
            utts = []
            for i in range(length):
                speaker = int(rng.integers(0, shape.speakers))
                keep = speaker in last and rng.random() < persistence
                label = last[speaker] if keep else int(rng.integers(0, len(labels)))
                last[speaker] = label
                utts.append(Utterance(id=f"{did}_u{i:03d}", dialogue_id=did, index=i, speaker=f"s{speaker}",
                                      text="", label=labels[label], split=split))
            dialogues.append(Dialogue(did, split, utts))
    corpus = Corpus(name=name, labels=labels, dialogues=dialogues,
                    provenance={"format": "synthetic", "shape": repr(shape), "seed": seed,
                                "persistence": persistence})
    corpus.validate()
    return corpus


def write_shaped_features(corpus: Corpus, path: str | Path, dim: int = 64, signal: float = 0.35,
                          seed: int = 0) -> Path:
    """A text feature file for ``corpus``: a random unit prototype per label times ``signal`` plus
    standard normal noise per utterance (a weak per-utterance signal, as with sentence vectors)."""
    rng = np.random.default_rng(seed)
    protos = rng.standard_normal((len(corpus.labels), dim))
    protos *= np.sqrt(dim) / np.linalg.norm(protos, axis=1, keepdims=True)
    utts = list(corpus.utterances())
    index = {label: i for i, label in enumerate(corpus.labels)}
    vectors = signal * protos[[index[u.label] for u in utts]] + rng.standard_normal((len(utts), dim))
    attrs = {"corpus_name": corpus.name, "corpus_fingerprint": corpus.fingerprint(), "modality": "text",
             "extractor": "synthetic", "dim": dim, "model_id": f"synthetic signal={signal} seed={seed}"}
    with FeatureWriter(path, [u.id for u in utts], attrs, overwrite=True) as writer:
        writer.write([u.id for u in utts], vectors.astype(np.float32))
    return Path(path)


def prepare_shaped(features_dir: str | Path, shape: CorpusShape, name: str = "synthetic", seed: int = 0,
                   dim: int = 64, signal: float = 0.35, persistence: float = 0.8) -> Corpus:
    """Write ``<features_dir>/<name>/corpus.json`` and ``text-synthetic.h5``; return the corpus."""
    corpus = make_shaped_corpus(shape, name, seed, persistence)
    folder = Path(features_dir) / name
    save_prepared(corpus, folder)
    write_shaped_features(corpus, folder / "text-synthetic.h5", dim, signal, seed)
    return corpus
