"""Custom corpora from a CSV or JSONL manifest."""

from __future__ import annotations

import json

import pytest

from mmemolr.corpus import CorpusError, load_corpus

CSV = """dialogue_id,utterance_index,speaker,text,label,split,audio_path,start,end
d1,1,A,second,sad,train,a.wav,1.5,2.0
d1,0,B,first,happy,train,a.wav,0,1.5
d2,0,A,hello,happy,valid,,,
d3,0,B,bye,sad,test,,00:00:01.250,
"""


def test_csv_manifest(tmp_path):
    (tmp_path / "a.wav").write_bytes(b"RIFF")
    (tmp_path / "manifest.csv").write_text(CSV)
    corpus = load_corpus("manifest", tmp_path, name="mine")
    assert corpus.name == "mine" and corpus.labels == ["happy", "sad"]
    d1 = corpus.dialogues[0]
    assert [u.text for u in d1.utterances] == ["first", "second"]
    assert d1.utterances[1].audio_path == str(tmp_path / "a.wav") and d1.utterances[1].start == 1.5
    assert corpus.split_dialogues("dev")[0].id == "d2"
    assert corpus.dialogues[2].utterances[0].start == 1.25
    assert corpus.report["missing_media"] == 0


def test_jsonl_manifest_and_labels_option(tmp_path):
    rows = [
        {"dialogue_id": "x", "utterance_index": 0, "speaker": "A", "text": "hi", "label": "neu", "split": "train"},
        {"dialogue_id": "x", "utterance_index": 1, "speaker": "B", "text": "yo", "label": "pos", "split": "train",
         "utterance_id": "custom-id"},
    ]
    path = tmp_path / "m.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    corpus = load_corpus("manifest", path, labels=["pos", "neu", "neg"])
    assert corpus.labels == ["pos", "neu", "neg"]
    assert corpus.utterance_ids() == ["x_u0", "custom-id"]


@pytest.mark.parametrize(
    "line, message",
    [
        ("d9,0,A,t,sad,holdout,,,", r"manifest.csv: line 6: split 'holdout' is not one of train, dev, test"),
        ("d1,0,A,t,sad,train,,,", r"manifest.csv: line 6: duplicate utterance id 'd1_u0' \(first at line 3\)"),
        ("d9,x,A,t,sad,train,,,", r"line 6: column utterance_index must be an integer"),
        ("d1,5,A,t,sad,test,,,", r"dialogue 'd1' spans several splits"),
    ],
)
def test_manifest_errors(tmp_path, line, message):
    (tmp_path / "manifest.csv").write_text(CSV + line + "\n")
    with pytest.raises(CorpusError, match=message):
        load_corpus("manifest", tmp_path)


def test_manifest_label_outside_given_set(tmp_path):
    (tmp_path / "manifest.csv").write_text(CSV)
    with pytest.raises(CorpusError, match=r"utterance 'd1_u1' has label 'sad' not in labels"):
        load_corpus("manifest", tmp_path, labels=["happy"])


def test_manifest_missing_media_required(tmp_path):
    (tmp_path / "manifest.csv").write_text(CSV)
    with pytest.raises(CorpusError, match=r"line 2: audio_path .*a.wav does not exist"):
        load_corpus("manifest", tmp_path, require_media=True)
