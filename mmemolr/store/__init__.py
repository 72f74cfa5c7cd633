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
from mmemolr.store.validate import describe_features, validate_features

__all__ = [
    "FeatureFile", "FeatureFileError", "FeatureWriter", "being_written", "describe_features", "find_feature_files",
    "library_versions", "merge_shards", "partial_path", "read_attrs", "read_features", "read_snapshot",
    "validate_features",
]
