"""IEMOCAP: the raw release (``IEMOCAP_full_release/Session{1..5}``) or the widely shared processed pickle."""

from __future__ import annotations

import pickle
import random
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmemolr.corpus.model import OTHER, Corpus, CorpusError, Utterance, build_dialogues
from mmemolr.corpus.readers import read_text_file
from mmemolr.corpus.registry import CorpusAdapter, register_corpus

IEMOCAP_EMOTIONS = ["hap", "sad", "neu", "ang", "exc", "fru"]  # label ids 0..5 of the processed release
TEST_SESSION = 5
_EVAL_LINE = re.compile(r"^\[(\d+(?:\.\d+)?)\s*-\s*(\d+(?:\.\d+)?)\]\s+(\S+)\s+(\S+)\s+\[.*\]\s*$")
_TRANSCRIPT_LINE = re.compile(r"^(\S+)\s+\[(\d+(?:\.\d+)?)-(\d+(?:\.\d+)?)\]:\s?(.*)$")
# A categorical evaluation after a turn's summary line: ``C-E1:\tFrustration;\tAnger;\t(comment)``. E = an
# evaluator (an annotator's vote); F, M = the female / male actor of the session (self-evaluation, left out).
_CATEGORY_LINE = re.compile(r"^C-([A-Za-z])(\d*):(.*)$")
EVALUATOR, ACTORS = "E", ("F", "M")
# The evaluators' category names of the six classes (any case); every other name (Surprise, Fear, Disgust,
# Other, Other:<text>) is a vote outside the six, counted as OTHER.
CATEGORY_NAMES = {
    "happiness": "hap", "happy": "hap", "sadness": "sad", "sad": "sad", "neutral": "neu", "neutral state": "neu",
    "anger": "ang", "angry": "ang", "excited": "exc", "excitement": "exc", "frustration": "fru", "frustrated": "fru",
}

PICKLE_OPT_IN = (
    "loading a pickle runs whatever code the file contains, so only load pickles you trust; "
    "pass --trust-pickle (trust_pickle=True) to load {path}"
)


def carve_validation(dialogue_ids: list[str], fraction: float, seed: int) -> set[str]:
    """Fixed-seed choice of validation dialogues from the training ones (sorted first, so order-free)."""
    ordered = sorted(dialogue_ids)
    count = max(1, round(len(ordered) * fraction)) if ordered else 0
    return set(random.Random(seed).sample(ordered, count))


def strip_comment(text: str) -> str:
    """``Frustration;\tAnger;\t(so annoyed (really))`` -> ``Frustration;\tAnger;``: the trailing comment in
    parentheses (nested ones included) removed."""
    text = text.rstrip()
    if not text.endswith(")"):
        return text
    depth = 0
    for i in range(len(text) - 1, -1, -1):
        depth += {")": 1, "(": -1}.get(text[i], 0)
        if depth == 0:
            return text[:i].rstrip()
    return text  # unbalanced: no comment to strip


def read_categories(text: str) -> list[str]:
    """The categories of one evaluation line's body, in order: ``\tFrustration;\tAnger;\t()`` -> both."""
    return [c.strip() for c in strip_comment(text).split(";") if c.strip()]


def category_label(name: str) -> str:
    """An evaluator's category name -> one of the six label codes, or OTHER."""
    return CATEGORY_NAMES.get(" ".join(name.lower().split()), OTHER)


def load_trusted_pickle(path: Path, trust_pickle: bool) -> Any:
    if not trust_pickle:
        raise PermissionError(PICKLE_OPT_IN.format(path=path))
    with open(path, "rb") as fh:
        # Python 2 era pickles store numpy arrays and str as bytes: latin1 restores them.
        return pickle.load(fh, encoding="latin1")  # noqa: S301 - explicit opt-in above


