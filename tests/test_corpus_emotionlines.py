"""EmotionLines / EmotionX Friends: small files written exactly in the release's format.

Each file is an array of dialogues; each dialogue an array of {"speaker", "utterance", "emotion",
"annotation"}; annotation = 7 digits of votes (neutral, joy, sadness, fear, anger, surprise, disgust)
summing to 5; emotion = the majority label or "non-neutral"; punctuation as C1 controls (U+0092 for ’).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmemolr.cli.main import main
from mmemolr.corpus import CorpusError, load_corpus, load_prepared


def row(speaker: str, utterance: str, emotion: str, annotation: str) -> dict[str, str]:
    return {"speaker": speaker, "utterance": utterance, "emotion": emotion, "annotation": annotation}


FRIENDS = {
    "train": [
        [row("Chandler", "Hey. I\u0092m here.", "neutral", "5000000"),
         row("Joey", "How you doin\u0092?", "joy", "1300010"),
         row("Ross", "Oh no.", "non-neutral", "0021200")],  # sadness 2, fear 1, anger 2: no majority
        [row("Monica", "What?!", "surprise", "0000050"),
         row("Rachel", "Ugh, that\u0092s gross.", "anger", "0000302")],
    ],
    "dev": [
        [row("Phoebe", "Okay.", "neutral", "4000100"),
         row("Joey", "Yes!", "joy", "0500000"),
         row("Ross", "Hmm...", "non-neutral", "2200010")],
    ],
    "test": [
        [row("Rachel", "Eww.", "disgust", "0000104"),
         row("Mon\u0092ica", "I miss him.", "sadness", "0230000"),
         row("Chandler", "Well...", "joy", "2210000")],  # a tie for the most votes: questioned, kept
    ],
}


def write_friends(root: Path, data: dict | None = None, ascii_escapes: bool = True) -> Path:
    """The three release files; ``ascii_escapes`` writes U+0092 as \\u0092 (else as raw UTF-8 bytes)."""
    root.mkdir(parents=True, exist_ok=True)
    for split, dialogues in (data or FRIENDS).items():
        (root / f"friends_{split}.json").write_text(json.dumps(dialogues, indent=2, ensure_ascii=ascii_escapes),
                                                    encoding="utf-8")
    return root


@pytest.mark.parametrize("ascii_escapes", [True, False])
def test_emotionlines_corpus(tmp_path, ascii_escapes):
    corpus = load_corpus("emotionlines", write_friends(tmp_path, ascii_escapes=ascii_escapes))
    assert corpus.labels == ["neutral", "joy", "sadness", "fear", "anger", "surprise", "disgust"]
    assert [d.id for d in corpus.dialogues] == ["train_d000", "train_d001", "dev_d000", "test_d000"]
    assert [len(corpus.split_dialogues(s)) for s in ("train", "dev", "test")] == [2, 1, 1]
    first = corpus.dialogues[0].utterances
    assert [u.id for u in first] == ["train_d000_u00", "train_d000_u01", "train_d000_u02"]
    assert first[0].text == "Hey. I’m here." and first[1].text == "How you doin’?" and first[0].speaker == "Chandler"
    assert first[1].label == "joy" and first[1].votes == {"neutral": 1, "joy": 3, "surprise": 1}
    # no majority: context-only, kept in its dialogue with its votes
    assert first[2].label is None and first[2].votes == {"sadness": 2, "fear": 1, "anger": 2}
    assert first[2].extra["context_reason"] == "non-neutral"
    assert [u.id for u in corpus.context_only()] == ["train_d000_u02", "dev_d000_u02"]
    assert corpus.has_votes and not corpus.label_free
    # C1 repairs: three texts and one speaker, counted once per utterance
    assert corpus.report["repaired_c1_utterances"] == 4
    assert corpus.utterances("test").__next__().speaker == "Rachel"
    assert [u.speaker for u in corpus.utterances("test")][1] == "Mon’ica"
    assert corpus.report["context_only"] == {"non-neutral": 2}
    # the tie for the most votes is counted and named in a warning; its emotion stays the gold label
    assert corpus.report["label_vote_disagreements"] == 1
    assert any("test_d000_u02 (joy, annotation 2210000)" in w for w in corpus.report["warnings"])
    assert [u.label for u in corpus.utterances("test")] == ["disgust", "sadness", "joy"]


def test_release_folder_found_below_root_and_missing_files_named(tmp_path):
    write_friends(tmp_path / "EmotionLines" / "Friends")
    assert load_corpus("emotionlines", tmp_path).provenance["folder"].endswith("EmotionLines/Friends")
    other = tmp_path / "other"
    other.mkdir()
    (other / "friends.json").write_text("[]")
    with pytest.raises(CorpusError, match=r"other: EmotionLines files not found; --root must be a folder holding "
                       r"friends_train.json, friends_dev.json, friends_test.json .*found friends.json\)"):
        load_corpus("emotionlines", other)


def _broken(split: str, dialogue: int, position: int, change: dict) -> dict:
    data = json.loads(json.dumps(FRIENDS))
    record = data[split][dialogue][position]
    for key, value in change.items():
        if value is None:
            del record[key]
        else:
            record[key] = value
    return data


@pytest.mark.parametrize("change, message", [
    ({"annotation": "500000"}, r"annotation '500000' must be a string of 7 digits, the votes for neutral, joy"),
    ({"annotation": 5000000}, r"annotation 5000000 must be a string of 7 digits"),
    ({"annotation": "50000x0"}, r"annotation '50000x0' must be a string of 7 digits"),
    ({"annotation": "5000001"}, r"annotation '5000001' sums to 6 votes, not 5 \(one per annotator\)"),
    ({"annotation": None}, r"missing key\(s\) annotation; each utterance has speaker, utterance, emotion, annotation"),
    ({"emotion": "happy"}, r"unknown emotion 'happy'; EmotionLines has neutral, .* and 'non-neutral'"),
    ({"utterance": 3}, r"utterance must be a string, got 3"),
])
def test_bad_rows_name_file_dialogue_and_utterance(tmp_path, change, message):
    write_friends(tmp_path, _broken("dev", 0, 1, change))
    with pytest.raises(CorpusError, match=r"friends_dev.json: dialogue 0, utterance 1 \(dev_d000_u01, counting from "
                       r"0\): " + message):
        load_corpus("emotionlines", tmp_path)


def test_bad_structure(tmp_path):
    data = json.loads(json.dumps(FRIENDS))
    data["train"] = {"dialogues": []}
    write_friends(tmp_path, data)
    with pytest.raises(CorpusError, match=r"friends_train.json: expected an array of dialogues, got a JSON object"):
        load_corpus("emotionlines", tmp_path)
    data["train"] = [FRIENDS["train"][0], "not a dialogue"]
    write_friends(tmp_path, data)
    with pytest.raises(CorpusError, match=r"friends_train.json: dialogue 1 \(train_d001, counting from 0\): expected "
                       r"an array of utterances, got a JSON string"):
        load_corpus("emotionlines", tmp_path)
    data["train"] = [FRIENDS["train"][0], [["Joey", "hi"]]]
    write_friends(tmp_path, data)
    with pytest.raises(CorpusError, match=r"dialogue 1, utterance 0 \(train_d001_u00, counting from 0\): expected an "
                       r"object with keys speaker, utterance, emotion, annotation, got a JSON array"):
        load_corpus("emotionlines", tmp_path)
    write_friends(tmp_path)
    (tmp_path / "friends_test.json").write_text('[[{"speaker": "A",')
    with pytest.raises(CorpusError, match=r"friends_test.json: line 1: invalid JSON"):
        load_corpus("emotionlines", tmp_path)


def test_empty_dialogue_skipped_and_counted(tmp_path):
    data = json.loads(json.dumps(FRIENDS))
    data["dev"].insert(0, [])
    corpus = load_corpus("emotionlines", write_friends(tmp_path, data))
    assert [d.id for d in corpus.split_dialogues("dev")] == ["dev_d001"]  # ids keep the file position
    assert corpus.report["empty_dialogues"] == 1
    assert any("1 empty dialogue(s) skipped: friends_dev.json dialogue 0" in w for w in corpus.report["warnings"])


def test_prepare_and_inspect_cli(tmp_path, capsys):
    root = write_friends(tmp_path / "raw")
    assert main(["corpus", "inspect", "--corpus", "EmotionLines", "--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert "context-only utterances" in out and "non-neutral" in out
    assert "annotator agreement" in out and "annotators' class confusion, train" in out
    assert "repaired_c1_utterances=4" in out and "warning: 1 utterance(s) whose emotion" in out
    # label shares are over the labelled utterances: train has 4, one of each of 4 labels
    assert "1 (25.0%)" in out
    assert main(["corpus", "prepare", "--corpus", "emotionlines", "--root", str(root),
                 "--out", str(tmp_path / "features" / "emotionlines")]) == 0
    assert "prepared corpus written to" in capsys.readouterr().out
    again = load_prepared("emotionlines", tmp_path / "features")
    original = load_corpus("emotionlines", root)
    assert again.to_dict() == original.to_dict() and again.fingerprint() == original.fingerprint()
    assert again.utterances("train").__next__().votes == {"neutral": 5}
    assert len(again.context_only("dev")) == 1
