"""HDF5 feature store: round trip, resume after an interrupted write, validation, merge."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
import zlib

import h5py
import numpy as np
import pytest

from mmemolr.cli.main import main
from mmemolr.corpus import Corpus, Dialogue, Utterance, save_prepared
from mmemolr.store import (
    FeatureFileError,
    FeatureWriter,
    merge_shards,
    partial_path,
    read_features,
    validate_features,
)


def small_corpus(name: str = "toy", n_dialogues: int = 3, text_suffix: str = "") -> Corpus:
    dialogues = []
    for d in range(n_dialogues):
        split = ("train", "dev", "test")[d % 3]
        utts = [
            Utterance(id=f"d{d}_u{i}", dialogue_id=f"d{d}", index=i, speaker="AB"[i % 2],
                      text=f"utterance {i} of {d}{text_suffix}", label=("pos", "neg")[i % 2], split=split)
            for i in range(4)
        ]
        dialogues.append(Dialogue(f"d{d}", split, utts))
    return Corpus(name=name, labels=["pos", "neg"], dialogues=dialogues)


def attrs_for(corpus: Corpus, dim: int = 5, **extra) -> dict:
    return {"corpus_name": corpus.name, "corpus_fingerprint": corpus.fingerprint(), "modality": "text",
            "extractor": "test", "extractor_config": {"k": 1}, "model_id": "none", "dim": dim, **extra}


def vectors(ids: list[str], dim: int = 5) -> np.ndarray:
    # crc32, not hash(): the same values in every process
    return np.array([[zlib.crc32(f"{uid}/{j}".encode()) % 1000 / 100.0 for j in range(dim)] for uid in ids],
                    dtype=np.float32)


def test_round_trip(tmp_path):
    corpus = small_corpus()
    ids = corpus.utterance_ids()
    path = tmp_path / "text-test.h5"
    with FeatureWriter(path, ids, attrs_for(corpus)) as w:
        w.write(ids[:5], vectors(ids[:5]))
        w.write(ids[7:], vectors(ids[7:]))
        w.fail(ids[5], "empty", "no text")
        w.write(ids[6:7], vectors(ids[6:7]))
    assert path.exists() and not partial_path(path).exists()
    ff = read_features(path)
    assert ff.ids == ids and ff.dim == 5 and ff.attrs["complete"]
    assert ff.config() == {"k": 1} and json.loads(ff.attrs["versions"])["h5py"] == h5py.__version__
    np.testing.assert_array_equal(ff.features[ff.available], vectors([i for i in ids if i != ids[5]]))
    assert not ff.available[5] and ff.errors == [(ids[5], "empty", "no text")]
    assert validate_features(path, corpus) == []


def test_partial_file_is_not_read_as_complete(tmp_path):
    corpus = small_corpus()
    ids = corpus.utterance_ids()
    path = tmp_path / "f.h5"
    w = FeatureWriter(path, ids, attrs_for(corpus))
    w.write(ids[:3], vectors(ids[:3]))
    assert w.close() == partial_path(path)
    assert not path.exists()
    with pytest.raises(FeatureFileError, match="does not exist .*interrupted run left"):
        read_features(path)
    with pytest.raises(FeatureFileError, match="incomplete"):
        read_features(partial_path(path))


def test_resume_after_killed_process(tmp_path):
    """A writer process killed mid-run (os._exit: no cleanup) leaves a partial file that resumes."""
    corpus = small_corpus(n_dialogues=6)
    ids = corpus.utterance_ids()
    path = tmp_path / "f.h5"
    save_prepared(corpus, tmp_path / "toy")
    script = textwrap.dedent(f"""
        import os, numpy as np
        from mmemolr.corpus import load_prepared
        from mmemolr.store import FeatureWriter
        from tests.test_store import attrs_for, vectors
        corpus = load_prepared({str(tmp_path / 'toy')!r})
        ids = corpus.utterance_ids()
        w = FeatureWriter({str(path)!r}, ids, attrs_for(corpus))
        for start in range(0, len(ids), 4):
            if start == 12:
                os._exit(9)  # killed: no close, no flush beyond what the writer did
            w.write(ids[start:start + 4], vectors(ids[start:start + 4]))
    """)
    from mmemolr.paths import REPO_ROOT

    proc = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT)
    assert proc.returncode == 9
    assert partial_path(path).exists() and not path.exists()
    w = FeatureWriter(path, ids, attrs_for(corpus))
    assert w.pending_ids == ids[12:]
    w.write(w.pending_ids, vectors(w.pending_ids))
    w.close()
    ff = read_features(path)
    np.testing.assert_array_equal(ff.features, vectors(ids))
    assert ff.available.all()


def test_resume_refuses_other_config(tmp_path):
    corpus = small_corpus()
    ids = corpus.utterance_ids()
    path = tmp_path / "f.h5"
    FeatureWriter(path, ids, attrs_for(corpus)).close()
    with pytest.raises(FeatureFileError, match=r"made with extractor_config=.*pass --overwrite"):
        FeatureWriter(path, ids, attrs_for(corpus, extractor_config={"k": 2}))
    w = FeatureWriter(path, ids, attrs_for(corpus, extractor_config={"k": 2}), overwrite=True)
    assert w.pending_ids == ids


def test_writer_rejects_bad_vectors(tmp_path):
    corpus = small_corpus()
    ids = corpus.utterance_ids()
    w = FeatureWriter(tmp_path / "f.h5", ids, attrs_for(corpus))
    with pytest.raises(FeatureFileError, match=r"shape \(2, 4\), expected \(2, 5\)"):
        w.write(ids[:2], np.zeros((2, 4)))
    bad = vectors(ids[:2])
    bad[1, 0] = np.nan
    with pytest.raises(FeatureFileError, match=f"non-finite feature values for '{ids[1]}'"):
        w.write(ids[:2], bad)
    w.close()


def complete_file(tmp_path, corpus, name="f.h5", ids=None, **attrs):
    ids = ids if ids is not None else corpus.utterance_ids()
    path = tmp_path / name
    with FeatureWriter(path, ids, attrs_for(corpus, **attrs), overwrite=True) as w:
        w.write(ids, vectors(ids, attrs.get("dim", 5)))
    return path


def test_validate_missing_and_extra_ids(tmp_path):
    corpus = small_corpus()
    path = complete_file(tmp_path, corpus, ids=corpus.utterance_ids()[2:] + ["ghost"])
    problems = validate_features(path, corpus)
    assert any("2 corpus utterance(s) missing, e.g. ['d0_u0', 'd0_u1']" in p for p in problems)
    assert any("1 id(s) not in the corpus, e.g. ['ghost']" in p for p in problems)


def test_validate_duplicates_nan_dim(tmp_path):
    corpus = small_corpus()
    path = complete_file(tmp_path, corpus)
    with h5py.File(path, "r+") as f:  # damage the file behind the writer's back
        ids = f["ids"][:]
        ids[1] = ids[0]
        f["ids"][:] = ids
        f["features"][3, 2] = np.inf
        f.attrs["dim"] = 7
    problems = "\n".join(validate_features(path, corpus))
    assert "1 duplicate utterance id(s), e.g. ['d0_u0']" in problems
    assert "1 row(s) with NaN/inf, e.g. ['d0_u3']" in problems
    assert "wrong dimension: attribute dim=7, matrix has 5 columns" in problems


def test_validate_fingerprint_mismatch_and_cli(tmp_path, capsys):
    corpus = small_corpus()
    path = complete_file(tmp_path, corpus)
    other = small_corpus(text_suffix="!")
    save_prepared(other, tmp_path / "other")
    save_prepared(corpus, tmp_path / "toy")
    problems = validate_features(path, other)
    assert len(problems) == 1 and "corpus fingerprint mismatch" in problems[0]
    assert main(["features", "validate", str(path), "--corpus", str(tmp_path / "other")]) == 1
    assert "fingerprint mismatch" in capsys.readouterr().err
    assert main(["features", "validate", str(path), "--corpus", str(tmp_path / "toy")]) == 0
    assert main(["features", "inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert "extractor" in out and "available" in out and "config.k" in out


def test_validate_incomplete_and_not_hdf5(tmp_path):
    corpus = small_corpus()
    ids = corpus.utterance_ids()
    w = FeatureWriter(tmp_path / "f.h5", ids, attrs_for(corpus))
    w.write(ids[:2], vectors(ids[:2]))
    partial = w.close()
    assert any(f"incomplete: {len(ids) - 2} of {len(ids)} ids" in p for p in validate_features(partial, corpus))
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5")
    assert "cannot be read as HDF5" in validate_features(junk)[0]


def test_merge_shards(tmp_path, capsys):
    corpus = small_corpus()
    ids = corpus.utterance_ids()
    save_prepared(corpus, tmp_path / "toy")
    a = complete_file(tmp_path, corpus, "a.h5", ids=ids[0::2], shard="0/2")
    b = complete_file(tmp_path, corpus, "b.h5", ids=ids[1::2], shard="1/2")
    out = tmp_path / "merged.h5"
    assert main(["features", "merge", str(a), str(b), "--out", str(out), "--corpus", str(tmp_path / "toy")]) == 0
    ff = read_features(out)
    assert ff.ids == ids and ff.attrs["shard"] == "1/1"
    np.testing.assert_array_equal(ff.features, vectors(ids))
    with pytest.raises(FeatureFileError, match=r"appear in more than one shard"):
        merge_shards([a, a], tmp_path / "x.h5")
    with pytest.raises(FeatureFileError, match=r"are in no shard"):
        merge_shards([a], tmp_path / "x.h5", corpus)
    c = complete_file(tmp_path, corpus, "c.h5", ids=ids[1::2], shard="1/2", dim=6)
    with pytest.raises(FeatureFileError, match="has dim=6 but"):
        merge_shards([a, c], tmp_path / "x.h5")


# --- one validation for every command (#16) -------------------------------------------------------------

def _damage(path, kind: str, row: int = 3) -> None:
    """Damage a complete file behind the writer's back, in the ways a buggy tool or a bad copy would."""
    with h5py.File(path, "r+") as f:
        if kind == "zero-row":
            f["features"][row] = 0.0  # still marked available
        elif kind == "not-done":
            done = f["done"][:]
            done[row] = False  # the file still says complete
            f["done"][:] = done
        elif kind == "dim":
            f.attrs["dim"] = 7


