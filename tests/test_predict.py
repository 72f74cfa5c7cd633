"""From a recording to emotions: `mmemolr predict` on new conversations with a small real text model.

The run is trained for two epochs on a slice of real MELD dialogues with real MiniLM features made by
the `transformers` extractor, so predict has a recorded extractor, options and weights hash to match.
"""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import h5py
import matplotlib.image as mpimg
import pytest

from mmemolr.cli.main import main
from mmemolr.config import load_config
from mmemolr.corpus import Corpus, load_corpus, load_prepared, save_prepared
from mmemolr.extract import build_extractor, run_extraction
from mmemolr.predict import predict_corpus, predict_transcript
from mmemolr.store import read_attrs
from mmemolr.train.config import TrainConfig
from mmemolr.train.inference import compare_metrics, evaluate_run
from mmemolr.train.run import run_training


@pytest.fixture(scope="module")
def trained(tmp_path_factory, meld_corpus, minilm_dir) -> Path:
    """A text run (2 epochs) on 12/4/4 real MELD dialogues; returns its folder (features beside it)."""
    root = tmp_path_factory.mktemp("predict")
    dialogues = [d for split, n in (("train", 12), ("dev", 4), ("test", 4)) for d in meld_corpus.split_dialogues(split)[:n]]
    corpus = Corpus("meld-tiny", meld_corpus.labels, dialogues)
    folder = root / "features" / "meld-tiny"
    save_prepared(corpus, folder)
    extractor = build_extractor("transformers", "text", {"model": str(minilm_dir)})
    assert run_extraction(corpus, extractor, folder / "text-minilm.h5", progress=False).complete
    config = load_config(TrainConfig, None, ["corpus=meld-tiny", "device=cpu", "target.name=onehot",
                                             "optim.max_epochs=2", "model.hidden=16"])
    run_training(config, root / "run", root / "features", progress=False)
    return root / "run"


def _moved_copy(model_dir: Path, to: Path) -> Path:
    """The same encoder under another path (its files linked, not copied)."""
    to.mkdir(parents=True)
    for f in model_dir.iterdir():
        if f.is_file():
            (to / f.name).symlink_to(f.resolve())
    return to


def _other_encoder(model_dir: Path, to: Path) -> Path:
    """Another encoder with the same output size (384-d): random weights, MiniLM's tokenizer."""
    import torch
    from transformers import BertConfig, BertModel

    config = BertConfig.from_pretrained(model_dir)
    config.num_hidden_layers, config.intermediate_size, config.vocab_size = 4, 64, 1000
    torch.manual_seed(0)
    BertModel(config).save_pretrained(to)
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        if (model_dir / name).exists():
            (to / name).symlink_to((model_dir / name).resolve())
    return to


