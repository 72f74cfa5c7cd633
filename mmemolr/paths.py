"""Where the shared real data lives (tests and benchmarks): ``$MMEMOLR_SHARED`` or ``../shared``."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def shared_dir() -> Path:
    return Path(os.environ.get("MMEMOLR_SHARED", REPO_ROOT.parent / "shared")).resolve()