@pytest.mark.parametrize("kind, message", [
    ("zero-row", r"1 row\(s\) marked available are all zeros, e.g. \['d0_u3'\]; a missing vector must be recorded"),
    ("not-done", r"marked complete, but 1 row\(s\) are not marked done, e.g. \['d0_u3'\]; the file is damaged"),
    ("dim", r"wrong dimension: attribute dim=7, matrix has 5 columns"),
])
def test_validate_and_training_refuse_the_same_damage(tmp_path, kind, message):
    """``features validate`` and every command that reads features (through load_feature_files) share one
    check: a file one accepts the other accepts, and each damage is refused by both with one message."""
    from mmemolr.fuse import load_feature_files

    corpus = small_corpus()
    path = complete_file(tmp_path, corpus)
    load_feature_files({"t": path}, corpus)  # sound
    _damage(path, kind)
    problems = validate_features(path, corpus)
    assert len(problems) == 1 and __import__("re").search(message, problems[0])
    with pytest.raises(FeatureFileError) as raised:
        load_feature_files({"t": path}, corpus)
    assert str(raised.value) == problems[0]


# --- atomic replace, locks, unwritable outputs ----------------------------------------------------------

def _file_content(path) -> tuple:
    ff = read_features(path)
    return ff.ids, ff.features.tobytes(), ff.available.tobytes(), ff.errors, ff.attrs.get("shard")