@register_corpus
class IemocapAdapter(CorpusAdapter):
    """Options: ``valid_fraction`` (0.1), ``valid_seed`` (0), ``trust_pickle`` (for ``*.pkl`` roots)."""

    name = "iemocap"
    description = "IEMOCAP (Busso et al., 2008): dyadic sessions, 6 classes hap/sad/neu/ang/exc/fru"

    def load(self, root: Path) -> Corpus:
        if root.is_file():
            return self._load_pickle(root)
        release = root / "IEMOCAP_full_release" if (root / "IEMOCAP_full_release").is_dir() else root
        sessions = sorted(p for p in release.glob("Session[1-5]") if p.is_dir())
        if not sessions:
            raise CorpusError(
                f"{root}: no Session1..Session5 folders; give the IEMOCAP_full_release folder "
                "or the processed pickle file"
            )
        return self._load_raw(release, sessions)

    # -- raw release -----------------------------------------------------------------------------
    def _load_raw(self, release: Path, sessions: list[Path]) -> Corpus:
        context_turns = bool(self.options.get("context_turns", False))
        rows: list[Utterance] = []
        outside: Counter[str] = Counter()  # turns labelled outside the six classes, per label
        tally: Counter[str] = Counter()  # evaluation lines and votes, for the report
        other_names: Counter[str] = Counter()  # category names counted as OTHER
        missing_transcripts = 0
        seen: dict[str, str] = {}
        training_dialogs: list[str] = []
        for session in sessions:
            session_no = int(session.name[-1])
            split = "test" if session_no == TEST_SESSION else "train"
            eval_dir = session / "dialog" / "EmoEvaluation"
            eval_files = sorted(eval_dir.glob("*.txt"))
            if not eval_files:
                raise CorpusError(f"{eval_dir}: no EmoEvaluation *.txt files")
            for eval_file in eval_files:
                dialog = eval_file.stem
                if split == "train":
                    training_dialogs.append(dialog)
                transcripts = self._read_transcripts(session / "dialog" / "transcriptions" / f"{dialog}.txt")
                for turn in read_evaluations(eval_file, tally, other_names):
                    utt_id, label, line_no = turn.id, turn.label, turn.line
                    if utt_id in seen:
                        raise CorpusError(f"{eval_file}: line {line_no}: duplicate utterance {utt_id} (also {seen[utt_id]})")
                    seen[utt_id] = f"{eval_file}: line {line_no}"
                    extra: dict[str, Any] = {}
                    if label not in IEMOCAP_EMOTIONS:
                        outside[label] += 1
                        if not context_turns:
                            continue
                        extra["context_reason"] = label
                    if turn.evaluators:
                        extra["evaluators"] = turn.evaluators
                    text = transcripts.get(utt_id)
                    if text is None:
                        missing_transcripts += 1
                        text = ""
                    wav = session / "sentences" / "wav" / dialog / f"{utt_id}.wav"
                    avi = session / "dialog" / "avi" / "DivX" / f"{dialog}.avi"
                    rows.append(
                        Utterance(
                            id=utt_id,
                            dialogue_id=dialog,
                            index=0,
                            speaker=utt_id.rsplit("_", 1)[-1][0],  # 'F' or 'M': who speaks this turn
                            text=text,
                            label=label if label in IEMOCAP_EMOTIONS else None,
                            split=split,
                            audio_path=str(wav) if wav.exists() else None,
                            video_path=str(avi) if avi.exists() else None,
                            # the wav is the utterance itself; the avi is the whole dialogue
                            start=turn.start if avi.exists() else None,
                            end=turn.end if avi.exists() else None,
                            extra={"session": session_no, "dialog_start": turn.start, "dialog_end": turn.end,
                                   # start/end locate the turn in the avi; the sentence wav is the turn itself
                                   "audio_whole_file": True, **extra},
                            votes=dict(turn.votes) or None,
                        )
                    )
        # Turns are ordered by start time; build_dialogues' sort is stable, so this order is kept.
        rows.sort(key=lambda u: (u.dialogue_id, u.extra["dialog_start"]))
        dialogues = build_dialogues(rows)
        # Carved from every training dialogue read, kept turns or not, so that context_turns changes no split.
        valid = carve_validation(
            training_dialogs,
            float(self.options.get("valid_fraction", 0.1)),
            int(self.options.get("valid_seed", 0)),
        )
        for d in dialogues:
            if d.id in valid:
                d.split = "dev"
                for u in d.utterances:
                    u.split = "dev"
        outside_counts = dict(sorted(outside.items()))
        return Corpus(
            name="iemocap",
            labels=list(IEMOCAP_EMOTIONS),
            dialogues=dialogues,
            provenance={"format": "raw", "test_session": TEST_SESSION,
                        "valid_fraction": float(self.options.get("valid_fraction", 0.1)),
                        "valid_seed": int(self.options.get("valid_seed", 0)),
                        "context_turns": context_turns},
            report={
                "dropped_labels": {} if context_turns else outside_counts,
                "dropped_utterances": 0 if context_turns else sum(outside.values()),
                "context_only": outside_counts if context_turns else {},
                "missing_transcripts": missing_transcripts,
                "evaluator_votes_read": tally["votes"],
                "evaluator_other_names": dict(sorted(other_names.items())),
                # The actors' own categorical evaluations (C-F*, C-M*) are not annotator votes: left out.
                "actor_evaluations_left_out": tally["actor_lines"],
            },
        )

    @staticmethod
    def _read_transcripts(path: Path) -> dict[str, str]:
        if not path.exists():
            return {}
        out: dict[str, str] = {}
        for line in read_text_file(path).splitlines():
            match = _TRANSCRIPT_LINE.match(line.strip())
            if match:
                out[match.group(1)] = match.group(4).strip()
        return out

    # -- processed pickle --------------------------------------------------------------------------
    def _load_pickle(self, path: Path) -> Corpus:
        if self.options.get("context_turns"):
            raise CorpusError(f"{path}: context_turns needs the raw release (IEMOCAP_full_release); the processed "
                              "pickle holds only the turns of the six classes")
        data = load_trusted_pickle(path, bool(self.options.get("trust_pickle", False)))
        if not isinstance(data, (list, tuple)) or len(data) != 6:
            raise CorpusError(
                f"{path}: expected a list of six items [speakers, labels, sentences, train_ids, test_ids, "
                f"valid_ids], got {type(data).__name__} of length {len(data) if hasattr(data, '__len__') else '?'}"
            )
        speakers, labels, sentences, train_ids, test_ids, valid_ids = data
        split_of: dict[str, str] = {}
        for split, ids in (("train", train_ids), ("dev", valid_ids), ("test", test_ids)):
            for did in ids:
                if str(did) in split_of:
                    raise CorpusError(f"{path}: dialogue {did} is in both {split_of[str(did)]} and {split}")
                split_of[str(did)] = split
        rows: list[Utterance] = []
        for did_raw in list(train_ids) + list(valid_ids) + list(test_ids):
            did = str(did_raw)
            try:
                spk, lab, sent = speakers[did_raw], labels[did_raw], sentences[did_raw]
            except KeyError as err:
                raise CorpusError(f"{path}: dialogue {did} is listed in a split but missing from {err}") from None
            if not len(spk) == len(lab) == len(sent):
                raise CorpusError(
                    f"{path}: dialogue {did}: {len(spk)} speakers, {len(lab)} labels, {len(sent)} sentences"
                )
            for i, (s, y, text) in enumerate(zip(spk, lab, sent)):
                y = int(y)
                if not 0 <= y < len(IEMOCAP_EMOTIONS):
                    raise CorpusError(f"{path}: dialogue {did}, utterance {i}: label id {y} outside 0..5")
                rows.append(
                    Utterance(
                        id=f"{did}_u{i}", dialogue_id=did, index=i, speaker=str(s), text=str(text),
                        label=IEMOCAP_EMOTIONS[y], split=split_of[did],
                    )
                )
        return Corpus(
            name="iemocap",
            labels=list(IEMOCAP_EMOTIONS),
            dialogues=build_dialogues(rows),
            provenance={"format": "pickle", "file": str(path)},
            report={},
        )



