"""The catalogue of bad inputs (#16): each one, given as a user would, fails with exit status and a message
that names the file, row, key or utterance and says what to do. Nothing is silent.

Each case builds what it needs in a copy of a small prepared corpus (synthetic text and audio features),
runs the ``mmemolr`` command in-process and checks the exit status and the message (stderr, or stdout for
warnings of a successful command).
"""

from __future__ import annotations

import fcntl
import json
import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import pytest
from train_helpers import make_corpus, prepare

from mmemolr.cli.main import main
from mmemolr.store import FeatureWriter, partial_path

MANIFEST_HEADER = "dialogue_id,utterance_index,speaker,text,label,split\n"
MANIFEST_ROWS = "d1,0,A,hello,joy,train\nd1,1,B,hi,neutral,train\nd2,0,A,yes,joy,dev\nd3,0,B,no,neutral,test\n"
TRAIN = ["train", "--corpus", "synth", "--features-dir", "{F}", "--out", "{W}/run", "--quiet", "--device", "cpu",
         "optim.max_epochs=1", "model.hidden=8", "model.label_dim=4"]
COMPARE = ["compare", "--corpus", "synth", "--features-dir", "{F}", "--out", "{W}/sweep", "--seeds", "1",
           "--no-progress", "--no-figures", "optim.max_epochs=1", "model.hidden=8"]
EXTRACT = ["extract", "--corpus", "synth", "--features-dir", "{F}", "--no-progress"]


@dataclass
class Workspace:
    root: Path

    @property
    def features(self) -> Path:
        return self.root / "features"

    @property
    def text(self) -> Path:
        return self.features / "synth" / "text-synth.h5"

    def file(self, name: str, data: bytes | str) -> Path:
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        return path


# --- setups: each turns the clean workspace into the bad input --------------------------------------------

def manifest(body: bytes | str, name: str = "raw/manifest.csv") -> Callable[[Workspace], None]:
    return lambda ws: ws.file(name, body)


def damage(edit: Callable[[h5py.File], None]) -> Callable[[Workspace], None]:
    def setup(ws: Workspace) -> None:
        with h5py.File(ws.text, "r+") as f:
            edit(f)
    return setup


def zero_row(f: h5py.File) -> None:
    f["features"][2] = 0.0


def wrong_dim_attr(f: h5py.File) -> None:
    f.attrs["dim"] = 13


def other_content(f: h5py.File) -> None:
    f["features"][...] = f["features"][...] + 1.0


def partial_run(ws: Workspace) -> None:
    """A run killed after its first epoch, then its text features replaced by others (same ids and dim)."""
    def stop(epoch: int, row: dict) -> None:
        raise KeyboardInterrupt

    from mmemolr.config import load_config
    from mmemolr.train.config import TrainConfig
    from mmemolr.train.run import run_training

    config = load_config(TrainConfig, None, ["corpus=synth", "device=cpu", "optim.max_epochs=2", "model.hidden=8",
                                             "model.label_dim=4"])
    with pytest.raises(KeyboardInterrupt):
        run_training(config, ws.root / "run", ws.features, progress=False, on_epoch_end=stop)
    damage(other_content)(ws)


def finished_run_then_other_features(ws: Workspace) -> None:
    argv = [a.format(F=ws.features, W=ws.root) for a in TRAIN]
    assert main(argv) == 0
    damage(other_content)(ws)


def locked_partial_output(ws: Workspace) -> None:
    """Another extraction is writing the output: its partial file exists and is locked for writing."""
    path = ws.features / "synth" / "audio-librosa.h5"
    corpus_ids = json.loads((ws.features / "synth" / "corpus.json").read_text())["dialogues"][0]["utterances"]
    w = FeatureWriter(path, [u["id"] for u in corpus_ids], {"corpus_name": "synth", "corpus_fingerprint": "x",
                                                             "modality": "audio", "extractor": "librosa", "dim": 3})
    w.close()
    handle = open(partial_path(path), "rb")  # noqa: SIM115 - closed by the test after the command
    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    ws.held = handle  # type: ignore[attr-defined]


