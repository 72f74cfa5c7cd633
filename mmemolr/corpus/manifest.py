"""Custom corpora from a CSV or JSONL manifest (format documented in docs/corpora.md).

Columns / keys:
  dialogue_id (str), utterance_index (int, order inside the dialogue), speaker, text, and optionally
  label, split (train/dev/test), utterance_id (default ``{dialogue_id}_u{utterance_index}``),
  audio_path, video_path (relative to the manifest's folder or absolute), start, end (seconds or
  HH:MM:SS.mmm inside the media file), votes (annotator votes: ``joy:3;neutral:2``; in JSONL also an object
  ``{"joy": 3, "neutral": 2}``; labels of the corpus or ``other``).
A labelled manifest has a label and a split on every row (a corpus to train or score); a label-free one
has no label on any row and optional splits (a corpus to predict). A mix is an error naming the row. In a
labelled manifest the label ``-`` marks a context-only row: kept in its dialogue as context, never scored.
The label set is the sorted set of labels found, unless ``labels`` is given (option ``labels``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mmemolr.corpus.model import OTHER, Corpus, CorpusError, Utterance, build_dialogues
from mmemolr.corpus.readers import parse_int, parse_time, read_csv_rows, read_text_file
from mmemolr.corpus.registry import CorpusAdapter, register_corpus

REQUIRED = ["dialogue_id", "utterance_index", "speaker", "text"]
# The label of a context-only row in a labelled manifest (an empty label stays an error: a forgotten label).
CONTEXT_ONLY = "-"
SPLIT_NAMES = {"train": "train", "dev": "dev", "valid": "dev", "validation": "dev", "val": "dev", "test": "test"}


def _value(rec: dict[str, Any], key: str) -> str:
    """The stripped value of an optional column or key ('' when absent or empty)."""
    value = rec.get(key)
    return "" if value is None else str(value).strip()


def _vote_count(count: Any, value: Any, where: str) -> int:
    if isinstance(count, int) and not isinstance(count, bool) and count >= 0:
        return count
    if isinstance(count, str) and count.strip().isdigit():
        return int(count.strip())
    raise CorpusError(f"{where}: votes {value!r}: count {count!r} is not a whole number (0 or more)")


def parse_votes(value: Any, where: str) -> dict[str, int] | None:
    """A manifest's votes cell: ``"joy:3;neutral:2"`` (or, from JSONL, ``{"joy": 3, "neutral": 2}``) ->
    ``{"joy": 3, "neutral": 2}``; None when empty. Syntax errors name ``where`` and the problem; whether the
    labels belong to the corpus is checked once the label set is known (:func:`check_votes`)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, dict):
        items = [(str(label).strip(), count) for label, count in value.items()]
    elif isinstance(value, str):
        items = []
        for part in (p.strip() for p in value.split(";")):
            label, sep, count = part.rpartition(":")
            if not part:
                continue
            if not sep or not label.strip():
                raise CorpusError(f"{where}: votes {value!r}: {part!r} is not label:count (write e.g. joy:3;neutral:2)")
            items.append((label.strip(), count.strip()))
    else:
        raise CorpusError(f"{where}: votes {value!r} must be a string like 'joy:3;neutral:2' (in JSONL also an "
                          "object like {\"joy\": 3})")
    votes: dict[str, int] = {}
    for label, count in items:
        if label in votes:
            raise CorpusError(f"{where}: votes {value!r} name {label!r} twice; give each label once with its count")
        votes[label] = _vote_count(count, value, where)
    if sum(votes.values()) == 0:
        raise CorpusError(f"{where}: votes {value!r} hold no vote; leave votes empty for an utterance nobody annotated")
    return votes


def find_manifest(root: Path) -> Path:
    if root.is_file():
        return root
    candidates = [p for name in ("manifest.csv", "manifest.jsonl") if (p := root / name).exists()]
    if len(candidates) != 1:
        raise CorpusError(f"{root}: expected exactly one of manifest.csv / manifest.jsonl, or pass the file itself")
    return candidates[0]


