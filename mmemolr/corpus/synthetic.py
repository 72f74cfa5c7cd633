"""Synthetic ERC corpora for checks with a known answer.

1. Known label confusions (``make_synthetic`` / ``write_synthetic``): the check that a refined target refines.
2. A real corpus's shape (``make_shaped_corpus`` / ``prepare_shaped``, ``IEMOCAP_SHAPE``, ``MELD_SHAPE``): how many
   optimiser steps an epoch holds depends on dialogues per split and their lengths, not on content, so a
   corpus of the same shape with a weak class signal and labels that persist within a speaker's turns
   shows whether a config's epoch cap leaves training room to reach its plateau
   (tests/test_training_budget.py, benchmarks/budget_plateau.py).

Known label confusions, in detail:

Six emotions in three designed pairs (joy/excitement, anger/frustration, sadness/fear). Each utterance
vector is built from class prototypes μ_c (unit-norm directions scaled by ``signal``):

  x = w·μ_gold + (1 − w)·μ_partner + b_speaker + noise,      noise ~ N(0, σ² I)

where ``partner`` is the gold class's designed partner. A share ``mixed`` of the utterances are genuine
mixtures with gold weight w ~ U(0.5, 0.9) (the gold label is the larger part); the rest are pure (w = 1).
So the right refined label distribution puts the non-gold mass of every class on its partner, more of it
the smaller w: per utterance, the true secondary mass is 1 − w (stored as ``extra["partner_weight"]``).
Speakers have their own offset b_speaker, and emotions persist in a dialogue (the next utterance repeats
the previous label with probability ``persistence``), so speaker and context states carry information.

``write_synthetic(folder)`` writes a prepared corpus (corpus.json) and one text feature file, so
``mmemolr train --corpus FOLDER`` and the tests run on it like on any corpus.

3. Simulated annotators (``make_annotated`` / ``write_annotated``): the check of agreement with people.
Every mixed utterance has its own secondary emotion s, drawn per utterance from its true class's
secondary distribution (``SECONDARY``: the designed partner with probability 1/2, two other labels with
1/4 each), so which other label an utterance carries is not fixed by its class:

  x = w·μ_true + (1 − w)·μ_s + b_speaker + noise

``annotators`` people each vote one label from the utterance's true mixture (w on the true class, 1 − w on
s), except that with probability ``annotator_noise`` a person votes a label at random. The corpus label
is the label with the most votes; an utterance whose top count is shared has no majority and is
context-only (label None), as EmotionLines' ``non-neutral`` rows. So the right refined distribution puts
each utterance's non-gold mass on *its* secondary emotion: the votes it got, not its class's average.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmemolr.corpus.model import Corpus, Dialogue, Utterance
from mmemolr.corpus.prepared import save_prepared

LABELS = ["joy", "excitement", "anger", "frustration", "sadness", "fear"]
PAIRS = [("joy", "excitement"), ("anger", "frustration"), ("sadness", "fear")]
FEATURE_FILE = "text-synthetic.h5"


def partner_of(label: str) -> str:
    for a, b in PAIRS:
        if label in (a, b):
            return b if label == a else a
    raise KeyError(label)


def make_synthetic(dialogues: dict[str, int] | None = None, length: tuple[int, int] = (6, 12), dim: int = 32,
                   signal: float = 3.0, noise: float = 0.5, mixed: float = 0.7, persistence: float = 0.5, speaker_scale: float = 0.2,
                   speakers: int = 4, seed: int = 0, name: str = "synthetic-mixed") -> tuple[Corpus, np.ndarray]:
    """The corpus and its (N, dim) utterance vectors in corpus order."""
    dialogues = dialogues or {"train": 160, "dev": 40, "test": 40}
    rng = np.random.default_rng(seed)
    protos = rng.normal(size=(len(LABELS), dim))
    protos *= signal / np.linalg.norm(protos, axis=1, keepdims=True)
    speaker_bias = rng.normal(scale=speaker_scale, size=(speakers * 8, dim))
    partner = [LABELS.index(partner_of(lab)) for lab in LABELS]
    out, vectors = [], []
    for split, count in dialogues.items():
        for d in range(count):
            did = f"{split}-{d:04d}"
            cast = rng.choice(len(speaker_bias), size=speakers, replace=False)
            utts, gold = [], int(rng.integers(len(LABELS)))
            for i in range(int(rng.integers(length[0], length[1] + 1))):
                if i and rng.random() >= persistence:
                    gold = int(rng.integers(len(LABELS)))
                spk = int(cast[int(rng.integers(speakers))])
                w = float(rng.uniform(0.5, 0.9)) if rng.random() < mixed else 1.0
                x = w * protos[gold] + (1 - w) * protos[partner[gold]] + speaker_bias[spk]
                vectors.append(x + rng.normal(scale=noise, size=dim))
                utts.append(Utterance(id=f"{did}_{i}", dialogue_id=did, index=i, speaker=f"s{spk}",
                                      text=f"utterance {i}", label=LABELS[gold], split=split,
                                      extra={"partner_weight": round(1 - w, 6)}))
            out.append(Dialogue(did, split, utts))
    corpus = Corpus(name=name, labels=list(LABELS), dialogues=out)
    corpus.validate()
    return corpus, np.asarray(vectors, dtype=np.float32)


def write_synthetic(folder: str | Path, **kwargs) -> Path:
    """Write ``folder``/corpus.json and ``folder``/text-synthetic.h5; returns ``folder``."""
    corpus, vectors = make_synthetic(**kwargs)
    write_prepared(folder, corpus, vectors, "synthetic-mixed", kwargs)
    return Path(folder)


def write_prepared(folder: str | Path, corpus: Corpus, vectors: np.ndarray, model_id: str,
                   options: dict[str, object]) -> None:
    """``folder``/corpus.json and ``folder``/text-synthetic.h5 holding ``vectors`` (corpus order)."""
    from mmemolr.store import FeatureWriter

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_prepared(corpus, folder)
    attrs = {"corpus_name": corpus.name, "corpus_fingerprint": corpus.fingerprint(), "modality": "text",
             "extractor": "synthetic", "extractor_config": {k: str(v) for k, v in sorted(options.items())},
             "dim": vectors.shape[1], "model_id": model_id}
    ids = corpus.utterance_ids()
    with FeatureWriter(folder / FEATURE_FILE, ids, attrs, overwrite=True) as writer:
        writer.write(ids, np.asarray(vectors, dtype=np.float32))


def recovery(z: np.ndarray, ids: list[str], corpus: Corpus) -> dict[str, object]:
    """How well targets ``z`` (N, C, rows = utterance ``ids`` of this corpus) recover the designed
    confusions: per class the share of its mean non-gold mass that goes to its partner (uniform: 1/5), and
    the rank correlation between an utterance's partner mass and its true secondary weight 1 - w."""
    from scipy.stats import spearmanr

    utts = {u.id: u for u in corpus.utterances()}
    gold = np.array([LABELS.index(utts[i].label) for i in ids])
    partner = np.array([LABELS.index(partner_of(utts[i].label)) for i in ids])
    true_mass = np.array([utts[i].extra["partner_weight"] for i in ids])
    shares = {}
    for k, label in enumerate(LABELS):
        mean = z[gold == k].mean(0)
        shares[label] = float(mean[LABELS.index(partner_of(label))] / max(1e-12, 1.0 - mean[k]))
    rho = float(spearmanr(true_mass, z[np.arange(len(ids)), partner])[0])
    return {"partner_share": shares, "min_share": min(shares.values()),
            "mean_share": float(np.mean(list(shares.values()))), "rho": rho}


