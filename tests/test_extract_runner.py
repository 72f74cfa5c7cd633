"""``mmemolr extract``: resume, shards + merge, failures, worker processes, errors (real MELD + MiniLM)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import h5py
import numpy as np
import pytest

from extractors import EXTRACTORS, Extractor, ExtractorConfig, ItemError
from extractors.text_transformers import TransformersTextExtractor
from mmemolr.corpus import save_prepared
from mmemolr.corpus.model import Corpus
from mmemolr.extract import parse_max_failures, parse_shard, shard_ids
from mmemolr.store import read_features, validate_features

TESTS_DIR = Path(__file__).resolve().parent


# --- test extractors (registered per test through the `registered` fixture, never globally) -----------

class InterruptingText(TransformersTextExtractor):
    """The real text extractor, interrupted (Ctrl-C) when ``stop_after`` batches are done."""

    name: ClassVar[str] = "test-text-interrupt"
    stop_after: ClassVar[int | None] = None
    calls: ClassVar[list[list[str]]] = []

    def extract_batch(self, items, corpus):
        if InterruptingText.stop_after is not None and len(InterruptingText.calls) >= InterruptingText.stop_after:
            raise KeyboardInterrupt
        InterruptingText.calls.append([u.id for u in items])
        return super().extract_batch(items, corpus)


@dataclass
class CharConfig(ExtractorConfig):
    dim: int = 12
    batch_size: int = 4
    fail_every: int = 0  # utterances whose index is a multiple of this fail with kind "corrupt"
    pid_dir: str = ""  # record the pid of each process that extracts
    broken: str = ""  # test-broken: how to misbehave (a config field, so worker processes see it too)


class CharExtractor(Extractor):
    """A cheap deterministic stand-in for a CPU signal-processing extractor (character statistics)."""

    name: ClassVar[str] = "test-chars"
    modality: ClassVar[str] = "audio"
    config_class: ClassVar[type[ExtractorConfig]] = CharConfig
    cpu_parallel: ClassVar[bool] = True
    config: CharConfig

    def feature_dim(self) -> int:
        return self.config.dim

    def absent_reason(self, utt):
        return None  # an audio stand-in that reads the text: nothing is absent

    def extract_batch(self, items, corpus):
        kill_at = os.environ.get("MMEMOLR_TEST_KILL_AT")
        if self.config.pid_dir:
            Path(self.config.pid_dir, str(os.getpid())).touch()
        out = []
        for u in items:
            if u.id == kill_at:
                os.kill(os.getpid(), 9)  # a hard kill, as by the OOM killer or a lost machine
            if self.config.fail_every and u.index % self.config.fail_every == 0:
                out.append(ItemError("corrupt", f"cannot decode the media of {u.id}"))
                continue
            codes = np.frombuffer(u.text.encode("utf-8"), dtype=np.uint8).astype(np.int64)
            v = np.bincount(codes % self.config.dim, minlength=self.config.dim).astype(np.float32)
            out.append(v + (zlib.crc32(u.id.encode()) % 97) / 97.0 + 1.0)
        return out


class BrokenExtractor(CharExtractor):
    """Misbehaves in the way its ``broken`` option names."""

    name: ClassVar[str] = "test-broken"

    def extract_batch(self, items, corpus):
        mode = self.config.broken
        out = super().extract_batch(items, corpus)
        if mode == "nan":
            out[0] = np.full(self.config.dim, np.nan, dtype=np.float32)
        elif mode == "zero":
            out[0] = np.zeros(self.config.dim, dtype=np.float32)
        elif mode == "short":
            out = out[:-1]
        elif mode.startswith("crash:"):
            if any(u.id == mode[len("crash:"):] for u in items):
                raise OSError("decoder exploded")
        elif mode == "raise-item":
            if len(items) > 1 and any(u.index == 5 for u in items):
                raise ItemError("corrupt", "one bad clip in the batch")
            if items[0].index == 5:
                raise ItemError("corrupt", "the bad clip")
        return out


@pytest.fixture
def registered(monkeypatch):
    """Register test extractors for one test only (monkeypatch removes them afterwards)."""
    import extractors  # noqa: F401  (built-ins first)

    for cls in (InterruptingText, CharExtractor, BrokenExtractor):
        monkeypatch.setitem(EXTRACTORS, cls.name, cls)
    InterruptingText.calls = []
    InterruptingText.stop_after = None


# --- corpus fixtures -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def small(meld_corpus) -> Corpus:
    """The first five MELD train dialogues (58 utterances)."""
    return Corpus(meld_corpus.name, meld_corpus.labels, meld_corpus.dialogues[:5], dict(meld_corpus.provenance))


@pytest.fixture
def fdir(tmp_path, small) -> Path:
    save_prepared(small, tmp_path / "meld")
    return tmp_path


def main(argv: list[str]) -> int:
    # Imported late: a subprocess imports this module for its extractors and needs no CLI.
    from mmemolr.cli.main import main as cli

    return cli(argv)


def extract(fdir: Path, *args: str) -> int:
    return main(["extract", "--corpus", "meld", "--features-dir", str(fdir), "--no-progress", *args])


def text_args(minilm_dir: Path, *extra: str) -> list[str]:
    return ["--modality", "text", "--model", str(minilm_dir), *extra]


# --- text end to end --------------------------------------------------------------------------------------

def test_text_extraction_end_to_end(fdir, small, minilm_dir, capsys):
    assert extract(fdir, *text_args(minilm_dir)) == 0
    path = fdir / "meld" / "text-all-MiniLM-L6-v2.h5"
    assert path.exists() and not (fdir / "meld" / "text-all-MiniLM-L6-v2.partial.h5").exists()
    assert validate_features(path, small) == []
    ff = read_features(path)
    assert ff.ids == small.utterance_ids() and ff.available.all() and ff.dim == 384
    attrs = ff.attrs
    assert attrs["model_id"] == str(minilm_dir) and len(attrs["weights_sha256"]) == 64
    assert attrs["extractor"] == "transformers" and attrs["modality"] == "text" and attrs["shard"] == "1/1"
    assert ff.config()["pooling"] == "mean" and ff.config()["layers"] == 4
    assert {"torch", "transformers", "numpy", "h5py"} <= set(json.loads(attrs["versions"]))
    # rows equal the extractor called directly
    direct = TransformersTextExtractor(TransformersTextExtractor.config_class(model=str(minilm_dir)))
    items = list(small.utterances())[:5]
    np.testing.assert_allclose(ff.features[:5], np.stack(direct.extract_batch(items, small)), atol=1e-5)
    out = capsys.readouterr().out
    assert "no failures" in out and "58 utterances" in out
    # a second run finds the file complete and does nothing
    assert extract(fdir, *text_args(minilm_dir)) == 0
    assert "already complete" in capsys.readouterr().out


def test_resume_after_interrupt_processes_only_pending_ids(fdir, small, minilm_dir, registered):
    args = ["--extractor", "test-text-interrupt", "--model", str(minilm_dir), "--batch-size", "8"]
    InterruptingText.stop_after = 3
    assert extract(fdir, *args) == 130  # KeyboardInterrupt: "rerun the same command to resume"
    partial = fdir / "meld" / "text-all-MiniLM-L6-v2.partial.h5"
    assert partial.exists() and not (fdir / "meld" / "text-all-MiniLM-L6-v2.h5").exists()
    ff = read_features(partial, allow_partial=True)
    first = {uid for batch in InterruptingText.calls for uid in batch}
    assert len(first) == 24 and {uid for uid, d in zip(ff.ids, ff.done) if d} == first  # nothing lost
    pending = [uid for uid, d in zip(ff.ids, ff.done) if not d]

    InterruptingText.calls, InterruptingText.stop_after = [], None
    assert extract(fdir, *args) == 0
    assert sorted(uid for batch in InterruptingText.calls for uid in batch) == sorted(pending)
    resumed = read_features(fdir / "meld" / "text-all-MiniLM-L6-v2.h5")

    assert extract(fdir, *text_args(minilm_dir, "--batch-size", "8", "--out", str(fdir / "clean.h5"))) == 0
    clean = read_features(fdir / "clean.h5")
    assert resumed.ids == clean.ids and resumed.available.all()
    np.testing.assert_allclose(resumed.features, clean.features, atol=1e-5)


def test_resume_with_other_options_is_refused(fdir, minilm_dir, capsys):
    out = str(fdir / "t.h5")
    assert extract(fdir, *text_args(minilm_dir, "--out", out)) == 0
    assert extract(fdir, *text_args(minilm_dir, "--out", out, "pooling=cls")) == 1
    err = capsys.readouterr().err
    assert "extractor_config" in err and "--overwrite" in err
    assert extract(fdir, *text_args(minilm_dir, "--out", out, "--overwrite", "pooling=cls")) == 0
    assert read_features(out).config()["pooling"] == "cls"


def test_hard_kill_leaves_a_partial_file_that_resumes(fdir, small, tmp_path, registered):
    """SIGKILL mid-run (no cleanup at all): the partial file is readable and the rerun completes it."""
    victim = small.dialogues[3].utterances[2].id
    out = fdir / "meld" / "audio-test-chars.h5"
    code = (
        "import test_extract_runner as t, mmemolr.extract.runner as r; "
        "from mmemolr.corpus import load_prepared; "
        "r.FLUSH_SECONDS = 0.0; "  # write every batch, so that some are on disk when the kill comes
        f"r.run_extraction(load_prepared('meld', {str(fdir)!r}), t.CharExtractor(), {str(out)!r}, progress=False)"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS_DIR), os.environ.get("PYTHONPATH", "")]),
           "MMEMOLR_TEST_KILL_AT": victim}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr
    ff = read_features(fdir / "meld" / "audio-test-chars.partial.h5", allow_partial=True)
    done_before = int(ff.done.sum())
    assert 0 < done_before < len(ff.ids) and not ff.done[ff.ids.index(victim)]

    assert extract(fdir, "--extractor", "test-chars", "--workers", "1") == 0  # the same command, resumed
    resumed = read_features(out)
    clean = _run_chars(fdir, tmp_path / "clean.h5", workers=1)
    assert resumed.ids == clean.ids and resumed.available.all()
    np.testing.assert_array_equal(resumed.features, clean.features)


def test_hard_kill_during_overwrite_keeps_the_finished_file(fdir, small, tmp_path, registered):
    """SIGKILL in an --overwrite run: the finished file stays as it was until the new one is complete."""
    out = fdir / "meld" / "audio-test-chars.h5"
    assert extract(fdir, "--extractor", "test-chars", "--workers", "1") == 0
    before = out.read_bytes()
    victim = small.dialogues[3].utterances[2].id
    code = (
        "import sys, test_extract_runner as t, mmemolr.extract.runner as r; "
        "from mmemolr.cli.main import main; "
        "import extractors; extractors.EXTRACTORS[t.CharExtractor.name] = t.CharExtractor; "
        "r.FLUSH_SECONDS = 0.0; "
        f"sys.exit(main(['extract', '--corpus', 'meld', '--features-dir', {str(fdir)!r}, '--no-progress', "
        "'--extractor', 'test-chars', '--workers', '1', '--overwrite', 'dim=8']))"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS_DIR), os.environ.get("PYTHONPATH", "")]),
           "MMEMOLR_TEST_KILL_AT": victim}
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr
    assert out.read_bytes() == before  # once deleted at the start of the run
    assert read_features(fdir / "meld" / "audio-test-chars.partial.h5", allow_partial=True).dim == 8
    assert extract(fdir, "--extractor", "test-chars", "--workers", "1", "--overwrite", "dim=8") == 0
    replaced = read_features(out)
    clean = _run_chars(fdir, tmp_path / "clean.h5", 1, "dim=8")
    assert replaced.dim == 8 and replaced.ids == clean.ids
    np.testing.assert_array_equal(replaced.features, clean.features)


def _run_chars(fdir: Path, out: Path, workers: int, *options: str) -> object:
    import extractors  # noqa: F401

    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(EXTRACTORS, CharExtractor.name, CharExtractor)
        assert extract(fdir, "--extractor", "test-chars", "--workers", str(workers), "--out", str(out),
                       "--max-failures", "100%", *options) == 0
    return read_features(out)


# --- shards -----------------------------------------------------------------------------------------------

def test_shards_partition_the_corpus_by_dialogue(meld_corpus):
    every = meld_corpus.utterance_ids()
    for n in (1, 2, 3, 7):
        parts = [shard_ids(meld_corpus, parse_shard(f"{i}/{n}")) for i in range(n)]
        assert [uid for part in parts for uid in part] == every  # disjoint, complete, corpus order
        sizes = [len(p) for p in parts]
        assert max(sizes) - min(sizes) <= 2 * max(len(d) for d in meld_corpus.dialogues)
        dialogue_of = {u.id: u.dialogue_id for u in meld_corpus.utterances()}
        for a, b in zip(parts, parts[1:]):
            assert dialogue_of[a[-1]] != dialogue_of[b[0]]  # no dialogue is cut
    for bad, message in (("2/2", r"I must be in 0..1 \(shards are numbered from 0\), e.g. 0/2"),
                         ("1", "must look like I/N"), ("a/b", "must look like I/N"),
                         ("0/0", "N, the number of shards, must be at least 1"), ("-1/2", "I must be in 0..1")):
        with pytest.raises(ValueError, match=rf"--shard '{bad}'.*{message}"):
            parse_shard(bad)


def test_two_shards_merged_equal_the_unsharded_file(fdir, small, minilm_dir, capsys):
    assert extract(fdir, *text_args(minilm_dir)) == 0
    for i in range(2):
        assert extract(fdir, *text_args(minilm_dir, "--shard", f"{i}/2")) == 0
    folder = fdir / "meld"
    shards = [folder / f"text-all-MiniLM-L6-v2.shard-{i}-of-2.h5" for i in range(2)]
    assert [read_features(p).attrs["shard"] for p in shards] == ["0/2", "1/2"]
    assert main(["features", "merge", *map(str, shards), "--out", str(folder / "merged.h5"),
                 "--corpus", "meld", "--features-dir", str(fdir)]) == 0
    whole, merged = read_features(folder / "text-all-MiniLM-L6-v2.h5"), read_features(folder / "merged.h5")
    assert merged.ids == whole.ids and (merged.available == whole.available).all()
    np.testing.assert_allclose(merged.features, whole.features, atol=1e-5)
    assert validate_features(folder / "merged.h5", small) == []
    # merging one shard only is refused: the other half is missing
    assert main(["features", "merge", str(shards[0]), "--out", str(folder / "half.h5"),
                 "--corpus", "meld", "--features-dir", str(fdir)]) == 1
    assert "in no shard" in capsys.readouterr().err


def test_an_empty_shard_is_a_valid_file(tmp_path, meld_corpus, minilm_dir, capsys):
    tiny = Corpus(meld_corpus.name, meld_corpus.labels, meld_corpus.dialogues[:2])
    save_prepared(tiny, tmp_path / "meld")
    for i in range(3):
        assert extract(tmp_path, *text_args(minilm_dir, "--shard", f"{i}/3")) == 0
    assert "holds no utterances" in capsys.readouterr().err
    shards = sorted(map(str, (tmp_path / "meld").glob("*.shard-*-of-3.h5")))
    assert sorted(len(read_features(p).ids) for p in shards) == sorted([len(d) for d in tiny.dialogues] + [0])
    assert main(["features", "merge", *shards, "--out", str(tmp_path / "m.h5"), "--corpus", "meld",
                 "--features-dir", str(tmp_path)]) == 0
    assert read_features(tmp_path / "m.h5").ids == tiny.utterance_ids()


# --- failures -----------------------------------------------------------------------------------------------

def test_failures_are_recorded_and_fail_text_by_default(fdir, small, registered, capsys):
    code = extract(fdir, "--extractor", "test-chars", "--workers", "1", "fail_every=4", "--max-failures", "0")
    assert code == 1
    captured = capsys.readouterr()
    failed = [u.id for u in small.utterances() if u.index % 4 == 0]
    assert f"{len(failed)} of 58 items failed" in captured.out and "corrupt" in captured.out
    assert failed[0] in captured.out  # first example
    assert "--max-failures" in captured.err
    ff = read_features(fdir / "meld" / "audio-test-chars.h5")  # complete: every item was processed
    assert ff.done.all()
    assert [uid for uid, a in zip(ff.ids, ff.available) if not a] == failed
    assert sorted(e[0] for e in ff.errors) == sorted(failed) and {e[1] for e in ff.errors} == {"corrupt"}


def test_no_progress_prints_plain_lines_with_rate_and_eta(fdir, registered, capsys):
    assert extract(fdir, "--extractor", "test-chars", "--batch-size", "4", "fail_every=4",
                   "--max-failures", "50%") == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("test-chars meld: ")]
    assert lines[0].startswith("test-chars meld: 4/58 utt (7%), ") and "utt/s" in lines[0] and "ETA" in lines[0]
    assert lines[0].endswith("; failed 1") and lines[-1].startswith("test-chars meld: 58/58 utt (100%)")
    assert len(lines) == 15  # a line every 5% (here every batch of 4)


def test_max_failures_thresholds(fdir, registered, capsys):
    # 17 of 58 fail with fail_every=4
    assert extract(fdir, "--extractor", "test-chars", "fail_every=4", "--out", str(fdir / "a.h5")) == 1  # 1% of 58 = 0
    assert extract(fdir, "--extractor", "test-chars", "fail_every=4", "--out", str(fdir / "a.h5"),
                   "--max-failures", "17") == 0
    assert extract(fdir, "--extractor", "test-chars", "fail_every=4", "--out", str(fdir / "a.h5"),
                   "--max-failures", "16") == 1
    assert extract(fdir, "--extractor", "test-chars", "fail_every=4", "--out", str(fdir / "a.h5"),
                   "--max-failures", "30%") == 0
    assert extract(fdir, "--extractor", "test-chars", "--out", str(fdir / "b.h5")) == 0
    assert "no failures" in capsys.readouterr().out


def test_max_failures_parsing():
    assert parse_max_failures(None, "text").allowed(10_000) == 0
    assert parse_max_failures(None, "audio").allowed(13_708) == 137
    assert parse_max_failures(None, "visual").allowed(50) == 0
    assert parse_max_failures("2.5%", "text").allowed(1000) == 25
    assert parse_max_failures("7", "audio").allowed(3) == 7
    for bad in ("-1", "ten", "150%", "1.5"):
        with pytest.raises(ValueError, match="--max-failures"):
            parse_max_failures(bad, "text")


@pytest.mark.parametrize("mode,kind", [("nan", "non-finite"), ("zero", "all-zero")])
def test_non_finite_or_zero_vectors_become_failures(fdir, registered, mode, kind, monkeypatch):
    assert extract(fdir, "--extractor", "test-broken", "--workers", "1", "--max-failures", "100%", f"broken={mode}") == 0
    ff = read_features(fdir / "meld" / "audio-test-broken.h5")
    assert len(ff.errors) == 15 and {e[1] for e in ff.errors} == {kind}  # first item of each batch of 4
    assert not ff.available[[ff.ids.index(e[0]) for e in ff.errors]].any()


@pytest.mark.parametrize("workers", ["1", "2"])
def test_an_item_error_raised_for_a_batch_is_retried_item_by_item(fdir, small, registered, monkeypatch, workers):
    assert extract(fdir, "--extractor", "test-broken", "--workers", workers, "--max-failures", "100%",
                   "broken=raise-item") == 0
    ff = read_features(fdir / "meld" / "audio-test-broken.h5")
    expected = [u.id for u in small.utterances() if u.index == 5]
    assert sorted(e[0] for e in ff.errors) == sorted(expected)  # its batch neighbours were kept
    assert int(ff.available.sum()) == 58 - len(expected)


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_crashing_extractor_stops_with_the_batch_and_keeps_finished_items(fdir, small, registered, monkeypatch,
                                                                             capsys, workers):
    assert extract(fdir, "--extractor", "test-broken", "--workers", workers, f"broken=crash:{small.utterance_ids()[41]}") == 1
    err = capsys.readouterr().err
    assert "decoder exploded" in err and "batch starting at" in err and "rerun to resume" in err
    ff = read_features(fdir / "meld" / "audio-test-broken.partial.h5", allow_partial=True)
    assert ff.done.any() and not ff.done.all()


def test_wrong_number_of_results_is_an_error(fdir, registered, monkeypatch, capsys):
    assert extract(fdir, "--extractor", "test-broken", "--workers", "1", "broken=short") == 1
    assert "one per item" in capsys.readouterr().err


# --- worker processes -------------------------------------------------------------------------------------

def test_two_workers_give_the_same_file_as_one(fdir, small, tmp_path):
    pids = tmp_path / "pids"
    pids.mkdir()
    one = _run_chars(fdir, tmp_path / "one.h5", 1, "fail_every=6")
    two = _run_chars(fdir, tmp_path / "two.h5", 2, "fail_every=6", f"pid_dir={pids}")
    assert one.ids == two.ids
    np.testing.assert_array_equal(one.available, two.available)
    np.testing.assert_array_equal(one.features, two.features)
    assert sorted(one.errors) == sorted(two.errors)
    assert len(one.errors) == sum(u.index % 6 == 0 for u in small.utterances())
    used = {int(p.name) for p in pids.iterdir()}
    assert used and os.getpid() not in used  # the work ran in worker processes


@pytest.mark.parametrize("options,expected", [(["batch_size=64"], 8), (["batch_size=3"], 3),
                                              (["batch_size=64", "--batch-size", "64"], 64)])
def test_workers_get_several_tasks_each_unless_the_batch_size_is_given(fdir, tmp_path, monkeypatch, options,
                                                                       expected):
    # 58 items, 2 workers: a config batch of 64 would be one task for one worker; the runner cuts it to
    # ceil(58 / (4 * 2)) = 8. An explicit --batch-size is the user's choice and is kept.
    sizes = []
    plan = CharExtractor.plan_batches

    def spy(self, items, corpus, batch_size):
        sizes.append(batch_size)
        return plan(self, items, corpus, batch_size)

    monkeypatch.setattr(CharExtractor, "plan_batches", spy)
    _run_chars(fdir, tmp_path / "w.h5", 2, *options)
    assert sizes == [expected]


def test_worker_run_resumes_a_partial_file(fdir, tmp_path):
    out = tmp_path / "w.h5"
    done = _run_chars(fdir, tmp_path / "ref.h5", 1)
    # fake an interrupted run: a partial file holding the first 20 rows
    import extractors  # noqa: F401
    from mmemolr.store import FeatureWriter

    with h5py.File(tmp_path / "ref.h5", "r") as f:
        attrs = {k: v for k, v in f.attrs.items() if k not in ("format", "format_version", "complete", "completed")}
    writer = FeatureWriter(out, done.ids, attrs)
    writer.write(done.ids[:20], done.features[:20])
    assert writer.close().name == "w.partial.h5"  # incomplete: stays partial
    resumed = _run_chars(fdir, out, 2)
    np.testing.assert_array_equal(resumed.features, done.features)


# --- command-line errors ----------------------------------------------------------------------------------

@pytest.mark.parametrize("args,message", [
    (["--extractor", "no-such"], "unknown extractor"),
    (["--modality", "audio", "--extractor", "transformers"], "produces text features"),
    (["--modality", "text", "polling=cls"], "did you mean 'pooling'"),
    (["--modality", "text", "pooling"], "key=value"),
    (["--extractor", "test-chars", "--model", "x"], "takes no --model"),
    (["--modality", "text", "--shard", "3/2"], "--shard"),
    (["--modality", "text", "--device", "tpu"], "--device"),
    (["--modality", "text", "--model", "no-such-org/no-such-model"], "huggingface-cli download"),
    (["--modality", "text", "--max-failures", "lots"], "--max-failures"),
])
def test_bad_arguments_give_clear_errors(fdir, registered, capsys, args, message):
    assert extract(fdir, *args) == 1
    assert message in capsys.readouterr().err


def test_missing_corpus_and_cuda_errors(tmp_path, capsys):
    assert main(["extract", "--corpus", "nowhere", "--features-dir", str(tmp_path), "--modality", "text"]) == 1
    assert "corpus prepare" in capsys.readouterr().err
    import torch

    if not torch.cuda.is_available():
        save_prepared(Corpus("c", ["a"], []), tmp_path / "c")
        assert main(["extract", "--corpus", "c", "--features-dir", str(tmp_path), "--device", "cuda",
                     "--modality", "text"]) == 1
        assert "no CUDA GPU" in capsys.readouterr().err


def test_list_shows_extractors_and_options(capsys):
    assert main(["extract", "--list"]) == 0
    out = capsys.readouterr().out
    assert "transformers (default)" in out and "pooling=\"mean\"" in out and "context=0" in out


def test_config_dataclass_fields_are_stored(fdir, registered):
    assert extract(fdir, "--extractor", "test-chars", "dim=5", "--batch-size", "3") == 0
    ff = read_features(fdir / "meld" / "audio-test-chars.h5")
    assert ff.config() == dataclasses.asdict(CharConfig(dim=5, batch_size=3)) and ff.dim == 5


def test_test_extractors_do_not_leak_into_the_registry():
    import extractors  # noqa: F401

    assert not any(name.startswith("test-") for name in EXTRACTORS)