def _read_jsonl(path: Path) -> list[tuple[int, dict[str, Any]]]:
    out = []
    for line_no, line in enumerate(read_text_file(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise CorpusError(f"{path}: line {line_no}: invalid JSON ({err.msg})") from None
        if not isinstance(record, dict):
            raise CorpusError(f"{path}: line {line_no}: each line must be a JSON object")
        missing = [k for k in REQUIRED if k not in record]
        if missing:
            raise CorpusError(f"{path}: line {line_no}: missing key(s) {', '.join(missing)}")
        out.append((line_no, record))
    return out


def case_variant_warnings(path: Path, labels: list[str], first_line: dict[str, int]) -> list[str]:
    """Labels that differ only in case ("Joy", "joy") are separate classes; say so, naming where each appears."""
    groups: dict[str, list[str]] = {}
    for label in labels:
        groups.setdefault(label.casefold(), []).append(label)
    return [
        f"{path}: labels {' and '.join(f'{v!r} (line {first_line[v]})' for v in variants)} differ only in case "
        "and are separate classes; write them alike if they are one class"
        for variants in groups.values() if len(variants) > 1
    ]


@register_corpus
class ManifestAdapter(CorpusAdapter):
    """Options: ``name`` (corpus name, default the manifest's folder name), ``labels`` (ordered list)."""

    name = "manifest"
    description = "Your own corpus from a CSV/JSONL manifest"

    def load(self, root: Path) -> Corpus:
        path = find_manifest(root)
        records = _read_jsonl(path) if path.suffix == ".jsonl" else list(read_csv_rows(path, REQUIRED))
        base = path.parent
        rows: list[Utterance] = []
        seen: dict[str, int] = {}
        first_line: dict[str, int] = {}  # label -> line where it first appears
        missing_media = 0
        context_only = 0
        # A labelled manifest: some row has a label. Then every row needs a label (or CONTEXT_ONLY) and a split.
        labelled = next((line for line, rec in records if _value(rec, "label")), None)
        for line, rec in records:
            where = f"{path}: line {line}"
            did = str(rec["dialogue_id"]).strip()
            index = parse_int(str(rec["utterance_index"]), "utterance_index", where)
            uid = str(rec.get("utterance_id") or f"{did}_u{index}").strip()
            if uid in seen:
                raise CorpusError(f"{where}: duplicate utterance id {uid!r} (first at line {seen[uid]})")
            seen[uid] = line
            label = _value(rec, "label")
            if labelled is not None and not label:
                raise CorpusError(
                    f"{where}: empty label for utterance {uid!r}; line {labelled} has one, and a manifest is either "
                    "labelled on every row (to train or score) or on none (a label-free corpus, to predict); "
                    f"label {CONTEXT_ONLY!r} marks a context-only row (read as context, never scored)"
                )
            extra: dict[str, Any] = {}
            if label == CONTEXT_ONLY:
                label = ""
                extra["context_reason"] = f"label {CONTEXT_ONLY!r}"
                context_only += 1
            elif label:
                first_line.setdefault(label, line)
            split = None
            if _value(rec, "split"):
                split = SPLIT_NAMES.get(_value(rec, "split").lower())
                if split is None:
                    raise CorpusError(f"{where}: split {rec['split']!r} is not one of train, dev, test")
            elif labelled is not None:
                raise CorpusError(f"{where}: no split for utterance {uid!r}; every row of a labelled manifest needs "
                                  "one (train, dev, test)")
            media: dict[str, str | None] = {}
            for key in ("audio_path", "video_path"):
                value = rec.get(key)
                if value:
                    media_path = Path(str(value))
                    media_path = media_path if media_path.is_absolute() else base / media_path
                    if not media_path.exists():
                        missing_media += 1
                        if self.options.get("require_media"):
                            raise CorpusError(f"{where}: {key} {media_path} does not exist")
                    media[key] = str(media_path)
                else:
                    media[key] = None
            rows.append(
                Utterance(
                    id=uid, dialogue_id=did, index=index, speaker=str(rec["speaker"]).strip(),
                    text=str(rec["text"]), label=label or None, split=split,
                    audio_path=media["audio_path"], video_path=media["video_path"],
                    start=parse_time(str(rec["start"]), where) if rec.get("start") not in (None, "") else None,
                    end=parse_time(str(rec["end"]), where) if rec.get("end") not in (None, "") else None,
                    extra=extra, votes=parse_votes(rec.get("votes"), f"{where}: utterance {uid!r}"),
                )
            )
        if not rows:
            raise CorpusError(f"{path}: the manifest has no utterances")
        found = sorted({u.label for u in rows if u.label is not None})
        labels = list(self.options.get("labels") or found)
        warnings = case_variant_warnings(path, found, first_line)
        unknown = sorted(set(found) - set(labels))
        if unknown:
            first = next(u for u in rows if u.label in unknown)
            raise CorpusError(f"{path}: utterance {first.id!r} has label {first.label!r} not in labels {labels}")
        for u in rows:
            outside = [label for label in u.votes or {} if label not in labels and label != OTHER]
            if outside:
                raise CorpusError(
                    f"{path}: line {seen[u.id]}: utterance {u.id!r}: votes name {outside[0]!r}, which is neither a "
                    f"label of this manifest ({', '.join(labels) or 'none: no row has a label'}) nor {OTHER!r}; "
                    f"write it as one of them (a vote outside the labels counts as {OTHER}:N), or give the full label set "
                    "(option labels)"
                )
        dialogues = build_dialogues(rows)
        for d in dialogues:
            splits = {u.split for u in d.utterances}
            if len(splits) > 1:
                raise CorpusError(f"{path}: dialogue {d.id!r} spans several splits: {sorted(map(str, splits))}")
        return Corpus(
            name=str(self.options.get("name") or base.name),
            labels=labels,
            dialogues=dialogues,
            provenance={"format": path.suffix.lstrip("."), "file": str(path)},
            report={"missing_media": missing_media, "warnings": warnings,
                    **({"context_only": {f"label {CONTEXT_ONLY!r}": context_only}} if context_only else {})},
        )
