"""Fusion layer: feature-file resolution and checks, train-only z-normalisation, batches."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
from train_helpers import make_corpus, prepare, write_features

from mmemolr.corpus import Corpus, Dialogue, Utterance, load_prepared, save_prepared
from mmemolr.fuse import (
    ZNorm,
    batch_plan,
    build_fused,
    check_training_corpus,
    collate,
    load_feature_files,
    normalise_modalities,
    resolve_feature_files,
    schedule,
)


def test_modalities_accept_codes_and_names():
    assert normalise_modalities("t,a,v") == ["t", "a", "v"]
    assert normalise_modalities(["text", "visual"]) == ["t", "v"]
    with pytest.raises(ValueError, match="modality 'text' is given twice in text,visual,t"):
        normalise_modalities(["text", "visual", "t"])  # once silently dropped, so t,t trained on text alone
    with pytest.raises(ValueError, match="unknown modality 'x'"):
        normalise_modalities(["x"])
    with pytest.raises(ValueError, match="no modality"):
        normalise_modalities([])


def test_resolve_single_missing_several_and_chosen(tmp_path):
    root = prepare(tmp_path, modalities=("text", "audio"))
    folder = root / "synth"
    paths = resolve_feature_files(folder, ["t", "a"])
    assert paths["t"].name == "text-synth.h5" and paths["a"].name == "audio-synth.h5"
    with pytest.raises(FileNotFoundError, match="modality 'visual' was asked for"):
        resolve_feature_files(folder, ["t", "v"])
    corpus = load_prepared(folder)
    write_features(corpus, folder, "text", file_name="text-other.h5")
    with pytest.raises(ValueError, match=r"several text feature files \(text-other.h5, text-synth.h5\)"):
        resolve_feature_files(folder, ["t"])
    assert resolve_feature_files(folder, ["t"], {"t": "text-other.h5"})["t"] == folder / "text-other.h5"
    with pytest.raises(FileNotFoundError, match="nope.h5"):
        resolve_feature_files(folder, ["t"], {"text": "nope.h5"})


def test_feature_files_of_different_corpora_are_refused(tmp_path):
    corpus = make_corpus()
    other = make_corpus(name="other", seed=5)
    folder = tmp_path / "synth"
    folder.mkdir()
    text = write_features(corpus, folder, "text")
    audio = write_features(other, folder, "audio", ids=corpus.utterance_ids())
    with pytest.raises(ValueError, match="different corpora"):
        load_feature_files({"t": text, "a": audio}, corpus)
    with pytest.raises(ValueError, match="not from the prepared corpus 'synth'"):
        load_feature_files({"a": audio}, corpus)


def test_mismatched_ids_are_named(tmp_path):
    corpus = make_corpus()
    ids = corpus.utterance_ids()
    path = write_features(corpus, tmp_path, "text", ids=ids[:-2])
    with pytest.raises(ValueError, match=rf"2 corpus utterance\(s\) missing, e.g. .*{ids[-1]}"):
        load_feature_files({"t": path}, corpus)
    a = write_features(corpus, tmp_path, "text", file_name="a.h5")
    b = write_features(corpus, tmp_path, "audio", file_name="b.h5", ids=ids[1:])
    with pytest.raises(ValueError, match=rf"cover different utterances: 1 only in the first .*{ids[0]}"):
        load_feature_files({"t": a, "a": b}, corpus)


def test_nan_rows_are_named(tmp_path):
    corpus = make_corpus()
    path = write_features(corpus, tmp_path, "text")
    with h5py.File(path, "r+") as f:
        f["features"][3, 0] = np.nan
    with pytest.raises(ValueError, match=rf"1 row\(s\) with NaN/inf, e.g. \['{corpus.utterance_ids()[3]}'\]"):
        load_feature_files({"t": path}, corpus)


def test_wrong_modality_attribute(tmp_path):
    corpus = make_corpus()
    path = write_features(corpus, tmp_path, "audio")
    with pytest.raises(ValueError, match="holds 'audio' features, but it was given as the text modality"):
        load_feature_files({"t": path}, corpus)


def _corpus_with(label: str | None = "joy", splits=("train", "dev", "test")) -> Corpus:
    dialogues = []
    for split in splits:
        utts = [Utterance(f"{split}/u{i}", f"{split}/d", i, "a", "hi", "neutral", split) for i in range(2)]
        dialogues.append(Dialogue(f"{split}/d", split, utts))
    dialogues[0].utterances[1].label = label
    return Corpus("tiny", ["neutral", "joy"], dialogues)


def test_label_outside_label_set_and_context_only_and_empty_split():
    check_training_corpus(_corpus_with("joy"))
    with pytest.raises(ValueError, match=r"utterance 'train/u1' \(dialogue 'train/d', train\) has label 'happy'"):
        check_training_corpus(_corpus_with("happy"))
    # One utterance without a label is context-only; a split with no labelled utterance cannot be scored.
    check_training_corpus(_corpus_with(None))
    unlabelled = _corpus_with(None)
    unlabelled.dialogues[0].utterances[0].label = None
    with pytest.raises(ValueError, match="'train' split of corpus 'tiny' has no labelled utterance"):
        check_training_corpus(unlabelled)
    with pytest.raises(ValueError, match="no 'dev' dialogues"):
        check_training_corpus(_corpus_with(splits=("train", "test")))


def test_znorm_uses_train_statistics_only_and_masks_missing(tmp_path):
    corpus = make_corpus()
    folder = tmp_path / "synth"
    folder.mkdir()
    save_prepared(corpus, folder)
    missing = [u.id for u in corpus.utterances("dev")][:2]
    path = write_features(corpus, folder, "text", missing=missing)
    files = load_feature_files({"t": path}, corpus)
    train_ids = [u.id for u in corpus.utterances("train")]
    norm = ZNorm.fit(files, train_ids)
    # Shifting dev/test vectors must not move the statistics.
    files["t"].features[files["t"].rows_for([u.id for u in corpus.utterances("test")])] += 100.0
    assert np.allclose(ZNorm.fit(files, train_ids).mean["t"], norm.mean["t"])
    data = build_fused(corpus, files, norm, corpus.labels)
    x = data.features.numpy()
    train_rows = files["t"].rows_for(train_ids)
    assert np.allclose(x[train_rows, :12].mean(0), 0, atol=1e-5)
    assert np.allclose(x[train_rows, :12].std(0), 1, atol=1e-4)
    row = data.ids.index(missing[0])
    assert (x[row, :12] == 0).all() and x[row, 12] == 0  # zeros plus availability 0
    assert (x[train_rows, 12] == 1).all()
    assert (x[-1] == 0).all() and x.shape[0] == len(data.ids) + 1  # padding row
    assert not data.available[row, 0]
    without = build_fused(corpus, files, norm, corpus.labels, availability_input=False)
    assert without.input_dim == 12 and data.input_dim == 13


def test_dialogue_index_speakers_and_labels(tmp_path):
    root = prepare(tmp_path)
    corpus = load_prepared(root / "synth")
    files = load_feature_files(resolve_feature_files(root / "synth", ["t"]), corpus)
    data = build_fused(corpus, files, ZNorm.fit(files, corpus.utterance_ids()), corpus.labels)
    for d, di in zip(corpus.dialogues, data.dialogues):
        order = d.speakers
        assert di.speakers.tolist() == [order.index(u.speaker) for u in d.utterances]
        assert di.labels.tolist() == [corpus.labels.index(u.label) for u in d.utterances]
        assert [data.ids[r] for r in di.rows] == [u.id for u in d.utterances]


def test_batch_plan_covers_everything_and_buckets():
    lengths = [5, 1, 9, 3, 3, 7, 2, 8, 6, 4, 1, 9]
    gen = torch.Generator().manual_seed(3)
    plan = batch_plan(lengths, 4, gen)
    assert sorted(i for b in plan for i in b) == list(range(len(lengths)))
    spans = [max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in plan]
    assert max(spans) <= 3  # bucketed: similar lengths together
    again = batch_plan(lengths, 4, torch.Generator().manual_seed(3))
    assert again == plan
    assert batch_plan(lengths, 4, torch.Generator().manual_seed(4)) != plan or len(plan) == 1
    ordered = batch_plan(lengths, 5)
    assert [lengths[i] for b in ordered for i in b] == sorted(lengths)
    unbucketed = batch_plan(lengths, 4, torch.Generator().manual_seed(3), bucket=False)
    assert sorted(i for b in unbucketed for i in b) == list(range(len(lengths)))
    with pytest.raises(ValueError, match="batch size"):
        batch_plan(lengths, 0)


def test_every_run_takes_the_epochs_length_buckets_in_one_order_with_its_own_members():
    lengths = [5, 1, 9, 3, 3, 7, 2, 8, 6, 4, 1, 9, 3, 3, 5]
    plans = [batch_plan(lengths, 4, torch.Generator().manual_seed(s), epoch=2) for s in range(5)]
    for plan in plans:
        assert sorted(i for b in plan for i in b) == list(range(len(lengths)))
    # Step by step, every run's batch holds the same lengths (so the same padded shape: no run of a batched
    # group is padded to another) ...
    for step in zip(*plans):
        assert len({tuple(sorted(lengths[i] for i in b)) for b in step}) == 1
    # ... but not the same dialogues: each run draws its own members of a length bucket.
    assert len({tuple(map(tuple, p)) for p in plans}) == len(plans)
    # The order of the buckets is the epoch's schedule, whichever generator: length order permuted by it.
    by_length = batch_plan(lengths, 4)
    order = schedule(len(by_length), 2)
    assert [sorted(lengths[i] for i in b) for b in plans[0]] == [sorted(lengths[i] for i in by_length[k]) for k in order]
    assert schedule(len(by_length), 3) != order  # another epoch, another order (4 batches: 1 in 24 alike)
    # A generator draws one permutation per epoch, whatever the epoch.
    gen, alone = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    batch_plan(lengths, 4, gen, epoch=7)
    torch.randperm(len(lengths), generator=alone)
    assert torch.equal(gen.get_state(), alone.get_state())


def test_collate_pads_and_masks(tmp_path):
    root = prepare(tmp_path)
    corpus = load_prepared(root / "synth")
    files = load_feature_files(resolve_feature_files(root / "synth", ["t"]), corpus)
    data = build_fused(corpus, files, ZNorm.fit(files, corpus.utterance_ids()), corpus.labels)
    dialogues = sorted(data.split("train"), key=len)[:1] + sorted(data.split("train"), key=len)[-1:]
    batch = collate(data, dialogues)
    short, long = len(dialogues[0]), len(dialogues[1])
    assert batch.x.shape == (2, long, data.input_dim)
    assert batch.mask[0].tolist() == [True] * short + [False] * (long - short)
    assert (batch.labels[0, short:] == -1).all() and (batch.x[0, short:] == 0).all()
    assert torch.equal(batch.x[1], data.features[torch.from_numpy(dialogues[1].rows)])
    assert batch.n_parties == int(max(d.speakers.max() for d in dialogues)) + 1
