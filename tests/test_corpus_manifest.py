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


def test_one_stray_byte_repairs_its_line_only_and_is_reported(tmp_path, capsys):
    """The issue's reproduction: one cp1252 byte once turned every correct ’ and é of the file into mojibake."""
    from mmemolr.cli.main import main

    (tmp_path / "manifest.csv").write_bytes(
        "dialogue_id,utterance_index,speaker,text,label,split\nd1,0,A,I won’t go to the café,joy,train\n".encode()
        + b"d2,0,A,dev l\xe9ne,joy,dev\nd3,0,B,t,neutral,test\n")
    corpus = load_corpus("manifest", tmp_path)
    texts = [u.text for u in corpus.utterances()]
    assert texts == ["I won’t go to the café", "dev léne", "t"]
    assert corpus.report["cp1252_lines"] == 1
    assert corpus.report["warnings"] == [
        f"{tmp_path / 'manifest.csv'}: 1 line(s) are not valid UTF-8; their invalid bytes were read as cp1252 "
        "(Windows-1252): line(s) 3; check their text, or re-save the file as UTF-8"]
    assert main(["corpus", "prepare", "--corpus", "manifest", "--root", str(tmp_path), "--out", str(tmp_path / "p")]) == 0
    assert "warning: " + corpus.report["warnings"][0] in capsys.readouterr().out


def test_line_neither_utf8_nor_cp1252_names_file_and_line(tmp_path):
    (tmp_path / "manifest.jsonl").write_bytes(
        b'{"dialogue_id": "d", "utterance_index": 0, "speaker": "A", "text": "ok", "label": "x", "split": "train"}\n'
        b'{"dialogue_id": "d", "utterance_index": 1, "speaker": "A", "text": "\x81", "label": "x", "split": "train"}\n')
    with pytest.raises(CorpusError, match=r"manifest.jsonl: line 2: bytes are neither UTF-8 nor cp1252 \(byte 0x81 at "
                                          r"column 69\)"):
        load_corpus("manifest", tmp_path)


def test_labels_differing_only_in_case_are_warned_about(tmp_path):
    (tmp_path / "manifest.csv").write_text("dialogue_id,utterance_index,speaker,text,label,split\n"
                                           "d1,0,A,a,joy,train\nd2,0,A,b,Joy,dev\nd3,0,A,c,neutral,test\n")
    corpus = load_corpus("manifest", tmp_path)
    assert corpus.labels == ["Joy", "joy", "neutral"]  # still two classes: the user decides
    assert corpus.report["warnings"] == [
        f"{tmp_path / 'manifest.csv'}: labels 'Joy' (line 3) and 'joy' (line 2) differ only in case and are "
        "separate classes; write them alike if they are one class"]


LABEL_FREE = """dialogue_id,utterance_index,speaker,text,audio_path,start,end
call,1,B,fine thanks,a.wav,1.5,2.0
call,0,A,how are you,a.wav,0,1.5
chat,0,C,typed only,,,
"""


