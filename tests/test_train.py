"""Training runs: the run-folder contract, selection on dev, determinism, resume, evaluate, predict, CLI."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from train_helpers import make_corpus, prepare

from mmemolr.cli.main import main
from mmemolr.config import ConfigError, load_config
from mmemolr.paths import REPO_ROOT
from mmemolr.predict import predict_corpus
from mmemolr.train.config import TrainConfig, check_train_config
from mmemolr.train.inference import compare_metrics, evaluate_run
from mmemolr.train.run import run_training

CONFIGS = sorted((REPO_ROOT / "configs").glob("*.yaml"))


def _config(target: str = "rld", epochs: int = 4, **optim) -> TrainConfig:
    config = load_config(TrainConfig, None, [
        "corpus=synth", "modalities=[t,a]", f"target.name={target}", "device=cpu", "model.hidden=16",
        "model.label_dim=8", "optim.lr=0.01", f"optim.max_epochs={epochs}", "optim.batch_dialogues=4",
    ] + [f"optim.{k}={v}" for k, v in optim.items()])
    return config


@pytest.fixture()
def features(tmp_path) -> Path:
    return prepare(tmp_path / "features", make_corpus(), modalities=("text", "audio"))


def _metric_rows(run_dir: Path) -> list[dict]:
    return json.loads((run_dir / "metrics.json").read_text())


@pytest.mark.parametrize("path", CONFIGS, ids=[p.name for p in CONFIGS])
def test_config_files_load_and_check(path):
    config = load_config(TrainConfig, path)
    check_train_config(config)
    assert config.corpus == path.stem


def test_config_range_checks():
    with pytest.raises(ConfigError, match="model.dropout must be in"):
        check_train_config(load_config(TrainConfig, None, ["model.dropout=1.5"]))
    with pytest.raises(ConfigError, match="target.name='nope' is not a known target"):
        check_train_config(load_config(TrainConfig, None, ["target.name=nope"]))
    with pytest.raises(ConfigError, match="combine=mix needs RLD to be a distribution"):
        check_train_config(load_config(TrainConfig, None, ["target.refiner=paper", "target.combine=mix"]))
    with pytest.raises(ConfigError, match="needs sim_speaker or sim_ctx"):
        check_train_config(load_config(TrainConfig, None, ["target.sim_speaker=false", "target.sim_ctx=false"]))


def test_a_run_folder_from_before_the_refiner_forms_loads_as_it_was_trained(features, tmp_path):
    config = _config("rld", epochs=1)
    config.target.refiner, config.target.combine = "bounded", "eta"
    run_dir = tmp_path / "run"
    run_training(config, run_dir, features, progress=False)
    results = json.loads((run_dir / "results.json").read_text())
    for key in ("refiner", "combine"):  # as written before these keys existed
        del results["config"]["target"][key]
    (run_dir / "results.json").write_text(json.dumps(results))
    stored = compare_metrics(results, evaluate_run(run_dir))
    assert stored == []  # same model rebuilt (bounded, eta), same metrics


def test_removed_target_keys_load_when_off_and_are_refused_otherwise():
    # run folders written before sim_temperature / rld_anchor were removed hold them at their "off" values
    old = load_config(TrainConfig, None, ["target.sim_temperature=1", "target.rld_anchor=0"])
    assert old == TrainConfig()
    with pytest.raises(ConfigError, match="target.rld_anchor=0.5 was removed"):
        load_config(TrainConfig, None, ["target.rld_anchor=0.5"])


def test_run_folder_contract(features, tmp_path):
    run_dir = tmp_path / "run"
    results = run_training(_config("rld"), run_dir, features, progress=False)
    names = {p.name for p in run_dir.iterdir()}
    assert {"config.yaml", "inputs.json", "metrics.csv", "metrics.json", "best.pt", "predictions.csv",
            "test_states.npz", "results.json"} <= names
    assert "last.pt" not in names and not any(n.endswith(".tmp") for n in names)
    stored = json.loads((run_dir / "results.json").read_text())
    assert stored == json.loads(json.dumps(results))
    for key in ("status", "config", "corpus", "corpus_fingerprint", "labels", "feature_files", "best_epoch",
                "epochs_run", "valid", "test", "seconds_total", "seconds_per_epoch", "device", "seed"):
        assert key in stored, key
    assert stored["status"] == "complete" and stored["corpus"] == "synth" and stored["device"] == "cpu"
    assert stored["feature_files"]["t"]["dim"] == 12 and stored["feature_files"]["a"]["extractor"] == "synth-audio"
    assert stored["feature_files"] == json.loads((run_dir / "inputs.json").read_text())  # recorded at the start
    test = stored["test"]
    assert set(test["per_class_f1"]) == set(stored["labels"])
    assert np.array(test["confusion_matrix"]).sum() == sum(test["support"].values())
    assert all(0.0 <= test[k] <= 1.0 for k in ("accuracy", "weighted_f1", "macro_f1"))

    with open(run_dir / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["epoch", "train_loss", "valid_loss", "valid_accuracy", "valid_weighted_f1",
                             "valid_macro_f1", "seconds", "valid_refine_gold_mass", "valid_refine_specificity",
                             "valid_refine_specificity_null", "valid_refine_variation", "valid_refine_entropy"]
    assert len(rows) == stored["epochs_run"] == len(_metric_rows(run_dir))
    # The dev diagnostics of each epoch: at the selected epoch they are the final ones of results.json (the
    # chance level of class specificity from fewer permutations there, so only close to the final one).
    selected = _metric_rows(run_dir)[stored["best_epoch"] - 1]
    final = stored["refinement"]["valid"]
    for key in ("gold_mass", "specificity", "variation", "entropy"):
        assert selected[f"valid_refine_{key}"] == pytest.approx(final[key], abs=1e-9)
    assert selected["valid_refine_specificity_null"] == pytest.approx(final["specificity_null"], rel=0.25)
    # Selection on dev only: the checkpoint epoch is the first maximum of valid weighted F1.
    scores = [float(r["valid_weighted_f1"]) for r in rows]
    assert stored["best_epoch"] == int(np.argmax(scores)) + 1
    assert stored["valid"]["weighted_f1"] == pytest.approx(max(scores), abs=1e-6)

    state = torch.load(run_dir / "best.pt", weights_only=True)
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    assert any(k.startswith("predictor.") for k in state) and any(k.startswith("target.") for k in state)

    with open(run_dir / "predictions.csv") as f:
        preds = list(csv.DictReader(f))
    labels = stored["labels"]
    assert list(preds[0])[:4] == ["utterance_id", "dialogue_id", "gold", "pred"]
    assert [f"prob_{lab}" for lab in labels] + [f"rld_{lab}" for lab in labels] + ["text"] == list(preds[0])[4:]
    assert len(preds) == sum(test["support"].values())
    accuracy = np.mean([p["gold"] == p["pred"] for p in preds])
    assert accuracy == pytest.approx(test["accuracy"])
    for p in preds[:5]:
        assert sum(float(p[f"rld_{lab}"]) for lab in labels) == pytest.approx(1.0, abs=1e-4)
        assert max(labels, key=lambda lab: float(p[f"rld_{lab}"])) == p["gold"]

    states = np.load(run_dir / "test_states.npz", allow_pickle=False)
    assert states["ids"].tolist() == [p["utterance_id"] for p in preds]
    assert states["emotion_states"].shape == (len(preds), 16) and states["emotion_states"].dtype == np.float32
    assert [labels[i] for i in states["preds"]] == [p["pred"] for p in preds]


def test_onehot_predictions_have_no_refined_columns(features, tmp_path):
    run_training(_config("onehot", epochs=2), tmp_path / "run", features, progress=False)
    header = (tmp_path / "run" / "predictions.csv").read_text().splitlines()[0]
    assert "rld_" not in header and "prob_neutral" in header


def test_same_seed_same_metrics(features, tmp_path):
    a = run_training(_config("rld"), tmp_path / "a", features, progress=False)
    b = run_training(_config("rld"), tmp_path / "b", features, progress=False)
    assert a["test"] == b["test"] and a["best_epoch"] == b["best_epoch"]
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in _metric_rows(tmp_path / "a")]
    assert strip == [{k: v for k, v in r.items() if k != "seconds"} for r in _metric_rows(tmp_path / "b")]


def _kill_at(kill_epoch: int):
    """An on_epoch_end callback that interrupts training after ``kill_epoch`` (as Ctrl-C would)."""

    def kill(epoch: int, row: dict) -> None:
        if epoch == kill_epoch:
            raise KeyboardInterrupt

    return kill


def test_resume_after_a_kill_gives_the_same_result(features, tmp_path):
    config = _config("rld", epochs=5)
    whole = run_training(config, tmp_path / "whole", features, progress=False)

    with pytest.raises(KeyboardInterrupt):
        run_training(config, tmp_path / "resumed", features, progress=False, on_epoch_end=_kill_at(2))
    assert (tmp_path / "resumed" / "last.pt").exists() and not (tmp_path / "resumed" / "results.json").exists()
    assert len(_metric_rows(tmp_path / "resumed")) == 2
    resumed = run_training(config, tmp_path / "resumed", features, progress=False)
    assert resumed["test"] == whole["test"] and resumed["best_epoch"] == whole["best_epoch"]
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in _metric_rows(tmp_path / "resumed")]
    assert strip == [{k: v for k, v in r.items() if k != "seconds"} for r in _metric_rows(tmp_path / "whole")]
    # A complete run returns its stored results; another config in the same folder is refused.
    assert run_training(config, tmp_path / "resumed", features, progress=False) == resumed
    with pytest.raises(ValueError, match=r"another config \(differs in seed\)"):
        run_training(load_config(TrainConfig, None, [], base={**_plain(config), "seed": 7}), tmp_path / "resumed",
                     features, progress=False)


def test_a_config_stored_before_a_key_existed_still_matches(tmp_path):
    from mmemolr.train.rundir import check_same_config

    wanted = _plain(TrainConfig())
    older = _plain(TrainConfig())
    del older["model"]["emotion_speaker"]  # written by a version without model.emotion_speaker
    check_same_config(tmp_path, older, wanted)  # the missing key is its default: the same run
    older["model"]["hidden"] = 64
    with pytest.raises(ValueError, match=r"differs in model.hidden\)"):
        check_same_config(tmp_path, older, wanted)
    with pytest.raises(ValueError, match=r"differs in .*model.gone"):
        check_same_config(tmp_path, {**wanted, "model": {**wanted["model"], "gone": 1}}, wanted)


def _plain(config: TrainConfig) -> dict:
    from mmemolr.config import to_dict

    return to_dict(config)


def test_early_stopping_respects_patience(features, tmp_path):
    results = run_training(_config("onehot", epochs=30, patience=2, lr=0.05), tmp_path / "run", features,
                           progress=False)
    rows = _metric_rows(tmp_path / "run")
    assert results["epochs_run"] == len(rows) < 30
    assert results["epochs_run"] - results["best_epoch"] == 2
    best = max(r["valid_weighted_f1"] for r in rows)
    assert all(r["valid_weighted_f1"] <= best for r in rows[results["best_epoch"]:])
    assert results["warnings"] == []  # early stopping ended it: no max_epochs warning


def test_evaluate_recomputes_and_predict_labels_a_corpus(features, tmp_path):
    run_dir = tmp_path / "run"
    stored = run_training(_config("lcm", epochs=3), run_dir, features, progress=False)
    recomputed = evaluate_run(run_dir)
    assert compare_metrics(stored, recomputed) == []
    result = predict_corpus(run_dir, "synth", features)
    with open(result.csv) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == sum(1 for _ in make_corpus().utterances())
    assert {r["split"] for r in rows} == {"train", "dev", "test"} and rows[0]["gold"]
    assert result.scores["test"]["accuracy"] == pytest.approx(stored["test"]["accuracy"])
    # synthetic utterances have no times: no timelines, and the JSON holds the same rows grouped by dialogue
    assert not result.timelines and len(result.untimed) == len(make_corpus().dialogues)
    stored_json = json.loads(result.json.read_text())
    assert stored_json["metrics"]["test"] == result.scores["test"] and stored_json["labelled"] is True
    assert sum(len(d["utterances"]) for d in stored_json["dialogues"]) == len(rows)
    assert "lcm_neutral" in (run_dir / "predictions.csv").read_text().splitlines()[0]


def test_emotion_reading_the_updated_speaker_state_trains_and_evaluates(features, tmp_path):
    from mmemolr.train.build import build_model

    run_dir = tmp_path / "run"
    config = _config("rld", epochs=2)
    config.model.emotion_speaker = "updated"
    assert build_model(config, input_dim=4, n_classes=3).predictor.emotion_speaker == "updated"
    stored = run_training(config, run_dir, features, progress=False)
    assert "emotion_speaker: updated" in (run_dir / "config.yaml").read_text()
    assert compare_metrics(stored, evaluate_run(run_dir)) == []


def test_predict_refuses_features_from_another_extractor(features, tmp_path):
    from train_helpers import write_features

    from mmemolr.corpus import load_prepared

    run_dir = tmp_path / "run"
    run_training(_config("onehot", epochs=1), run_dir, features, progress=False)
    other = tmp_path / "other"
    corpus = load_prepared(features / "synth")
    prepare(other, corpus, modalities=("text",))
    write_features(corpus, other / "synth", "audio", dim=8)
    with pytest.raises(ValueError, match=r"from 'synth-audio', which mmemolr cannot run.*audio-synth.h5: "
                                         r"dim 8 \(trained: 12\)"):
        predict_corpus(run_dir, "synth", other)


def test_unfinished_run_cannot_be_evaluated(tmp_path):
    with pytest.raises(FileNotFoundError, match="is not a run folder"):
        evaluate_run(tmp_path)


def test_cli_train_evaluate_predict(features, tmp_path, capsys):
    out = tmp_path / "cli-run"
    args = ["train", "--corpus", "synth", "--features-dir", str(features), "--modalities", "t", "--target", "ls",
            "--seed", "3", "--device", "cpu", "--out", str(out), "--quiet", "--config",
            str(REPO_ROOT / "configs" / "meld.yaml"), "optim.max_epochs=2", "model.hidden=8"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "weighted F1 %" in printed and str(out) in printed
    results = json.loads((out / "results.json").read_text())
    assert results["config"]["target"]["name"] == "ls" and results["seed"] == 3
    assert results["config"]["model"]["hidden"] == 8 and results["config"]["modalities"] == ["t"]
    assert main(["evaluate", str(out)]) == 0
    assert "recomputed metrics match results.json" in capsys.readouterr().out
    assert main(["predict", str(out), "--corpus", "synth", "--features-dir", str(features),
                 "--out", str(tmp_path / "pred")]) == 0
    assert "weighted F1 %" in capsys.readouterr().out
    assert (tmp_path / "pred" / "predictions.csv").exists() and (tmp_path / "pred" / "predictions.json").exists()


def test_cli_default_run_folder_and_ablation_flags(features, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--corpus", "synth", "--features-dir", str(features), "--modalities", "t,a",
                 "--no-sim-speaker", "--quiet", "--device", "cpu", "optim.max_epochs=1", "model.hidden=8"]) == 0
    run_dir = tmp_path / "runs" / "synth" / "ta-rld-nospeaker-seed0"
    config = json.loads((run_dir / "results.json").read_text())["config"]
    assert config["target"]["sim_speaker"] is False and config["target"]["sim_ctx"] is True


@pytest.mark.parametrize("extra,message", [
    (["--modalities", "t,v"], "modality 'visual' was asked for"),
    (["--target", "nope"], "target.name='nope' is not a known target"),
    (["optim.lr=-1"], "optim.lr must be greater than 0, got -1.0"),
    (["--device", "cuda:7"] if not torch.cuda.is_available() else ["--device", "tpu"], "device"),
])
def test_cli_bad_input_exits_with_a_message(features, tmp_path, capsys, extra, message):
    code = main(["train", "--corpus", "synth", "--features-dir", str(features), "--out", str(tmp_path / "r"),
                 "--quiet"] + extra)
    assert code == 1
    assert message in capsys.readouterr().err


def test_cli_missing_corpus(tmp_path, capsys):
    assert main(["train", "--corpus", "absent", "--features-dir", str(tmp_path), "--quiet"]) == 1
    assert "no prepared corpus" in capsys.readouterr().err


def test_cli_corpus_names_any_case_and_close_names(features, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # a typo: the close prepared corpus is named, and prepare is suggested with a real format, not the typo
    assert main(["train", "--corpus", "synht", "--features-dir", str(features), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "did you mean --corpus synth?" in err
    assert "mmemolr corpus prepare --corpus FORMAT --root RAW_FILES (formats: emorynlp, emotionlines, iemocap, manifest, " \
           "meld, transcript)" in err and "--corpus synht --root" not in err
    # another case finds the prepared corpus; the run folder and config use its own name
    # --modalities text is t on purpose (documented): the same run folder and config as --modalities t
    assert main(["train", "--corpus", "SYNTH", "--features-dir", str(features), "--modalities", "text,audio",
                 "--quiet", "--device", "cpu", "optim.max_epochs=1", "model.hidden=8"]) == 0
    run_dir = tmp_path / "runs" / "synth" / "ta-rld-seed0"
    config = json.loads((run_dir / "results.json").read_text())["config"]
    assert config["corpus"] == "synth" and config["modalities"] == ["t", "a"]
    assert main(["train", "--corpus", "synth", "--features-dir", str(features), "--modalities", "t,a",
                 "--quiet", "--device", "cpu", "optim.max_epochs=1", "model.hidden=8"]) == 0  # the same run: reused


def test_stopping_at_max_epochs_while_improving_warns(features, tmp_path, capsys):
    args = ["train", "--corpus", "synth", "--features-dir", str(features), "--modalities", "t", "--quiet",
            "--device", "cpu", "--out", str(tmp_path / "capped"), "optim.max_epochs=2", "model.hidden=8"]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "warning: training stopped at optim.max_epochs=2 while dev weighted F1 was still improving" in err
    assert json.loads((tmp_path / "capped" / "results.json").read_text())["warnings"]


def test_real_meld_slice_trains(meld_corpus, minilm_dir, tmp_path):
    """Two epochs on real MELD dialogues with real MiniLM vectors (a slice, to stay fast)."""
    from transformers import AutoModel, AutoTokenizer

    from mmemolr.corpus import Corpus, save_prepared
    from mmemolr.store import FeatureWriter

    dialogues = []
    for split, n in (("train", 16), ("dev", 4), ("test", 4)):
        dialogues += meld_corpus.split_dialogues(split)[:n]
    corpus = Corpus("meld-slice", meld_corpus.labels, dialogues)
    folder = tmp_path / "features" / "meld-slice"
    save_prepared(corpus, folder)
    tokenizer = AutoTokenizer.from_pretrained(minilm_dir)
    encoder = AutoModel.from_pretrained(minilm_dir).eval()
    utts = list(corpus.utterances())
    vectors = []
    with torch.no_grad():
        for i in range(0, len(utts), 64):
            enc = tokenizer([u.text for u in utts[i:i + 64]], padding=True, truncation=True, return_tensors="pt")
            hidden = encoder(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).float()
            vectors.append(((hidden * mask).sum(1) / mask.sum(1)).numpy())
    attrs = {"corpus_name": corpus.name, "corpus_fingerprint": corpus.fingerprint(), "modality": "text",
             "extractor": "test-mean-pool", "dim": 384, "model_id": str(minilm_dir)}
    with FeatureWriter(folder / "text-minilm.h5", [u.id for u in utts], attrs) as writer:
        writer.write([u.id for u in utts], np.concatenate(vectors))
    config = load_config(TrainConfig, REPO_ROOT / "configs" / "meld.yaml",
                         ["corpus=meld-slice", "device=cpu", "optim.max_epochs=2"])
    results = run_training(config, tmp_path / "run", tmp_path / "features", progress=False)
    assert results["epochs_run"] == 2 and results["labels"] == meld_corpus.labels
    assert results["feature_files"]["t"]["dim"] == 384
    assert sum(results["test"]["support"].values()) == sum(len(d) for d in dialogues if d.split == "test")
    assert compare_metrics(results, evaluate_run(tmp_path / "run")) == []


# --- a run's inputs: recorded at the start, checked on resume, reuse and evaluate (#16) ---------------------

def _swap_content(path: Path, config: dict | None = None) -> bytes:
    """Other values (and extractor config) in a file with the same ids, dim and corpus fingerprint, as a
    re-extraction with other settings into the same path would leave; returns the original bytes."""
    import h5py

    original = path.read_bytes()
    with h5py.File(path, "r+") as f:
        f["features"][...] = f["features"][...] * 1.5 + 0.25
        if config is not None:
            f.attrs["extractor_config"] = json.dumps(config)
    return original


def test_resume_refuses_other_feature_contents_and_accepts_a_moved_identical_file(features, tmp_path):
    config = _config("rld", epochs=3)
    run_dir = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run_training(config, run_dir, features, progress=False, on_epoch_end=_kill_at(1))
    inputs = json.loads((run_dir / "inputs.json").read_text())
    text = features / "synth" / "text-synth.h5"
    assert set(inputs) == {"t", "a"} and inputs["t"]["path"] == str(text.resolve())
    assert len(inputs["t"]["content_sha256"]) == 64 and inputs["t"]["extractor"] == "synth-text"

    original = _swap_content(text, {"pooling": "cls"})
    with pytest.raises(ValueError, match=r"run was started on other feature files than it reads now: .*text-synth.h5: "
                                         r"content checksum was [0-9a-f]{12}…, now [0-9a-f]{12}…; extractor_config "
                                         r"differs in pooling \(None -> 'cls'\); restore the original file"):
        run_training(config, run_dir, features, progress=False)
    assert len(_metric_rows(run_dir)) == 1  # nothing trained on the other data

    text.unlink()
    moved = features / "synth" / "text-renamed.h5"  # the same content under another name
    moved.write_bytes(original)
    results = run_training(config, run_dir, features, progress=False)
    assert results["feature_files"]["t"]["path"] == str(moved.resolve())
    assert results["feature_files"]["t"]["content_sha256"] == inputs["t"]["content_sha256"]
    assert results["feature_files"]["t"]["extractor_config"] == {}

    # a complete run is not reused, nor evaluated, on other contents either
    _swap_content(moved)
    with pytest.raises(ValueError, match=r"text-renamed.h5: content checksum was"):
        run_training(config, run_dir, features, progress=False)
    with pytest.raises(ValueError, match=r"text-renamed.h5: content checksum .*restore the files it was trained on"):
        evaluate_run(run_dir)
