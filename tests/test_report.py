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
    assert set(made) == {"per_class_f1", "confusion", "tsne", "refinement", "learned_confusion", "curves", "report"}
    assert made.pop("report") == run_dir / "report.html"
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


# --- report.html (the browser test: tests/test_report_browser.py) ------------------------------------------

def _page_parts(path: Path) -> dict:
    """Headers and body rows of the comparison table, section ids and every image's source."""
    from html.parser import HTMLParser

    class Parser(HTMLParser):
        def __init__(self):
            super().__init__()
            self.stack, self.parts = [], {"headers": [], "rows": [], "sections": [], "images": []}
            self.in_table = False

        def handle_starttag(self, tag, attrs):
            attrs = dict(attrs)
            if tag == "section":
                self.parts["sections"].append(attrs.get("id"))
                self.in_table = attrs.get("id") == "table"
            if tag == "img":
                self.parts["images"].append(attrs["src"])
            if self.in_table and tag in ("thead", "tbody", "tfoot"):
                self.where = tag
            if self.in_table and tag == "tr" and getattr(self, "where", "") == "tbody":
                self.parts["rows"].append([])
            if self.in_table and tag in ("th", "td") and getattr(self, "where", "") in ("thead", "tbody"):
                (self.parts["headers"] if tag == "th" else self.parts["rows"][-1]).append("")
            self.stack.append(tag)

        def handle_endtag(self, tag):
            self.stack.pop()

        def handle_data(self, data):
            if self.in_table and self.stack and self.stack[-1] == "th" and self.where == "thead":
                self.parts["headers"][-1] += data
            if self.in_table and self.stack and self.stack[-1] == "td" and self.where == "tbody":
                self.parts["rows"][-1][-1] += data

    parser = Parser()
    text = path.read_text(encoding="utf-8")
    parser.feed(text)
    assert text.rstrip().endswith("</html>")
    return parser.parts


def test_page_shows_the_table_as_table_rows_gives_it_with_any_new_column(sweep, tmp_path, monkeypatch):
    from mmemolr.compare import aggregate
    from mmemolr.report import page

    made = make_report(sweep, tmp_path / "fig", tsne=False)
    parts = _page_parts(made["report"])
    headers, rows = aggregate.table_rows(json.loads((sweep / "table.json").read_text()))
    assert parts["headers"] == headers and parts["rows"] == rows
    assert parts["sections"] == ["table", "curves", "figures", "cases", "runs"]
    assert all(src.startswith("data:image/png;base64,") for src in parts["images"])  # self-contained
    assert len(parts["images"]) == len([n for n in made if n not in ("table", "report")])
    assert "http://" not in made["report"].read_text() and "https://" not in made["report"].read_text()

    def with_agreement(table):  # a column added to the table later shows up without a change to the page
        headers, rows = aggregate.table_rows(table)
        return [*headers, "agreement (test)"], [[*row, "0.42"] for row in rows]

    monkeypatch.setattr(page, "table_rows", with_agreement)
    parts = _page_parts(page.write_page(sweep, made))
    assert parts["headers"][-1] == "agreement (test)" and all(r[-1] == "0.42" for r in parts["rows"])


def test_page_names_missing_runs_and_never_breaks(sweep, tmp_path):
    import shutil

    copy = tmp_path / "sweep"
    shutil.copytree(sweep, copy)
    (copy / "t_rld_seed1" / "results.json").unlink()  # partly trained
    (copy / "t_onehot_seed1" / "results.json").unlink()
    (copy / "t_onehot_seed1" / "error.log").write_text("RuntimeError: out of memory\n\ntraceback")
    shutil.rmtree(copy / "t_rld-no-sim-ctx_seed0")  # never started
    made = make_report(copy, tsne=False)
    text = made["report"].read_text()
    assert "3 of 8 runs are missing" in text
    assert "t_rld_seed1</a> (partial)" in text and "rerun the same `mmemolr compare` command" in text
    assert "t_onehot_seed1</a> (failed): RuntimeError: out of memory" in text
    assert "t_rld-no-sim-ctx_seed0</a> (pending): not started" in text
    assert "<b>t_onehot_seed1</b> · failed" in text  # and in the runs part, with its error
    assert len(_page_parts(made["report"])["rows"]) == 4  # the table keeps its settings, with what is done
    # damaged predictions stop the refinement figure (the command fails) and break the case studies' part
    # only: the page says what went wrong and shows the rest
    predictions = copy / "t_rld_seed0" / "predictions.csv"
    predictions.write_text(predictions.read_text().splitlines()[0] + "\ntest/d0_u0,test/d0,joy\n")
    with pytest.raises(TypeError):
        make_report(copy, tsne=False)
    text = (copy / "report.html").read_text()
    assert "The figures could not be made: TypeError" in text and "This part could not be built: TypeError" in text
    assert 'id="table"' in text and 'id="runs"' in text and text.endswith("</html>\n")
    # a damaged results.json stops the table and figures; the page says so
    (copy / "t_rld-no-sim-speaker_seed1" / "results.json").write_text("{not json")
    with pytest.raises(ValueError, match="is not valid JSON"):
        make_report(copy, tsne=False)
    text = (copy / "report.html").read_text()
    assert "The figures could not be made: ValueError" in text and "damaged" in text and text.endswith("</html>\n")


def test_run_page_and_escaping(sweep, tmp_path):
    from mmemolr.report.page import html_table

    made = make_report(sweep / "t_rld_seed0", tmp_path / "fig", tsne=False)
    text = made["report"].read_text()
    assert "Selected epoch <b>" in text and 'id="run-t_rld_seed0" open' in text and 'href="metrics.csv"' in text
    assert 'id="cases"' in text and "tr class=selected" in text
    assert "&lt;script&gt;" in html_table(["a"], [["<script>alert(1)</script>"]])
