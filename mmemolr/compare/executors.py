"""Run the trainings of a sweep: in this process, in local worker processes, or as Ray tasks.

Every executor calls :func:`execute_task`, which calls ``mmemolr.train.run.run_training`` -- the code
path of ``mmemolr train`` -- and yields one :class:`Outcome` per task as tasks finish.
"""

from __future__ import annotations

import importlib
import multiprocessing
import os
import shutil
import tempfile
import time
import traceback
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_TRAINER = "mmemolr.train.run:run_training"
SWEEP_MARKER = "sweep.json"
NOT_SHIPPED = ("last.pt",)  # resume state stays with the worker; everything else comes back


@dataclass
class RunTask:
    name: str
    run_dir: str
    sweep_dir: str
    config: dict[str, Any]  # resolved TrainConfig as a dict
    features_dir: str
    threads: int | None = None
    progress: bool = False
    # Ray workers on machines that cannot see the sweep folder train in a scratch folder and send the
    # run folder's files back with the outcome.
    ship_files: bool = False
    trainer: str = DEFAULT_TRAINER  # "module:function" with run_training's signature
    # A batched group (mmemolr.train.batched): one task training these runs ({name, run_dir, config}) as
    # one model; ``name``, ``run_dir`` and ``config`` above are then those of its first run.
    members: list[dict[str, Any]] | None = None
    tensorboard: str | None = None  # each run also logs into <tensorboard>/<run name> (mmemolr.train.tblog)