def test_merge_keeps_the_old_output_until_the_new_one_is_complete(tmp_path, monkeypatch):
    corpus = small_corpus()
    ids = corpus.utterance_ids()
    a = complete_file(tmp_path, corpus, "a.h5", ids=ids[0::2], shard="0/2")
    b = complete_file(tmp_path, corpus, "b.h5", ids=ids[1::2], shard="1/2")
    out = tmp_path / "merged.h5"
    merge_shards([a, b], out)
    before = _file_content(out)

    def crash(self, *args):
        raise RuntimeError("killed mid-merge")

    monkeypatch.setattr(FeatureWriter, "write", crash)
    with pytest.raises(RuntimeError, match="killed mid-merge"):
        merge_shards([a, b], out)
    assert _file_content(out) == before  # once deleted before the merge began
    monkeypatch.undo()
    assert merge_shards([a, b], out) == out and _file_content(out) == before
    assert not partial_path(out).exists()


def test_overwrite_keeps_the_finished_file_until_the_new_one_is_complete(tmp_path):
    corpus = small_corpus()
    ids = corpus.utterance_ids()
    path = complete_file(tmp_path, corpus)
    before = _file_content(path)
    w = FeatureWriter(path, ids, attrs_for(corpus, extractor_config={"k": 2}), overwrite=True)
    w.write(ids[:3], vectors(ids[:3]) + 1)
    assert w.close() == partial_path(path) and _file_content(path) == before  # interrupted: old file intact
    with FeatureWriter(path, ids, attrs_for(corpus, extractor_config={"k": 2}), overwrite=True) as w:
        w.write(ids, vectors(ids) + 1)
    assert read_features(path).config() == {"k": 2} and not partial_path(path).exists()


