#!/usr/bin/env bash
# Set up, then run the main job end to end offline from ../shared:
# MELD text -> MiniLM text features -> EP+LR training (one-hot vs refined labels, 3 seeds) -> result table,
# figures and report.html (TensorBoard logs in runs/compare/meld-table6/tb).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1
SHARED=${MMEMOLR_SHARED:-../shared}
SEEDS=${SEEDS:-3}
MMEMOLR=.venv/bin/mmemolr

$MMEMOLR corpus prepare --corpus meld --root "$SHARED/data/meld"
$MMEMOLR extract --corpus meld --modality text --model "$SHARED/models/all-MiniLM-L6-v2"
$MMEMOLR compare --corpus meld --preset table6 --seeds "$SEEDS" --jobs 2 --out runs/compare/meld-table6 \
  --tensorboard runs/compare/meld-table6/tb
$MMEMOLR report runs/compare/meld-table6
