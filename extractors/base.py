"""Extractor interface and registry (in the style of lhotse's feature extractors).

An extractor is a small class with a ``name``, a ``modality``, a config dataclass, ``feature_dim()`` and a
batched ``extract_batch()``; it registers itself with ``@register_extractor``. Adding an extractor is
adding one module to this package and listing it in ``extractors/__init__.py``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from mmemolr.corpus.model import Corpus, Utterance

EXTRACTORS: dict[str, type[Extractor]] = {}
MODALITIES = ("text", "audio", "visual")


class ItemError(Exception):
    """One utterance could not be extracted (missing, corrupt, empty or silent media; no face).

    The runner records it in the feature file's errors table and marks the row unavailable.
    """

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message


@dataclass
class ExtractorConfig:
    """Base of every extractor's config dataclass."""


class Extractor(ABC):
    name: ClassVar[str]
    modality: ClassVar[str]
    config_class: ClassVar[type[ExtractorConfig]] = ExtractorConfig
    # Config keys that locate the weights (a hub id or a folder): features are identified by the weights'
    # SHA-256 instead, so the same weights under another path are the same features.
    weights_keys: ClassVar[tuple[str, ...]] = ()
    # Config keys that change only speed or memory, never the vectors (batching).
    throughput_keys: ClassVar[tuple[str, ...]] = ()
    # True when CPU worker processes speed it up (per-item signal processing); False for batched
    # neural encoders that use all cores (or the GPU) in one process.
    cpu_parallel: ClassVar[bool] = False
    # Modules the worker processes' fork server imports once, so every worker starts with them loaded
    # instead of paying the (lazy) imports on its first item: ~2 s for librosa + scipy.signal.
    worker_preload: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config: ExtractorConfig | None = None, device: str = "cpu") -> None:
        self.config = config if config is not None else self.config_class()
        self.device = device

    @abstractmethod
    def feature_dim(self) -> int:
        """Length of the vector produced for one utterance."""

    @abstractmethod
    def extract_batch(self, items: list[Utterance], corpus: Corpus) -> list[np.ndarray | ItemError]:
        """One float32 vector (or an ItemError) per item, in order."""

    def plan_batches(self, items: list[Utterance], corpus: Corpus, batch_size: int) -> list[list[Utterance]]:
        """Group the items to extract into the batches given to ``extract_batch``.

        Default: consecutive runs of ``batch_size`` items in corpus order. Batched encoders override it,
        e.g. to sort by length under a token budget; every item must appear in exactly one batch.
        """
        size = max(1, int(batch_size))
        return [items[i : i + size] for i in range(0, len(items), size)]

    def provenance(self) -> dict[str, Any]:
        """What else is needed to redo the run: model id, weights hash, library versions."""
        return {}

    def absent_reason(self, utt: Utterance) -> str | None:
        """Why ``utt`` has nothing for this modality (a text-only or audio-only row of a mixed-media
        corpus), or None. Absent items are masked and counted as absent, never as failures; a media file
        that is named but missing or damaged is a failure, found by ``extract_batch``."""
        if self.modality == "text":
            return None if utt.text.strip() else "the utterance has no text"
        if self.modality == "audio":
            return None if utt.audio_path else "the utterance has no audio file"
        return None if utt.video_path else "the utterance has no video file"

    def default_output_name(self) -> str:
        """File stem of the default output, e.g. ``text-roberta-base``."""
        return f"{self.modality}-{self.name}"


def register_extractor(cls: type[Extractor]) -> type[Extractor]:
    if cls.modality not in MODALITIES:
        raise ValueError(f"extractor {cls.__name__}: modality {cls.modality!r} is not one of {MODALITIES}")
    if cls.name in EXTRACTORS:
        raise ValueError(f"extractor {cls.name!r} is registered twice")
    EXTRACTORS[cls.name] = cls
    return cls


def get_extractor(name: str) -> type[Extractor]:
    import extractors  # noqa: F401  (registers the built-in extractors)

    if name not in EXTRACTORS:
        raise ValueError(f"unknown extractor {name!r}; known: {', '.join(sorted(EXTRACTORS))}")
    return EXTRACTORS[name]