# Each class's secondary emotions and their probabilities (mixed utterances of the annotated corpus).
SECONDARY = {
    "joy": {"excitement": 0.5, "sadness": 0.25, "anger": 0.25},
    "excitement": {"joy": 0.5, "fear": 0.25, "frustration": 0.25},
    "anger": {"frustration": 0.5, "joy": 0.25, "fear": 0.25},
    "frustration": {"anger": 0.5, "sadness": 0.25, "excitement": 0.25},
    "sadness": {"fear": 0.5, "frustration": 0.25, "joy": 0.25},
    "fear": {"sadness": 0.5, "anger": 0.25, "excitement": 0.25},
}
ANNOTATED_NAME = "synthetic-annotated"


def make_annotated(dialogues: dict[str, int] | None = None, length: tuple[int, int] = (6, 12), dim: int = 32,
                   signal: float = 3.0, noise: float = 0.5, mixed: float = 0.7, persistence: float = 0.5,
                   speaker_scale: float = 0.2, speakers: int = 4, annotators: int = 5,
                   annotator_noise: float = 0.1, seed: int = 0,
                   name: str = ANNOTATED_NAME) -> tuple[Corpus, np.ndarray]:
    """The corpus with simulated annotators' votes and its (N, dim) utterance vectors in corpus order.

    Each utterance's ``extra`` holds its truth: ``true_label``, ``secondary`` (None when pure) and
    ``secondary_weight`` (1 − w)."""
    dialogues = dialogues or {"train": 160, "dev": 40, "test": 40}
    rng = np.random.default_rng(seed)
    n_labels = len(LABELS)
    protos = rng.normal(size=(n_labels, dim))
    protos *= signal / np.linalg.norm(protos, axis=1, keepdims=True)
    speaker_bias = rng.normal(scale=speaker_scale, size=(speakers * 8, dim))
    secondary = [([LABELS.index(k) for k in SECONDARY[lab]], list(SECONDARY[lab].values())) for lab in LABELS]
    out, vectors, context_only = [], [], 0
    for split, count in dialogues.items():
        for d in range(count):
            did = f"{split}-{d:04d}"
            cast = rng.choice(len(speaker_bias), size=speakers, replace=False)
            utts, true = [], int(rng.integers(n_labels))
            for i in range(int(rng.integers(length[0], length[1] + 1))):
                if i and rng.random() >= persistence:
                    true = int(rng.integers(n_labels))
                spk = int(cast[int(rng.integers(speakers))])
                mixture = np.zeros(n_labels)
                second = None
                if rng.random() < mixed:
                    w = float(rng.uniform(0.5, 0.9))
                    second = int(rng.choice(secondary[true][0], p=secondary[true][1]))
                    mixture[true], mixture[second] = w, 1.0 - w
                else:
                    w = 1.0
                    mixture[true] = 1.0
                x = w * protos[true] + (1.0 - w) * (protos[second] if second is not None else 0.0) + speaker_bias[spk]
                vectors.append(x + rng.normal(scale=noise, size=dim))
                people = (1.0 - annotator_noise) * mixture + annotator_noise / n_labels
                counts = rng.multinomial(annotators, people)
                top = np.flatnonzero(counts == counts.max())
                label = LABELS[int(top[0])] if len(top) == 1 else None
                context_only += label is None
                utts.append(Utterance(
                    id=f"{did}_{i}", dialogue_id=did, index=i, speaker=f"s{spk}", text=f"utterance {i}",
                    label=label, split=split,
                    votes={LABELS[k]: int(c) for k, c in enumerate(counts) if c},
                    extra={"true_label": LABELS[true], "secondary": LABELS[second] if second is not None else None,
                           "secondary_weight": round(1.0 - w, 6),
                           **({"context_reason": "no majority"} if label is None else {})}))
            out.append(Dialogue(did, split, utts))
    corpus = Corpus(name=name, labels=list(LABELS), dialogues=out,
                    provenance={"format": "synthetic", "annotators": annotators, "annotator_noise": annotator_noise,
                                "seed": seed},
                    report={"context_only": {"no majority": context_only}})
    corpus.validate()
    return corpus, np.asarray(vectors, dtype=np.float32)


