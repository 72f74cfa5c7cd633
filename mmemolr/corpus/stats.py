"""Readable summaries of a corpus: counts per split and label, speakers, dialogue lengths."""

from __future__ import annotations

from collections import Counter

import numpy as np

from mmemolr.corpus.model import Corpus
from mmemolr.tables import format_table


def corpus_summary(corpus: Corpus) -> str:
    splits = corpus.splits
    parts = [f"corpus {corpus.name}  fingerprint {corpus.fingerprint()[:16]}"]
    rows = []
    for split in splits:
        dialogues = corpus.split_dialogues(split)
        lengths = np.array([len(d) for d in dialogues])
        speakers = {u.speaker for d in dialogues for u in d.utterances}
        rows.append([split, len(dialogues), int(lengths.sum()), len(speakers), float(lengths.mean()),
                     int(np.median(lengths)), int(lengths.min()), int(lengths.max())])
    parts.append(format_table(
        ["split", "dialogues", "utterances", "speakers", "mean len", "median len", "min len", "max len"], rows,
    ))
    counts = {split: Counter(u.label for u in corpus.utterances(split)) for split in splits}
    label_rows = []
    for label in corpus.labels:
        row: list = [label]
        for split in splits:
            n = counts[split][label]
            total = sum(counts[split].values())
            row.append(f"{n:,} ({100 * n / total:.1f}%)" if total else "0")
        label_rows.append(row)
    parts.append(format_table(["label", *splits], label_rows))
    top = Counter(u.speaker for u in corpus.utterances()).most_common(10)
    parts.append(format_table(["top speaker", "utterances"], [[s, n] for s, n in top]))
    report = {k: v for k, v in corpus.report.items() if v not in (0, None, {}, []) and k != "warnings"}
    if report:
        parts.append("adapter report: " + ", ".join(f"{k}={v}" for k, v in report.items()))
    warnings = corpus.report.get("warnings") or []
    if warnings:
        parts.append("\n".join(f"warning: {w}" for w in warnings))
    return "\n\n".join(parts)
