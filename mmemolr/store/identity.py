"""What makes two feature files the same features, whatever their paths.

A run is matched to feature files (to train on, evaluate, predict or compare) by the features'
identity: modality, extractor, the extractor options that shape the vectors, the weights by their
SHA-256 and the dimension. Where the weights live (a model folder, a hub id, a checkpoint path) is
provenance only: the same encoder under another path is the same features; other weights under the same
path are not.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any


def _config(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return json.loads(value or "{}")
    return dict(value)


def _extractor_keys(name: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(weights_keys, throughput_keys) of a registered extractor; none for others (imports, tests)."""
    from extractors import EXTRACTORS

    cls = EXTRACTORS.get(name)
    return (cls.weights_keys, cls.throughput_keys) if cls is not None else ((), ())


def feature_identity(record: Mapping[str, Any]) -> dict[str, Any]:
    """The identity of a feature file from its HDF5 attributes or a run's record of it
    (results.json ``feature_files``). ``config`` is None when an older run did not record it."""
    extractor = str(record.get("extractor", ""))
    weights = str(record.get("weights_sha256") or "")
    config = _config(record.get("extractor_config"))
    if config is not None:
        weights_keys, throughput_keys = _extractor_keys(extractor)
        dropped = set(throughput_keys) | (set(weights_keys) if weights else set())
        config = {k: v for k, v in sorted(config.items()) if k not in dropped}
    return {
        "modality": str(record.get("modality") or ""),
        "extractor": extractor,
        "config": config,
        # Without a weights hash (signal-processing extractors, imported files) the model id stands in.
        "weights": weights or f"model_id:{record.get('model_id') or ''}",
        "dim": int(record.get("dim", -1)),
    }


def identity_differences(trained: Mapping[str, Any], found: Mapping[str, Any]) -> list[str]:
    """How ``found`` differs from ``trained`` (feature identities), one readable item per difference."""
    out = []
    for key in ("modality", "extractor", "dim"):
        if trained[key] and found[key] and trained[key] != found[key]:
            out.append(f"{key} {found[key]!r} (trained: {trained[key]!r})")
    if trained["weights"] != found["weights"]:
        def short(w: str) -> str:
            return w if w.startswith("model_id:") else f"weights SHA-256 {w[:12]}…"
        out.append(f"{short(found['weights'])} (trained: {short(trained['weights'])})")
    if trained["config"] is not None and found["config"] is not None:
        for key in sorted(set(trained["config"]) | set(found["config"])):
            if trained["config"].get(key) != found["config"].get(key):
                out.append(f"option {key}={json.dumps(found['config'].get(key))} "
                           f"(trained: {json.dumps(trained['config'].get(key))})")
    return out


def same_features(trained: Mapping[str, Any], found: Mapping[str, Any]) -> bool:
    return not identity_differences(trained, found)


def feature_mismatches(trained: Mapping[str, Mapping[str, Any]],
                       found: Mapping[str, tuple[Any, Mapping[str, Any]]]) -> list[str]:
    """For each modality code in ``found`` (path, attributes or record) that the run has a record of in
    ``trained``: the file and how its features differ from those the run was trained on."""
    out = []
    for code, (path, record) in found.items():
        if code in trained:
            diffs = identity_differences(feature_identity(trained[code]), feature_identity(record))
            if diffs:
                out.append(f"{path}: {'; '.join(diffs)}")
    return out
