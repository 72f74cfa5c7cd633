"""Test fixtures. Real data comes from ../shared (or $MMEMOLR_SHARED); in CI its absence is a failure."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mmemolr.paths import shared_dir

# Fail fast instead of trying to reach the hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def need_shared(relative: str) -> Path:
    """Path of a file or folder under shared/: fails in CI (CI=true) when missing, else skips."""
    path = shared_dir() / relative
    if not path.exists():
        message = f"shared data {path} is missing (set MMEMOLR_SHARED to the shared/ folder)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def meld_root() -> Path:
    return need_shared("data/meld")


@pytest.fixture(scope="session")
def emorynlp_root() -> Path:
    return need_shared("data/emorynlp")


@pytest.fixture(scope="session")
def media_dir() -> Path:
    return need_shared("data/media")


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    return need_shared("models/all-MiniLM-L6-v2")


@pytest.fixture(scope="session")
def meld_corpus(meld_root):
    from mmemolr.corpus import load_corpus

    return load_corpus("meld", meld_root)


@pytest.fixture(scope="session")
def emorynlp_corpus(emorynlp_root):
    from mmemolr.corpus import load_corpus

    return load_corpus("emorynlp", emorynlp_root)


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models gain nothing from threads, and on a busy machine thread spinning makes them many times
    slower. A module opts in with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
