#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite. Real data is read from ../shared (or $MMEMOLR_SHARED).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1
.venv/bin/python -m pytest -q "$@"
