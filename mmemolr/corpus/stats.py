"""Readable summaries of a corpus: counts per split and label, context-only utterances, annotator agreement,
speakers, dialogue lengths."""

from __future__ import annotations

from collections import Counter

import numpy as np

from mmemolr.corpus.agreement import agreement_stats
from mmemolr.corpus.model import UNSPLIT, Corpus
from mmemolr.tables import format_table

# The reason shown for a context-only utterance whose adapter recorded none (``extra["context_reason"]``).
NO_REASON = "no label"


def _pct(value: float) -> str:
    return "-" if np.isnan(value) else f"{100 * value:.1f}%"


def context_only_table(corpus: Corpus) -> str | None:
    """Context-only utterances per split and reason; None when there are none."""
    groups = corpus.groups
    counts = {g: Counter(u.extra.get("context_reason", NO_REASON) for u in corpus.context_only(g)) for g in groups}
    reasons = sorted(set().union(*counts.values()))
    if not reasons:
        return None
    rows = [[reason, *(counts[g][reason] for g in groups)] for reason in reasons]
    if len(reasons) > 1:
        rows.append(["total", *(sum(counts[g].values()) for g in groups)])
    return format_table(["context-only", *(UNSPLIT if g is None else g for g in groups)], rows,
                        title="context-only utterances (no usable label: read as context, left out of every loss "
                        "and metric)")


def agreement_tables(corpus: Corpus) -> list[str]:
    """Annotator agreement per split and the annotators' class confusion per split (empty without votes)."""
    stats = [s for s in (agreement_stats(corpus, g) for g in corpus.splits) if s is not None]
    if not stats:
        return []
    rows = [[s.split, s.utterances, _pct(s.unanimous), _pct(s.unanimous_chance), s.mean_votes, s.mean_gold_votes,
             _pct(s.mean_gold_share), _pct(s.with_other_vote), "-" if np.isnan(s.kappa) else f"{s.kappa:.3f}"]
            for s in stats]
    parts = [format_table(
        ["split", "utterances", "unanimous", "by chance", "votes", "gold votes", "gold share", "non-gold vote",
         "Fleiss kappa"], rows,
        title="annotator agreement (labelled utterances with votes; chance: independent votes drawn from the "
        "split's vote shares)")]
    for s in stats:
        parts.append(format_table(
            ["gold \\ votes", *s.columns, "utterances"],
            [[label, *(_pct(v) for v in row), int(n)] for label, row, n in zip(corpus.labels, s.confusion, s.support)],
            title=f"annotators' class confusion, {s.split}: share of each gold label's votes per label (mean over "
            "its utterances)"))
    return parts


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
        counts = {group: Counter(u.label for u in corpus.utterances() if u.split == group and u.label is not None)
                  for group in groups}
        label_rows = []
        for label in corpus.labels:
            row: list = [label]
            for group in groups:
                n = counts[group][label]
                total = sum(counts[group].values())
                row.append(f"{n:,} ({100 * n / total:.1f}%)" if total else "0")
            label_rows.append(row)
        parts.append(format_table(["label", *names], label_rows))
        context = context_only_table(corpus)
        if context:
            parts.append(context)
        parts += agreement_tables(corpus)
    top = Counter(u.speaker for u in corpus.utterances()).most_common(10)
    parts.append(format_table(["top speaker", "utterances"], [[s, n] for s, n in top]))
    report = {k: v for k, v in corpus.report.items() if v not in (0, None, {}, []) and k != "warnings"}
    if report:
        parts.append("adapter report: " + ", ".join(f"{k}={v}" for k, v in report.items()))
    warnings = corpus.report.get("warnings") or []
    if warnings:
        parts.append("\n".join(f"warning: {w}" for w in warnings))
    return "\n\n".join(parts)
