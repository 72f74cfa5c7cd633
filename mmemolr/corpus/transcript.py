"""Recordings with a transcript: NIST ``.stm``, WebVTT ``.vtt``, SubRip ``.srt`` or a plain ``.csv``.

One recording (an audio or a video file) per conversation. Every transcript segment becomes an
utterance with its speaker, its text and its start/end on the recording's timeline, so the audio and
visual extractors cut it out of the recording. Transcripts carry no emotion labels and no splits: the
corpus is label-free, to extract and predict with a trained run (``mmemolr predict RUN --transcript``).

Formats (details in docs/corpora.md):

``.stm``  ``file channel speaker start end [<label>] text`` per line, ``;;`` comments; the file field
          names the conversation; ``inter_segment_gap`` and ``ignore_time_segment_in_scoring``
          segments are skipped (counted).
``.vtt``  WebVTT cues; the speaker comes from a ``<v Name>`` voice tag or a ``Name:`` prefix.
``.srt``  SubRip cues; the speaker from a ``Name:`` prefix (or a ``<v Name>`` tag).
``.csv``  columns ``start``, ``end``, ``text`` and optionally ``speaker``, ``conversation``, ``media``.

The recording is ``--media FILE`` (one conversation), the CSV's ``media`` column, or found beside the
transcript: ``<conversation>.<ext>`` or ``<transcript stem>.<ext>`` for an audio (wav, flac, mp3, ...) or
video (mp4, mkv, avi, mov, ...) extension. A video gives the visual modality and, when it has an audio
track, the audio one; an audio file beside a video of the same name supplies the audio. A conversation
without a recording is text-only: its audio and visual are absent, not failures.
"""

from __future__ import annotations

import html
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mmemolr.corpus.model import Corpus, CorpusError, Utterance, build_dialogues
from mmemolr.corpus.readers import parse_time, read_csv_rows, read_text_file
from mmemolr.corpus.registry import CorpusAdapter, register_corpus

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".m4a", ".ogg", ".oga", ".opus", ".aac", ".aiff", ".aif")
VIDEO_SUFFIXES = (".mp4", ".mkv", ".avi", ".mov", ".webm", ".m4v", ".mpg", ".mpeg")
UNKNOWN_SPEAKER = "unknown"
# STM segments that mark excluded regions, not speech.
STM_SKIP_SPEAKERS = {"inter_segment_gap"}
STM_SKIP_TEXT = {"ignore_time_segment_in_scoring"}

_TIMING = re.compile(r"^\s*(\S+)\s*-->\s*(\S+)")
_VOICE = re.compile(r"<v(?:\.[^\s>]*)?\s+([^>]+)>")
_TAG = re.compile(r"<[^>]*>|\{\\[^}]*\}")  # HTML-like tags and SSA overrides such as {\an8}
# "Name: text" with a short name (at most three words) starting with a letter; "- " dialogue dashes allowed.
_NAME_PREFIX = re.compile(r"^\s*(?:-\s*)?([^\W\d_][\w.'’-]*(?: [\w.'’-]+){0,2})\s*:\s+(\S.*)$")


@dataclass
class Segment:
    """One timed transcript line, before it becomes an utterance."""

    where: str  # "file: line N", for messages
    conversation: str | None  # None: named after the transcript file
    speaker: str
    start: float
    end: float
    text: str
    media: str | None = None  # CSV media column, relative to the transcript's folder


# -- readers -----------------------------------------------------------------------------------------
def _seconds(value: str, where: str, what: str) -> float:
    seconds = parse_time(value, where)
    if seconds is None:
        raise CorpusError(f"{where}: no {what} time")
    if seconds < 0:
        raise CorpusError(f"{where}: {what} time {value!r} is negative")
    return seconds


def read_stm(path: Path) -> tuple[list[Segment], int]:
    """Segments of a NIST STM file and the number of excluded-region segments skipped."""
    segments, skipped = [], 0
    for line_no, line in enumerate(read_text_file(path).splitlines(), 1):
        if not line.strip() or line.lstrip().startswith(";;"):
            continue
        where = f"{path}: line {line_no}"
        fields = line.split(maxsplit=5)
        if len(fields) < 5:
            raise CorpusError(f"{where}: expected 'file channel speaker start end [<label>] text', got {line.strip()!r}")
        file_id, _channel, speaker, start, end = fields[:5]
        text = fields[5] if len(fields) > 5 else ""
        if text.startswith("<") and ">" in text:  # optional <o,f0,male> label field
            text = text[text.index(">") + 1 :]
        text = text.strip()
        if speaker in STM_SKIP_SPEAKERS or text in STM_SKIP_TEXT:
            skipped += 1
            continue
        segments.append(Segment(where, file_id, speaker, _seconds(start, where, "start"),
                                _seconds(end, where, "end"), text))
    return segments, skipped


