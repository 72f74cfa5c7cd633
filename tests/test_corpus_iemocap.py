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


# One EmoEvaluation file written from the release's format: after each turn's summary line, one categorical
# line per evaluator (C-E*: annotators; C-F*/C-M*: the actors' self-evaluations), then the dimensional A-* lines.
EVALUATED = """% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]

[6.2901 - 8.2357]\tSes01F_impro01_F000\tfru\t[2.0000, 3.5000, 3.0000]
C-E1:\tFrustration;\tAnger;\t()
C-E2:\tFrustration;\t(annoyed (really))
C-E4:\tOther:bored;\t()
C-F1:\tNeutral;\t()
A-E1:\tval 2; act 3; dom  3;\t()
A-F1:\tval 3; act 2; dom  2;\t()

[10.0000 - 12.5000]\tSes01F_impro01_M000\txxx\t[2.5000, 2.5000, 2.5000]
C-E1:\tSurprise;\t()
C-E2:\tHappiness;\t()
C-E3:\tNeutral state;\t()
C-M1:\tExcited;\t()

[13.0000 - 15.0000]\tSes01F_impro01_F001\tneu\t[2.5000, 2.5000, 2.5000]
C-E2:\tNeutral;\t()
C-E3:\tneutral;\t()
C-E4:\tNeutral; \t(calm)

[20.5000 - 22.0000]\tSes01F_impro01_M001\tsad\t[2.5000, 2.5000, 2.5000]
"""


def write_evaluated(root: Path, text: str = EVALUATED) -> Path:
    """The raw-release fixture with Session1's first dialogue evaluated as above."""
    make_raw_release(root)
    (root / "IEMOCAP_full_release/Session1/dialog/EmoEvaluation/Ses01F_impro01.txt").write_text(text)
    return root


def test_evaluator_votes(tmp_path):
    corpus = load_corpus("iemocap", write_evaluated(tmp_path))
    turns = {u.id: u for u in corpus.utterances() if u.dialogue_id == "Ses01F_impro01"}
    assert sorted(turns) == ["Ses01F_impro01_F000", "Ses01F_impro01_F001", "Ses01F_impro01_M001"]  # xxx dropped
    # every category of every evaluator counts; Other:<text> goes to other; the actor's C-F1 is left out
    assert turns["Ses01F_impro01_F000"].votes == {"fru": 2, "ang": 1, "other": 1}
    assert turns["Ses01F_impro01_F000"].extra["evaluators"] == 3
    assert turns["Ses01F_impro01_F001"].votes == {"neu": 3}
    assert turns["Ses01F_impro01_M001"].votes is None and "evaluators" not in turns["Ses01F_impro01_M001"].extra
    # the other dialogues of the fixture: one evaluator, "Neutral"
    assert corpus.dialogues[-1].utterances[0].votes == {"neu": 1}
    report = corpus.report
    assert report["actor_evaluations_left_out"] == 2
    assert report["evaluator_other_names"] == {"Other": 1, "Surprise": 1}
    assert report["dropped_labels"]["xxx"] >= 1 and report["context_only"] == {}
    assert corpus.has_votes


def test_context_turns_keep_the_other_turns_as_context(tmp_path):
    root = write_evaluated(tmp_path / "raw")
    six = load_corpus("iemocap", root)
    context = load_corpus("iemocap", root, context_turns=True)
    m000 = next(u for u in context.utterances() if u.id == "Ses01F_impro01_M000")
    assert m000.label is None and m000.extra["context_reason"] == "xxx"
    assert m000.votes == {"other": 1, "hap": 1, "neu": 1} and m000.text == "Line 2 of Ses01F_impro01."
    d = next(d for d in context.dialogues if d.id == "Ses01F_impro01")
    assert [u.id.rsplit("_", 1)[1] for u in d.utterances] == ["F000", "M000", "F001", "M001"]  # by start time
    assert context.report["context_only"] == six.report["dropped_labels"]
    assert context.report["dropped_utterances"] == 0 and context.report["dropped_labels"] == {}
    assert len(context.context_only()) == six.report["dropped_utterances"]
    # the six-class turns are the same, in the same splits: keeping context changes no split
    labelled = {u.id: (u.split, u.label, u.votes) for u in context.utterances() if u.label is not None}
    assert labelled == {u.id: (u.split, u.label, u.votes) for u in six.utterances()}
    assert context.provenance["context_turns"] and not six.provenance["context_turns"]


def test_context_turns_cli_and_summary(tmp_path, capsys):
    from mmemolr.cli.main import main

    root = write_evaluated(tmp_path)
    assert main(["corpus", "inspect", "--corpus", "iemocap", "--root", str(root), "--context-turns"]) == 0
    out = capsys.readouterr().out
    assert "context-only utterances" in out and "xxx" in out and "sur" in out
    assert "annotator agreement" in out and "gold \\ votes  hap" in out
    assert main(["corpus", "inspect", "--corpus", "meld", "--root", str(root), "--context-turns"]) == 1
    assert "--context-turns is for --corpus iemocap" in capsys.readouterr().err


@pytest.mark.parametrize("position, line, message", [
    (3, "C-X1:\tNeutral;\t()", r"Ses01F_impro01.txt: line 4: unknown evaluator 'C-X1'; expected C-E<n>"),
    (2, "C-E1:\tNeutral;\t()", r"Ses01F_impro01.txt: line 3: evaluation line before the first turn's summary line"),
])
def test_bad_evaluation_lines(tmp_path, position, line, message):
    lines = EVALUATED.splitlines()
    lines.insert(position, line)
    with pytest.raises(CorpusError, match=message):
        load_corpus("iemocap", write_evaluated(tmp_path, "\n".join(lines)))


def test_pickle_has_no_context_turns(tmp_path):
    with pytest.raises(CorpusError, match="context_turns needs the raw release"):
        load_corpus("iemocap", make_pickle(tmp_path / "p.pkl"), trust_pickle=True, context_turns=True)
