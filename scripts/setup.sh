#!/usr/bin/env bash
# Create .venv and install mmemolr with its test and optional extras. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
PIP=".venv/bin/python -m pip"
if [ "$(uname -s)-$(uname -m)" = "Linux-x86_64" ]; then
  # torchaudio 2.11's wheel loads only beside this torch build (a CPU-only torch 2.13 breaks it).
  $PIP install --quiet torch==2.14.1 torchaudio==2.11.0
else
  $PIP install --quiet torch torchaudio
fi
$PIP install --quiet -e ".[dev,opensmile,ray,tensorboard]"
.venv/bin/python -c "import torch, torchaudio, mmemolr; print('mmemolr', mmemolr.__version__, '| torch', torch.__version__, '| torchaudio', torchaudio.__version__)"
