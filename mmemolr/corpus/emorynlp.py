"""EmoryNLP: the filtered CSV split (``emorynlp_{train,dev,test}_final.csv``) or the official JSON release."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

from mmemolr.corpus.model import Corpus, CorpusError, Utterance, build_dialogues
from mmemolr.corpus.readers import parse_int, parse_time, read_csv_rows, read_text_file
from mmemolr.corpus.registry import CorpusAdapter, register_corpus

EMORYNLP_EMOTIONS = ["Neutral", "Joyful", "Peaceful", "Powerful", "Scared", "Mad", "Sad"]
CSV_FILES = {"train": "emorynlp_train_final.csv", "dev": "emorynlp_dev_final.csv", "test": "emorynlp_test_final.csv"}
JSON_SPLIT_SUFFIXES = {"train": ("-trn", "_trn", "train"), "dev": ("-dev", "_dev", "dev"), "test": ("-tst", "_tst", "test")}
COLUMNS = ["Utterance", "Speaker", "Emotion", "Scene_ID", "Utterance_ID", "Season", "Episode"]


def parse_speakers(value: str, where: str) -> list[str]:
    """``"['Monica Geller', 'Phoebe Buffay']"`` -> list of names (a literal, never evaluated as code)."""
    value = value.strip()
    if not value.startswith("["):
        return [value] if value else []
    try:
        parsed = ast.literal_eval(value)
    except (ValueError, SyntaxError):
        raise CorpusError(f"{where}: Speaker {value!r} is not a list literal like ['Monica Geller']") from None
    if not isinstance(parsed, list) or not all(isinstance(s, str) for s in parsed):
        raise CorpusError(f"{where}: Speaker {value!r} must be a list of names")
    return parsed


def canonical_emotion(value: str, where: str) -> str:
    for emotion in EMORYNLP_EMOTIONS:
        if value.strip().lower() == emotion.lower():
            return emotion
    raise CorpusError(f"{where}: unknown emotion {value!r}; EmoryNLP has {EMORYNLP_EMOTIONS}")


def make_utterance(
    split: str, season: int, episode: int, scene: int, utt: int, speakers: list[str], text: str, emotion: str,
    start: float | None = None, end: float | None = None,
) -> Utterance:
    dialogue = f"s{season}_e{episode}_c{scene}"
    return Utterance(
        id=f"{dialogue}_u{utt}",
        dialogue_id=dialogue,
        index=utt,
        speaker=" & ".join(speakers) if speakers else "unknown",
        text=text,
        label=emotion,
        split=split,
        extra={"speakers": speakers, "utterance_id": utt, "episode_start": start, "episode_end": end},
    )


@register_corpus
class EmoryNlpAdapter(CorpusAdapter):
    name = "emorynlp"
    description = "EmoryNLP (Zahiri & Choi, 2018): Friends scenes, 7 emotions"

    def load(self, root: Path) -> Corpus:
        if all((root / f).exists() for f in CSV_FILES.values()):
            rows, source = self._load_csv(root), "csv"
        else:
            rows, source = self._load_json(root), "json"
        return Corpus(
            name="emorynlp",
            labels=list(EMORYNLP_EMOTIONS),
            dialogues=build_dialogues(rows),
            provenance={"format": source},
            report={"multi_speaker_utterances": sum(len(u.extra["speakers"]) > 1 for u in rows)},
        )

    def _load_csv(self, root: Path) -> list[Utterance]:
        rows: list[Utterance] = []
        seen: dict[str, str] = {}
        for split, filename in CSV_FILES.items():
            path = root / filename
            for line, row in read_csv_rows(path, COLUMNS):
                where = f"{path}: line {line}"
                u = make_utterance(
                    split,
                    parse_int(row["Season"], "Season", where),
                    parse_int(row["Episode"], "Episode", where),
                    parse_int(row["Scene_ID"], "Scene_ID", where),
                    parse_int(row["Utterance_ID"], "Utterance_ID", where),
                    parse_speakers(row["Speaker"], where),
                    row["Utterance"],
                    canonical_emotion(row["Emotion"], where),
                    parse_time(row.get("Start_Time"), where),
                    parse_time(row.get("End_Time"), where),
                )
                if u.id in seen:
                    raise CorpusError(f"{where}: duplicate utterance {u.id} (first at {seen[u.id]})")
                seen[u.id] = where
                rows.append(u)
        return rows

    def _load_json(self, root: Path) -> list[Utterance]:
        files = sorted(root.glob("*.json")) if root.is_dir() else [root]
        by_split: dict[str, Path] = {}
        for path in files:
            for split, suffixes in JSON_SPLIT_SUFFIXES.items():
                if any(s in path.stem for s in suffixes):
                    by_split[split] = path
        if set(by_split) != set(JSON_SPLIT_SUFFIXES):
            raise CorpusError(
                f"{root}: expected {', '.join(CSV_FILES.values())} or the JSON release "
                "(emotion-detection-trn.json, -dev.json, -tst.json)"
            )
        rows: list[Utterance] = []
        seen: set[str] = set()
        for split in JSON_SPLIT_SUFFIXES:
            path = by_split[split]
            try:
                data: Any = json.loads(read_text_file(path))
            except json.JSONDecodeError as err:
                raise CorpusError(f"{path}: line {err.lineno}: invalid JSON ({err.msg})") from None
            seasons = data if isinstance(data, list) else [data]
            for season in seasons:
                try:
                    for episode in season["episodes"]:
                        for scene in episode["scenes"]:
                            for k, utt in enumerate(scene["utterances"]):
                                where = f"{path}: utterance {utt.get('utterance_id', k)}"
                                s, e, c, u_idx = _json_ids(utt.get("utterance_id"), season, episode, scene, k)
                                u = make_utterance(
                                    split, s, e, c, u_idx, list(utt["speakers"]), utt["transcript"],
                                    canonical_emotion(utt["emotion"], where),
                                )
                                if u.id in seen:
                                    raise CorpusError(f"{where}: duplicate utterance {u.id}")
                                seen.add(u.id)
                                rows.append(u)
                except KeyError as err:
                    raise CorpusError(f"{path}: missing key {err} in season {season.get('season_id')}") from None
        return rows


def _json_ids(utt_id: Any, season: dict, episode: dict, scene: dict, position: int) -> tuple[int, int, int, int]:
    """Numbers from ids like ``s01_e02_c03_u004`` (utterance) or the enclosing objects' ids."""

    def number(value: Any, prefix: str) -> int | None:
        if value is None:
            return None
        for part in str(value).split("_"):
            if part.startswith(prefix) and part[1:].isdigit():
                return int(part[1:])
        return int(value) if str(value).isdigit() else None

    s = number(utt_id, "s") or number(season.get("season_id"), "s")
    e = number(utt_id, "e") or number(episode.get("episode_id"), "e")
    c = number(utt_id, "c") or number(scene.get("scene_id"), "c")
    u = number(utt_id, "u")
    if s is None or e is None or c is None:
        raise CorpusError(f"cannot read season/episode/scene numbers from utterance id {utt_id!r}")
    return s, e, c, position + 1 if u is None else u
