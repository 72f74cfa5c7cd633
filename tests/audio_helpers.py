"""Real utterances for the audio tests: the shared .stm dialogue cut into segments, plus broken files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mmemolr.corpus.model import Corpus, Dialogue, Utterance

SR = 16000


def stm_rows(media_dir: Path) -> list[tuple[str, float, float, str]]:
    """(speaker, start, end, text) of each line of dialogue-sample.stm."""
    rows = []
    for line in (media_dir / "dialogue-sample.stm").read_text().splitlines():
        parts = line.split(maxsplit=5)
        if len(parts) == 6:
            rows.append((parts[2], float(parts[3]), float(parts[4]), parts[5]))
    return rows


def stm_utterances(media_dir: Path, dialogue: str = "sample") -> list[Utterance]:
    """One Utterance per stm line, cutting dialogue-sample.wav by start/end."""
    wav = str(media_dir / "dialogue-sample.wav")
    return [
        Utterance(id=f"{dialogue}_u{i}", dialogue_id=dialogue, index=i, speaker=speaker, text=text,
                  label="neutral", split="train", audio_path=wav, start=start, end=end)
        for i, (speaker, start, end, text) in enumerate(stm_rows(media_dir))
    ]


def file_utterance(uid: str, path: Path | str | None, index: int = 0, dialogue: str = "files") -> Utterance:
    return Utterance(id=uid, dialogue_id=dialogue, index=index, speaker="A", text="", label="neutral",
                     split="train", audio_path=None if path is None else str(path))


def corpus_of(utterances: list[Utterance]) -> Corpus:
    dialogues: dict[str, list[Utterance]] = {}
    for u in utterances:
        dialogues.setdefault(u.dialogue_id, []).append(u)
    return Corpus("audio-test", ["neutral"], [Dialogue(d, "train", us) for d, us in dialogues.items()])


def write_silent_wav(path: Path, seconds: float = 1.0) -> Path:
    sf.write(path, np.zeros(int(seconds * SR), dtype=np.int16), SR, subtype="PCM_16")
    return path


def write_truncated_wav(path: Path, source: Path, keep: float = 0.3) -> Path:
    """A WAV cut off mid-data (header intact), like an interrupted copy."""
    data = source.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def write_garbage(path: Path, size: int = 4000) -> Path:
    path.write_bytes(np.random.default_rng(0).integers(0, 256, size, dtype=np.uint8).tobytes())
    return path


def need_opensmile() -> None:
    """The optional extra: skipped locally when absent, a failure in CI (which installs it)."""
    try:
        import opensmile  # noqa: F401
    except ImportError:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("opensmile is not installed; CI must install mmemolr[opensmile]")
        pytest.skip("opensmile is not installed (pip install mmemolr[opensmile])")
