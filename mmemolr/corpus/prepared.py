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


def prepared_names(features_dir: str | Path = DEFAULT_FEATURES_DIR) -> list[str]:
    """Names of the prepared corpora under ``features_dir``."""
    root = Path(features_dir)
    return sorted(p.parent.name for p in root.glob(f"*/{CORPUS_FILE}")) if root.is_dir() else []


def corpus_dir(name_or_dir: str | Path, features_dir: str | Path = DEFAULT_FEATURES_DIR) -> Path:
    """A path holding corpus.json as given, else ``features_dir/<name>`` (the name in any case when
    only one prepared corpus matches it: ``MELD`` finds ``features/meld``)."""
    candidate = Path(name_or_dir)
    if (candidate / CORPUS_FILE).exists() or candidate.name == CORPUS_FILE:
        return candidate.parent if candidate.name == CORPUS_FILE else candidate
    folder = Path(features_dir) / str(name_or_dir)
    if not (folder / CORPUS_FILE).exists():
        same = [n for n in prepared_names(features_dir) if n.lower() == str(name_or_dir).lower()]
        if len(same) == 1:
            return Path(features_dir) / same[0]
    return folder


def canonical_corpus(name_or_dir: str, features_dir: str | Path = DEFAULT_FEATURES_DIR) -> str:
    """The prepared corpus's own name when ``name_or_dir`` names it in another case (``MELD`` -> ``meld``),
    so run folders and configs/<corpus>.yaml follow the corpus; anything else as given."""
    if (Path(name_or_dir) / CORPUS_FILE).exists() or Path(name_or_dir).name == CORPUS_FILE:
        return name_or_dir
    folder = corpus_dir(name_or_dir, features_dir)
    return folder.name if (folder / CORPUS_FILE).exists() else name_or_dir


def missing_corpus_message(name: str, path: Path, features_dir: str | Path) -> str:
    """What to do when ``name`` is no prepared corpus: the close prepared names, the formats to prepare."""
    import difflib

    from mmemolr.corpus.registry import corpus_formats

    formats = corpus_formats()
    prepared = prepared_names(features_dir)
    close = difflib.get_close_matches(name, prepared, n=1)
    message = f"no prepared corpus at {path}"
    if close:
        message += f"; did you mean --corpus {close[0]}?"
    elif prepared:
        message += f" (prepared in {features_dir}: {', '.join(prepared)})"
    if name.lower() in formats:
        how = f"mmemolr corpus prepare --corpus {name.lower()} --root RAW_FILES"
    else:
        how = f"mmemolr corpus prepare --corpus FORMAT --root RAW_FILES (formats: {', '.join(formats)})"
    return f"{message}; to prepare one run `{how}` first"


def save_prepared(corpus: Corpus, out_dir: str | Path) -> Path:
    out = Path(out_dir) / CORPUS_FILE
    data = {"format_version": FORMAT_VERSION, "fingerprint": corpus.fingerprint(), **corpus.to_dict()}
    write_json_atomic(out, data, indent=None)
    return out


def load_prepared(name_or_dir: str | Path, features_dir: str | Path = DEFAULT_FEATURES_DIR) -> Corpus:
    path = corpus_dir(name_or_dir, features_dir) / CORPUS_FILE
    if not path.exists():
        raise FileNotFoundError(missing_corpus_message(str(name_or_dir), path, features_dir))
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: format version {data.get('format_version')} is not {FORMAT_VERSION}; prepare it again")
    corpus = Corpus.from_dict(data)
    if corpus.fingerprint() != data["fingerprint"]:
        raise ValueError(f"{path}: contents do not match the stored fingerprint (edited by hand?); prepare it again")
    return corpus
