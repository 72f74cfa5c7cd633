"""Prepared corpora on disk: ``<dir>/corpus.json``, written by ``mmemolr corpus prepare``.

Every later command (extract, train, compare) takes ``--corpus NAME_OR_DIR`` and finds the corpus here.
"""

from __future__ import annotations

import json
from pathlib import Path

from mmemolr.corpus.model import Corpus
from mmemolr.fileio import write_json_atomic

CORPUS_FILE = "corpus.json"
FORMAT_VERSION = 1
DEFAULT_FEATURES_DIR = Path("features")


def corpus_dir(name_or_dir: str | Path, features_dir: str | Path = DEFAULT_FEATURES_DIR) -> Path:
    """A path holding corpus.json as given, else ``features_dir/<name>``."""
    candidate = Path(name_or_dir)
    if (candidate / CORPUS_FILE).exists() or candidate.name == CORPUS_FILE:
        return candidate.parent if candidate.name == CORPUS_FILE else candidate
    return Path(features_dir) / str(name_or_dir)


def save_prepared(corpus: Corpus, out_dir: str | Path) -> Path:
    out = Path(out_dir) / CORPUS_FILE
    data = {"format_version": FORMAT_VERSION, "fingerprint": corpus.fingerprint(), **corpus.to_dict()}
    write_json_atomic(out, data, indent=None)
    return out


def load_prepared(name_or_dir: str | Path, features_dir: str | Path = DEFAULT_FEATURES_DIR) -> Corpus:
    path = corpus_dir(name_or_dir, features_dir) / CORPUS_FILE
    if not path.exists():
        raise FileNotFoundError(
            f"no prepared corpus at {path}; run `mmemolr corpus prepare --corpus {name_or_dir} --root RAW_FILES` first"
        )
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: format version {data.get('format_version')} is not {FORMAT_VERSION}; prepare it again")
    corpus = Corpus.from_dict(data)
    if corpus.fingerprint() != data["fingerprint"]:
        raise ValueError(f"{path}: contents do not match the stored fingerprint (edited by hand?); prepare it again")
    return corpus
