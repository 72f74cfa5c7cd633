"""Device choice and CPU thread count."""

from __future__ import annotations

import torch


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when present, else CPU; ``cuda`` without a GPU is an error."""
    name = (name or "auto").strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"device {name!r} was asked for but CUDA is not available here; use --device cpu or auto")
        return torch.device(name)
    if name == "cpu":
        return torch.device("cpu")
    raise ValueError(f"unknown device {name!r}; use auto, cpu or cuda[:N]")


def set_threads(threads: int | None) -> int:
    """Intra-op threads for CPU work; ``None`` means 1.

    The predictor's per-step products are small (16 x 150 by 150 x 900): a second thread gains little
    on an idle machine and, when other processes compete for the cores, OpenMP barrier waits make an
    epoch 10-20x slower (measured: 3 s vs 77 s for MELD on a busy 2-core machine). Parallel runs
    (``mmemolr compare``) should use one thread each anyway.
    """
    threads = 1 if threads is None else threads
    if threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads
