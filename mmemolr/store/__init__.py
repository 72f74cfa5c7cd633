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
from mmemolr.store.identity import feature_identity, feature_mismatches, identity_differences, same_features
from mmemolr.store.merge import merge_shards
from mmemolr.store.validate import check_features, describe_features, feature_problems, validate_features

__all__ = [
    "FeatureFile", "FeatureFileError", "FeatureWriter", "being_written", "check_features", "describe_features",
    "feature_identity", "feature_mismatches", "feature_problems", "find_feature_files", "identity_differences",
    "library_versions", "merge_shards", "partial_path", "read_attrs", "read_features", "read_snapshot",
    "same_features", "validate_features",
]