def write_annotated(folder: str | Path, **kwargs) -> Path:
    """Write ``folder``/corpus.json and ``folder``/text-synthetic.h5 of :func:`make_annotated`."""
    corpus, vectors = make_annotated(**kwargs)
    write_prepared(folder, corpus, vectors, "synthetic-annotated", kwargs)
    return Path(folder)


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

# MELD as released: 1,038 training, 114 dev and 280 test dialogues of 1-24 utterances, about 10 on average
# (9,989 training utterances), several speakers a dialogue; seven emotions.
MELD_SHAPE = CorpusShape(
    splits={"train": 1038, "dev": 114, "test": 280}, length=(1, 19), speakers=3,
    labels=("neutral", "surprise", "fear", "sadness", "joy", "disgust", "anger"),
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


def shaped_features(corpus: Corpus, dim: int = 64, signal: float = 0.35, seed: int = 0) -> np.ndarray:
    """(N, dim) text vectors for ``corpus``: a random prototype of norm sqrt(dim) per label times
    ``signal`` plus standard normal noise (a weak per-utterance signal, as with sentence vectors)."""
    rng = np.random.default_rng(seed)
    protos = rng.standard_normal((len(corpus.labels), dim))
    protos *= np.sqrt(dim) / np.linalg.norm(protos, axis=1, keepdims=True)
    utts = list(corpus.utterances())
    index = {label: i for i, label in enumerate(corpus.labels)}
    return signal * protos[[index[u.label] for u in utts]] + rng.standard_normal((len(utts), dim))


def prepare_shaped(features_dir: str | Path, shape: CorpusShape, name: str = "synthetic", seed: int = 0,
                   dim: int = 64, signal: float = 0.35, persistence: float = 0.8) -> Corpus:
    """Write ``<features_dir>/<name>/corpus.json`` and ``text-synthetic.h5``; return the corpus."""
    corpus = make_shaped_corpus(shape, name, seed, persistence)
    write_prepared(Path(features_dir) / name, corpus, shaped_features(corpus, dim, signal, seed),
                   f"synthetic signal={signal} seed={seed}", {"dim": dim, "signal": signal, "seed": seed})
    return corpus
