"""Fusion: load the chosen modalities' feature files, check them, z-normalise, concatenate, batch."""

from mmemolr.fuse.batches import Batch, batch_plan, collate, iterate_batches, schedule
from mmemolr.fuse.dataset import DialogueIndex, FusedData, build_fused, check_training_corpus
from mmemolr.fuse.normalize import ZNorm
from mmemolr.fuse.sources import (
    MODALITY_NAMES,
    describe_file,
    feature_file_problems,
    load_feature_files,
    modality_code,
    normalise_modalities,
    resolve_feature_files,
)

__all__ = [
    "MODALITY_NAMES", "Batch", "DialogueIndex", "FusedData", "ZNorm", "batch_plan", "build_fused",
    "check_training_corpus", "collate", "describe_file", "feature_file_problems", "iterate_batches",
    "load_feature_files", "modality_code", "normalise_modalities", "resolve_feature_files", "schedule",
]