def _split_speakers(lines: list[str]) -> list[tuple[str | None, str]]:
    """Cue lines -> (speaker or None, text) runs: a line with its own voice tag or ``Name:`` prefix
    starts a new speaker turn, other lines continue the current one."""
    turns: list[tuple[str | None, list[str]]] = []
    for raw in lines:
        voice = _VOICE.search(raw)
        text = html.unescape(_TAG.sub("", raw)).strip()
        speaker = voice.group(1).strip() if voice else None
        if speaker is None:
            named = _NAME_PREFIX.match(text)
            if named:
                speaker, text = named.group(1).strip(), named.group(2).strip()
        elif text.startswith("- "):
            text = text[2:]
        if not text:
            continue
        if turns and (speaker is None or speaker == turns[-1][0]):
            turns[-1][1].append(text)
        else:
            turns.append((speaker, [text]))
    return [(speaker, " ".join(parts)) for speaker, parts in turns]


def _read_cues(path: Path, kind: str) -> list[Segment]:
    """WebVTT or SRT cues: blocks separated by blank lines, one ``start --> end`` line each."""
    text = read_text_file(path).replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    if kind == "vtt":
        if not lines or not lines[0].startswith("WEBVTT"):
            raise CorpusError(f"{path}: line 1: a WebVTT file starts with 'WEBVTT', got {lines[0][:40]!r}")
    segments = []
    block: list[tuple[int, str]] = []
    for line_no, line in enumerate([*lines, ""], 1):
        if line.strip():
            block.append((line_no, line))
            continue
        if block:
            segments.extend(_cue(path, kind, block))
            block = []
    return segments


def _cue(path: Path, kind: str, block: list[tuple[int, str]]) -> list[Segment]:
    first = block[0][1].strip()
    if kind == "vtt" and (first.startswith(("WEBVTT", "NOTE", "STYLE", "REGION"))):
        return []
    timing = next((i for i, (_, line) in enumerate(block) if "-->" in line), None)
    where = f"{path}: line {block[0][0]}"
    if timing is None:
        raise CorpusError(f"{where}: a cue without a 'start --> end' line ({first[:60]!r})")
    line_no, line = block[timing]
    where = f"{path}: line {line_no}"
    match = _TIMING.match(line)
    if not match:
        raise CorpusError(f"{where}: cannot read the cue timing {line.strip()!r} (expected 00:00:01.000 --> 00:00:02.500)")
    start, end = (_seconds(v, where, name) for v, name in zip(match.groups(), ("start", "end")))
    turns = _split_speakers([text for _, text in block[timing + 1 :]])
    return [Segment(where, None, speaker or "", start, end, text) for speaker, text in turns]


def read_webvtt(path: Path) -> tuple[list[Segment], int]:
    return _read_cues(path, "vtt"), 0


def read_srt(path: Path) -> tuple[list[Segment], int]:
    return _read_cues(path, "srt"), 0


def read_csv_transcript(path: Path) -> tuple[list[Segment], int]:
    segments = []
    for line, row in read_csv_rows(path, ["start", "end", "text"]):
        where = f"{path}: line {line}"
        conversation = (row.get("conversation") or row.get("dialogue_id") or "").strip() or None
        segments.append(Segment(where, conversation, (row.get("speaker") or "").strip(),
                                _seconds(row["start"], where, "start"), _seconds(row["end"], where, "end"),
                                row["text"].strip(), (row.get("media") or "").strip() or None))
    return segments, 0


READERS: dict[str, Callable[[Path], tuple[list[Segment], int]]] = {
    ".stm": read_stm, ".vtt": read_webvtt, ".srt": read_srt, ".csv": read_csv_transcript,
}


# -- media -------------------------------------------------------------------------------------------
def media_streams(path: Path) -> set[str] | None:
    """The stream kinds of a media file ({'audio', 'video'}); None when it cannot be opened (the
    extractors then record the damage as a failure)."""
    if path.suffix.lower() in AUDIO_SUFFIXES:
        return {"audio"}
    try:
        import av

        with av.open(str(path)) as container:
            return {s.type for s in container.streams if s.type in ("audio", "video")}
    except Exception:  # any decoder error: the file is damaged or not media
        return None


def media_roles(paths: list[Path]) -> tuple[str | None, str | None]:
    """(audio source, video source) from a conversation's recording file(s)."""
    audio = video = None
    for path in paths:
        streams = media_streams(path)
        if streams is None:  # unreadable: give it every role its name suggests, so the failure is recorded
            streams = {"audio"} if path.suffix.lower() in AUDIO_SUFFIXES else {"audio", "video"}
        if "video" in streams and video is None:
            video = str(path)
        if "audio" in streams and (audio is None or path.suffix.lower() in AUDIO_SUFFIXES):
            audio = str(path)
    return audio, video