@dataclass
class Outcome:
    name: str
    status: str  # complete | failed
    seconds: float
    test: dict[str, Any] | None = None
    error: str | None = None
    traceback: str | None = None
    files: dict[str, bytes] | None = None


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def threads_per_job(jobs: int) -> int:
    return max(1, available_cores() // max(1, jobs))


def _load_trainer(spec: str):
    module, _, func = spec.partition(":")
    return getattr(importlib.import_module(module), func)


def execute_task(task: RunTask) -> Outcome:
    """Train one run (resuming it when its folder has last.pt). Exceptions become a failed outcome."""
    import torch

    from mmemolr.config import from_dict
    from mmemolr.train.config import TrainConfig

    if task.threads:
        # Worker processes share the machine: each gets its slice of the cores.
        torch.set_num_threads(task.threads)
    run_dir = Path(task.run_dir)
    scratch = None
    if task.ship_files and not (Path(task.sweep_dir) / SWEEP_MARKER).exists():
        scratch = Path(tempfile.mkdtemp(prefix="mmemolr-run-"))
        run_dir = scratch / task.name
    start = time.perf_counter()
    try:
        config = from_dict(TrainConfig, task.config)
        extra = {"tensorboard": task.tensorboard} if task.tensorboard else {}
        results = _load_trainer(task.trainer)(config, run_dir, Path(task.features_dir), progress=task.progress,
                                              threads=task.threads, **extra)
        files = None
        if scratch is not None:
            files = {str(p.relative_to(run_dir)): p.read_bytes() for p in sorted(run_dir.rglob("*"))
                     if p.is_file() and p.name not in NOT_SHIPPED}
        return Outcome(task.name, "complete", time.perf_counter() - start, test=dict(results.get("test", {})),
                       files=files)
    except Exception as err:  # one failed run must not stop the sweep; the outcome carries the reason
        return Outcome(task.name, "failed", time.perf_counter() - start, error=f"{type(err).__name__}: {err}",
                       traceback=traceback.format_exc())
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def execute(task: RunTask) -> list[Outcome]:
    """One Outcome per run of the task: a single run, or every run of a batched group."""
    return execute_group(task) if task.members else [execute_task(task)]


def execute_group(task: RunTask) -> list[Outcome]:
    """Train a batched group (mmemolr.train.batched.train_group). An error fails every run of the group;
    runs it finished stay complete and are skipped when the sweep is rerun."""
    import torch

    from mmemolr.config import from_dict
    from mmemolr.train.batched import train_group
    from mmemolr.train.config import TrainConfig

    if task.threads:
        torch.set_num_threads(task.threads)
    members = task.members or []
    scratch = None
    if task.ship_files and not (Path(task.sweep_dir) / SWEEP_MARKER).exists():
        scratch = Path(tempfile.mkdtemp(prefix="mmemolr-group-"))
    run_dirs = [scratch / m["name"] if scratch else Path(m["run_dir"]) for m in members]
    start = time.perf_counter()
    try:
        configs = [from_dict(TrainConfig, m["config"]) for m in members]
        results = train_group(configs, run_dirs, Path(task.features_dir), progress=task.progress,
                              threads=task.threads, tensorboard=task.tensorboard)
        seconds = time.perf_counter() - start
        outcomes = []
        for m, run_dir, res in zip(members, run_dirs, results):
            files = None
            if scratch is not None:
                files = {str(p.relative_to(run_dir)): p.read_bytes() for p in sorted(run_dir.rglob("*"))
                         if p.is_file() and p.name not in NOT_SHIPPED}
            outcomes.append(Outcome(m["name"], "complete", seconds, test=dict(res.get("test", {})), files=files))
        return outcomes
    except Exception as err:  # the sweep goes on with its other groups
        return [Outcome(m["name"], "failed", time.perf_counter() - start, error=f"{type(err).__name__}: {err}",
                        traceback=traceback.format_exc()) for m in members]
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


class LocalExecutor:
    """``jobs`` trainings at once: in this process for one job, else in 'spawn' worker processes
    (torch and fork do not mix), each with ``cores // jobs`` threads. On a GPU machine the workers
    share the GPU."""

    def __init__(self, jobs: int = 1, threads: int | None = None) -> None:
        if jobs < 1:
            raise ValueError(f"--jobs {jobs}: at least 1")
        if threads is not None and threads < 1:
            raise ValueError(f"--threads {threads}: at least 1")
        self.jobs = jobs
        # One job: None lets run_training pick its default; several: split the cores between them.
        self.threads = threads if threads is not None else (threads_per_job(jobs) if jobs > 1 else None)

    def describe(self) -> str:
        return f"local, {self.jobs} job(s) x {self.threads or 'default'} thread(s)"

    def map(self, tasks: list[RunTask]) -> Iterator[Outcome]:
        for task in tasks:
            task.threads = self.threads
        if self.jobs == 1:
            for task in tasks:
                yield from execute(task)
            return
        context = multiprocessing.get_context("spawn")
        pool = ProcessPoolExecutor(max_workers=min(self.jobs, len(tasks)) or 1, mp_context=context)
        try:
            futures = {pool.submit(execute, task): task for task in tasks}
            for future in as_completed(futures):
                task = futures[future]
                try:
                    yield from future.result()
                except BrokenProcessPool:
                    for name in _names(task):
                        yield Outcome(name, "failed", 0.0,
                                      error="the worker process died (killed, or out of memory?); rerun to resume")
        finally:
            # On Ctrl-C or an error, drop queued runs; started ones resume from last.pt next time.
            pool.shutdown(wait=True, cancel_futures=True)


class RayExecutor:
    """Each run is a Ray task asking for ``cpus_per_run`` CPUs and ``gpus_per_run`` GPUs (fractions share
    a GPU). ``address``: a cluster address, "auto" (the running cluster) or "local" (start one here)."""

    def __init__(self, address: str = "auto", cpus_per_run: float = 1.0, gpus_per_run: float = 0.0,
                 threads: int | None = None) -> None:
        if cpus_per_run <= 0 or gpus_per_run < 0:
            raise ValueError("--cpus-per-run must be positive and --gpus-per-run at least 0")
        self.address, self.cpus, self.gpus = address, cpus_per_run, gpus_per_run
        self.threads = threads if threads is not None else max(1, int(cpus_per_run))

    def describe(self) -> str:
        return f"ray ({self.address}), {self.cpus:g} CPU / {self.gpus:g} GPU per run"

    def _init(self) -> bool:
        try:
            import ray
        except ImportError:
            raise RuntimeError("--executor ray needs Ray: pip install 'mmemolr[ray]'") from None
        if ray.is_initialized():
            return False
        try:
            if self.address == "local":
                ray.init(include_dashboard=False, log_to_driver=False)
            else:
                ray.init(address=self.address, log_to_driver=False)
        except ConnectionError as err:
            raise RuntimeError(
                f"no Ray cluster at {self.address!r} ({err}); start one with `ray start --head`, set RAY_ADDRESS, "
                "or pass --ray-address local to start one on this machine"
            ) from None
        return True

    def map(self, tasks: list[RunTask]) -> Iterator[Outcome]:
        import ray

        started = self._init()
        pending: dict[Any, RunTask] = {}
        try:
            remote = ray.remote(num_cpus=self.cpus, num_gpus=self.gpus)(execute)
            for task in tasks:
                task.threads, task.ship_files = self.threads, True
                pending[remote.remote(task)] = task
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                task = pending.pop(done[0])
                try:
                    yield from ray.get(done[0])
                except ray.exceptions.RayError as err:
                    for name in _names(task):
                        yield Outcome(name, "failed", 0.0, error=f"Ray task failed: {err}")
        finally:
            for ref in pending:  # interrupted: stop what is still queued or running
                ray.cancel(ref, force=True)
            if started:
                ray.shutdown()


def _names(task: RunTask) -> list[str]:
    return [m["name"] for m in task.members] if task.members else [task.name]


def make_executor(kind: str, jobs: int = 1, address: str = "auto", cpus_per_run: float = 1.0,
                  gpus_per_run: float = 0.0, threads: int | None = None) -> LocalExecutor | RayExecutor:
    if kind == "local":
        return LocalExecutor(jobs, threads)
    if kind == "ray":
        return RayExecutor(address, cpus_per_run, gpus_per_run, threads)
    raise ValueError(f"unknown executor {kind!r}; choose local or ray")
