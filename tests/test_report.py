"""``mmemolr report``: figures from run folders (tiny real trainings) and the rebuilt sweep table."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest
from train_helpers import make_corpus, prepare

from mmemolr.cli.main import main
from mmemolr.compare import LocalExecutor, make_plan, run_config, run_sweep
from mmemolr.report import choose_examples, choose_pair, load_run, make_report
from mmemolr.report.runs import RunData
from mmemolr.train.run import run_training

TINY = ["optim.max_epochs=2", "optim.patience=2", "model.hidden=16", "model.label_dim=8"]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("report")
    features = prepare(root / "features", make_corpus(sizes={"train": 12, "dev": 4, "test": 6}, max_len=5))
    plan = make_plan("synth", features, preset="ablation", seeds=2, overrides=TINY)
    out = root / "sweep"
    assert not run_sweep(plan, out, LocalExecutor(1, threads=1), progress=False).failures
    return out


def _png(path: Path) -> np.ndarray:
    image = mpimg.imread(path)
    assert image.ndim == 3 and min(image.shape[:2]) > 150
    return image


def test_sweep_report_rebuilds_table_and_figures(sweep, tmp_path, capsys):
    before = json.loads((sweep / "table.json").read_text())
    for name in ("table.md", "table.csv", "table.json"):
        (sweep / name).unlink()
    assert main(["report", str(sweep), "--out", str(tmp_path / "fig")]) == 0
    printed = capsys.readouterr().out
    assert "−Sim_speaker" in printed and "Δ W-F1 vs full" in printed
    after = json.loads((sweep / "table.json").read_text())
    assert after["cells"] == before["cells"] and after["comparisons"] == before["comparisons"]
    for name in ("comparison", "per_class_f1", "confusion", "tsne", "refinement", "learned_confusion"):
        _png(tmp_path / "fig" / f"{name}.png")
    assert "class spec. (null)" in printed and "nbr TV (random)" in printed
    # only the one-hot (-RLD) and full RLD runs go into the t-SNE pair
    runs = [load_run(p) for p in sorted(sweep.iterdir()) if (p / "results.json").exists()]
    onehot, rld = choose_pair(runs)
    assert onehot.path.name == "t_onehot_seed0" and rld.path.name == "t_rld_seed0"


def test_run_report_and_chosen_utterances(sweep, tmp_path):
    run_dir = sweep / "t_rld_seed1"
    rows = load_run(run_dir).predictions()
    wanted = [rows[3]["utterance_id"], rows[0]["utterance_id"]]
    made = make_report(run_dir, tmp_path / "fig", utterances=wanted)
    assert set(made) == {"per_class_f1", "confusion", "tsne", "refinement", "learned_confusion"}
    for path in made.values():
        _png(path)
    with pytest.raises(ValueError, match=r"\['nope'\] are not in the test predictions"):
        make_report(run_dir, tmp_path / "fig2", utterances=["nope"], tsne=False)
    # a one-hot run has no refined distribution: no refinement figure
    assert "refinement" not in make_report(sweep / "t_onehot_seed0", tmp_path / "fig3", tsne=False)


def test_example_choice_prefers_targets_far_from_their_class_mean():
    labels = ["neutral", "joy", "anger", "sadness"]

    def row(uid, gold, rld):
        return {"utterance_id": uid, "gold": gold, **{f"rld_{lab}": str(p) for lab, p in zip(labels, rld)}}

    rows = [row("a", "joy", [0.05, 0.9, 0.05, 0.0]), row("b", "joy", [0.05, 0.9, 0.05, 0.0]),
            row("c", "joy", [0.0, 0.9, 0.0, 0.1]),  # the odd one out among the joy targets
            row("d", "anger", [0.1, 0.0, 0.9, 0.0]), row("e", "anger", [0.05, 0.05, 0.9, 0.0]),
            row("f", "neutral", [0.9, 0.05, 0.05, 0.0]), row("g", "", [0.3, 0.3, 0.4, 0.0])]
    chosen = [r["utterance_id"] for r in choose_examples(rows, labels, "rld", count=3)]
    # one per gold class, the utterance whose non-gold shape differs most from its class's mean first:
    # c (TV 0.67 from the joy mean), then d (0.25, tied with e: by id); f is alone in its class (0)
    assert chosen == ["c", "d", "f"]


def test_pairing_needs_same_modalities_and_seed(tmp_path):
    def run(name, target, modalities, seed, **extra):
        return RunData(tmp_path / name, {"labels": ["x"], "test": {}, "seed": seed,
                                         "config": {"modalities": modalities, "target": {"name": target, **extra}}})

    runs = [run("t_oh", "onehot", ["t"], 0), run("t_rld", "rld", ["t"], 0),
            run("ta_oh", "onehot", ["t", "a"], 1), run("ta_rld_s0", "rld", ["t", "a"], 0),
            run("ta_rld_eta1", "rld", ["t", "a"], 1, eta=1.0), run("ta_rld", "rld", ["t", "a"], 1, eta=4.0),
            run("ta_nospk", "rld", ["t", "a"], 1, sim_speaker=False)]
    onehot, rld = choose_pair(runs)
    assert (onehot.path.name, rld.path.name) == ("ta_oh", "ta_rld")
    assert choose_pair(runs[1:2]) == (None, runs[1]) and choose_pair([]) == (None, None)


def test_report_errors(tmp_path, sweep):
    assert main(["report", str(tmp_path / "missing")]) == 1
    partial = tmp_path / "partial"
    plan = make_plan("synth", sweep.parent / "features", preset="ablation", seeds=1, overrides=TINY)

    def stop(epoch, row):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_training(run_config(plan, "t_rld_seed0"), partial, sweep.parent / "features", progress=False,
                     threads=1, on_epoch_end=stop)
    with pytest.raises(FileNotFoundError, match="has no complete results.json"):
        make_report(partial)


def _drawn_text(monkeypatch) -> list[str]:
    """Every title, axis label and text matplotlib is asked to draw from now on."""
    import matplotlib.axes
    import matplotlib.figure

    seen: list[str] = []
    for cls, names in ((matplotlib.axes.Axes, ("set_title", "set_ylabel", "text")),
                       (matplotlib.figure.Figure, ("suptitle",))):
        for name in names:
            original = getattr(cls, name)

            def spy(self, *args, _original=original, **kwargs):
                seen.extend(a for a in args if isinstance(a, str))
                return _original(self, *args, **kwargs)

            monkeypatch.setattr(cls, name, spy)
    return seen


def test_single_run_figures_do_not_speak_of_seeds(sweep, tmp_path, monkeypatch):
    seen = _drawn_text(monkeypatch)
    make_report(sweep / "t_rld_seed0", tmp_path / "fig", tsne=False)
    titles = " | ".join(seen)
    assert "per-class F1 on the test split (one run)" in titles and "(% of each gold class, one run)" in titles
    assert "over seeds" not in titles


def test_comparison_marks_missing_cells_and_says_where_the_axis_starts(sweep, tmp_path, monkeypatch):
    from mmemolr.report import figures

    table = json.loads((sweep / "table.json").read_text())
    empty = table["cells"][1]
    for key in ("weighted_f1", "accuracy", "macro_f1"):
        empty[key] = {"n": 0, "mean": None, "std": None, "seeds": [], "values": []}
    seen = _drawn_text(monkeypatch)
    figures.comparison_bars(table, tmp_path / "comparison.png")
    assert seen.count("n/a") == 2  # one per panel, where the bar would be
    floors = [s for s in seen if "axis from" in s]
    assert len(floors) == 2 and "n/a: no finished run" in " ".join(seen)


def test_refinement_examples_cover_every_gold_emotion_by_default():
    labels = ["neutral", "joy", "anger", "fear"]
    rows = [{"utterance_id": f"u{i}", "gold": gold, **{f"rld_{lab}": str(0.25) for lab in labels}}
            for i, gold in enumerate(["joy", "anger", "neutral", "joy", "fear", "neutral"])]
    chosen = choose_examples(rows, labels, "rld")
    assert sorted(r["gold"] for r in chosen) == sorted(labels)  # one panel per gold emotion, all of them


def test_report_reuses_figures_whose_inputs_did_not_change(sweep, tmp_path, capsys):
    out = tmp_path / "fig"
    assert main(["report", str(sweep), "--out", str(out)]) == 0
    first = capsys.readouterr().out
    assert "kept" not in first
    stamps = {p.name: p.stat().st_mtime_ns for p in out.glob("*.png")}
    assert main(["report", str(sweep), "--out", str(out)]) == 0
    again = capsys.readouterr().out
    for name in ("comparison", "per_class_f1", "confusion", "tsne", "refinement"):
        assert f"{name}: {out / name}.png (inputs unchanged since it was drawn: kept)" in again
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.png")} == stamps
    # another option for a figure, or a changed run, draws that figure again
    assert main(["report", str(sweep), "--out", str(out), "--tsne-max", "11"]) == 0
    assert "tsne: " + str(out / "tsne.png") + "\n" in capsys.readouterr().out
