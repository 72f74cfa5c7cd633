"""Registry of corpus adapters: adding a corpus is adding one module with a decorated class."""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

from mmemolr.corpus.model import Corpus
from mmemolr.corpus.readers import logging_decoding

CORPUS_ADAPTERS: dict[str, type[CorpusAdapter]] = {}


class CorpusAdapter(ABC):
    """Reads one corpus format from ``root`` into a :class:`Corpus`."""

    name: ClassVar[str]
    description: ClassVar[str] = ""

    def __init__(self, **options: Any) -> None:
        self.options = options

    @abstractmethod
    def load(self, root: Path) -> Corpus: ...


def register_corpus(cls: type[CorpusAdapter]) -> type[CorpusAdapter]:
    if cls.name in CORPUS_ADAPTERS:
        raise ValueError(f"corpus adapter {cls.name!r} is registered twice")
    CORPUS_ADAPTERS[cls.name] = cls
    return cls


def corpus_formats() -> list[str]:
    """Names of the registered corpus formats (the built-in adapters register on first use)."""
    from mmemolr.corpus import emorynlp, emotionlines, iemocap, manifest, meld, transcript  # noqa: F401

    return sorted(CORPUS_ADAPTERS)


def format_name(adapter: str) -> str:
    """The registered format ``adapter`` names, in any case (``MELD`` -> ``meld``)."""
    known = corpus_formats()
    name = str(adapter).strip().lower()
    if name not in known:
        raise ValueError(f"unknown corpus format {adapter!r}; known: {', '.join(known)}")
    return name


def load_corpus(adapter: str, root: str | Path, **options: Any) -> Corpus:
    """Load a corpus with adapter ``adapter`` (meld, emorynlp, emotionlines, iemocap, manifest, transcript;
    any case) from ``root``."""
    adapter = format_name(adapter)
    root = Path(root)
    if not root.exists():
        raise FileNotFoundError(f"corpus root {root} does not exist")
    with logging_decoding() as decoding:
        corpus = CORPUS_ADAPTERS[adapter](**options).load(root)
    corpus.validate()
    if decoding.lines:
        corpus.report["cp1252_lines"] = sum(len(lines) for lines in decoding.lines.values())
        corpus.report.setdefault("warnings", []).extend(decoding.warnings())
    corpus.provenance.setdefault("adapter", adapter)
    corpus.provenance.setdefault("root", str(root.resolve()))
    return corpus