def _hold_write_lock(path):
    """Take the lock HDF5 takes when a process opens a file for writing (flock, exclusive)."""
    import fcntl

    handle = open(path, "rb")  # noqa: SIM115 - closed by the caller
    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return handle


def test_a_file_another_process_writes_is_named_as_such_and_never_deleted(tmp_path):
    corpus = small_corpus()
    ids = corpus.utterance_ids()
    path = tmp_path / "f.h5"
    w = FeatureWriter(path, ids, attrs_for(corpus))
    w.write(ids[:2], vectors(ids[:2]))
    w.close()  # a partial file, as another extraction would hold it
    lock = _hold_write_lock(partial_path(path))
    try:
        for overwrite in (False, True):
            with pytest.raises(FeatureFileError, match=r"another process is writing .*f.partial.h5 .*wait for it to "
                                                       r"finish.*Do not delete the file"):
                FeatureWriter(path, ids, attrs_for(corpus), overwrite=overwrite)
            assert partial_path(path).exists()
    finally:
        lock.close()
    assert read_features(partial_path(path), allow_partial=True).done.sum() == 2  # nothing lost
    with FeatureWriter(path, ids, attrs_for(corpus)) as w:  # the other process is gone: it resumes
        assert w.pending_ids == ids[2:]
        w.write(ids[2:], vectors(ids[2:]))


def test_unwritable_output_says_what_to_do(tmp_path, capsys):
    corpus = small_corpus()
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(FeatureFileError, match=r"cannot create the folder .*a-file: File exists; a file of that name "
                                               r"is in the way; choose another location"):
        FeatureWriter(blocker / "f.h5", corpus.utterance_ids(), attrs_for(corpus))
    a = complete_file(tmp_path, corpus, "a.h5")
    assert main(["features", "merge", str(a), "--out", str(blocker / "sub" / "m.h5")]) == 1
    err = capsys.readouterr().err
    assert "error: cannot create the folder" in err and "Errno" not in err


def test_inspect_a_file_while_it_is_written(tmp_path, capsys):
    """HDF5 locks a file open for writing against other processes; inspect reads it anyway."""
    corpus = small_corpus()
    ids = corpus.utterance_ids()
    path = tmp_path / "text-test.h5"
    save_prepared(corpus, tmp_path / "toy")
    script = textwrap.dedent(f"""
        import sys
        from mmemolr.corpus import load_prepared
        from tests.test_store import FeatureWriter, attrs_for, vectors
        ids = load_prepared({str(tmp_path / 'toy')!r}).utterance_ids()
        w = FeatureWriter({str(path)!r}, ids, attrs_for(load_prepared({str(tmp_path / 'toy')!r})))
        w.write(ids[:5], vectors(ids[:5]))
        w.fail(ids[5], "empty", "no text")
        print("ready", flush=True)
        sys.stdin.readline()  # hold the file open until the test has looked
        w.write(ids[6:], vectors(ids[6:]))
        w.close()
    """)
    from mmemolr.paths import REPO_ROOT

    writer = subprocess.Popen([sys.executable, "-c", script], cwd=REPO_ROOT, stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "ready"
        partial = partial_path(path)
        with pytest.raises(FeatureFileError, match="lock"):  # what a plain read meets
            read_features(partial, allow_partial=True)
        assert main(["features", "inspect", str(partial)]) == 0
        out = capsys.readouterr().out
        assert "processed     6 of 12 (50.0%)" in out and "being written now" in out
        assert re.search(r"available\s+5\n", out) and "empty" in out
    finally:
        writer.communicate("go\n", timeout=60)
    assert writer.returncode == 0 and path.exists()
    assert main(["features", "inspect", str(path)]) == 0
    assert "in progress" not in capsys.readouterr().out
    # an interrupted file (no writer) says how to resume
    w = FeatureWriter(tmp_path / "cut.h5", ids, attrs_for(corpus))
    w.write(ids[:3], vectors(ids[:3]))
    w.close()
    assert main(["features", "inspect", str(partial_path(tmp_path / "cut.h5"))]) == 0
    assert "not being written: an interrupted extraction; rerun the same extract command" in capsys.readouterr().out
