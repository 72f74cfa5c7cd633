"""The refinement case studies of report.html: each chosen test utterance in its dialogue, with the
utterances before and after it and their speakers (from the prepared corpus the run was trained on; its
test predictions when that corpus is gone)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from mmemolr.report.runs import RunData

CONTEXT = 3  # utterances shown before and after the case


@dataclass
class Turn:
    index: int
    speaker: str
    text: str
    gold: str
    pred: str  # the run's prediction ("" outside its test predictions)
    case: bool = False


@dataclass
class Case:
    id: str
    dialogue: str
    gold: str
    text: str
    series: dict[str, list[float]]  # one-hot label, refined target, predictions: probabilities over labels
    turns: list[Turn] = field(default_factory=list)
    note: str = ""  # where the context comes from, when not from the corpus


def case_studies(rld: RunData, examples: Sequence[dict[str, Any]], context: int = CONTEXT) -> list[Case]:
    """``examples`` (mmemolr.report.build.refinement_examples of ``rld``) with their dialogue context."""
    predictions = {r["utterance_id"]: r for r in rld.predictions() or []}
    dialogues, note = _dialogues(rld, predictions)
    cases = []
    for ex in examples:
        row = predictions.get(ex["id"], {})
        dialogue_id = row.get("dialogue_id", "")
        turns = dialogues.get(dialogue_id, [])
        where = next((i for i, t in enumerate(turns) if t[0] == ex["id"]), None)
        shown = []
        if where is not None:
            for uid, turn in turns[max(0, where - context): where + context + 1]:
                shown.append(replace(turn, case=uid == ex["id"], pred=predictions.get(uid, {}).get("pred", "")))
        cases.append(Case(ex["id"], dialogue_id, ex["gold"], ex.get("text", ""),
                          {name: [float(p) for p in probs] for name, probs in ex["series"].items()}, shown, note))
    return cases


def _dialogues(run: RunData, predictions: dict[str, dict[str, str]]) -> tuple[dict[str, list[tuple[str, Turn]]], str]:
    """Dialogue id -> its utterances in order (id, Turn): from the run's prepared corpus, else from the
    test predictions (texts without speakers), with a note saying so."""
    from mmemolr.corpus import load_prepared

    folder = run.results.get("corpus_dir")
    try:
        corpus = load_prepared(folder)
    except (OSError, ValueError, TypeError, KeyError) as err:
        by_dialogue: dict[str, list[tuple[str, Turn]]] = {}
        for uid, row in predictions.items():
            turns = by_dialogue.setdefault(row.get("dialogue_id", ""), [])
            turns.append((uid, Turn(len(turns), "?", row.get("text", ""), row.get("gold", ""), row.get("pred", ""))))
        return by_dialogue, (f"speakers unknown: the run's corpus ({folder}) could not be read ({err}); context "
                             "from its test predictions")
    return {d.id: [(u.id, Turn(u.index, u.speaker, u.text, u.label or "", "")) for u in d.utterances]
            for d in corpus.dialogues}, ""
