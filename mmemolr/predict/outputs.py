"""What ``mmemolr predict`` writes: one row per utterance with the full probability distribution
(``predictions.csv``, ``predictions.json``) and a timeline PNG per conversation."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mmemolr.fileio import write_json_atomic, write_text_atomic

CSV_NAME = "predictions.csv"
JSON_NAME = "predictions.json"


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


def write_csv(path: Path, records: Sequence[dict[str, Any]], labels: Sequence[str], with_split: bool,
              with_gold: bool) -> None:
    """dialogue_id, utterance_id, speaker, start, end, [split], [gold], pred, confidence, prob_<label>..., text.

    A label-free corpus has no gold column (and no split column without splits): nothing is invented."""
    header = ["dialogue_id", "utterance_id", "speaker", "start", "end"]
    header += (["split"] if with_split else []) + (["gold"] if with_gold else [])
    header += ["pred", "confidence", *[f"prob_{lab}" for lab in labels], "text"]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for r in records:
        row = [r["dialogue_id"], r["utterance_id"], r["speaker"], _number(r["start"]), _number(r["end"])]
        row += ([r["split"] or ""] if with_split else []) + ([r["gold"] or ""] if with_gold else [])
        row += [r["pred"], f"{r['confidence']:.6f}", *[f"{r['probabilities'][lab]:.6f}" for lab in labels], r["text"]]
        writer.writerow(row)
    write_text_atomic(path, buf.getvalue())


def write_json(path: Path, header: dict[str, Any], records: Sequence[dict[str, Any]], with_split: bool,
               with_gold: bool) -> None:
    """``header`` (run, corpus, labels, metrics, feature files) plus the utterances grouped by dialogue."""
    dialogues: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        item = {k: v for k, v in r.items() if k != "dialogue_id"
                and not (k == "split" and not with_split) and not (k == "gold" and not with_gold)}
        dialogues.setdefault(r["dialogue_id"], []).append(item)
    write_json_atomic(path, {**header, "dialogues": [{"id": d, "utterances": u} for d, u in dialogues.items()]})


def timeline_name(dialogue_id: str) -> str:
    return "timeline-" + re.sub(r"[^A-Za-z0-9_.+-]+", "-", dialogue_id).strip("-.") + ".png"


def write_timelines(out_dir: Path, records: Sequence[dict[str, Any]], labels: Sequence[str],
                    title: str) -> tuple[list[Path], list[str]]:
    """A timeline PNG per dialogue whose utterances all have start and end times; the ids of the others."""
    from mmemolr.report.timeline import timeline_figure

    by_dialogue: dict[str, list[dict[str, Any]]] = {}
    for r in records:
        by_dialogue.setdefault(r["dialogue_id"], []).append(r)
    made, untimed = [], []
    for dialogue, items in by_dialogue.items():
        if any(r["start"] is None or r["end"] is None for r in items):
            untimed.append(dialogue)
            continue
        made.append(timeline_figure(f"{title} / {dialogue}", items, labels, out_dir / timeline_name(dialogue)))
    return made, untimed
