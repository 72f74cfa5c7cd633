"""IEMOCAP: synthetic files in exactly the raw-release and processed-pickle formats."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from mmemolr.corpus import CorpusError, load_corpus

LABELS = ["neu", "fru", "xxx", "hap", "sad", "ang", "exc", "sur"]


def make_raw_release(root: Path, dialogs_per_session: int = 2) -> Path:
    release = root / "IEMOCAP_full_release"
    for s in range(1, 6):
        session = release / f"Session{s}"
        (session / "dialog" / "EmoEvaluation").mkdir(parents=True)
        (session / "dialog" / "transcriptions").mkdir(parents=True)
        (session / "dialog" / "avi" / "DivX").mkdir(parents=True)
        for d in range(dialogs_per_session):
            dialog = f"Ses0{s}F_impro0{d + 1}"
            lines = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""]
            trans = []
            # written out of time order: the adapter orders turns by start time
            turns = [(20.5, 22.0, f"{dialog}_M001"), (6.2901, 8.2357, f"{dialog}_F000"), (10.0, 12.5, f"{dialog}_M000"),
                     (13.0, 15.0, f"{dialog}_F001")]
            for k, (start, end, utt) in enumerate(turns):
                label = LABELS[(s + d + k) % len(LABELS)]
                lines += [f"[{start:.4f} - {end:.4f}]\t{utt}\t{label}\t[2.5000, 2.5000, 2.5000]",
                          "C-E2:\tNeutral;\t()", ""]
                trans.append(f"{utt} [{start:08.4f}-{end:08.4f}]: Line {k} of {dialog}.")
            trans.append("M_nonverbal [000.0000-001.0000]: [LAUGHTER]")
            (session / "dialog" / "EmoEvaluation" / f"{dialog}.txt").write_text("\n".join(lines))
            (session / "dialog" / "transcriptions" / f"{dialog}.txt").write_text("\n".join(trans))
            wav_dir = session / "sentences" / "wav" / dialog
            wav_dir.mkdir(parents=True)
            for _, _, utt in turns:
                (wav_dir / f"{utt}.wav").write_bytes(b"RIFF")
            (session / "dialog" / "avi" / "DivX" / f"{dialog}.avi").write_bytes(b"avi")
    return root


def test_raw_release(tmp_path):
    corpus = load_corpus("iemocap", make_raw_release(tmp_path, dialogs_per_session=5))
    assert corpus.labels == ["hap", "sad", "neu", "ang", "exc", "fru"]
    test = corpus.split_dialogues("test")
    assert {d.id[:5] for d in test} == {"Ses05"} and len(test) == 5
    dev = corpus.split_dialogues("dev")
    assert len(dev) == 2 and all(not d.id.startswith("Ses05") for d in dev)  # 10% of 20 training dialogues
    total_turns = 25 * 4
    kept = sum(1 for _ in corpus.utterances())
    assert corpus.report["dropped_utterances"] == total_turns - kept > 0
    assert set(corpus.report["dropped_labels"]) <= {"xxx", "sur"}
    for d in corpus.dialogues:
        starts = [u.extra["dialog_start"] for u in d.utterances]
        assert starts == sorted(starts)
    # Ses01F_impro02_F000 is turn k=1 of dialogue d=1 in session 1: label LABELS[3] = hap (kept)
    u = next(u for u in corpus.utterances() if u.id == "Ses01F_impro02_F000")
    assert u.label == "hap" and u.text == "Line 1 of Ses01F_impro02." and u.speaker == "F"
    assert u.audio_path.endswith("sentences/wav/Ses01F_impro02/Ses01F_impro02_F000.wav")
    assert u.video_path.endswith("Ses01F_impro02.avi") and u.start == pytest.approx(6.2901)


def test_raw_validation_carve_is_fixed_by_seed(tmp_path):
    root = make_raw_release(tmp_path, dialogs_per_session=5)
    a = {d.id for d in load_corpus("iemocap", root).split_dialogues("dev")}
    b = {d.id for d in load_corpus("iemocap", root).split_dialogues("dev")}
    c = {d.id for d in load_corpus("iemocap", root, valid_seed=7).split_dialogues("dev")}
    assert a == b and a != c


def test_raw_malformed_line(tmp_path):
    root = make_raw_release(tmp_path)
    path = root / "IEMOCAP_full_release/Session2/dialog/EmoEvaluation/Ses02F_impro01.txt"
    path.write_text(path.read_text().replace("\tneu\t", " neu ", 1).replace("[2.5000, 2.5000, 2.5000]", "oops", 1))
    with pytest.raises(CorpusError, match=r"Ses02F_impro01.txt: line 3: expected"):
        load_corpus("iemocap", root)


def make_pickle(path: Path, n_train=3, n_valid=1, n_test=2) -> Path:
    speakers, labels, sentences = {}, {}, {}
    ids = [f"Ses0{1 + i % 5}M_script0{i}" for i in range(n_train + n_valid + n_test)]
    for k, did in enumerate(ids):
        n = 3 + k % 3
        speakers[did] = ["M", "F"] * n
        speakers[did] = speakers[did][:n]
        labels[did] = [(k + j) % 6 for j in range(n)]
        sentences[did] = [f"sentence {j} of {did}" for j in range(n)]
    data = [speakers, labels, sentences, ids[:n_train], ids[n_train + n_valid:], ids[n_train:n_train + n_valid]]
    with open(path, "wb") as fh:
        pickle.dump(data, fh, protocol=2)
    return path


def test_pickle_needs_opt_in(tmp_path):
    path = make_pickle(tmp_path / "iemocap.pkl")
    with pytest.raises(PermissionError, match="runs whatever code the file contains.*--trust-pickle"):
        load_corpus("iemocap", path)


def test_pickle_release(tmp_path):
    corpus = load_corpus("iemocap", make_pickle(tmp_path / "iemocap.pkl"), trust_pickle=True)
    assert [len(corpus.split_dialogues(s)) for s in ("train", "dev", "test")] == [3, 1, 2]
    d = corpus.dialogues[0]
    assert [u.label for u in d.utterances] == ["hap", "sad", "neu"]
    assert [u.speaker for u in d.utterances] == ["M", "F", "M"]
    assert d.utterances[2].text == f"sentence 2 of {d.id}"


def test_pickle_bad_label(tmp_path):
    path = make_pickle(tmp_path / "p.pkl")
    with open(path, "rb") as fh:
        data = pickle.load(fh)
    did = data[3][0]
    data[1][did][1] = 9
    with open(path, "wb") as fh:
        pickle.dump(data, fh)
    with pytest.raises(CorpusError, match=rf"dialogue {did}, utterance 1: label id 9 outside 0..5"):
        load_corpus("iemocap", path, trust_pickle=True)
