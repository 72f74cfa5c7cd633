"""Run an extractor over a prepared corpus into one resumable HDF5 feature file.

The runner owns everything extractors should not care about: which ids are still pending (resume),
sharding, batching, worker processes, validating what comes back, recording per-item failures and the
provenance attributes. Extractors only turn a batch of utterances into vectors or ``ItemError``s.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from extractors.base import Extractor, ExtractorConfig, ItemError, get_extractor
from mmemolr.config import ConfigError, from_dict, to_dict
from mmemolr.corpus.model import Corpus, Utterance
from mmemolr.extract.failures import ABSENT, read_errors, split_absent
from mmemolr.extract.sharding import Shard, shard_ids
from mmemolr.progress import Progress
from mmemolr.store.h5 import FeatureWriter, library_versions

log = logging.getLogger(__name__)

# Default extractor of each modality.
DEFAULT_EXTRACTORS = {"text": "transformers", "audio": "librosa", "visual": "hoglbp"}
# Items per extract_batch call when the extractor's config has no batch_size of its own.
DEFAULT_BATCH_SIZE = 16
# Finished vectors are buffered and written in row order at most this often: far fewer HDF5 flushes
# and chunk rewrites than one write per batch, at the cost of redoing at most this much work after a kill.
FLUSH_SECONDS = 5.0
FLUSH_ROWS = 8192
# With worker processes a job is cut into at least this many tasks per worker (smaller batches when
# it is short), so no worker sits idle while another finishes one big last batch.
TASKS_PER_WORKER = 4


@dataclass
class ExtractionResult:
    path: Path  # the final file, or the partial file when the run stopped early
    total: int  # ids this file covers
    processed: int  # ids processed by this run
    resumed: int  # ids already done when this run started
    errors: list[tuple[str, str, str]] = field(default_factory=list)  # whole file: (id, kind, message)
    seconds: float = 0.0
    complete: bool = False

    @property
    def failures(self) -> list[tuple[str, str, str]]:
        """Items that have media for the modality but could not be extracted."""
        return split_absent(self.errors)[0]

    @property
    def absent(self) -> list[tuple[str, str, str]]:
        """Items with nothing to extract for the modality (masked, not failures)."""
        return split_absent(self.errors)[1]


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when torch sees a GPU, else ``cpu``; ``cuda`` without a GPU is an error."""
    device = (device or "auto").strip().lower()
    if device not in ("auto", "cpu") and not device.startswith("cuda"):
        raise ValueError(f"--device {device!r} must be auto, cpu or cuda (or cuda:N)")
    if device == "cpu":
        return "cpu"
    import torch

    if torch.cuda.is_available():
        return "cuda" if device == "auto" else device
    if device == "auto":
        return "cpu"
    raise ValueError(f"--device {device}: torch sees no CUDA GPU here; use --device cpu (or auto)")