def shard_files(ws: Workspace) -> None:
    from mmemolr.corpus import load_prepared

    corpus = load_prepared(ws.features / "synth")
    ids = corpus.utterance_ids()
    for name, part, dim in (("s0.h5", ids[0::2], 4), ("s1.h5", ids[1::2], 5)):
        attrs = {"corpus_name": "synth", "corpus_fingerprint": corpus.fingerprint(), "modality": "text",
                 "extractor": "x", "dim": dim, "shard": "0/2" if name == "s0.h5" else "1/2"}
        with FeatureWriter(ws.root / name, part, attrs) as w:
            w.write(part, np.ones((len(part), dim), dtype=np.float32))


def other_corpus(ws: Workspace) -> None:
    from mmemolr.corpus import save_prepared

    save_prepared(make_corpus(name="other", seed=9), ws.features / "other")


def blocker(ws: Workspace) -> None:
    ws.file("blocker", "")


# --- the catalogue --------------------------------------------------------------------------------------

@dataclass
class Case:
    id: str
    argv: list[str]
    code: int
    message: str  # regex searched in stderr (stdout too when ``stream`` is "out")
    setup: Callable[[Workspace], None] | None = None
    stream: str = "err"


BAD_MANIFEST = ["corpus", "prepare", "--corpus", "manifest", "--root", "{W}/raw", "--out", "{W}/prepared"]