def test_recording_and_transcript_to_emotions(trained, media_dir, tmp_path, capsys):
    out = tmp_path / "call"
    assert main(["predict", str(trained), "--transcript", str(media_dir / "dialogue-sample.stm"), "--media",
                 str(media_dir / "dialogue-sample.wav"), "--features-dir", str(tmp_path / "features"),
                 "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "extracted" in printed and "no failures: all 13 items have features" in printed
    assert "is label-free: predictions only, no metrics" in printed and "accuracy" not in printed
    labels = json.loads((trained / "results.json").read_text())["labels"]
    with open(out / "predictions.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["dialogue_id", "utterance_id", "speaker", "start", "end", "pred", "confidence",
                             *[f"prob_{lab}" for lab in labels], "text"]  # no gold, no split: nothing invented
    assert len(rows) == 13 and rows[0]["speaker"] == "Diane" and rows[0]["text"] == "Hello?"
    assert (float(rows[0]["start"]), float(rows[0]["end"])) == (6.68, 7.16)
    for r in rows:
        probs = [float(r[f"prob_{lab}"]) for lab in labels]
        assert sum(probs) == pytest.approx(1.0, abs=1e-4) and r["pred"] == labels[probs.index(max(probs))]
        assert float(r["confidence"]) == pytest.approx(max(probs), abs=1e-6)
    data = json.loads((out / "predictions.json").read_text())
    assert data["labelled"] is False and data["metrics"] is None and data["labels"] == labels
    [dialogue] = data["dialogues"]
    assert dialogue["id"] == "sample" and len(dialogue["utterances"]) == 13
    first = dialogue["utterances"][0]
    assert set(first) == {"utterance_id", "speaker", "start", "end", "pred", "confidence", "probabilities", "text"}
    assert first["probabilities"][first["pred"]] == pytest.approx(first["confidence"])
    image = mpimg.imread(out / "timeline-sample.png")
    assert image.ndim == 3 and image.shape[1] > 800
    # the prepared corpus and its features are a cache: a second call extracts nothing
    assert load_prepared(tmp_path / "features" / "dialogue-sample").label_free
    again = predict_transcript(trained, media_dir / "dialogue-sample.stm", features_dir=tmp_path / "features",
                               out=tmp_path / "again", timelines=False)
    assert not again.features.extracted and [r["pred"] for r in again.records] == [r["pred"] for r in rows]


def test_the_encoder_is_matched_by_its_weights_not_its_path(trained, media_dir, minilm_dir, tmp_path):
    stm = media_dir / "dialogue-sample.stm"
    results = json.loads((trained / "results.json").read_text())
    # The run's model moved away: its recorded paths no longer exist.
    moved_run = tmp_path / "moved-run"
    shutil.copytree(trained, moved_run, ignore=shutil.ignore_patterns("predictions-*"))
    record = results["feature_files"]["t"]
    record["extractor_config"]["model"] = record["model_dir"] = str(tmp_path / "gone" / "all-MiniLM-L6-v2")
    (moved_run / "results.json").write_text(json.dumps(results))
    with pytest.raises(FileNotFoundError, match=r"text model .* was not found: .*gone.*Pass --model DIR"):
        predict_transcript(moved_run, stm, features_dir=tmp_path / "f1", timelines=False)
    # The same weights under another path: accepted by their SHA-256.
    same = _moved_copy(minilm_dir, tmp_path / "elsewhere" / "minilm")
    result = predict_transcript(moved_run, stm, features_dir=tmp_path / "f2", models={"t": str(same)},
                                timelines=False)
    assert result.features.extracted["t"].complete
    assert json.loads(read_attrs(result.features.paths["t"])["extractor_config"])["model"] == str(same)
    # Another encoder (same 384-d output): refused, by hash, before anything is extracted.
    other = _other_encoder(minilm_dir, tmp_path / "other-encoder")
    with pytest.raises(ValueError, match=r"--model .*other-encoder: its weights \(SHA-256 \w+…\) are not those"):
        predict_transcript(moved_run, stm, features_dir=tmp_path / "f3", models={"t": str(other)})
    assert not list((tmp_path / "f3" / "dialogue-sample").glob("*.h5"))
    assert main(["predict", str(moved_run), "--transcript", str(stm), "--features-dir", str(tmp_path / "f4"),
                 "--model", str(other)]) == 1


def test_features_of_a_prepared_corpus_match_by_content(trained, media_dir, minilm_dir, tmp_path, capsys):
    """The report's case: features made with the same encoder given by another path are accepted; a file
    from other weights is refused, whatever its path."""
    corpus = load_corpus("transcript", media_dir / "dialogue-sample.stm", name="call")
    save_prepared(corpus, tmp_path / "features" / "call")
    same = _moved_copy(minilm_dir, tmp_path / "abs" / "all-MiniLM-L6-v2")
    assert main(["extract", "--corpus", "call", "--features-dir", str(tmp_path / "features"), "--modality", "text",
                 "--model", str(same), "--no-progress"]) == 0
    made = tmp_path / "features" / "call" / "text-all-MiniLM-L6-v2.h5"
    result = predict_corpus(trained, "call", tmp_path / "features", timelines=False)
    assert result.features.paths["t"] == made and not result.features.extracted  # found, not extracted again
    assert main(["predict", str(trained), "--corpus", "call", "--features-dir", str(tmp_path / "features"),
                 "--no-timeline"]) == 0
    assert "label-free" in capsys.readouterr().out
    forged = tmp_path / "forged.h5"
    shutil.copy(made, forged)
    with h5py.File(forged, "r+") as f:
        f.attrs["weights_sha256"] = "0" * 64
    with pytest.raises(ValueError, match=r"holds other text features .*weights SHA-256 000000000000…"):
        predict_corpus(trained, "call", tmp_path / "features", features={"t": str(forged)})


def test_evaluate_and_train_match_features_by_content(trained, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained, run, ignore=shutil.ignore_patterns("predictions-*"))
    results = json.loads((run / "results.json").read_text())
    features = Path(results["feature_files"]["t"]["path"])
    corpus_dir = features.parent
    # moved within the corpus folder: found by identity, the metrics recompute exactly
    moved = corpus_dir / "renamed.h5"
    features.rename(moved)
    try:
        assert compare_metrics(results, evaluate_run(run)) == []
        # other weights (re-extracted with another encoder): refused, under the new name and the old one
        with h5py.File(moved, "r+") as f:
            f.attrs["weights_sha256"] = "1" * 64
        with pytest.raises(FileNotFoundError, match=r"is gone, and no file of .* holds the same features "
                                                    r"\(.*renamed.h5: weights SHA-256 111111111111…"):
            evaluate_run(run)
        moved.rename(features)
        with pytest.raises(ValueError, match=r"now hold other features than it was trained on: .*weights SHA-256 1111"):
            evaluate_run(run)
        # and rerunning `train` on the finished run is refused rather than returning its stale results
        config = load_config(TrainConfig, None, [], base=results["config"])
        with pytest.raises(ValueError, match="holds a run trained on other features"):
            run_training(config, run, corpus_dir.parent, progress=False)
    finally:
        if moved.exists():
            moved.rename(features)
        with h5py.File(features, "r+") as f:
            f.attrs["weights_sha256"] = results["feature_files"]["t"]["weights_sha256"]


def test_a_transcript_cache_never_replaces_another_corpus(trained, media_dir, tmp_path):
    features = tmp_path / "features"
    save_prepared(Corpus("dialogue-sample", ["x"], []), features / "dialogue-sample")
    with pytest.raises(ValueError, match=r"holds another prepared corpus .*name this one with --name"):
        predict_transcript(trained, media_dir / "dialogue-sample.stm", features_dir=features)
    result = predict_transcript(trained, media_dir / "dialogue-sample.stm", name="call-2", features_dir=features,
                                timelines=False)
    assert result.corpus.name == "call-2" and len(result.records) == 13
