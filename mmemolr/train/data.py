"""From a TrainConfig to fused, checked, normalised data."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mmemolr.corpus import Corpus, corpus_dir, load_prepared
from mmemolr.fuse import (
    FusedData,
    ZNorm,
    build_fused,
    check_training_corpus,
    load_feature_files,
    normalise_modalities,
    resolve_feature_files,
)
from mmemolr.store import FeatureFile


@dataclass
class PreparedData:
    corpus: Corpus
    corpus_folder: Path
    files: dict[str, FeatureFile]
    norm: ZNorm
    data: FusedData


def load_training_data(corpus_name: str, modalities: list[str], features: dict, features_dir: str | Path,
                       availability_input: bool = True, norm: ZNorm | None = None,
                       labels: list[str] | None = None, training: bool = True) -> PreparedData:
    """Load and check the corpus and feature files; fit the z-normalisation on train unless given.

    ``availability_input``: append one 0/1 column per modality (what every run reads); off for a
    context-free baseline on the vectors alone.

    ``training`` checks train/dev/test exist and are labelled within the label set. ``labels`` fixes
    the label order (a trained model's); otherwise the corpus's own.
    """
    corpus = load_prepared(corpus_name, features_dir)
    folder = corpus_dir(corpus_name, features_dir)
    codes = normalise_modalities(modalities)
    if training:
        check_training_corpus(corpus)
    paths = resolve_feature_files(folder, codes, features)
    files = load_feature_files(paths, corpus)
    if norm is None:
        norm = ZNorm.fit(files, [u.id for u in corpus.utterances("train")])
    else:
        for code, ff in files.items():
            if code not in norm.mean or norm.mean[code].shape[0] != ff.dim:
                expected = norm.mean[code].shape[0] if code in norm.mean else "none"
                raise ValueError(f"{ff.path} has {ff.dim}-d {ff.modality} features; the model was trained on "
                                 f"{expected}-d ones")
    data = build_fused(corpus, files, norm, labels if labels is not None else corpus.labels, availability_input)
    return PreparedData(corpus, folder, files, norm, data)
