"""Timeline of one conversation's predictions: utterances over time, one row per speaker, coloured by
the predicted emotion, with the predicted label's probability as opacity and as text."""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mmemolr.report.figures import _colors, _save, plt


def timeline_figure(title: str, utterances: Sequence[dict[str, Any]], labels: Sequence[str], path: Path) -> Path:
    """``utterances``: dicts with speaker, start, end (seconds), pred and confidence (0..1), in time order.

    Each label keeps its colour in every timeline (the run's label order); opacity grows with the
    confidence (30% at chance, full at 1), so uncertain predictions look faint.
    """
    colors = dict(zip(labels, _colors(len(labels))))
    speakers = list(dict.fromkeys(u["speaker"] for u in utterances))
    start = min(float(u["start"]) for u in utterances)
    end = max(float(u["end"]) for u in utterances)
    span = max(end - start, 1e-3)
    width = float(np.clip(span / 2.0, 10.0, 24.0))
    fig, ax = plt.subplots(figsize=(width, 1.4 + 0.75 * len(speakers)))
    chance = 1.0 / max(1, len(labels))
    for u in utterances:
        row = speakers.index(u["speaker"])
        left, length = float(u["start"]), float(u["end"]) - float(u["start"])
        confidence = float(u["confidence"])
        alpha = 0.3 + 0.7 * float(np.clip((confidence - chance) / max(1e-9, 1 - chance), 0, 1))
        ax.barh(row, length, left=left, height=0.7, color=colors[u["pred"]], alpha=alpha, edgecolor="black",
                linewidth=0.5)
        # The label inside the bar when it fits: ~0.06 inch a character at 7 pt, on an axis about
        # 2.5 inches narrower than the figure (speaker names, legend).
        per_char = 0.06 * span / max(1.0, width - 2.5)
        for text in (f"{u['pred']} {confidence:.0%}", f"{confidence:.0%}"):  # the colour names the label
            if length >= per_char * (len(text) + 1):
                ax.text(left + length / 2, row, text, ha="center", va="center", fontsize=7, clip_on=True)
                break
    ax.set_yticks(range(len(speakers)), [textwrap.shorten(s, 24, placeholder="…") for s in speakers], fontsize=9)
    ax.set_ylim(len(speakers) - 0.5, -0.5)
    ax.set_xlim(start - 0.01 * span, end + 0.01 * span)
    ax.set_xlabel("time in the recording (s)", fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    shown = [lab for lab in labels if any(u["pred"] == lab for u in utterances)]
    handles = [plt.Rectangle((0, 0), 1, 1, color=colors[lab]) for lab in shown]
    ax.legend(handles, shown, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, title="predicted",
              title_fontsize=8)
    ax.set_title(f"{title}: predicted emotion per utterance (opacity and % = probability of the predicted label)",
                 fontsize=9)
    fig.tight_layout()
    return _save(fig, path)
