"""Corpus layer: one in-memory model and an adapter per corpus format."""

from mmemolr.corpus.model import SPLITS, UNSPLIT, Corpus, CorpusError, Dialogue, Utterance
from mmemolr.corpus.prepared import corpus_dir, load_prepared, save_prepared
from mmemolr.corpus.registry import CORPUS_ADAPTERS, CorpusAdapter, load_corpus, register_corpus

__all__ = [
    "CORPUS_ADAPTERS", "SPLITS", "UNSPLIT", "Corpus", "CorpusAdapter", "CorpusError", "Dialogue", "Utterance",
    "corpus_dir", "load_corpus", "load_prepared", "register_corpus", "save_prepared",
]
