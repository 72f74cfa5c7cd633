"""IEMOCAP: the raw release (``IEMOCAP_full_release/Session{1..5}``) or the widely shared processed pickle."""

from __future__ import annotations

import pickle
import random
import re
from collections import Counter
from pathlib import Path
from typing import Any

from mmemolr.corpus.model import Corpus, CorpusError, Utterance, build_dialogues
from mmemolr.corpus.readers import read_text_file
from mmemolr.corpus.registry import CorpusAdapter, register_corpus

IEMOCAP_EMOTIONS = ["hap", "sad", "neu", "ang", "exc", "fru"]  # label ids 0..5 of the processed release
TEST_SESSION = 5
_EVAL_LINE = re.compile(r"^\[(\d+(?:\.\d+)?)\s*-\s*(\d+(?:\.\d+)?)\]\s+(\S+)\s+(\S+)\s+\[.*\]\s*$")
_TRANSCRIPT_LINE = re.compile(r"^(\S+)\s+\[(\d+(?:\.\d+)?)-(\d+(?:\.\d+)?)\]:\s?(.*)$")

PICKLE_OPT_IN = (
    "loading a pickle runs whatever code the file contains, so only load pickles you trust; "
    "pass --trust-pickle (trust_pickle=True) to load {path}"
)


def carve_validation(dialogue_ids: list[str], fraction: float, seed: int) -> set[str]:
    """Fixed-seed choice of validation dialogues from the training ones (sorted first, so order-free)."""
    ordered = sorted(dialogue_ids)
    count = max(1, round(len(ordered) * fraction)) if ordered else 0
    return set(random.Random(seed).sample(ordered, count))


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
        rows: list[Utterance] = []
        dropped: Counter[str] = Counter()
        missing_transcripts = 0
        seen: dict[str, str] = {}
        for session in sessions:
            session_no = int(session.name[-1])
            eval_dir = session / "dialog" / "EmoEvaluation"
            eval_files = sorted(eval_dir.glob("*.txt"))
            if not eval_files:
                raise CorpusError(f"{eval_dir}: no EmoEvaluation *.txt files")
            for eval_file in eval_files:
                dialog = eval_file.stem
                transcripts = self._read_transcripts(session / "dialog" / "transcriptions" / f"{dialog}.txt")
                for line_no, line in enumerate(read_text_file(eval_file).splitlines(), 1):
                    if not line.startswith("["):
                        continue
                    match = _EVAL_LINE.match(line.strip())
                    if not match:
                        raise CorpusError(
                            f"{eval_file}: line {line_no}: expected '[start - end]<TAB>utterance<TAB>label<TAB>[v, a, d]'"
                        )
                    start, end, utt_id, label = match.groups()
                    if utt_id in seen:
                        raise CorpusError(f"{eval_file}: line {line_no}: duplicate utterance {utt_id} (also {seen[utt_id]})")
                    seen[utt_id] = f"{eval_file}: line {line_no}"
                    if label not in IEMOCAP_EMOTIONS:
                        dropped[label] += 1
                        continue
                    text = transcripts.get(utt_id)
                    if text is None:
                        missing_transcripts += 1
                        text = ""
                    wav = session / "sentences" / "wav" / dialog / f"{utt_id}.wav"
                    avi = session / "dialog" / "avi" / "DivX" / f"{dialog}.avi"
                    split = "test" if session_no == TEST_SESSION else "train"
                    rows.append(
                        Utterance(
                            id=utt_id,
                            dialogue_id=dialog,
                            index=0,
                            speaker=utt_id.rsplit("_", 1)[-1][0],  # 'F' or 'M': who speaks this turn
                            text=text,
                            label=label,
                            split=split,
                            audio_path=str(wav) if wav.exists() else None,
                            video_path=str(avi) if avi.exists() else None,
                            # the wav is the utterance itself; the avi is the whole dialogue
                            start=float(start) if avi.exists() else None,
                            end=float(end) if avi.exists() else None,
                            extra={"session": session_no, "dialog_start": float(start), "dialog_end": float(end),
                                   # start/end locate the turn in the avi; the sentence wav is the turn itself
                                   "audio_whole_file": True},
                        )
                    )
        # Turns are ordered by start time; build_dialogues' sort is stable, so this order is kept.
        rows.sort(key=lambda u: (u.dialogue_id, u.extra["dialog_start"]))
        dialogues = build_dialogues(rows)
        valid = carve_validation(
            [d.id for d in dialogues if d.split == "train"],
            float(self.options.get("valid_fraction", 0.1)),
            int(self.options.get("valid_seed", 0)),
        )
        for d in dialogues:
            if d.id in valid:
                d.split = "dev"
                for u in d.utterances:
                    u.split = "dev"
        return Corpus(
            name="iemocap",
            labels=list(IEMOCAP_EMOTIONS),
            dialogues=dialogues,
            provenance={"format": "raw", "test_session": TEST_SESSION,
                        "valid_fraction": float(self.options.get("valid_fraction", 0.1)),
                        "valid_seed": int(self.options.get("valid_seed", 0))},
            report={
                "dropped_labels": dict(sorted(dropped.items())),
                "dropped_utterances": sum(dropped.values()),
                "missing_transcripts": missing_transcripts,
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
