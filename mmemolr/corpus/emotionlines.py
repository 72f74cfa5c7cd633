"""EmotionLines / EmotionX (Friends): ``friends_{train,dev,test}.json`` with every annotator's vote.

Each file is an array of dialogues; each dialogue an array of ``{"speaker", "utterance", "emotion",
"annotation"}``. ``annotation`` is a 7-digit string of vote counts in the order of ``ANNOTATION_ORDER``
(five annotators: the digits sum to 5); ``emotion`` is the majority label, or ``non-neutral`` when there is
none. Such rows are kept in their dialogue as context-only utterances (label None).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmemolr.corpus.model import Corpus, CorpusError, Dialogue, Utterance
from mmemolr.corpus.readers import read_text_file, repair_c1
from mmemolr.corpus.registry import CorpusAdapter, register_corpus

# The order of the digits of ``annotation``; also the corpus's label order.
ANNOTATION_ORDER = ["neutral", "joy", "sadness", "fear", "anger", "surprise", "disgust"]
ANNOTATORS = 5
NO_MAJORITY = "non-neutral"
JSON_FILES = {"train": "friends_train.json", "dev": "friends_dev.json", "test": "friends_test.json"}
KEYS = ("speaker", "utterance", "emotion", "annotation")
SHOWN = 10  # examples named in a warning


def json_type(value: Any) -> str:
    """The JSON name of a parsed value's type (``dict`` -> ``object``)."""
    names = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number"}
    return "null" if value is None else names.get(type(value), type(value).__name__)


def find_release(root: Path) -> Path:
    """The folder holding the three JSON files: ``root`` or a folder up to two levels below it."""
    for folder in [root, *sorted(root.glob("*/")), *sorted(root.glob("*/*/"))]:
        if all((folder / name).is_file() for name in JSON_FILES.values()):
            return folder
    found = sorted(p.name for p in root.glob("*.json")) if root.is_dir() else [root.name]
    raise CorpusError(
        f"{root}: EmotionLines files not found; --root must be a folder holding {', '.join(JSON_FILES.values())} "
        f"(the Friends part of the EmotionLines / EmotionX release; found {', '.join(found) or 'no .json file'})"
    )


def parse_annotation(value: Any, where: str) -> dict[str, int]:
    """``"2030000"`` -> ``{"neutral": 2, "sadness": 3}`` (labels without a vote left out)."""
    if not isinstance(value, str) or len(value) != len(ANNOTATION_ORDER) or not value.isdigit():
        raise CorpusError(
            f"{where}: annotation {value!r} must be a string of {len(ANNOTATION_ORDER)} digits, the votes for "
            f"{', '.join(ANNOTATION_ORDER)}; fix the row or restore the file from the release"
        )
    counts = [int(c) for c in value]
    if sum(counts) != ANNOTATORS:
        raise CorpusError(
            f"{where}: annotation {value!r} sums to {sum(counts)} votes, not {ANNOTATORS} (one per annotator); "
            "fix the row or restore the file from the release"
        )
    return {label: n for label, n in zip(ANNOTATION_ORDER, counts) if n}


def majority(votes: dict[str, int]) -> str | None:
    """The label with the most votes, None on a tie for the most."""
    top = max(votes.values())
    leaders = [label for label, n in votes.items() if n == top]
    return leaders[0] if len(leaders) == 1 else None


@dataclass
class _Tally:
    """What the adapter repaired, kept as context or questions, over the three files."""

    repaired: int = 0
    context_only: int = 0
    empty: list[str] = field(default_factory=list)
    disagreements: list[str] = field(default_factory=list)