@dataclass
class Turn:
    """One turn of an EmoEvaluation file: its summary line and the evaluators' categorical votes after it."""

    start: float
    end: float
    id: str
    label: str
    line: int  # of the summary line
    votes: Counter[str] = field(default_factory=Counter)  # label code or OTHER -> votes
    evaluators: int = 0  # C-E* lines read


def read_evaluations(path: Path, tally: Counter[str], other_names: Counter[str]) -> list[Turn]:
    """The turns of one EmoEvaluation file, in file order.

    ``Turn.votes`` counts every category of every evaluator line ``C-E*`` after the turn's summary line (an
    evaluator naming two categories gives two votes), OTHER for a category outside the six (its name counted
    in ``other_names``). The actors' self-evaluations ``C-F*``/``C-M*`` are left out (counted in
    ``tally["actor_lines"]``); dimensional lines (``A-E*``, ``A-F*``) are ignored. ``tally["votes"]``: the
    evaluator votes read.
    """
    turns: list[Turn] = []
    for line_no, line in enumerate(read_text_file(path).splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith("["):
            match = _EVAL_LINE.match(stripped)
            if not match:
                raise CorpusError(
                    f"{path}: line {line_no}: expected '[start - end]<TAB>utterance<TAB>label<TAB>[v, a, d]'"
                )
            start, end, utt_id, label = match.groups()
            turns.append(Turn(float(start), float(end), utt_id, label, line_no))
            continue
        category = _CATEGORY_LINE.match(stripped)
        if not category:
            continue
        who = category.group(1).upper()
        if not turns:
            raise CorpusError(f"{path}: line {line_no}: evaluation line before the first turn's summary line "
                              "'[start - end]<TAB>utterance<TAB>label<TAB>[v, a, d]'")
        if who in ACTORS:
            tally["actor_lines"] += 1
            continue
        if who != EVALUATOR:
            raise CorpusError(f"{path}: line {line_no}: unknown evaluator 'C-{category.group(1)}{category.group(2)}'; "
                              "expected C-E<n> (evaluators) or C-F<n>/C-M<n> (the actors' self-evaluations)")
        names = read_categories(category.group(3))
        turns[-1].evaluators += 1
        for name in names:
            label = category_label(name)
            turns[-1].votes[label] += 1
            if label == OTHER:
                other_names[name.split(":")[0].strip()] += 1
        tally["votes"] += len(names)
    return turns