def test_label_free_manifest_round_trips(tmp_path, capsys):
    from mmemolr.cli.main import main
    from mmemolr.corpus import load_prepared, save_prepared

    (tmp_path / "a.wav").write_bytes(b"RIFF")
    (tmp_path / "manifest.csv").write_text(LABEL_FREE)  # no label and no split column at all
    corpus = load_corpus("manifest", tmp_path, name="calls")
    assert corpus.label_free and corpus.labels == [] and corpus.splits == [] and corpus.groups == [None]
    assert [u.text for u in corpus.dialogues[0].utterances] == ["how are you", "fine thanks"]
    assert all(u.label is None and u.split is None for u in corpus.utterances())
    save_prepared(corpus, tmp_path / "prepared")
    assert load_prepared(tmp_path / "prepared").to_dict() == corpus.to_dict()
    # empty label and split cells are the same as no columns; JSONL with null labels too
    (tmp_path / "manifest.csv").write_text(LABEL_FREE.replace("end\n", "end,label,split\n", 1)
                                           .replace("2.0\n", "2.0,,\n").replace("1.5\n", "1.5,,\n"))
    assert load_corpus("manifest", tmp_path, name="calls").fingerprint() == corpus.fingerprint()
    rows = [{"dialogue_id": "x", "utterance_index": 0, "speaker": "A", "text": "hi", "label": None, "split": "test"}]
    (tmp_path / "m.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    jsonl = load_corpus("manifest", tmp_path / "m.jsonl")
    assert jsonl.label_free and jsonl.splits == ["test"]
    # prepare prints that it is label-free; train refuses it, naming predict
    (tmp_path / "manifest.csv").write_text(LABEL_FREE)
    features = tmp_path / "features"
    assert main(["corpus", "prepare", "--corpus", "manifest", "--root", str(tmp_path / "manifest.csv"),
                 "--name", "calls", "--out", str(features / "calls")]) == 0
    assert "label-free: no utterance has a label" in capsys.readouterr().out
    assert main(["train", "--corpus", "calls", "--features-dir", str(features), "--quiet"]) == 1
    assert "is label-free (no utterance has a label)" in capsys.readouterr().err


@pytest.mark.parametrize("extra, message", [
    ("d9,0,A,t,,test,,,", r"line 6: empty label for utterance 'd9_u0'; line 2 has one"),
    ("d9,0,A,t,sad,,,,", r"line 6: no split for utterance 'd9_u0'; every row of a labelled manifest needs one"),
])
def test_labelled_manifests_stay_strict(tmp_path, extra, message):
    (tmp_path / "manifest.csv").write_text(CSV + extra + "\n")
    with pytest.raises(CorpusError, match=message):
        load_corpus("manifest", tmp_path)


VOTED = """dialogue_id,utterance_index,speaker,text,label,split,votes
d1,0,A,first,happy,train,happy:3;sad:2
d1,1,B,second,-,train,happy:2; sad:2 ;other:1;
d1,2,A,third,sad,train,
d2,0,A,hello,happy,dev,happy:4
d3,0,B,bye,sad,test,sad:1;other:0
"""


def test_votes_column_and_context_only_rows(tmp_path, capsys):
    from mmemolr.cli.main import main

    (tmp_path / "manifest.csv").write_text(VOTED)
    corpus = load_corpus("manifest", tmp_path)
    u = {x.id: x for x in corpus.utterances()}
    assert u["d1_u0"].votes == {"happy": 3, "sad": 2} and u["d1_u2"].votes is None
    # '-' marks a context-only row: no label, kept in its dialogue, votes kept
    assert u["d1_u1"].label is None and u["d1_u1"].votes == {"happy": 2, "sad": 2, "other": 1}
    assert [x.id for x in corpus.context_only()] == ["d1_u1"] and corpus.labels == ["happy", "sad"]
    assert corpus.report["context_only"] == {"label '-'": 1}
    assert u["d3_u0"].votes == {"sad": 1, "other": 0}
    # JSONL: the same string, or an object
    rows = [{"dialogue_id": "x", "utterance_index": 0, "speaker": "A", "text": "hi", "label": "neu", "split": "train",
             "votes": {"neu": 2, "other": 1}},
            {"dialogue_id": "x", "utterance_index": 1, "speaker": "B", "text": "yo", "label": "-", "split": "train",
             "votes": "neu:1;pos:1"},
            {"dialogue_id": "x", "utterance_index": 2, "speaker": "A", "text": "ok", "label": "pos", "split": "train"}]
    (tmp_path / "m.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    jsonl = load_corpus("manifest", tmp_path / "m.jsonl")
    assert [x.votes for x in jsonl.utterances()] == [{"neu": 2, "other": 1}, {"neu": 1, "pos": 1}, None]
    assert [x.label for x in jsonl.utterances()] == ["neu", None, "pos"]
    assert main(["corpus", "inspect", "--corpus", "manifest", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "label '-'" in out and "annotator agreement" in out


@pytest.mark.parametrize("votes, message", [
    ("happy:three", r"votes 'happy:three': count 'three' is not a whole number \(0 or more\)"),
    ("happy:-1", r"votes 'happy:-1': count '-1' is not a whole number"),
    ("happy:1.5", r"votes 'happy:1.5': count '1.5' is not a whole number"),
    ("happy3", r"votes 'happy3': 'happy3' is not label:count \(write e.g. joy:3;neutral:2\)"),
    (":3", r"votes ':3': ':3' is not label:count"),
    ("happy:1;happy:2", r"votes 'happy:1;happy:2' name 'happy' twice"),
    ("happy:0;sad:0", r"votes 'happy:0;sad:0' hold no vote; leave votes empty"),
])
def test_bad_vote_strings_name_file_line_and_utterance(tmp_path, votes, message):
    (tmp_path / "manifest.csv").write_text(VOTED + f'd4,0,A,t,sad,test,"{votes}"\n')
    with pytest.raises(CorpusError, match=r"manifest.csv: line 7: utterance 'd4_u0': " + message):
        load_corpus("manifest", tmp_path)


def test_vote_labels_outside_the_corpus_and_bad_jsonl_votes(tmp_path):
    (tmp_path / "manifest.csv").write_text(VOTED + "d4,0,A,t,sad,test,angry:2;sad:1\n")
    with pytest.raises(CorpusError, match=r"manifest.csv: line 7: utterance 'd4_u0': votes name 'angry', which is "
                       r"neither a label of this manifest \(happy, sad\) nor 'other'; .* counts as other:N"):
        load_corpus("manifest", tmp_path)
    # a label given in the labels option is a label, even if no row is gold-labelled with it
    assert load_corpus("manifest", tmp_path, labels=["happy", "sad", "angry"]).dialogues[-1].utterances[0].votes \
        == {"angry": 2, "sad": 1}
    row = {"dialogue_id": "x", "utterance_index": 0, "speaker": "A", "text": "hi", "label": "neu", "split": "train"}
    for votes, message in [([3, 2], r"votes \[3, 2\] must be a string like 'joy:3;neutral:2'"),
                           ({"neu": 2.5}, r"votes \{'neu': 2.5\}: count 2.5 is not a whole number"),
                           ({"neu": True}, r"votes \{'neu': True\}: count True is not a whole number")]:
        (tmp_path / "m.jsonl").write_text(json.dumps(row | {"votes": votes}))
        with pytest.raises(CorpusError, match=r"m.jsonl: line 1: utterance 'x_u0': " + message):
            load_corpus("manifest", tmp_path / "m.jsonl")
    # votes without any label: an error, not a silent drop
    (tmp_path / "m.jsonl").write_text(json.dumps(row | {"label": None, "votes": "neu:2"}))
    with pytest.raises(CorpusError, match=r"votes name 'neu', which is neither a label of this manifest \(none: no "
                       r"row has a label\)"):
        load_corpus("manifest", tmp_path / "m.jsonl")


def test_empty_label_still_an_error_naming_the_context_marker(tmp_path):
    (tmp_path / "manifest.csv").write_text(VOTED + "d4,0,A,t,,test,\n")
    with pytest.raises(CorpusError, match=r"line 7: empty label for utterance 'd4_u0'; line 2 has one.*label '-' "
                       r"marks a context-only row"):
        load_corpus("manifest", tmp_path)
