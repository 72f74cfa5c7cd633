"""EmoryNLP adapter: real filtered CSVs and a synthetic official JSON release."""

from __future__ import annotations

import json

import pytest

from mmemolr.corpus import CorpusError, load_corpus


def test_real_emorynlp_counts(emorynlp_corpus):
    c = emorynlp_corpus
    assert {s: sum(1 for _ in c.utterances(s)) for s in ("train", "dev", "test")} == {"train": 7551, "dev": 954, "test": 984}
    assert {s: len(c.split_dialogues(s)) for s in ("train", "dev", "test")} == {"train": 659, "dev": 89, "test": 79}
    assert c.labels == ["Neutral", "Joyful", "Peaceful", "Powerful", "Scared", "Mad", "Sad"]
    first = c.dialogues[0].utterances[0]
    assert first.speaker == "Monica Geller" and first.extra["speakers"] == ["Monica Geller"]
    multi = [u for u in c.utterances() if len(u.extra["speakers"]) > 1]
    assert multi and c.report["multi_speaker_utterances"] == len(multi)
    assert " & " in multi[0].speaker
    # dialogue = (Season, Episode, Scene_ID); ids unique across splits
    assert len(set(c.utterance_ids())) == 7551 + 954 + 984


def _release(season: int, emotion: str = "Joyful") -> dict:
    return {
        "season_id": f"s{season:02d}",
        "episodes": [{
            "episode_id": f"s{season:02d}_e01",
            "scenes": [{
                "scene_id": f"s{season:02d}_e01_c01",
                "utterances": [
                    {"utterance_id": f"s{season:02d}_e01_c01_u001", "speakers": ["Monica Geller"],
                     "transcript": "Hi!", "emotion": emotion},
                    {"utterance_id": f"s{season:02d}_e01_c01_u002", "speakers": ["Joey Tribbiani", "Ross Geller"],
                     "transcript": "Hey.", "emotion": "Neutral"},
                ],
            }],
        }],
    }


def test_json_release(tmp_path):
    for n, split in enumerate(("trn", "dev", "tst"), 1):
        (tmp_path / f"emotion-detection-{split}.json").write_text(json.dumps(_release(n)))
    c = load_corpus("emorynlp", tmp_path)
    assert c.provenance["format"] == "json"
    assert [d.id for d in c.dialogues] == ["s1_e1_c1", "s2_e1_c1", "s3_e1_c1"]
    assert [d.split for d in c.dialogues] == ["train", "dev", "test"]
    u = c.dialogues[0].utterances[1]
    assert u.id == "s1_e1_c1_u2" and u.speaker == "Joey Tribbiani & Ross Geller" and u.label == "Neutral"


def test_json_unknown_emotion(tmp_path):
    for n, split in enumerate(("trn", "dev", "tst"), 1):
        (tmp_path / f"emotion-detection-{split}.json").write_text(json.dumps(_release(n, "Angry" if n == 2 else "Sad")))
    with pytest.raises(CorpusError, match=r"emotion-detection-dev.json: utterance s02_e01_c01_u001: unknown emotion 'Angry'"):
        load_corpus("emorynlp", tmp_path)


def test_bad_speaker_literal(tmp_path, emorynlp_root):
    for name in ("emorynlp_train_final.csv", "emorynlp_dev_final.csv", "emorynlp_test_final.csv"):
        text = (emorynlp_root / name).read_text(encoding="utf-8")
        if name.startswith("emorynlp_dev"):
            text = text.replace("['", "[__import__('os')", 1)
        (tmp_path / name).write_text(text, encoding="utf-8")
    with pytest.raises(CorpusError, match=r"emorynlp_dev_final.csv: line 2: Speaker .* is not a list literal"):
        load_corpus("emorynlp", tmp_path)


def test_a_cp1252_line_leaves_the_utf8_lines_intact(tmp_path, emorynlp_root):
    for name in ("emorynlp_train_final.csv", "emorynlp_dev_final.csv", "emorynlp_test_final.csv"):
        data = (emorynlp_root / name).read_bytes()
        if name.startswith("emorynlp_test"):
            data = data.replace(b"things, using", "thingsé, using".encode("cp1252"), 1)  # one legacy byte, line 2
            data = data.replace(b"a bookcase", "a ‘bookcase’".encode(), 1)  # UTF-8 punctuation, line 3
        (tmp_path / name).write_bytes(data)
    corpus = load_corpus("emorynlp", tmp_path)
    original = load_corpus("emorynlp", emorynlp_root)
    changed = [(a.text, b.text) for a, b in zip(original.utterances(), corpus.utterances()) if a.text != b.text]
    assert len(changed) == 2 and changed[0][1] == changed[0][0].replace("things, using", "thingsé, using")
    assert changed[1][1] == changed[1][0].replace("a bookcase", "a ‘bookcase’")
    assert corpus.report["cp1252_lines"] == 1
    assert "emorynlp_test_final.csv: 1 line(s)" in corpus.report["warnings"][0]
    assert "line(s) 2;" in corpus.report["warnings"][0]
