"""MELD: the official ``{train,dev,test}_sent_emo.csv`` files (UTF-8 or the legacy cp1252 release)."""

from __future__ import annotations

from pathlib import Path

from mmemolr.corpus.model import Corpus, CorpusError, Utterance, build_dialogues
from mmemolr.corpus.readers import parse_int, parse_time, read_csv_rows, repair_c1
from mmemolr.corpus.registry import CorpusAdapter, register_corpus

MELD_EMOTIONS = ["neutral", "surprise", "fear", "sadness", "joy", "disgust", "anger"]
MELD_SENTIMENTS = ["neutral", "positive", "negative"]
CSV_FILES = {"train": "train_sent_emo.csv", "dev": "dev_sent_emo.csv", "test": "test_sent_emo.csv"}
# Folders of the raw release (MELD.Raw) that hold the clips dia{D}_utt{U}.mp4 of each split.
CLIP_DIRS = {"train": "train_splits", "dev": "dev_splits_complete", "test": "output_repeated_splits_test"}
COLUMNS = ["Utterance", "Speaker", "Emotion", "Sentiment", "Dialogue_ID", "Utterance_ID"]


def find_clip_dirs(media_root: Path) -> dict[str, Path]:
    """Locate the raw-release clip folders under ``media_root`` (at most two levels down)."""
    found: dict[str, Path] = {}
    for split, folder in CLIP_DIRS.items():
        for candidate in [media_root / folder, *media_root.glob(f"*/{folder}"), *media_root.glob(f"*/*/{folder}")]:
            if candidate.is_dir():
                found[split] = candidate
                break
    return found


@register_corpus
class MeldAdapter(CorpusAdapter):
    """Options: ``media_root`` (folder of the raw release), ``require_media`` (fail on a missing clip)."""

    name = "meld"
    description = "MELD (Poria et al., 2019): Friends dialogues, 7 emotions + 3 sentiments"

    def load(self, root: Path) -> Corpus:
        media_root = self.options.get("media_root")
        require_media = bool(self.options.get("require_media", False))
        clip_dirs = find_clip_dirs(Path(media_root)) if media_root else {}
        if media_root and not clip_dirs:
            raise CorpusError(
                f"{media_root}: none of the MELD clip folders {', '.join(CLIP_DIRS.values())} found"
            )
        rows: list[Utterance] = []
        repaired = 0
        missing_media: list[str] = []
        for split, filename in CSV_FILES.items():
            path = root / filename
            if not path.exists():
                raise CorpusError(f"{path}: MELD file not found; --root must hold {', '.join(CSV_FILES.values())}")
            seen: dict[tuple[int, int], int] = {}
            for line, row in read_csv_rows(path, COLUMNS):
                where = f"{path}: line {line}"
                dia = parse_int(row["Dialogue_ID"], "Dialogue_ID", where)
                utt = parse_int(row["Utterance_ID"], "Utterance_ID", where)
                if (dia, utt) in seen:
                    raise CorpusError(
                        f"{where}: duplicate utterance dia{dia}_utt{utt} (first at line {seen[(dia, utt)]})"
                    )
                seen[(dia, utt)] = line
                emotion = row["Emotion"].strip().lower()
                if emotion not in MELD_EMOTIONS:
                    raise CorpusError(f"{where}: unknown emotion {row['Emotion']!r}; MELD has {MELD_EMOTIONS}")
                sentiment = row["Sentiment"].strip().lower()
                if sentiment not in MELD_SENTIMENTS:
                    raise CorpusError(f"{where}: unknown sentiment {row['Sentiment']!r}; MELD has {MELD_SENTIMENTS}")
                text, fixed = repair_c1(row["Utterance"])
                speaker, fixed_speaker = repair_c1(row["Speaker"].strip())
                repaired += fixed or fixed_speaker
                clip = f"dia{dia}_utt{utt}.mp4"
                video = None
                if split in clip_dirs:
                    candidate = clip_dirs[split] / clip
                    if candidate.exists():
                        video = str(candidate)
                    elif require_media:
                        raise CorpusError(f"{where}: clip {candidate} is missing (require_media is set)")
                    else:
                        missing_media.append(f"{split}/{clip}")
                rows.append(
                    Utterance(
                        id=f"{split}/dia{dia}_utt{utt}",
                        dialogue_id=f"{split}/dia{dia}",
                        index=utt,
                        speaker=speaker,
                        text=text,
                        label=emotion,
                        split=split,
                        audio_path=video,  # the clip's audio track
                        video_path=video,
                        extra={
                            "sentiment": sentiment,
                            "utterance_id": utt,
                            "season": row.get("Season"),
                            "episode": row.get("Episode"),
                            # Times locate the clip in the episode; clips themselves start at 0.
                            "episode_start": parse_time(row.get("StartTime"), where),
                            "episode_end": parse_time(row.get("EndTime"), where),
                        },
                    )
                )
        report = {"repaired_c1_utterances": repaired}
        if media_root:
            report["missing_media"] = len(missing_media)
            report["missing_media_examples"] = missing_media[:10]
        return Corpus(
            name="meld",
            labels=list(MELD_EMOTIONS),
            dialogues=build_dialogues(rows),
            provenance={"sentiment_labels": MELD_SENTIMENTS, "media_root": str(media_root) if media_root else None},
            report=report,
        )
