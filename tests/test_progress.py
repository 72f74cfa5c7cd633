"""Progress of long commands: a bar on a terminal, plain lines (count, rate, ETA) in logs."""

from __future__ import annotations

import io

import pytest
from train_helpers import make_corpus, prepare

from mmemolr.cli.main import main
from mmemolr.progress import Progress, format_duration, format_rate, resolve_mode


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_mode_follows_the_terminal():
    assert resolve_mode(True, io.StringIO()) == "lines"  # nohup, tmux logging, a batch scheduler
    assert resolve_mode("auto", Terminal()) == "bar"
    assert resolve_mode(False, Terminal()) == "off" and resolve_mode("lines", Terminal()) == "lines"
    with pytest.raises(ValueError, match="progress must be one of"):
        resolve_mode("loud")


def test_one_line_per_finished_run_with_rate_and_eta():
    stream, clock = io.StringIO(), Clock()
    bar = Progress(20, "compare table6 on iemocap", "run", initial=2, progress=True, every=1, stream=stream,
                   clock=clock)
    clock.now += 240
    bar.update(1, "t_onehot_seed2: test W-F1 56.10")
    clock.now += 240
    bar.update(1, "t_rld_seed2: FAILED")
    bar.close()
    lines = stream.getvalue().splitlines()
    assert lines == [
        "compare table6 on iemocap: 3/20 run (15%), 4.0 min/run, elapsed 4:00, ETA 1:08:00; "
        "t_onehot_seed2: test W-F1 56.10",
        "compare table6 on iemocap: 4/20 run (20%), 4.0 min/run, elapsed 8:00, ETA 1:04:00; t_rld_seed2: FAILED",
    ]


def test_fine_grained_work_prints_every_five_percent_and_when_slow():
    stream, clock = io.StringIO(), Clock()
    bar = Progress(1000, "librosa meld", "utt", progress="lines", stream=stream, clock=clock)
    for _ in range(20):  # 160 items in 1.6 s: lines at 50, 100, 150
        clock.now += 0.1
        bar.update(8)
    clock.now += 61  # a slow item: a line after a minute even between two 5% steps
    bar.update(1)
    clock.now += 1
    bar.update(1)
    bar.close()  # the last items are reported on close
    lines = stream.getvalue().splitlines()
    assert [line.split(",")[0] for line in lines] == [
        "librosa meld: 56/1000 utt (6%)", "librosa meld: 104/1000 utt (10%)", "librosa meld: 152/1000 utt (15%)",
        "librosa meld: 161/1000 utt (16%)", "librosa meld: 162/1000 utt (16%)"]
    assert "80.0 utt/s" in lines[0] and "ETA 0:12" in lines[0]


def test_silent_when_switched_off():
    stream = Terminal()
    with Progress(10, "x", progress=False, stream=stream) as bar:
        bar.update(10, "done")
    assert stream.getvalue() == ""


def test_formats():
    assert format_duration(42) == "0:42" and format_duration(3761) == "1:02:41"
    assert format_rate(834.2, "utt") == "834.2 utt/s" and format_rate(1 / 3.5, "epoch") == "3.5 s/epoch"
    assert format_rate(1 / 246, "run") == "4.1 min/run"


TINY = ["optim.max_epochs=3", "optim.patience=3", "model.hidden=16", "model.label_dim=8"]


def test_train_and_compare_log_lines_when_not_on_a_terminal(tmp_path, capsys):
    features = prepare(tmp_path / "f", make_corpus(sizes={"train": 8, "dev": 4, "test": 4}, max_len=4))
    assert main(["train", "--corpus", "synth", "--features-dir", str(features), "--out", str(tmp_path / "run"),
                 *TINY]) == 0
    err = capsys.readouterr().err
    assert [line.split(" epoch")[0] for line in err.splitlines() if line.startswith("train ")] == [
        "train run: 1/3", "train run: 2/3", "train run: 3/3"]
    assert "epoch/s" in err or "s/epoch" in err
    assert "ETA" in err and "dev W-F1" in err
    argv = ["compare", "--corpus", "synth", "--features-dir", str(features), "--out", str(tmp_path / "sweep"),
            "--modalities", "t", "--targets", "onehot", "--seeds", "2", "--no-figures", *TINY]
    assert main([*argv, "--no-progress"]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("compare table6")]
    assert len(lines) == 2 and lines[0].startswith("compare table6 on synth: 1/2 run (50%), ")
    assert "t_onehot_seed" in lines[0] and "test W-F1" in lines[0] and "ETA" in lines[0]
    assert lines[1].startswith("compare table6 on synth: 2/2 run (100%)")
