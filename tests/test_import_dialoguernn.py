"""``features import --format dialoguernn``: synthetic pickles in exactly the circulated layouts."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from mmemolr.cli.main import main
from mmemolr.corpus import CorpusError, load_prepared
from mmemolr.importers import detect_layout, import_dialoguernn
from mmemolr.store import FeatureWriter, find_feature_files, read_features, validate_features

# (layout, {modality: dim}) of the circulated releases
VARIANTS = {
    "iemocap-dialoguernn": ("iemocap", {"text": 100, "audio": 100, "visual": 512}),
    "iemocap-mmgcn": ("iemocap", {"text": 100, "audio": 1582, "visual": 342}),
    "iemocap-mmgcn-roberta": ("iemocap", {"text": 1024, "audio": 1582, "visual": 342}),
    "meld-dialoguernn": ("meld", {"text": 600, "audio": 300}),
    "meld-mmgcn": ("meld-visual", {"text": 600, "audio": 300, "visual": 342}),
}


def make_pickle(path: Path, variant: str, n_train: int = 12, n_test: int = 4, seed: int = 0,
                id_container=list, nan_at: tuple[int, int] | None = None) -> dict:
    """Write a pickle with the item layout of ``variant``; return what was put in it."""
    layout, dims = VARIANTS[variant]
    rng = np.random.default_rng(seed)
    iemocap = layout == "iemocap"
    vids = ([f"Ses0{1 + i % 4}F_impro0{i}" for i in range(n_train)] + [f"Ses05M_script0{i}" for i in range(n_test)]
            if iemocap else list(range(n_train + n_test)))
    ids, speakers, labels, sentences, sentiment = {}, {}, {}, {}, {}
    feats = {m: {} for m in dims}
    for k, vid in enumerate(vids):
        n = 2 + k % 4
        if iemocap:
            ids[vid] = [f"{vid}_{'FM'[j % 2]}{j:03d}" for j in range(n)]
            speakers[vid] = ["FM"[j % 2] for j in range(n)]
            labels[vid] = [int(x) for x in rng.integers(0, 6, n)]
        else:
            ids[vid] = list(range(n))
            slots = rng.integers(0, 9, n)
            speakers[vid] = [[1 if s == j else 0 for j in range(9)] for s in slots]
            labels[vid] = [int(x) for x in rng.integers(0, 7, n)]
            sentiment[vid] = [int(x) for x in rng.integers(0, 3, n)]
        sentences[vid] = [f"utterance {j} of {vid}" for j in range(n)]
        for m, d in dims.items():
            arr = rng.standard_normal((n, d)).astype(np.float32)
            if nan_at == (k, 0) and m == "audio":
                arr[0, 3] = np.nan
            # The releases hold lists of per-utterance arrays in some files, 2-d arrays in others.
            feats[m][vid] = list(arr) if k % 2 else arr
    train, test = id_container(vids[:n_train]), id_container(vids[n_train:])
    if layout == "iemocap":
        items = [ids, speakers, labels, feats["text"], feats["audio"], feats["visual"], sentences, train, test]
    elif layout == "meld":
        items = [ids, speakers, labels, feats["text"], feats["audio"], sentences, train, test, sentiment]
    else:
        items = [ids, speakers, labels, feats["text"], feats["audio"], feats["visual"], sentences, train, test, []]
    with open(path, "wb") as fh:
        pickle.dump(tuple(items), fh, protocol=2)
    return {"vids": vids, "ids": ids, "labels": labels, "feats": feats, "speakers": speakers}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_import_every_layout(tmp_path, variant):
    layout, dims = VARIANTS[variant]
    src = tmp_path / f"{variant}.pkl"
    made = make_pickle(src, variant)
    result = import_dialoguernn(src, "drnn", trust_pickle=True, features_dir=tmp_path / "features", progress=False)
    assert result.layout == layout
    assert result.dims == dims
    corpus = load_prepared("drnn", tmp_path / "features")
    assert corpus.fingerprint() == result.corpus.fingerprint()
    assert corpus.labels == (["hap", "sad", "neu", "ang", "exc", "fru"] if layout == "iemocap"
                             else ["neutral", "surprise", "fear", "sadness", "joy", "disgust", "anger"])
    # validation carved from trainVid: 10% of 12 -> 1 dialogue, test untouched
    counts = {s: len(corpus.split_dialogues(s)) for s in corpus.splits}
    assert counts == {"train": 11, "dev": 1, "test": 4}
    assert {d.id for d in corpus.split_dialogues("test")} == {str(v) for v in made["vids"][12:]}
    first = corpus.dialogues[0]
    vid = made["vids"][0]
    if layout == "iemocap":
        assert [u.id for u in first.utterances] == made["ids"][vid]
        assert [u.speaker for u in first.utterances] == made["speakers"][vid]
    else:
        assert [u.id for u in first.utterances] == [f"{vid}/{j}" for j in made["ids"][vid]]
        assert [u.speaker for u in first.utterances] == [f"p{int(np.argmax(s))}" for s in made["speakers"][vid]]
    assert [corpus.labels.index(u.label) for u in first.utterances] == made["labels"][vid]
    files = {m: find_feature_files(tmp_path / "features" / "drnn", m) for m in dims}
    for modality, dim in dims.items():
        (path,) = files[modality]
        assert validate_features(path, corpus) == []
        ff = read_features(path)
        assert ff.dim == dim and int(ff.attrs["dim"]) == dim
        assert ff.attrs["extractor"] == "dialoguernn-import"
        assert ff.attrs["model_id"].startswith(f"{variant}.pkl sha256:")
        assert json.loads(ff.attrs["extractor_config"])["layout"] == layout
        # every dialogue's rows hold exactly the pickled vectors, in corpus order
        for v in made["vids"]:
            did = str(v)
            rows = ff.rows_for([u.id for u in corpus.utterances() if u.dialogue_id == did])
            np.testing.assert_array_equal(ff.features[rows], np.asarray(made["feats"][modality][v], dtype=np.float32))


def test_pickle_needs_explicit_trust(tmp_path):
    src = tmp_path / "x.pkl"
    make_pickle(src, "iemocap-dialoguernn")
    with pytest.raises(PermissionError, match="runs whatever code.*--trust-pickle"):
        import_dialoguernn(src, "x", features_dir=tmp_path)
    assert not (tmp_path / "x").exists()
    assert main(["features", "import", str(src), "--format", "dialoguernn", "--corpus-name", "x",
                 "--features-dir", str(tmp_path)]) == 1


def test_cli_import_and_rerun(tmp_path, capsys):
    src = tmp_path / "MELD_features_raw.pkl"
    make_pickle(src, "meld-mmgcn")
    argv = ["features", "import", str(src), "--format", "dialoguernn", "--corpus-name", "meld-drnn",
            "--trust-pickle", "--features-dir", str(tmp_path / "f")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "meld-visual" in out and "visual" in out and "342" in out
    folder = tmp_path / "f" / "meld-drnn"
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["audio-MELD_features_raw.h5", "corpus.json", "text-MELD_features_raw.h5",
                     "visual-MELD_features_raw.h5"]
    stamp = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    assert main(argv) == 0  # same file again: nothing rewritten
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == stamp
    # another pickle under the same name is refused, then replaced with --overwrite
    other = tmp_path / "other.pkl"
    make_pickle(other, "meld-mmgcn", seed=5)
    argv2 = [*argv[:2], str(other), *argv[3:]]
    assert main(argv2) == 1
    assert "holds another corpus" in capsys.readouterr().err
    assert main([*argv2, "--overwrite"]) == 0


def test_validation_carve_is_seeded(tmp_path):
    src = tmp_path / "s.pkl"
    make_pickle(src, "iemocap-dialoguernn", n_train=30, id_container=set)
    dev = {}
    for seed in (0, 0, 1):
        r = import_dialoguernn(src, f"c{len(dev)}", trust_pickle=True, features_dir=tmp_path, valid_seed=seed,
                               valid_fraction=0.2, progress=False)
        dev[len(dev)] = {d.id for d in r.corpus.split_dialogues("dev")}
    assert len(dev[0]) == 6 and dev[0] == dev[1] and dev[0] != dev[2]
    # set-valued trainVid: dialogue order is sorted, so the fingerprint does not depend on hashing
    a = import_dialoguernn(src, "c0", trust_pickle=True, features_dir=tmp_path, valid_fraction=0.2, progress=False)
    assert [d.id for d in a.corpus.split_dialogues("train")] == sorted(d.id for d in a.corpus.split_dialogues("train"))


def test_non_finite_rows_are_failures_not_zeros(tmp_path):
    src = tmp_path / "n.pkl"
    made = make_pickle(src, "iemocap-dialoguernn", nan_at=(2, 0))
    r = import_dialoguernn(src, "n", trust_pickle=True, features_dir=tmp_path, progress=False)
    assert r.failed == {"text": 0, "audio": 1, "visual": 0}
    ff = read_features(r.feature_files["audio"])
    bad = made["ids"][made["vids"][2]][0]
    assert ff.errors == [(bad, "non_finite", "videoAudio holds NaN/inf for this utterance")]
    assert not ff.available[ff.rows_for([bad])[0]] and int(ff.available.sum()) == len(ff.ids) - 1


def test_all_zero_rows_are_failures_so_the_file_validates(tmp_path):
    """Zero vectors mark missing ones in some releases; written as data, every command would refuse the file."""
    src = tmp_path / "z.pkl"
    made = make_pickle(src, "iemocap-dialoguernn")

    def zero_one_row(items):
        vid = made["vids"][1]
        items[5][vid] = [np.zeros_like(v) if j == 0 else v for j, v in enumerate(items[5][vid])]

    _rewrite(src, zero_one_row)
    r = import_dialoguernn(src, "z", trust_pickle=True, features_dir=tmp_path, progress=False)
    assert r.failed == {"text": 0, "audio": 0, "visual": 0}  # non-finite rows
    assert r.zero_rows == {"text": 0, "audio": 0, "visual": 1}
    bad = made["ids"][made["vids"][1]][0]
    assert read_features(r.feature_files["visual"]).errors == [
        (bad, "all-zero", "videoVisual holds an all-zero vector for this utterance (a placeholder for a missing one)")]
    assert validate_features(r.feature_files["visual"], r.corpus) == []


def _rewrite(src: Path, edit) -> None:
    with open(src, "rb") as fh:
        items = list(pickle.load(fh))
    edit(items)
    with open(src, "wb") as fh:
        pickle.dump(tuple(items), fh)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda it: it[2].__setitem__(it[7][0], [9] * len(it[2][it[7][0]])), r"label id 9 outside 0\.\.5.*--labels"),
        (lambda it: it[1].__setitem__(it[7][1], it[1][it[7][1]][:-1]), "videoSpeakers has 2 entries, videoIDs has 3"),
        (lambda it: it[4].pop(it[8][0]), "missing from videoAudio"),
        (lambda it: it[8].append(it[7][0]), "listed twice"),
        (lambda it: it[5].__setitem__(it[7][3], np.zeros((4, 512))), r"videoVisual has shape \(4, 512\), expected \(5, dim\)"),
        (lambda it: it[3].__setitem__(it[7][2], np.zeros((4, 99))), "videoText is 99-d, earlier dialogues are 100-d"),
        (lambda it: it.pop(), "not a DialogueRNN-style feature pickle"),
    ],
)
def test_malformed_pickles_name_the_problem(tmp_path, edit, message):
    src = tmp_path / "bad.pkl"
    make_pickle(src, "iemocap-dialoguernn")
    _rewrite(src, edit)
    with pytest.raises(CorpusError, match=message):
        import_dialoguernn(src, "bad", trust_pickle=True, features_dir=tmp_path, progress=False)
    assert not (tmp_path / "bad" / "corpus.json").exists()


def test_labels_override_and_layout_check(tmp_path):
    src = tmp_path / "m.pkl"
    make_pickle(src, "meld-dialoguernn")
    names = ["a", "b", "c", "d", "e", "f", "g"]
    r = import_dialoguernn(src, "m", trust_pickle=True, features_dir=tmp_path, labels=names, progress=False)
    assert r.corpus.labels == names
    with pytest.raises(CorpusError, match="does not have the 'iemocap' layout"):
        import_dialoguernn(src, "m2", trust_pickle=True, features_dir=tmp_path, layout="iemocap", progress=False)
    with open(src, "rb") as fh:
        assert detect_layout(pickle.load(fh)) == "meld"


def test_python2_text_is_repaired(tmp_path):
    src = tmp_path / "t.pkl"
    make_pickle(src, "meld-dialoguernn")
    # UTF-8 bytes read back as latin-1 (what a Python 2 pickle gives) and a cp1252 C1 apostrophe
    _rewrite(src, lambda it: it[5].__setitem__(0, ["caf\u00c3\u00a9", "it\x92s"] + it[5][0][2:]))
    r = import_dialoguernn(src, "t", trust_pickle=True, features_dir=tmp_path, progress=False)
    texts = [u.text for u in r.corpus.dialogues[0].utterances[:2]]
    assert texts == ["café", "it’s"] and r.corpus.report["repaired_text"] == 2


def test_imported_features_train_and_compare_as_they_are(tmp_path):
    from mmemolr.compare import LocalExecutor, make_plan, run_sweep

    src = tmp_path / "IEMOCAP_features.pkl"
    make_pickle(src, "iemocap-mmgcn", n_train=20)
    import_dialoguernn(src, "iemocap-mmgcn", trust_pickle=True, features_dir=tmp_path / "f", progress=False)
    plan = make_plan("iemocap-mmgcn", tmp_path / "f", seeds=1,
                     overrides=["optim.max_epochs=1", "model.hidden=8", "model.label_dim=4"])
    assert plan.rows == ["T", "A", "V", "A+V", "T+A", "T+V", "T+A+V"]
    report = run_sweep(plan, tmp_path / "sweep", LocalExecutor(1, threads=1), progress=False)
    assert not report.failures and report.table["runs_complete"] == 14
    assert {code: info["dim"] for code, info in report.table["feature_files"].items()} == {"t": 100, "a": 1582, "v": 342}
    assert report.table["feature_files"]["a"]["extractor"] == "dialoguernn-import"


def _write_ids(path: Path, ids) -> Path:
    path.write_text("# validation dialogues of the original split\n" + "\n".join(str(i) for i in ids) + "\n\n")
    return path


def test_valid_ids_keep_the_corpus_split(tmp_path, capsys):
    src = tmp_path / "IEMOCAP_features.pkl"
    made = make_pickle(src, "iemocap-dialoguernn", n_train=12)
    carved = import_dialoguernn(src, "carved", trust_pickle=True, features_dir=tmp_path, progress=False)
    carved_dev = {d.id for d in carved.corpus.split_dialogues("dev")}
    assert carved.corpus.provenance["valid_split"] == "carved" and "carved from trainVid" in carved.valid_split
    # the original split's validation dialogues: none of them the carve's choice
    wanted = [v for v in made["vids"][:12] if v not in carved_dev][:3]
    ids_file = _write_ids(tmp_path / "valid.txt", wanted)
    r = import_dialoguernn(src, "given", trust_pickle=True, features_dir=tmp_path, valid_ids=ids_file, progress=False)
    assert {d.id for d in r.corpus.split_dialogues("dev")} == set(wanted)
    assert {d.id for d in r.corpus.split_dialogues("test")} == set(made["vids"][12:])
    assert len(r.corpus.split_dialogues("train")) == 9
    assert r.valid_split == f"3 dialogues from {ids_file}"
    assert r.corpus.provenance["valid_split"] == "given" and r.corpus.provenance["valid_source"] == str(ids_file)
    assert load_prepared("given", tmp_path).fingerprint() == r.corpus.fingerprint()
    # a JSON list, or the prepared corpus of the same dialogues with its dev split, give the same split
    (tmp_path / "valid.json").write_text(json.dumps(wanted))
    by_json = import_dialoguernn(src, "j", trust_pickle=True, features_dir=tmp_path,
                                 valid_ids=tmp_path / "valid.json", progress=False)
    by_corpus = import_dialoguernn(src, "c", trust_pickle=True, features_dir=tmp_path,
                                   valid_ids=tmp_path / "given", progress=False)
    def splits(corpus):
        return [(d.id, d.split) for d in corpus.dialogues]

    assert splits(by_json.corpus) == splits(by_corpus.corpus) == splits(r.corpus)
    assert by_corpus.warnings == []
    # the command line reports which split it used
    argv = ["features", "import", str(src), "--format", "dialoguernn", "--corpus-name", "cli", "--trust-pickle",
            "--features-dir", str(tmp_path), "--valid-ids", str(ids_file)]
    assert main(argv) == 0
    assert f"validation split: 3 dialogues from {ids_file}" in capsys.readouterr().out
    assert main([*argv[:-2], "--corpus-name", "cli2"]) == 0
    assert "validation split: 1 dialogues carved from trainVid (0.1, seed 0)" in capsys.readouterr().out
    assert main([*argv, "--valid-fraction", "0.2"]) == 1
    assert "not both" in capsys.readouterr().err


def test_valid_ids_from_a_corpus_with_other_splits_warn(tmp_path, caplog):
    src = tmp_path / "s.pkl"
    made = make_pickle(src, "iemocap-dialoguernn", n_train=12)
    other = import_dialoguernn(src, "other", trust_pickle=True, features_dir=tmp_path, progress=False)
    # a prepared corpus that puts one of the pickle's test dialogues in train
    data = json.loads((tmp_path / "other" / "corpus.json").read_text())
    moved = str(made["vids"][12])
    for d in data["dialogues"]:
        if d["id"] == moved:
            d["split"] = "train"
            for u in d["utterances"]:
                u["split"] = "train"
    from mmemolr.corpus import Corpus, save_prepared

    save_prepared(Corpus.from_dict(data), tmp_path / "edited")
    with caplog.at_level("WARNING"):
        r = import_dialoguernn(src, "w", trust_pickle=True, features_dir=tmp_path, valid_ids=tmp_path / "edited",
                               progress=False)
    assert {d.id for d in r.corpus.split_dialogues("dev")} == {d.id for d in other.corpus.split_dialogues("dev")}
    assert len(r.warnings) == 2 and "test dialogues differ" in r.warnings[0] and "1 only here" in r.warnings[0]
    assert "test dialogues differ" in caplog.text


@pytest.mark.parametrize(
    "ids, message",
    [
        (["Ses01F_impro00", "nope"], r"1 validation dialogue id\(s\) are not in .*'nope'"),
        (["Ses05M_script00"], r"are testVid dialogues .*'Ses05M_script00'.*must come from trainVid"),
        ([], "holds no validation dialogue ids"),
        ([f"Ses0{1 + i % 4}F_impro0{i}" for i in range(12)], "cover every trainVid dialogue"),
    ],
)
def test_bad_valid_ids_are_refused(tmp_path, ids, message):
    src = tmp_path / "b.pkl"
    make_pickle(src, "iemocap-dialoguernn", n_train=12)
    with pytest.raises(CorpusError, match=message):
        import_dialoguernn(src, "b", trust_pickle=True, features_dir=tmp_path,
                           valid_ids=_write_ids(tmp_path / "v.txt", ids), progress=False)
    assert not (tmp_path / "b").exists()
    with pytest.raises(FileNotFoundError, match="does not exist"):
        import_dialoguernn(src, "b", trust_pickle=True, features_dir=tmp_path, valid_ids=tmp_path / "missing.txt",
                           progress=False)


def test_placeholder_modalities_are_not_imported(tmp_path, caplog, capsys):
    src = tmp_path / "IEMOCAP_features_raw.pkl"
    make_pickle(src, "iemocap-dialoguernn")

    def blank(items):  # audio all zeros, visual one constant vector: what some releases ship
        for vid, arr in items[4].items():
            items[4][vid] = np.zeros((len(arr), 100), dtype=np.float32)
        for vid, arr in items[5].items():
            items[5][vid] = np.full((len(arr), 512), 0.5, dtype=np.float32)
        first = items[7][0]
        items[3][first] = np.asarray(items[3][first]).copy()
        items[3][first][1] = 0.0  # one all-zero text row: a missing utterance, not a feature

    _rewrite(src, blank)
    # what an earlier version wrote for the all-zero audio: a "complete" feature file of zeros
    first = import_dialoguernn(src, "p", trust_pickle=True, features_dir=tmp_path / "f", progress=False)
    stale = tmp_path / "f" / "p" / "audio-IEMOCAP_features_raw.h5"
    ids = first.corpus.utterance_ids()
    attrs = {"corpus_name": "p", "corpus_fingerprint": first.corpus.fingerprint(), "modality": "audio",
             "extractor": "dialoguernn-import", "dim": 100,
             "weights_sha256": read_features(first.feature_files["text"]).attrs["weights_sha256"]}
    with FeatureWriter(stale, ids, attrs) as writer:
        writer.write(ids, np.zeros((len(ids), 100), np.float32))
    with caplog.at_level("WARNING"):
        r = import_dialoguernn(src, "p", trust_pickle=True, features_dir=tmp_path / "f", progress=False)
    assert r.placeholders == {"audio": "is all zeros", "visual": "holds the same vector for every utterance"}
    assert set(r.feature_files) == {"text"}
    folder = tmp_path / "f" / "p"
    assert find_feature_files(folder, "audio") == [] and find_feature_files(folder, "visual") == []
    assert "videoAudio (100-d) is all zeros" in caplog.text and "videoVisual (512-d)" in caplog.text
    assert not stale.exists() and "audio-IEMOCAP_features_raw.h5: removed" in caplog.text
    assert r.corpus.provenance["placeholder_modalities"] == r.placeholders
    ff = read_features(r.feature_files["text"])
    assert r.zero_rows == {"text": 1} and [e[1] for e in ff.errors] == ["all-zero"]
    assert int(ff.available.sum()) == len(ff.ids) - 1
    # so "every modality with a feature file" is the text alone
    from mmemolr.compare import make_plan

    assert make_plan("p", tmp_path / "f", seeds=1).rows == ["T"]
    argv = ["features", "import", str(src), "--format", "dialoguernn", "--corpus-name", "p", "--trust-pickle",
            "--features-dir", str(tmp_path / "f")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "not imported: is all zeros (placeholder)" in out
