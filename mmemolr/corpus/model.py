"""In-memory model of an ERC corpus: dialogues of ordered utterances."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

SPLITS = ("train", "dev", "test")
# The vote bucket for annotator votes outside the corpus's label set (e.g. IEMOCAP's "Other", "Surprise").
OTHER = "other"
# How a corpus without splits (a label-free one, to predict) shows its one group of dialogues.
UNSPLIT = "unsplit"


class CorpusError(ValueError):
    """A malformed corpus record; the message names the file, row and what to do."""


@dataclass
class Utterance:
    """One utterance. ``id`` is stable across runs and unique within the corpus."""

    id: str
    dialogue_id: str
    index: int  # 0-based position inside the dialogue after ordering
    speaker: str
    text: str
    # None: no usable label. In a label-free corpus (to predict) no utterance has one; in a labelled corpus
    # such an utterance is *context-only*: read by the model as context, left out of every loss and metric
    # (an EmotionLines row without a majority, an IEMOCAP turn outside the six classes).
    label: str | None
    split: str | None  # None: no split (a label-free corpus)
    audio_path: str | None = None
    video_path: str | None = None
    start: float | None = None  # seconds inside the media file, when it is longer than the utterance
    end: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # Annotator votes, where the corpus records them: corpus label (or OTHER) -> number of votes.
    votes: dict[str, int] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Utterance:
        return cls(**data)


@dataclass
class Dialogue:
    id: str
    split: str | None
    utterances: list[Utterance]

    @property
    def speakers(self) -> list[str]:
        """Distinct speakers in order of first appearance."""
        return list(dict.fromkeys(u.speaker for u in self.utterances))

    def __len__(self) -> int:
        return len(self.utterances)


@dataclass
class Corpus:
    """A corpus: its name, its ordered label set and its dialogues.

    ``report`` holds what the adapter filtered or repaired (counts with reasons), so nothing is
    dropped silently, and ``report["warnings"]`` what the user should look at (printed by prepare and
    inspect); ``provenance`` says where the corpus came from.
    """

    name: str
    labels: list[str]
    dialogues: list[Dialogue]
    provenance: dict[str, Any] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)

    def utterances(self, split: str | None = None) -> Iterator[Utterance]:
        for dialogue in self.dialogues:
            if split is None or dialogue.split == split:
                yield from dialogue.utterances

    def split_dialogues(self, split: str | None) -> list[Dialogue]:
        return [d for d in self.dialogues if d.split == split]

    @property
    def splits(self) -> list[str]:
        """Named splits present (train, dev, test first); dialogues without a split are not listed."""
        present = {d.split for d in self.dialogues if d.split is not None}
        return [s for s in SPLITS if s in present] + sorted(present - set(SPLITS))

    @property
    def groups(self) -> list[str | None]:
        """The named splits, then None when some dialogues have no split."""
        return self.splits + ([None] if any(d.split is None for d in self.dialogues) else [])

    @property
    def has_votes(self) -> bool:
        """Some utterance carries annotator votes."""
        return any(u.votes for u in self.utterances())

    def context_only(self, split: str | None = None) -> list[Utterance]:
        """The utterances without a usable label in a labelled corpus (none in a label-free one)."""
        if self.label_free:
            return []
        return [u for u in self.utterances(split) if u.label is None]

    @property
    def label_free(self) -> bool:
        """No utterance has a label: a corpus that can be extracted and predicted, never trained or scored."""
        return all(u.label is None for u in self.utterances())

    def utterance_ids(self) -> list[str]:
        return [u.id for u in self.utterances()]

    def label_index(self, label: str) -> int:
        return self.labels.index(label)

    def fingerprint(self) -> str:
        """SHA-256 over what defines the corpus for features and training.

        Ids, order, split, speaker, text, label and annotator votes: a feature file built from a corpus with another
        fingerprint is not aligned to this one. Media paths are excluded so moving media does not
        invalidate features.
        """
        h = hashlib.sha256()
        h.update(json.dumps([self.name, self.labels]).encode())
        for d in self.dialogues:
            for u in d.utterances:
                record = [u.id, d.id, u.split, u.speaker, u.text, u.label]
                if u.votes:  # only then, so corpora without votes keep their fingerprint
                    record.append(sorted(u.votes.items()))
                h.update(json.dumps(record).encode())
                h.update(b"\n")
        return h.hexdigest()

    def validate(self) -> None:
        """Check invariants every adapter must guarantee."""
        seen: set[str] = set()
        for d in self.dialogues:
            if not d.utterances:
                raise CorpusError(f"dialogue {d.id!r} has no utterances")
            for i, u in enumerate(d.utterances):
                if u.id in seen:
                    raise CorpusError(f"duplicate utterance id {u.id!r} in dialogue {d.id!r}")
                seen.add(u.id)
                if u.index != i or u.dialogue_id != d.id or u.split != d.split:
                    raise CorpusError(f"utterance {u.id!r} is inconsistent with dialogue {d.id!r}")
                if u.label is not None and u.label not in self.labels:
                    raise CorpusError(
                        f"utterance {u.id!r} has label {u.label!r}, not in the corpus labels {self.labels}"
                    )
                if u.votes is not None:
                    check_votes(u.votes, self.labels, f"utterance {u.id!r}")

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "labels": list(self.labels),
            "provenance": self.provenance,
            "report": self.report,
            "dialogues": [
                {"id": d.id, "split": d.split, "utterances": [u.to_dict() for u in d.utterances]}
                for d in self.dialogues
            ],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Corpus:
        dialogues = [
            Dialogue(d["id"], d["split"], [Utterance.from_dict(u) for u in d["utterances"]])
            for d in data["dialogues"]
        ]
        return cls(
            name=data["name"],
            labels=list(data["labels"]),
            dialogues=dialogues,
            provenance=data.get("provenance", {}),
            report=data.get("report", {}),
        )


def check_votes(votes: dict[str, int], labels: list[str], where: str) -> None:
    """Votes name corpus labels or OTHER, count with non-negative integers, and hold at least one vote."""
    if not isinstance(votes, dict):
        raise CorpusError(f"{where}: votes must map labels to counts, got {votes!r}")
    for label, count in votes.items():
        if label not in labels and label != OTHER:
            raise CorpusError(f"{where}: votes name {label!r}, which is neither a corpus label ({', '.join(labels)}) "
                              f"nor {OTHER!r}")
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise CorpusError(f"{where}: the vote count for {label!r} must be a non-negative integer, got {count!r}")
    if sum(votes.values()) == 0:
        raise CorpusError(f"{where}: votes hold no vote; leave votes out for an utterance nobody annotated")


def build_dialogues(
    rows: list[Utterance], order_key: str = "index"
) -> list[Dialogue]:
    """Group utterances into dialogues in first-seen order, sort each by ``order_key`` and renumber."""
    groups: dict[str, list[Utterance]] = {}
    for u in rows:
        groups.setdefault(u.dialogue_id, []).append(u)
    dialogues = []
    for did, utts in groups.items():
        utts.sort(key=lambda u: getattr(u, order_key))
        for i, u in enumerate(utts):
            u.index = i
        dialogues.append(Dialogue(did, utts[0].split, utts))
    return dialogues
