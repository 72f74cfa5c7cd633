"""`mmemolr corpus inspect|prepare` on the real files, exactly as the README shows them."""

from __future__ import annotations

import pytest

from mmemolr.cli.main import build_parser, main
from mmemolr.corpus import load_prepared


def test_help_lists_subcommands(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "corpus" in out and "features" in out
    for name, action in build_parser()._subparsers._group_actions[0].choices.items():
        assert action.format_help(), name


def test_inspect_meld(meld_root, capsys):
    assert main(["corpus", "inspect", "--corpus", "meld", "--root", str(meld_root)]) == 0
    out = capsys.readouterr().out
    assert "9,989" in out and "1,109" in out and "2,610" in out and "neutral" in out and "Joey" in out


def test_format_names_in_any_case(meld_root, capsys):
    assert main(["corpus", "inspect", "--corpus", "MELD", "--root", str(meld_root)]) == 0
    assert "9,989" in capsys.readouterr().out


def test_inspect_emorynlp(emorynlp_root, capsys):
    assert main(["corpus", "inspect", "--corpus", "emorynlp", "--root", str(emorynlp_root)]) == 0
    out = capsys.readouterr().out
    assert "7,551" in out and "Peaceful" in out and "multi_speaker_utterances=61" in out


def test_prepare_then_load(meld_root, tmp_path, capsys):
    out = tmp_path / "features"
    assert main(["corpus", "prepare", "--corpus", "meld", "--root", str(meld_root), "--out", str(out / "meld")]) == 0
    assert "prepared corpus written to" in capsys.readouterr().out
    corpus = load_prepared("meld", out)
    assert sum(1 for _ in corpus.utterances()) == 13708
    assert corpus.report["repaired_c1_utterances"] == 0


def test_errors_are_one_clear_line(tmp_path, capsys):
    assert main(["corpus", "inspect", "--corpus", "meld", "--root", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "train_sent_emo.csv: MELD file not found" in err
    assert main(["corpus", "inspect", "--corpus", "friends", "--root", str(tmp_path)]) == 1
    assert "unknown corpus format 'friends'; known: emorynlp, emotionlines, iemocap, manifest, meld, transcript" in capsys.readouterr().err
    (tmp_path / "x.pkl").write_bytes(b"")
    assert main(["corpus", "inspect", "--corpus", "iemocap", "--root", str(tmp_path / "x.pkl")]) == 1
    assert "--trust-pickle" in capsys.readouterr().err


def test_load_prepared_missing_says_what_to_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="run `mmemolr corpus prepare --corpus meld"):
        load_prepared("meld", tmp_path)