def usable_cpus() -> int:
    """CPUs this process may run on (taskset and container CPU sets respected where the OS tells)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def build_extractor(name: str | None, modality: str | None, options: dict[str, Any] | None = None,
                    device: str = "cpu") -> Extractor:
    """Instantiate extractor ``name`` (default: the modality's) with config ``options`` (checked keys)."""
    if name is None:
        if modality is None:
            raise ValueError("give --modality (text, audio or visual) or --extractor NAME")
        if modality not in DEFAULT_EXTRACTORS:
            raise ValueError(f"--modality {modality!r} is not one of {', '.join(DEFAULT_EXTRACTORS)}")
        name = DEFAULT_EXTRACTORS[modality]
    cls = get_extractor(name)
    if modality is not None and cls.modality != modality:
        raise ValueError(f"extractor {name!r} produces {cls.modality} features, not {modality}; "
                         f"pick a {modality} extractor or drop --modality")
    config = make_config(cls, options or {})
    return cls(config, device=device)


def make_config(cls: type[Extractor], options: dict[str, Any]) -> ExtractorConfig:
    """The extractor's config dataclass from ``options``; unknown keys name the valid ones."""
    try:
        return from_dict(cls.config_class, options, where=f"extractor {cls.name}")
    except ValueError as err:
        valid = ", ".join(f.name for f in fields(cls.config_class)) or "(none)"
        raise ConfigError(f"{err} (options of extractor {cls.name!r}: {valid})") from None


def default_output(folder: str | Path, extractor: Extractor, shard: Shard) -> Path:
    """``<folder>/<extractor.default_output_name()>[.shard-I-of-N].h5``."""
    return Path(folder) / f"{extractor.default_output_name()}{shard.file_suffix}.h5"


def feature_attrs(corpus: Corpus, extractor: Extractor, shard: Shard) -> dict[str, Any]:
    """HDF5 attributes: what the file is aligned to and everything needed to redo the run."""
    provenance = dict(extractor.provenance())
    versions = provenance.pop("versions", None)
    attrs: dict[str, Any] = {
        "corpus_name": corpus.name,
        "corpus_fingerprint": corpus.fingerprint(),
        "modality": extractor.modality,
        "extractor": extractor.name,
        "extractor_config": to_dict(extractor.config),
        "dim": int(extractor.feature_dim()),
        "shard": shard.label,
        "device": extractor.device,
        "versions": {**library_versions(), **(versions or {})},
    }
    for key, value in provenance.items():
        attrs.setdefault(key, value)
    return attrs


def run_extraction(
    corpus: Corpus,
    extractor: Extractor,
    out: str | Path,
    shard: Shard | None = None,
    workers: int = 1,
    batch_size: int | None = None,
    overwrite: bool = False,
    progress: bool | str = True,
) -> ExtractionResult:
    """Extract every (pending) utterance of ``shard`` into ``out``; resumes a partial file.

    ``workers`` > 1 runs a cpu_parallel extractor in that many processes; ``batch_size`` is the number of
    items per ``extract_batch`` call (default: the config's ``batch_size``, else 16; with workers, smaller
    when needed to give each worker ``TASKS_PER_WORKER`` tasks). ``progress``: True a bar on a terminal
    and plain lines otherwise, ``"lines"`` lines always, False nothing (mmemolr.progress).
    """
    shard = shard or Shard(0, 1)
    ids = shard_ids(corpus, shard)
    attrs = feature_attrs(corpus, extractor, shard)
    size = int(batch_size or getattr(extractor.config, "batch_size", 0) or DEFAULT_BATCH_SIZE)
    if size < 1:
        raise ValueError(f"batch size must be at least 1, got {size}")
    started = time.perf_counter()
    use_pool = workers > 1 and extractor.cpu_parallel
    if workers > 1 and not extractor.cpu_parallel:
        log.info("extractor %s runs batched in one process; --workers %d ignored", extractor.name, workers)
    # Workers start before the feature file is opened, so no child can ever hold its descriptor (and
    # HDF5 lock), whatever the start method.
    pool = _start_pool(corpus, extractor, workers) if use_pool and (overwrite or not Path(out).exists()) else None
    pool_ok = False
    try:
        writer = FeatureWriter(out, ids, attrs, overwrite=overwrite)
        pending = writer.pending_ids
        resumed = len(ids) - len(pending)
        if resumed and pending:
            log.info("resuming %s: %d of %d items already done", writer.partial, resumed, len(ids))
        sink = _Sink(writer, extractor)
        try:
            by_id = {u.id: u for u in corpus.utterances()}
            reasons = {uid: extractor.absent_reason(by_id[uid]) for uid in pending}
            absent = [uid for uid in pending if reasons[uid] is not None]
            if absent:  # nothing to extract for this modality: masked, recorded as absent, not a failure
                writer.fail_many(absent, ABSENT, [reasons[uid] for uid in absent])
                sink.processed += len(absent)
            items = [by_id[uid] for uid in pending if reasons[uid] is None]
            if items:
                if pool is not None and not batch_size:
                    size = max(1, min(size, math.ceil(len(items) / (TASKS_PER_WORKER * workers))))
                batches = extractor.plan_batches(items, corpus, size)
                _check_plan(batches, items, extractor)
                bar = Progress(len(ids), f"{extractor.name} {corpus.name}", "utt", initial=resumed + len(absent),
                               progress=progress, smoothing=0.05)
                try:
                    if pool is not None:
                        _run_pool(pool, batches, extractor, workers, sink, bar)
                    else:
                        _run_inline(batches, corpus, extractor, sink, bar)
                finally:
                    sink.flush()
                    bar.close()
        finally:
            path = writer.close()
        pool_ok = True
    finally:
        if pool is not None:
            pool.shutdown(wait=pool_ok, cancel_futures=not pool_ok)
    errors = read_errors(path)
    return ExtractionResult(path=path, total=len(ids), processed=sink.processed, resumed=resumed, errors=errors,
                            seconds=time.perf_counter() - started, complete=path == writer.path)


def _check_plan(batches: Sequence[Sequence[Utterance]], items: Sequence[Utterance], extractor: Extractor) -> None:
    planned = [u.id for batch in batches for u in batch]
    if len(planned) != len(items) or set(planned) != {u.id for u in items}:
        raise RuntimeError(f"extractor {extractor.name}: plan_batches must put every item in exactly one batch")


class _Sink:
    """Validates extractor results and writes them: vectors buffered and written in row order, failures
    recorded at once (the row stays unavailable; no vector is ever invented)."""

    def __init__(self, writer: FeatureWriter, extractor: Extractor) -> None:
        self.writer = writer
        self.name = extractor.name
        self.dim = writer.dim
        self.ids: list[str] = []
        self.vectors: list[np.ndarray] = []
        self.last_flush = time.monotonic()
        self.processed = 0
        self.failures = 0

    def add(self, batch: Sequence[Utterance], results: Sequence[np.ndarray | ItemError]) -> None:
        if len(results) != len(batch):
            raise RuntimeError(f"extractor {self.name} returned {len(results)} results for a batch of "
                               f"{len(batch)} items (first {batch[0].id!r}); it must return one per item")
        for item, result in zip(batch, results):
            if isinstance(result, ItemError):
                self.fail(item.id, result.kind, result.message)
                continue
            vector = np.asarray(result, dtype=np.float32)
            if vector.shape != (self.dim,):
                raise RuntimeError(f"extractor {self.name} returned shape {vector.shape} for {item.id!r}; "
                                   f"its feature_dim() is {self.dim}")
            if not np.isfinite(vector).all():
                self.fail(item.id, "non-finite", "the extractor produced NaN or infinite values")
            elif not vector.any():
                # An all-zero row would pose as data; treat it as missing instead.
                self.fail(item.id, "all-zero", "the extractor returned an all-zero vector")
            else:
                self.ids.append(item.id)
                self.vectors.append(vector)
        self.processed += len(batch)
        if len(self.ids) >= FLUSH_ROWS or time.monotonic() - self.last_flush >= FLUSH_SECONDS:
            self.flush()

    def fail(self, uid: str, kind: str, message: str) -> None:
        self.writer.fail(uid, kind, message)
        self.failures += 1

    def flush(self) -> None:
        if self.ids:
            self.writer.write(self.ids, np.stack(self.vectors))
            self.ids, self.vectors = [], []
        self.last_flush = time.monotonic()


def _extract_guarded(extractor: Extractor, items: list[Utterance], corpus: Corpus) -> list[np.ndarray | ItemError]:
    """``extract_batch``; an ItemError raised for a whole batch is retried item by item so one bad item
    does not fail its neighbours."""
    try:
        return list(extractor.extract_batch(items, corpus))
    except ItemError as err:
        if len(items) == 1:
            return [err]
        return [r for item in items for r in _extract_guarded(extractor, [item], corpus)]


def _batch_failed(extractor: Extractor, batch: Sequence[Utterance], err: BaseException) -> RuntimeError:
    return RuntimeError(f"extractor {extractor.name} failed on the batch starting at {batch[0].id!r} "
                        f"({type(err).__name__}: {err}); finished items are kept, rerun to resume")


def _run_inline(batches: list[list[Utterance]], corpus: Corpus, extractor: Extractor, sink: _Sink,
                bar: Progress) -> None:
    for batch in batches:
        try:
            results = _extract_guarded(extractor, batch, corpus)
        except Exception as err:
            raise _batch_failed(extractor, batch, err) from err
        sink.add(batch, results)
        bar.update(len(batch), f"failed {sink.failures}" if sink.failures else None)


# --- worker processes -------------------------------------------------------------------------------
# Each worker builds its extractor once (initializer) and keeps the corpus; tasks carry only ids and
# results come back as arrays or (kind, message) pairs (ItemError does not survive pickling).

_WORKER: dict[str, Any] = {}


def _limit_threads() -> None:
    """One thread per worker: the processes are the parallelism."""
    os.environ.update({"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
    try:
        from threadpoolctl import threadpool_limits

        _WORKER["threadpool_limits"] = threadpool_limits(1)
    except ImportError:
        pass
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)
    if "cv2" in sys.modules:
        sys.modules["cv2"].setNumThreads(1)


def _worker_init(cls: type[Extractor], config: ExtractorConfig, device: str, corpus: Corpus) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    _limit_threads()
    _WORKER["extractor"] = cls(config, device=device)
    _WORKER["corpus"] = corpus
    _WORKER["by_id"] = {u.id: u for u in corpus.utterances()}
    _limit_threads()  # again: the extractor may have loaded cv2/torch


def _worker_task(ids: list[str]) -> list[np.ndarray | tuple[str, str]]:
    extractor: Extractor = _WORKER["extractor"]
    items = [_WORKER["by_id"][uid] for uid in ids]
    results = _extract_guarded(extractor, items, _WORKER["corpus"])
    return [(r.kind, r.message) if isinstance(r, ItemError) else np.asarray(r, dtype=np.float32) for r in results]


def _worker_ready() -> bool:
    return "extractor" in _WORKER


def _start_pool(corpus: Corpus, extractor: Extractor, workers: int) -> ProcessPoolExecutor:
    # forkserver, not fork: a child forked from a parent that already ran OpenCV or torch thread
    # pools can deadlock in them (seen: cv2.setNumThreads hanging in every worker).
    context = multiprocessing.get_context("forkserver")
    # Takes effect when this process starts its fork server (the first pool); later pools reuse it.
    context.set_forkserver_preload([type(extractor).__module__, *extractor.worker_preload])
    pool = ProcessPoolExecutor(
        max_workers=workers, mp_context=context,
        initializer=_worker_init, initargs=(type(extractor), extractor.config, extractor.device, corpus),
    )
    # The first task launches every worker: do it now, before any file is opened.
    pool.submit(_worker_ready).result()
    return pool


def _run_pool(pool: ProcessPoolExecutor, batches: list[list[Utterance]], extractor: Extractor, workers: int,
              sink: _Sink, bar: Progress) -> None:
    queue: Iterator[list[Utterance]] = iter(batches)
    inflight: dict[Future, list[Utterance]] = {}

    def submit(n: int) -> None:
        for batch in queue:
            inflight[pool.submit(_worker_task, [u.id for u in batch])] = batch
            n -= 1
            if n == 0:
                return

    submit(2 * workers)  # two per worker so none waits for the parent between tasks
    while inflight:
        finished, _ = wait(inflight, return_when=FIRST_COMPLETED)
        for future in finished:
            batch = inflight.pop(future)
            try:
                raw = future.result()
            except Exception as err:
                raise _batch_failed(extractor, batch, err) from err
            sink.add(batch, [ItemError(*r) if isinstance(r, tuple) else r for r in raw])
            bar.update(len(batch), f"failed {sink.failures}" if sink.failures else None)
            submit(1)
