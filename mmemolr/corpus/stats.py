"""Readable summaries of a corpus: counts per split and label, speakers, dialogue lengths."""

from __future__ import annotations

from collections import Counter

import numpy as np

from mmemolr.corpus.model import UNSPLIT, Corpus
from mmemolr.tables import format_table


def corpus_summary(corpus: Corpus) -> str:
    groups = corpus.groups
    names = [UNSPLIT if g is None else g for g in groups]
    parts = [f"corpus {corpus.name}  fingerprint {corpus.fingerprint()[:16]}"]
    rows = []
    for group, name in zip(groups, names):
        dialogues = corpus.split_dialogues(group)
        lengths = np.array([len(d) for d in dialogues])
        speakers = {u.speaker for d in dialogues for u in d.utterances}
        rows.append([name, len(dialogues), int(lengths.sum()), len(speakers), float(lengths.mean()),
                     int(np.median(lengths)), int(lengths.min()), int(lengths.max())])
    parts.append(format_table(
        ["split", "dialogues", "utterances", "speakers", "mean len", "median len", "min len", "max len"], rows,
    ))
    if corpus.label_free:
        parts.append("label-free: no utterance has a label, so this corpus can be extracted and predicted "
                     "(mmemolr predict RUN --corpus ...), not trained or scored")
    else:
        counts = {group: Counter(u.label for u in corpus.utterances() if u.split == group) for group in groups}
        label_rows = []
        for label in corpus.labels:
            row: list = [label]
            for group in groups:
                n = counts[group][label]
                total = sum(counts[group].values())
                row.append(f"{n:,} ({100 * n / total:.1f}%)" if total else "0")
            label_rows.append(row)
        parts.append(format_table(["label", *names], label_rows))
    top = Counter(u.speaker for u in corpus.utterances()).most_common(10)
    parts.append(format_table(["top speaker", "utterances"], [[s, n] for s, n in top]))
    report = {k: v for k, v in corpus.report.items() if v not in (0, None, {}, []) and k != "warnings"}
    if report:
        parts.append("adapter report: " + ", ".join(f"{k}={v}" for k, v in report.items()))
    warnings = corpus.report.get("warnings") or []
    if warnings:
        parts.append("\n".join(f"warning: {w}" for w in warnings))
    return "\n\n".join(parts)