def _media_beside(folder: Path, stems: list[str]) -> list[Path]:
    """Recordings named after one of ``stems`` in ``folder``: an audio file and/or a video file."""
    by_name = {(p.stem, p.suffix.lower()): p for p in folder.iterdir() if p.is_file()}
    for stem in stems:
        found = [by_name[(stem, ext)] for ext in (*AUDIO_SUFFIXES, *VIDEO_SUFFIXES) if (stem, ext) in by_name]
        if found:
            audio = [p for p in found if p.suffix.lower() in AUDIO_SUFFIXES][:1]
            video = [p for p in found if p.suffix.lower() in VIDEO_SUFFIXES][:1]
            return audio + video
    return []


def find_transcripts(root: Path) -> list[Path]:
    if root.is_file():
        if root.suffix.lower() not in READERS:
            raise CorpusError(f"{root}: not a transcript; use one of {', '.join(READERS)} files")
        return [root]
    files = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in READERS)
    if not files:
        raise CorpusError(f"{root}: no transcript ({', '.join(READERS)}) in this folder")
    return files


@register_corpus
class TranscriptAdapter(CorpusAdapter):
    """Options: ``media`` (the recording, for one conversation), ``name`` (corpus name, default the
    transcript's stem or the folder's name)."""

    name = "transcript"
    description = "Recordings with a transcript (.stm, .vtt, .srt, .csv): label-free, to predict"

    def load(self, root: Path) -> Corpus:
        files = find_transcripts(root)
        conversations: dict[str, list[Segment]] = {}
        source: dict[str, Path] = {}
        per_file: Counter[Path] = Counter()
        skipped = 0
        for path in files:
            segments, dropped = READERS[path.suffix.lower()](path)
            skipped += dropped
            names = {s.conversation or path.stem for s in segments}
            for name in names:
                if name in source:
                    raise CorpusError(f"{path}: conversation {name!r} is also in {source[name]}; give each "
                                      "conversation its own name")
                source[name] = path
            per_file[path] = len(names)
            for s in segments:
                conversations.setdefault(s.conversation or path.stem, []).append(s)
        if not conversations:
            raise CorpusError(f"{root}: the transcript holds no utterances")
        media_option = self.options.get("media")
        if media_option and len(conversations) > 1:
            raise CorpusError(f"--media names one recording, but {root} holds {len(conversations)} conversations "
                              f"({', '.join(sorted(conversations)[:5])}); put each recording beside its transcript "
                              "as <conversation>.<ext> instead")
        rows: list[Utterance] = []
        media_of: dict[str, dict[str, str | None]] = {}
        counts: Counter[str] = Counter()
        for name, segments in conversations.items():
            recordings = self._recordings(name, segments, source[name], media_option, per_file[source[name]] == 1)
            audio, video = media_roles(recordings)
            media_of[name] = {"audio": audio, "video": video}
            counts["conversations_without_audio"] += audio is None
            counts["conversations_without_video"] += video is None
            for k, s in enumerate(sorted(segments, key=lambda s: (s.start, s.end))):
                if s.end <= s.start:
                    raise CorpusError(f"{s.where}: end {s.end} s is not after start {s.start} s")
                counts["utterances_without_speaker"] += not s.speaker
                counts["utterances_without_text"] += not s.text
                rows.append(Utterance(
                    id=f"{name}_u{k}", dialogue_id=name, index=k, speaker=s.speaker or UNKNOWN_SPEAKER,
                    text=s.text, label=None, split=None, audio_path=audio, video_path=video,
                    start=s.start, end=s.end,
                ))
        default_name = root.stem if root.is_file() else root.name
        return Corpus(
            name=str(self.options.get("name") or default_name),
            labels=list(self.options.get("labels") or []),
            dialogues=build_dialogues(rows),
            provenance={"format": "transcript", "files": [str(p.resolve()) for p in files], "media": media_of},
            report={"skipped_segments": skipped, **counts},
        )

    @staticmethod
    def _recordings(name: str, segments: list[Segment], transcript: Path, media_option: str | None,
                    alone: bool) -> list[Path]:
        """The recording file(s) of conversation ``name``; ``alone``: the only one in its transcript."""
        if media_option:
            path = Path(media_option)
            if not path.is_file():
                raise CorpusError(f"--media {path}: no such file")
            return [path]
        listed = {s.media for s in segments if s.media}
        if len(listed) > 1:
            raise CorpusError(f"{transcript}: conversation {name!r} names several media files "
                              f"({', '.join(sorted(listed))}); one recording per conversation")
        if listed:
            path = Path(listed.pop())
            path = path if path.is_absolute() else transcript.parent / path
            if not path.is_file():
                raise CorpusError(f"{segments[0].where}: media {path} does not exist")
            return [path]
        stems = [name] + ([transcript.stem] if alone else [])
        return _media_beside(transcript.parent, list(dict.fromkeys(stems)))
