"""Feature extraction: the runner behind ``mmemolr extract`` (resume, shards, workers, failures)."""

from mmemolr.extract.failures import (
    ABSENT,
    DEFAULT_MAX_FAILURES,
    FailurePolicy,
    check_failures,
    failure_summary,
    parse_max_failures,
    read_errors,
    split_absent,
)
from mmemolr.extract.runner import (
    DEFAULT_EXTRACTORS,
    ExtractionResult,
    build_extractor,
    default_output,
    feature_attrs,
    make_config,
    resolve_device,
    run_extraction,
)
from mmemolr.extract.sharding import Shard, parse_shard, shard_ids

__all__ = [
    "ABSENT", "DEFAULT_EXTRACTORS", "DEFAULT_MAX_FAILURES", "ExtractionResult", "FailurePolicy", "Shard", "build_extractor",
    "check_failures", "default_output", "failure_summary", "feature_attrs", "make_config", "parse_max_failures", "parse_shard",
    "read_errors", "resolve_device", "run_extraction", "shard_ids", "split_absent",
]