@register_corpus
class EmotionLinesAdapter(CorpusAdapter):
    name = "emotionlines"
    description = "EmotionLines / EmotionX (Chen et al., 2018): Friends dialogues, 7 emotions, 5 annotators' votes"

    def load(self, root: Path) -> Corpus:
        folder = find_release(root)
        dialogues: list[Dialogue] = []
        tally = _Tally()
        for split, filename in JSON_FILES.items():
            dialogues += read_split(folder / filename, split, tally)
        warnings = []
        if tally.disagreements:
            warnings.append(
                f"{len(tally.disagreements)} utterance(s) whose emotion is not the annotation's unique most-voted "
                f"label (the emotion is kept as the gold label): {', '.join(tally.disagreements[:SHOWN])}"
                + (f" and {len(tally.disagreements) - SHOWN} more" if len(tally.disagreements) > SHOWN else "")
            )
        if tally.empty:
            warnings.append(f"{len(tally.empty)} empty dialogue(s) skipped: {', '.join(tally.empty[:SHOWN])}")
        return Corpus(
            name="emotionlines",
            labels=list(ANNOTATION_ORDER),
            dialogues=dialogues,
            provenance={"format": "json", "folder": str(folder), "annotators": ANNOTATORS},
            report={
                "repaired_c1_utterances": tally.repaired,
                "context_only": {NO_MAJORITY: tally.context_only},
                "label_vote_disagreements": len(tally.disagreements),
                "empty_dialogues": len(tally.empty),
                "warnings": warnings,
            },
        )


def read_split(path: Path, split: str, tally: _Tally) -> list[Dialogue]:
    try:
        data: Any = json.loads(read_text_file(path))
    except json.JSONDecodeError as err:
        raise CorpusError(f"{path}: line {err.lineno}: invalid JSON ({err.msg})") from None
    if not isinstance(data, list):
        raise CorpusError(f"{path}: expected an array of dialogues, got a JSON {json_type(data)}")
    dialogues = []
    for d, rows in enumerate(data):
        did = f"{split}_d{d:03d}"
        if not isinstance(rows, list):
            raise CorpusError(f"{path}: dialogue {d} ({did}, counting from 0): expected an array of utterances, "
                              f"got a JSON {json_type(rows)}")
        if not rows:
            tally.empty.append(f"{path.name} dialogue {d}")
            continue
        utterances = [read_utterance(row, f"{path}: dialogue {d}, utterance {k} ({did}_u{k:02d}, counting from 0)",
                                     did, k, split, tally) for k, row in enumerate(rows)]
        dialogues.append(Dialogue(did, split, utterances))
    return dialogues


def read_utterance(row: Any, where: str, did: str, k: int, split: str, tally: _Tally) -> Utterance:
    if not isinstance(row, dict):
        raise CorpusError(f"{where}: expected an object with keys {', '.join(KEYS)}, got a JSON {json_type(row)}")
    missing = [key for key in KEYS if key not in row]
    if missing:
        raise CorpusError(f"{where}: missing key(s) {', '.join(missing)}; each utterance has {', '.join(KEYS)}")
    for key in ("speaker", "utterance", "emotion"):
        if not isinstance(row[key], str):
            raise CorpusError(f"{where}: {key} must be a string, got {row[key]!r}")
    votes = parse_annotation(row["annotation"], where)
    emotion = row["emotion"].strip().lower()
    extra: dict[str, Any] = {}
    if emotion == NO_MAJORITY:
        label = None
        extra["context_reason"] = NO_MAJORITY
        tally.context_only += 1
    elif emotion in ANNOTATION_ORDER:
        label = emotion
        if majority(votes) != label:
            tally.disagreements.append(f"{did}_u{k:02d} ({emotion}, annotation {row['annotation']})")
    else:
        raise CorpusError(f"{where}: unknown emotion {row['emotion']!r}; EmotionLines has "
                          f"{', '.join(ANNOTATION_ORDER)} and {NO_MAJORITY!r} (no majority)")
    text, fixed_text = repair_c1(row["utterance"])
    speaker, fixed_speaker = repair_c1(row["speaker"].strip())
    tally.repaired += fixed_text or fixed_speaker
    return Utterance(id=f"{did}_u{k:02d}", dialogue_id=did, index=k, speaker=speaker, text=text, label=label,
                     split=split, extra=extra, votes=votes)
