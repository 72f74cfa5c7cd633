"""Context-only utterances (no usable label: EmotionLines' ``non-neutral`` rows, IEMOCAP turns outside the
six classes) are read by the predictor as context and are absent from every loss, metric and diagnostic."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mmemolr.config import load_config
from mmemolr.corpus.synthetic import ANNOTATED_NAME, write_annotated
from mmemolr.train.build import build_model
from mmemolr.train.config import TrainConfig
from mmemolr.train.data import load_training_data
from mmemolr.train.loop import evaluate, train_epoch
from mmemolr.train.metrics import classification_metrics
from mmemolr.train.run import make_optimizer, run_training

SMALL = ["device=cpu", "model.hidden=16", "model.label_dim=8", "optim.max_epochs=2", "optim.batch_dialogues=8"]


@pytest.fixture(scope="module")
def corpus_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("context")
    write_annotated(root / ANNOTATED_NAME, dialogues={"train": 40, "dev": 12, "test": 12})
    return root


def _setup(root: Path, target: str = "rld"):
    config = load_config(TrainConfig, None, [f"corpus={ANNOTATED_NAME}", f"target.name={target}", *SMALL])
    prepared = load_training_data(config.corpus, config.modalities, {}, root, True)
    torch.manual_seed(0)
    model = build_model(config, prepared.data.input_dim, len(prepared.data.labels))
    return config, prepared, model


def test_context_only_rows_are_read_as_context_and_never_scored(corpus_root):
    config, prepared, model = _setup(corpus_root)
    data = prepared.data
    test = data.split("test")
    # a test dialogue with a context-only utterance that has utterances after it
    dialogue, k = next((d, int(np.flatnonzero(d.labels < 0)[0])) for d in test
                       if (d.labels < 0).any() and np.flatnonzero(d.labels < 0)[0] < len(d) - 1)
    before = evaluate(model, data, test, 64, torch.device("cpu"), refined=True)
    row = dialogue.rows[k]
    data.features[row] += 3.0  # change what the context-only utterance says
    after = evaluate(model, data, test, 64, torch.device("cpu"), refined=True)
    position = {r: i for i, r in enumerate(before.rows)}
    later = [position[r] for r in dialogue.rows[k + 1:]]
    assert np.abs(after.probs[later] - before.probs[later]).max() > 1e-4  # the next utterances read it
    others = [position[r] for d in test if d is not dialogue for r in d.rows]
    np.testing.assert_allclose(after.probs[others], before.probs[others], atol=1e-6)  # nothing else moved
    # ... and it is not scored: gold -1, no refined target, absent from the metrics
    assert before.gold[position[row]] == -1 and np.isnan(before.refined[position[row]]).all()
    labelled = int((before.gold >= 0).sum())
    assert labelled < len(before.gold)
    metrics = classification_metrics(before.gold, before.pred, data.labels)
    assert sum(metrics["support"].values()) == labelled == int(np.sum(metrics["confusion_matrix"]))
    # whatever the model predicts for the context-only row, the metrics do not change
    flipped = before.pred.copy()
    flipped[before.gold < 0] = (flipped[before.gold < 0] + 1) % len(data.labels)
    assert classification_metrics(before.gold, flipped, data.labels) == metrics


def test_the_loss_sees_labelled_utterances_only(corpus_root):
    config, prepared, model = _setup(corpus_root)
    data = prepared.data
    seen = []
    loss = model.target.loss

    def recording(out, labels, votes=None):
        seen.append((labels.clone(), out.logits.shape[0], None if votes is None else votes.shape[0]))
        return loss(out, labels, votes)

    model.target.loss = recording
    train = data.split("train")
    train_epoch(model, data, train, make_optimizer(model, config), config.optim,
                torch.Generator().manual_seed(0), torch.device("cpu"))
    labels = torch.cat([s[0] for s in seen])
    assert (labels >= 0).all() and all(n == len(lab) == v for lab, n, v in seen)
    assert len(labels) == sum(int((d.labels >= 0).sum()) for d in train) < sum(len(d) for d in train)


def test_a_run_and_a_group_on_a_corpus_with_context_only_rows(corpus_root, tmp_path):
    from mmemolr.train.batched import train_group

    config = load_config(TrainConfig, None, [f"corpus={ANNOTATED_NAME}", "target.name=rld", *SMALL])
    results = run_training(config, tmp_path / "single", corpus_root, progress=False, threads=1)
    labelled_test = sum(1 for line in (tmp_path / "single" / "predictions.csv").read_text().splitlines()[1:]
                        if line.split(",")[2])
    assert sum(results["test"]["support"].values()) == labelled_test
    assert results["refinement"]["test"]["n"] == labelled_test == results["agreement"]["test"]["n_votes"]
    configs = [load_config(TrainConfig, None, [f"corpus={ANNOTATED_NAME}", "target.name=rld", f"seed={s}", *SMALL])
               for s in (0, 1)]
    grouped = train_group(configs, [tmp_path / "g0", tmp_path / "g1"], corpus_root, progress=False, threads=1)
    assert all(sum(r["test"]["support"].values()) == labelled_test for r in grouped)


def test_a_batch_of_context_only_dialogues_takes_no_step_alone_or_in_a_group(tmp_path):
    """One dialogue a batch, and some dialogues hold context-only utterances only: such a step updates
    nothing, neither alone nor for that run in a group, so the run in a group still equals the run alone."""
    from mmemolr.corpus.synthetic import make_annotated, write_prepared
    from mmemolr.train.batched import train_group

    root = tmp_path / "features"
    corpus, vectors = make_annotated(dialogues={"train": 16, "dev": 6, "test": 6}, length=(2, 4))
    for d in corpus.dialogues[:3]:  # three training dialogues with nothing to learn from
        for u in d.utterances:
            u.label = None
    write_prepared(root / ANNOTATED_NAME, corpus, vectors, "synthetic-annotated", {})
    small = [f"corpus={ANNOTATED_NAME}", "target.name=rld", "device=cpu", "model.hidden=8", "model.label_dim=4",
             "optim.max_epochs=2", "optim.batch_dialogues=1", "optim.patience=5"]
    configs = [load_config(TrainConfig, None, [*small, f"seed={s}"]) for s in (0, 1)]
    alone = run_training(configs[1], tmp_path / "alone", root, progress=False, threads=1)
    grouped = train_group(configs, [tmp_path / "g0", tmp_path / "g1"], root, progress=False, threads=1)[1]
    assert alone["test"]["confusion_matrix"] == grouped["test"]["confusion_matrix"]
    a = torch.load(tmp_path / "alone" / "best.pt", weights_only=True)
    g = torch.load(tmp_path / "g1" / "best.pt", weights_only=True)
    for key in a:
        torch.testing.assert_close(a[key], g[key], rtol=1e-4, atol=1e-5)
