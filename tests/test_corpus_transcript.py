"""Recordings with transcripts (.stm, .vtt, .srt, .csv) as label-free corpora."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mmemolr.cli.main import main
from mmemolr.corpus import CorpusError, load_corpus, load_prepared, save_prepared

VTT = """WEBVTT - a call

NOTE written by hand

1
00:00:01.000 --> 00:00:02.500 align:start
<v Ann>Hi, it&apos;s me.</v>

00:02.600 --> 00:04.000
<v.loud Bob>What <i>now</i>?
<v Ann>Nothing.

00:00:04.100 --> 00:00:06.000
Ann: I just wanted to talk.
"""

SRT = """1
00:00:01,000 --> 00:00:02,500
ANN: Hi, it's me.

2
00:00:02,600 --> 00:00:04,000
- BOB: What now?
- ANN: Nothing.

3
00:00:04,100 --> 00:00:06,000
{\\an8}<i>(door closes)</i>
"""

CSV = """conversation,speaker,start,end,text
call,Ann,1.0,2.5,"Hi, it's me."
call,Bob,2.6,4.0,What now?
call,Ann,00:00:02.600,4.0,Nothing.
"""

STM = """;; two recordings in one file
rec1 1 Ann 1.0 2.5 <o,f0,female> Hi, it's me.
rec1 1 inter_segment_gap 2.5 2.6
rec1 1 Bob 2.6 4.0 What now?
rec2 A Cy 0.5 1.5 Hello there.
rec2 A Cy 1.5 2.0 ignore_time_segment_in_scoring
"""


def _roundtrip(corpus, tmp_path: Path):
    corpus.validate()
    save_prepared(corpus, tmp_path / "prepared")
    again = load_prepared(tmp_path / "prepared")
    assert again.to_dict() == corpus.to_dict() and again.fingerprint() == corpus.fingerprint()
    assert again.label_free and not again.context_only() and again.splits == [] and again.groups == [None]
    return again


def test_the_shared_stm_with_its_recording(media_dir, tmp_path):
    corpus = _roundtrip(load_corpus("transcript", media_dir / "dialogue-sample.stm"), tmp_path)
    assert corpus.name == "dialogue-sample" and [d.id for d in corpus.dialogues] == ["sample"]
    utts = list(corpus.utterances())
    assert len(utts) == 13 and {u.speaker for u in utts} == {"Diane", "Sheila"}
    assert (utts[0].start, utts[0].end, utts[0].text) == (6.68, 7.16, "Hello?")
    assert utts[-1].text == "Oh, I don't hear that in New Jersey now."
    # the recording beside the transcript (named after the file, not the stm's file field) is an audio file
    assert all(u.audio_path == str(media_dir / "dialogue-sample.wav") and u.video_path is None for u in utts)
    assert all(u.label is None and u.split is None for u in utts)
    assert corpus.report["conversations_without_video"] == 1


SUBTITLES = {
    ".vtt": (VTT, [("Ann", 1.0, 2.5, "Hi, it's me."), ("Bob", 2.6, 4.0, "What now?"), ("Ann", 2.6, 4.0, "Nothing."),
                   ("Ann", 4.1, 6.0, "I just wanted to talk.")]),
    # a cue without a speaker is 'unknown' (counted); tags and SSA overrides such as {\an8} are stripped
    ".srt": (SRT, [("ANN", 1.0, 2.5, "Hi, it's me."), ("BOB", 2.6, 4.0, "What now?"), ("ANN", 2.6, 4.0, "Nothing."),
                   ("unknown", 4.1, 6.0, "(door closes)")]),
}


@pytest.mark.parametrize("suffix", sorted(SUBTITLES))
def test_subtitles_with_speakers_from_voice_tags_or_name_prefixes(tmp_path, suffix):
    text, expected = SUBTITLES[suffix]
    path = tmp_path / f"call{suffix}"
    path.write_text(text, encoding="utf-8")
    corpus = _roundtrip(load_corpus("transcript", path), tmp_path)
    assert [(u.speaker, u.start, u.end, u.text) for u in corpus.utterances()] == expected
    assert corpus.report["utterances_without_speaker"] == (suffix == ".srt")
    assert corpus.report["conversations_without_audio"] == 1  # no recording beside it: text-only


def test_csv_and_a_video_recording_without_audio_track(media_dir, tmp_path):
    (tmp_path / "call.csv").write_text(CSV, encoding="utf-8")
    shutil.copy(media_dir / "carphone_pristine.mp4", tmp_path / "call.mp4")  # video only, no audio track
    corpus = _roundtrip(load_corpus("transcript", tmp_path / "call.csv"), tmp_path)
    utts = list(corpus.utterances())
    assert [u.id for u in utts] == ["call_u0", "call_u1", "call_u2"] and utts[2].start == 2.6
    assert all(u.video_path == str(tmp_path / "call.mp4") and u.audio_path is None for u in utts)
    assert corpus.report["conversations_without_audio"] == 1


def test_stm_with_two_recordings_and_excluded_segments(media_dir, tmp_path):
    (tmp_path / "calls.stm").write_text(STM, encoding="utf-8")
    shutil.copy(media_dir / "single_face.mp4", tmp_path / "rec2.mp4")  # video with an audio track
    corpus = _roundtrip(load_corpus("transcript", tmp_path, name="calls"), tmp_path)
    assert corpus.name == "calls" and [d.id for d in corpus.dialogues] == ["rec1", "rec2"]
    rec1, rec2 = corpus.dialogues
    assert [u.text for u in rec1.utterances] == ["Hi, it's me.", "What now?"] and rec1.utterances[0].audio_path is None
    assert rec2.utterances[0].audio_path == rec2.utterances[0].video_path == str(tmp_path / "rec2.mp4")
    assert corpus.report["skipped_segments"] == 2


def test_media_option_and_prepare_through_the_cli(media_dir, tmp_path, capsys):
    stm = tmp_path / "x.stm"
    shutil.copy(media_dir / "dialogue-sample.stm", stm)
    out = tmp_path / "features" / "call"
    assert main(["corpus", "prepare", "--corpus", "Transcript", "--root", str(stm), "--media",
                 str(media_dir / "dialogue-sample.wav"), "--name", "call", "--out", str(out)]) == 0
    assert "label-free" in capsys.readouterr().out
    corpus = load_prepared(out)
    assert corpus.name == "call" and all(u.audio_path.endswith("dialogue-sample.wav") for u in corpus.utterances())
    assert main(["corpus", "inspect", "--corpus", "meld", "--root", str(stm), "--media", "x.wav"]) == 1
    assert "--media is for --corpus transcript" in capsys.readouterr().err


@pytest.mark.parametrize("name, text, message", [
    ("a.stm", "rec 1 A 2.0 1.0 backwards\n", r"a.stm: line 1: end 1.0 s is not after start 2.0 s"),
    ("a.stm", "rec 1 A 2.0\n", r"a.stm: line 1: expected 'file channel speaker start end"),
    ("a.vtt", "1\n00:00:01.000 --> 00:00:02.000\nhi\n", r"a.vtt: line 1: a WebVTT file starts with 'WEBVTT'"),
    ("a.srt", "1\n00:00:01,000 -> 00:00:02,000\nhi\n", r"a.srt: line 1: a cue without a 'start --> end' line"),
    ("a.srt", "1\n00:00:0x,000 --> 00:00:02,000\nhi\n", r"a.srt: line 2: cannot read time"),
    ("a.csv", "speaker,start,text\nA,1,hi\n", r"a.csv: missing column\(s\) end"),
    ("a.txt", "hello\n", r"a.txt: not a transcript"),
])
def test_transcript_errors_name_file_and_line(tmp_path, name, text, message):
    (tmp_path / name).write_text(text, encoding="utf-8")
    with pytest.raises(CorpusError, match=message):
        load_corpus("transcript", tmp_path / name)


def test_one_media_file_for_several_conversations_is_refused(media_dir, tmp_path):
    (tmp_path / "calls.stm").write_text(STM, encoding="utf-8")
    with pytest.raises(CorpusError, match="--media names one recording, but .* holds 2 conversations"):
        load_corpus("transcript", tmp_path / "calls.stm", media=str(media_dir / "dialogue-sample.wav"))
