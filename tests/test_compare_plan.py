"""Sweep planning, statistics and the comparison table (no training: run folders written by hand)."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from scipy import stats

from mmemolr.compare import build_plan, modality_subsets, paired_test, parse_seeds, summarize, write_tables
from mmemolr.compare.aggregate import format_text, load_plan, run_status
from mmemolr.compare.sweep import write_plan
from mmemolr.fileio import write_json_atomic

COMMON = dict(corpus="meld", features_dir="/f", corpus_name="meld", corpus_fingerprint="f" * 64)


def test_table6_rows_follow_the_paper():
    assert ["+".join(s) for s in modality_subsets(["t", "a", "v"])] == ["t", "a", "v", "a+v", "t+a", "t+v", "t+a+v"]
    assert modality_subsets(["v", "t"]) == [["t"], ["v"], ["t", "v"]]
    plan = build_plan("table6", modalities=["v", "a", "t"], seeds=[0, 1], **COMMON)
    assert plan.rows == ["T", "A", "V", "A+V", "T+A", "T+V", "T+A+V"]
    assert plan.columns == ["one-hot", "RLD"] and plan.compare == "columns" and plan.baseline == "one-hot"
    assert len(plan.runs) == 7 * 2 * 2
    # seed-major: every cell of seed 0 before any of seed 1
    assert [r.seed for r in plan.runs] == [0] * 14 + [1] * 14
    names = [r.name for r in plan.runs]
    assert len(set(names)) == len(names) and names[:2] == ["t_onehot_seed0", "t_rld_seed0"]
    run = plan.run("a+v_rld_seed1")
    assert (run.row, run.column, run.modalities) == ("A+V", "RLD", ["a", "v"])
    assert run.overrides == ["modalities=[a,v]", "target.name=rld", "seed=1"]
    # the plan is stable: rebuilding gives the same names and overrides
    assert build_plan("table6", modalities=["t", "a", "v"], seeds=[0, 1], **COMMON).to_dict() == plan.to_dict()


@pytest.mark.parametrize(
    "preset, rows, baseline, overrides",
    [
        ("ablation", ["full", "−Sim_speaker", "−Sim_ctx", "−RLD"], "full",
         ["target.name=rld", "target.sim_speaker=false"]),
        ("label-enhancement", ["one-hot", "LS", "LCM", "RLD paper", "RLD bounded", "RLD supervised"], "one-hot",
         ["target.name=ls"]),
        ("eta", [f"η={k}" for k in range(6)], "η=4", ["target.name=rld", "target.combine=eta", "target.eta=1"]),
    ],
)
def test_single_setting_presets(preset, rows, baseline, overrides):
    plan = build_plan(preset, modalities=["t", "a"], seeds=[0, 1, 2], **COMMON)
    assert plan.rows == rows and plan.columns == ["T+A"] and plan.compare == "rows" and plan.baseline == baseline
    assert len(plan.runs) == len(rows) * 3
    second = plan.runs[1]  # row 2, seed 0
    assert second.overrides == ["modalities=[t,a]", *overrides, "seed=0"]
    assert plan.controls == (["LS"] if preset == "label-enhancement" else [])
    with pytest.raises(ValueError, match="--targets applies to --preset table6"):
        build_plan(preset, modalities=["t"], seeds=[0], targets=["rld"], **COMMON)


def test_parse_seeds():
    assert parse_seeds("5") == [0, 1, 2, 3, 4] and parse_seeds(2) == [0, 1] and parse_seeds("0,3,7") == [0, 3, 7]
    for bad in ("0", "x", "1,1", "a,b"):
        with pytest.raises(ValueError, match="--seeds"):
            parse_seeds(bad)


def test_statistics_match_scipy():
    a = {0: 0.60, 1: 0.62, 2: 0.59, 3: 0.63}
    b = {0: 0.58, 1: 0.61, 2: 0.59, 3: 0.60, 4: 0.99}  # seed 4 has no partner: not paired
    s = summarize(a)
    assert s["n"] == 4 and s["mean"] == pytest.approx(np.mean(list(a.values())))
    assert s["std"] == pytest.approx(np.std(list(a.values()), ddof=1))
    t = paired_test(a, b)
    ref = stats.ttest_rel([0.60, 0.62, 0.59, 0.63], [0.58, 0.61, 0.59, 0.60])
    assert t["n_pairs"] == 4 and t["seeds"] == [0, 1, 2, 3]
    assert t["diff_mean"] == pytest.approx(0.015) and t["p"] == pytest.approx(ref.pvalue)
    assert t["t"] == pytest.approx(ref.statistic)
    # undefined cases: one pair, identical differences, nothing
    assert paired_test({0: 0.5}, {0: 0.4})["p"] is None
    assert paired_test({0: 0.5, 1: 0.6}, {0: 0.4, 1: 0.5})["p"] is None
    assert summarize({})["mean"] is None and summarize({0: 0.5})["std"] is None


def fake_results(run_dir, test: dict, seed: int, target: str = "rld", modalities=("t",), votes: bool = False) -> None:
    """A results.json as run_training writes it (only the fields the table reads matter here)."""
    labels = ["neutral", "joy", "anger"]
    write_json_atomic(run_dir / "results.json", {
        "status": "complete", "corpus": "meld", "corpus_fingerprint": "f" * 64, "labels": labels,
        "config": {"modalities": list(modalities), "seed": seed, "target": {"name": target}},
        "feature_files": {"t": {"path": "/f/meld/text-minilm.h5", "extractor": "text-transformers",
                                "model_id": "all-MiniLM-L6-v2", "dim": 384}},
        "best_epoch": 3, "epochs_run": 8, "valid": {"accuracy": 0.5, "weighted_f1": 0.5, "macro_f1": 0.3},
        "test": {**test, "per_class_f1": dict.fromkeys(labels, 0.5), "confusion_matrix": [[1, 0, 0]] * 3,
                 "support": dict.fromkeys(labels, 1)},
        "seconds_total": 1.0, "device": "cpu", "seed": seed,
        **({"refinement": {"test": {"gold_mass": 0.9, "gold_mass_fixed": True, "specificity": 0.3 + seed / 10,
                                    "specificity_null": 0.05, "variation": 0.2, "entropy": 0.5,
                                    "neighbours": {"distance": 0.25, "null": 0.5, "p": 0.002},
                                    "verdict": "refines" if seed else "static",
                                    "confusion": [[0.9, 0.05, 0.05]] * 3, "labels": labels}}}
           if target == "rld" else {}),
        **({"agreement": {split: {"kl_votes": base + seed / 100, "n_votes": 10, "predicted": None,
                                  "target": {"voted_share": {"model": 0.6, "even": 0.3, "class_mean": 0.4,
                                                             "annotators": 0.45},
                                             "tv": {"model": 0.4, "even": 0.7, "class_mean": 0.6, "annotators": 0.55},
                                             "beats_nulls": True} if target == "rld" else None}
                          for split, base in (("test", 0.4), ("valid", 0.3))}}
           if votes else {}),
    })


def test_table_from_run_folders(tmp_path):
    plan = build_plan("table6", modalities=["t", "a"], seeds=[0, 1, 2], **COMMON)
    write_plan(plan, tmp_path)
    wf1 = {"onehot": [0.55, 0.56, 0.57], "rld": [0.58, 0.58, 0.61]}
    for spec in plan.runs:
        if spec.name.startswith("a_"):
            continue  # audio runs not trained yet
        target = spec.name.split("_")[1]
        if spec.name == "t+a_rld_seed2":
            (tmp_path / spec.name).mkdir()
            (tmp_path / spec.name / "last.pt").write_bytes(b"")  # interrupted
            continue
        (tmp_path / spec.name).mkdir()
        fake_results(tmp_path / spec.name, {"weighted_f1": wf1[target][spec.seed], "accuracy": 0.6 + spec.seed / 100,
                                            "macro_f1": 0.3}, spec.seed, target, spec.modalities)
    assert run_status(tmp_path / "t+a_rld_seed2") == "partial" and run_status(tmp_path / "a_rld_seed0") == "pending"
    table = write_tables(tmp_path)
    assert table["runs_complete"] == 11 and table["runs_total"] == 18
    cells = {(c["row"], c["column"]): c for c in table["cells"]}
    assert cells[("T", "RLD")]["weighted_f1"]["mean"] == pytest.approx(np.mean(wf1["rld"]))
    assert cells[("T+A", "RLD")]["weighted_f1"]["n"] == 2 and cells[("A", "RLD")]["weighted_f1"]["n"] == 0
    comp = {(c["row"], c["column"]): c for c in table["comparisons"]}
    ref = stats.ttest_rel(wf1["rld"], wf1["onehot"])
    assert comp[("T", "RLD")]["weighted_f1"]["p"] == pytest.approx(ref.pvalue)
    assert comp[("T", "RLD")]["weighted_f1"]["diff_mean"] == pytest.approx(0.03)
    assert comp[("T+A", "RLD")]["weighted_f1"]["n_pairs"] == 2
    assert table["feature_files"]["t"]["model_id"] == "all-MiniLM-L6-v2"
    assert {r["name"]: r["status"] for r in table["runs"]}["t+a_rld_seed2"] == "partial"
    # every run's provenance is kept
    run = next(r for r in table["runs"] if r["name"] == "t_rld_seed1")
    assert run["config"]["seed"] == 1 and run["corpus_fingerprint"] == "f" * 64

    text = format_text(table)
    line = next(ln for ln in text.splitlines() if ln.startswith("T  "))
    assert "56.00 ± 1.00" in line
    assert f"{100 * np.mean(wf1['rld']):.2f} ± {100 * np.std(wf1['rld'], ddof=1):.2f}" in line
    assert "+3.00" in line and f"{ref.pvalue:.3f}" in line
    assert "[2/3]" in text and "runs complete 11/18" in text
    # refinement diagnostics: mean over the seeds done, for the refining (RLD) column only
    assert cells[("T", "RLD")]["refinement"]["specificity"] == pytest.approx(0.4)
    assert cells[("T", "RLD")]["refinement"]["verdicts"] == {"refines": 2, "static": 1}
    assert cells[("T", "one-hot")]["refinement"] is None
    assert "RLD class spec. (null)" in text and "refines 2, static 1" in line and "0.400 (0.050)" in line
    assert "0.250 (0.500)" in line  # the neighbours' distance beside a random same-class utterance's
    assert "z[gold]" not in text.split("Test split at")[0]  # combine=mix fixes the gold mass in every cell
    assert "KL(votes" not in text  # no votes, no agreement columns
    md = (tmp_path / "table.md").read_text()
    assert "| T |" in md and "all-MiniLM-L6-v2" in md and "ttest_rel" in md
    with open(tmp_path / "table.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["row"] for r in rows] == ["T", "A", "T+A"]
    # percent, as in table.md, and the headers say so
    assert float(rows[0]["RLD W-F1 mean %"]) == pytest.approx(100 * np.mean(wf1["rld"]))
    assert float(rows[0]["RLD Δ W-F1 %"]) == pytest.approx(3.0)
    assert float(rows[0]["RLD Δ W-F1 p"]) == pytest.approx(ref.pvalue)
    assert rows[1]["RLD W-F1 mean %"] == ""
    stored = json.loads((tmp_path / "table.json").read_text())
    assert stored["cells"] == table["cells"] and load_plan(tmp_path).to_dict() == plan.to_dict()


def test_rows_compare_against_baseline_row(tmp_path):
    plan = build_plan("ablation", modalities=["t"], seeds=[0, 1], **COMMON)
    write_plan(plan, tmp_path)
    score = {"full": 0.60, "−Sim_speaker": 0.58, "−Sim_ctx": 0.59, "−RLD": 0.57}
    for spec in plan.runs:
        (tmp_path / spec.name).mkdir()
        fake_results(tmp_path / spec.name, {"weighted_f1": score[spec.row] + 0.01 * spec.seed ** 2,
                                            "accuracy": 0.6, "macro_f1": 0.3}, spec.seed)
    table = write_tables(tmp_path)
    comps = {c["row"]: c for c in table["comparisons"]}
    assert set(comps) == {"−Sim_speaker", "−Sim_ctx", "−RLD"}
    assert comps["−RLD"]["weighted_f1"]["diff_mean"] == pytest.approx(-0.03)
    assert comps["−RLD"]["baseline"] == ["full", "T"]
    headers = next(ln for ln in format_text(table).splitlines() if ln.startswith("Variant"))
    assert "Δ W-F1 vs full" in headers and "Δ Acc vs full" in headers


def test_label_enhancement_also_pairs_every_row_with_label_smoothing(tmp_path):
    plan = build_plan("label-enhancement", modalities=["t"], seeds=[0, 1, 2], **COMMON)
    write_plan(plan, tmp_path)
    score = {"one-hot": 0.55, "LS": 0.56, "LCM": 0.555, "RLD paper": 0.2, "RLD bounded": 0.56, "RLD supervised": 0.58}
    for spec in plan.runs:
        (tmp_path / spec.name).mkdir()
        fake_results(tmp_path / spec.name, {"weighted_f1": score[spec.row] + 0.01 * spec.seed ** 2,
                                            "accuracy": 0.6, "macro_f1": 0.3}, spec.seed)
    table = write_tables(tmp_path)
    vs_ls = {c["row"]: c for c in table["comparisons"] if c["baseline"][0] == "LS"}
    vs_onehot = {c["row"]: c for c in table["comparisons"] if c["baseline"][0] == "one-hot"}
    assert set(vs_ls) == set(plan.rows) - {"LS"} and set(vs_onehot) == set(plan.rows) - {"one-hot"}
    assert vs_ls["RLD supervised"]["weighted_f1"]["diff_mean"] == pytest.approx(0.02)
    assert vs_onehot["RLD supervised"]["weighted_f1"]["diff_mean"] == pytest.approx(0.03)
    text = format_text(table)
    line = next(ln for ln in text.splitlines() if ln.startswith("RLD supervised"))
    assert "Δ W-F1 vs LS" in text and "+3.00" in line and "+2.00" in line
    assert "votes" not in plan.rows  # no votes in the corpus, no votes row


def test_label_enhancement_on_a_corpus_with_votes_trains_on_them_and_shows_the_agreement(tmp_path):
    plan = build_plan("label-enhancement", modalities=["t"], seeds=[0, 1], has_votes=True, **COMMON)
    assert plan.rows[-1] == "votes" and any(o == "target.name=votes" for s in plan.runs for o in s.overrides)
    write_plan(plan, tmp_path)
    for spec in plan.runs:
        (tmp_path / spec.name).mkdir()
        target = "rld" if spec.row.startswith("RLD") else "onehot"
        fake_results(tmp_path / spec.name, {"weighted_f1": 0.5, "accuracy": 0.6, "macro_f1": 0.3}, spec.seed,
                     target, votes=True)
    table = write_tables(tmp_path)
    cells = {c["row"]: c for c in table["cells"]}
    assert cells["votes"]["agreement"]["kl_votes"] == pytest.approx(0.405)
    text = format_text(table)
    line = next(ln for ln in text.splitlines() if ln.startswith("RLD supervised"))
    assert "KL(votes‖p)" in text and "z voted share (even/class/annot.)" in text and "Agreement with" in text
    assert "0.405" in line and "0.600 (0.30/0.40/0.45)" in line and "0.400 (0.70/0.60/0.55)" in line
    with open(tmp_path / "table.csv", newline="") as fh:
        rows = {r["row"]: r for r in csv.DictReader(fh)}
    assert float(rows["RLD supervised"]["T voted_share_annotators"]) == pytest.approx(0.45)
    assert float(rows["votes"]["T dev kl_votes"]) == pytest.approx(0.305)  # the dev split's, in the CSV


def test_sweep_folder_of_another_corpus_is_refused(tmp_path):
    write_plan(build_plan("table6", modalities=["t"], seeds=[0], **COMMON), tmp_path)
    other = build_plan("table6", modalities=["t"], seeds=[0], **{**COMMON, "corpus_fingerprint": "e" * 64})
    with pytest.raises(ValueError, match="holds a sweep on corpus 'meld'.*choose another --out"):
        write_plan(other, tmp_path)