CASES = [
    # corpus
    Case("corpus-unknown-format", ["corpus", "inspect", "--corpus", "nope", "--root", "{W}"], 1,
         r"unknown corpus format 'nope'; known: emorynlp, emotionlines, iemocap, manifest, meld"),
    Case("corpus-missing-root", ["corpus", "inspect", "--corpus", "meld", "--root", "{W}/nowhere"], 1,
         r"corpus root .*nowhere does not exist"),
    Case("manifest-missing-column", BAD_MANIFEST, 1, r"manifest.csv: missing column\(s\) speaker",
         manifest("dialogue_id,utterance_index,text,label,split\nd1,0,hi,joy,train\n")),
    Case("manifest-bad-split", BAD_MANIFEST, 1, r"manifest.csv: line 3: split 'holdout' is not one of train, dev, test",
         manifest(MANIFEST_HEADER + "d1,0,A,hi,joy,train\nd2,0,A,hi,joy,holdout\n")),
    Case("manifest-duplicate-id", BAD_MANIFEST, 1,
         r"manifest.csv: line 6: duplicate utterance id 'd1_u0' \(first at line 2\)",
         manifest(MANIFEST_HEADER + MANIFEST_ROWS + "d1,0,A,again,joy,train\n")),
    Case("manifest-extra-field", BAD_MANIFEST, 1, r"manifest.csv: line 2: 7 fields, header has 6",
         manifest(MANIFEST_HEADER + "d1,0,A,hi, there,joy,train\n")),
    Case("manifest-bad-integer", BAD_MANIFEST, 1, r"line 2: column utterance_index must be an integer, got 'one'",
         manifest(MANIFEST_HEADER + "d1,one,A,hi,joy,train\n")),
    Case("manifest-empty", BAD_MANIFEST, 1, r"manifest.csv: the manifest has no utterances", manifest(MANIFEST_HEADER)),
    Case("manifest-bad-time", BAD_MANIFEST, 1, r"line 2: cannot read time 'noon'",
         manifest("dialogue_id,utterance_index,speaker,text,label,split,start\nd1,0,A,hi,joy,train,noon\n")),
    Case("manifest-invalid-jsonl", BAD_MANIFEST, 1, r"manifest.jsonl: line 1: invalid JSON",
         manifest("{not json\n", "raw/manifest.jsonl")),
    Case("manifest-byte-neither-utf8-nor-cp1252", BAD_MANIFEST, 1,
         r"manifest.csv: line 3: bytes are neither UTF-8 nor cp1252 \(byte 0x81 at column 9\); re-save the file",
         manifest(MANIFEST_HEADER.encode() + b"d1,0,A,hi,joy,train\nd1,1,A,h\x81,joy,train\n")),
    Case("manifest-stray-cp1252-byte-is-reported", BAD_MANIFEST, 0,
         r"warning: .*manifest.csv: 1 line\(s\) are not valid UTF-8; their invalid bytes were read as cp1252 "
         r"\(Windows-1252\): line\(s\) 3;",
         manifest((MANIFEST_HEADER + "d1,0,A,I won’t go to the café,joy,train\n").encode()
                  + b"d2,0,A,dev l\xe9ne,joy,dev\nd3,0,B,t,neutral,test\n"), stream="out"),
    Case("manifest-labels-differ-in-case", BAD_MANIFEST, 0,
         r"warning: .*manifest.csv: labels 'Joy' \(line 3\) and 'joy' \(line 2\) differ only in case",
         manifest(MANIFEST_HEADER + "d1,0,A,a,joy,train\nd2,0,A,b,Joy,dev\nd3,0,A,c,neutral,test\n"), stream="out"),
    Case("pickle-without-opt-in", ["corpus", "inspect", "--corpus", "iemocap", "--root", "{W}/x.pkl"], 1,
         r"loading a pickle runs whatever code the file contains.*pass --trust-pickle", manifest(b"", "x.pkl")),
    # extract
    Case("extract-no-corpus", ["extract", "--modality", "text"], 1, r"--corpus is required"),
    Case("extract-unprepared-corpus", [*EXTRACT[:2], "nope", *EXTRACT[3:], "--modality", "audio"], 1,
         r"no prepared corpus at .*nope.*corpus.json.*mmemolr corpus prepare --corpus FORMAT"),
    Case("extract-shard-zero-of-zero", [*EXTRACT, "--modality", "audio", "--shard", "0/0"], 1,
         r"--shard '0/0': N, the number of shards, must be at least 1"),
    Case("extract-shard-negative", [*EXTRACT, "--modality", "audio", "--shard", "-1/2"], 1,
         r"--shard '-1/2': I must be in 0..1 \(shards are numbered from 0\)"),
    Case("extract-shard-past-the-end", [*EXTRACT, "--modality", "audio", "--shard", "2/2"], 1,
         r"--shard '2/2': I must be in 0..1"),
    Case("extract-shard-garbled", [*EXTRACT, "--modality", "audio", "--shard", "half"], 1,
         r"--shard 'half' must look like I/N, e.g. 0/4"),
    Case("extract-negative-workers", [*EXTRACT, "--modality", "audio", "--workers", "-1"], 1,
         r"--workers must be 0 \(auto\) or more, got -1"),
    Case("extract-workers-not-a-number", [*EXTRACT, "--modality", "audio", "--workers", "two"], 2,
         r"argument --workers: invalid int value: 'two'"),
    Case("extract-zero-batch", [*EXTRACT, "--modality", "audio", "--batch-size", "0"], 1,
         r"--batch-size must be at least 1, got 0"),
    Case("extract-unknown-option", [*EXTRACT, "--modality", "audio", "n_mfcc=20", "wndow=3"], 1,
         r"extractor librosa: unknown key 'wndow'; valid keys: "),
    Case("extract-nan-option", [*EXTRACT, "--modality", "visual", "fps=nan"], 1,
         r"fps: expected a finite number, got 'nan' \(options of extractor 'hoglbp'"),
    Case("extract-model-for-extractor-without-one", [*EXTRACT, "--modality", "audio", "--model", "x"], 1,
         r"extractor 'librosa' takes no --model"),
    Case("extract-bad-device", [*EXTRACT, "--modality", "audio", "--device", "tpu"], 1,
         r"--device 'tpu' must be auto, cpu or cuda"),
    Case("extract-bad-max-failures", [*EXTRACT, "--modality", "audio", "--max-failures", "many"], 1,
         r"--max-failures 'many' must be a number of items"),
    Case("extract-output-another-process-writes", [*EXTRACT, "--modality", "audio", "--workers", "1"], 1,
         r"another process is writing .*audio-librosa.partial.h5 \(it holds the file's HDF5 lock\): wait for it "
         r"to finish.*Do not delete the file", locked_partial_output),
    Case("extract-overwrite-while-another-process-writes",
         [*EXTRACT, "--modality", "audio", "--workers", "1", "--overwrite"], 1,
         r"another process is writing .*audio-librosa.partial.h5", locked_partial_output),
    Case("extract-unwritable-output", [*EXTRACT, "--modality", "audio", "--workers", "1", "--out",
                                       "{W}/blocker/a.h5"], 1,
         r"cannot create the folder .*blocker: File exists; a file of that name is in the way", blocker),
    # feature files
    Case("features-not-hdf5", ["features", "validate", "{W}/junk.h5"], 1, r"junk.h5: cannot be read as HDF5",
         manifest(b"junk", "junk.h5")),
    Case("features-missing", ["features", "inspect", "{W}/none.h5"], 1, r"feature file .*none.h5 does not exist"),
    Case("features-zero-row-marked-available", ["features", "validate", "{F}/synth/text-synth.h5"], 1,
         r"1 row\(s\) marked available are all zeros", damage(zero_row)),
    Case("features-dim-attribute-wrong", ["features", "validate", "{F}/synth/text-synth.h5"], 1,
         r"wrong dimension: attribute dim=13, matrix has 12 columns", damage(wrong_dim_attr)),
    Case("features-other-corpus", ["features", "validate", "{F}/synth/text-synth.h5", "--corpus", "other",
                                   "--features-dir", "{F}"], 1,
         r"corpus fingerprint mismatch: the file was extracted from corpus 'synth'", other_corpus),
    Case("merge-shards-of-different-runs", ["features", "merge", "{W}/s0.h5", "{W}/s1.h5", "--out", "{W}/m.h5"], 1,
         r"s1.h5 has dim=5 but .*s0.h5 has 4; shards of different runs cannot be merged", shard_files),
    Case("merge-a-shard-twice", ["features", "merge", "{W}/s0.h5", "{W}/s0.h5", "--out", "{W}/m.h5"], 1,
         r"utterance id\(s\) appear in more than one shard", shard_files),
    # training config
    Case("train-duplicate-modality", [*TRAIN, "--modalities", "t,t"], 1,
         r"modalities: modality 'text' is given twice in t,t"),
    Case("train-lr-inf", [*TRAIN, "optim.lr=inf"], 1, r"optim.lr: expected a finite number, got 'inf'"),
    Case("train-weight-decay-nan", [*TRAIN, "optim.weight_decay=nan"], 1, r"optim.weight_decay: expected a finite"),
    Case("train-eta-negative", [*TRAIN, "target.eta=-4"], 1, r"target.eta must be at least 0, got -4.0"),
    Case("train-eta-nan", [*TRAIN, "target.eta=nan"], 1, r"target.eta: expected a finite number"),
    Case("train-smoothing-nan", [*TRAIN, "target.smoothing=nan"], 1, r"target.smoothing: expected a finite number"),
    Case("train-removed-key", [*TRAIN, "target.gradient=detach"], 1,
         r"target.gradient='detach' was removed \(.*\); the KL gradient flows into the target module and the "
         r"predictor, as in the paper; drop the key"),
    Case("train-seed-negative", [*TRAIN, "--seed", "-1"], 1, r"seed must be in \[0, 4294967295\], got -1"),
    Case("train-seed-huge", [*TRAIN, "seed=100000000000000000000"], 1, r"seed must be in \[0, 4294967295\]"),
    Case("train-key-typo", [*TRAIN, "optim.lrr=1"], 1, r"unknown key 'optim.lrr' \(did you mean 'optim.lr'\?\)"),
    Case("train-yaml-key-twice", [*TRAIN, "--config", "{W}/c.yaml"], 1,
         r"c.yaml: invalid YAML: .*key 'lr' appears twice \(lines 2 and 3\); keep one",
         manifest("optim:\n  lr: 0.001\n  lr: 0.1\n", "c.yaml")),
    Case("train-config-missing", [*TRAIN, "--config", "{W}/none.yaml"], 1, r"config file .*none.yaml does not exist"),
    Case("train-modality-without-features", [*TRAIN, "--modalities", "t,v"], 1,
         r"modality 'visual' was asked for but .*synth holds no complete visual feature file; run `mmemolr extract`"),
    Case("train-zero-row-marked-available", TRAIN, 1, r"text-synth.h5: 1 row\(s\) marked available are all zeros",
         damage(zero_row)),
    Case("train-dim-attribute-wrong", TRAIN, 1, r"text-synth.h5: wrong dimension: attribute dim=13",
         damage(wrong_dim_attr)),
    Case("train-resume-on-other-features", TRAIN[:-3] + ["optim.max_epochs=2", "model.hidden=8",
                                                          "model.label_dim=4"], 1,
         r"run was started on other feature files than it reads now: .*text-synth.h5: content checksum was",
         partial_run),
    Case("train-unwritable-run-folder", [*TRAIN[:6], "{W}/blocker/run", *TRAIN[7:]], 1,
         r"blocker/run: Not a directory; a part of the path is a file, not a folder", blocker),
    # evaluate, predict
    Case("evaluate-not-a-run", ["evaluate", "{W}"], 1, r"is not a run folder \(no complete results.json\)"),
    Case("evaluate-on-other-features", ["evaluate", "{W}/run"], 1,
         r"text-synth.h5: content checksum was .*restore the files it was trained on",
         finished_run_then_other_features),
    Case("predict-bad-features-flag", ["predict", "{W}/run", "--corpus", "synth", "--features-dir", "{F}",
                                       "--features", "t"], 1, r"--features 't' must look like MODALITY=FILE"),
    # compare
    Case("compare-duplicate-modality", [*COMPARE, "--modalities", "t,text"], 1, r"modality 'text' is given twice"),
    Case("compare-zero-jobs", [*COMPARE, "--jobs", "0"], 1, r"--jobs 0: at least 1"),
    Case("compare-bad-seeds", [*COMPARE[:8], "x", *COMPARE[9:]], 1, r"--seeds 'x': give a count"),
    Case("compare-damaged-features", COMPARE, 1, r"text-synth.h5: 1 row\(s\) marked available are all zeros",
         damage(zero_row)),
]


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("clean")
    prepare(root / "features", make_corpus(sizes={"train": 6, "dev": 3, "test": 3}, max_len=4),
            modalities=("text", "audio"))
    return root


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, clean: Path, tmp_path: Path, capsys) -> None:
    ws = Workspace(tmp_path / "ws")
    shutil.copytree(clean, ws.root)
    if case.setup is not None:
        case.setup(ws)
    capsys.readouterr()
    argv = [a.format(F=ws.features, W=ws.root) for a in case.argv]
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse
        code = exit_.code
    finally:
        if hasattr(ws, "held"):
            ws.held.close()
    captured = capsys.readouterr()
    text = captured.out + captured.err if case.stream == "out" else captured.err
    assert code == case.code, text
    assert re.search(case.message, text), text
    if case.code == 1:
        assert "Traceback" not in text and "Errno" not in text
    if "another-process" in case.id:  # the other process's work is never deleted
        assert partial_path(ws.features / "synth" / "audio-librosa.h5").exists()


def test_the_catalogue_is_complete():
    """About fifty bad inputs, each with its own id (the issue's catalogue was ~50)."""
    assert len(CASES) >= 50 and len({c.id for c in CASES}) == len(CASES)
