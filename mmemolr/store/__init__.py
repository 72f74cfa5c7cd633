"""HDF5 feature store."""

from mmemolr.store.h5 import (
    FeatureFile,
    FeatureFileError,
    FeatureWriter,
    being_written,
    find_feature_files,
    library_versions,
    partial_path,
    read_attrs,
    read_features,
    read_snapshot,
)
from mmemolr.store.merge import merge_shards
from mmemolr.store.validate import check_features, describe_features, feature_problems, validate_features

__all__ = [
    "FeatureFile", "FeatureFileError", "FeatureWriter", "being_written", "check_features", "describe_features",
    "feature_problems", "find_feature_files", "library_versions", "merge_shards", "partial_path", "read_attrs",
    "read_features", "read_snapshot", "validate_features",
]
