"""Checks of a feature file against itself and its corpus; each problem is one clear message."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np

from mmemolr.corpus.model import Corpus
from mmemolr.store.h5 import FeatureFile, FeatureFileError, read_features
from mmemolr.tables import format_table


def validate_features(path: str | Path, corpus: Corpus | None = None) -> list[str]:
    """Return the problems found (empty when the file is sound)."""
    try:
        ff = read_features(path, allow_partial=True)
    except FeatureFileError as err:
        return [str(err)]
    problems = []
    path = Path(path)
    if not ff.attrs.get("complete"):
        problems.append(f"{path}: incomplete: {int((~ff.done).sum())} of {len(ff.ids)} ids not yet processed")
    dims = ff.attrs.get("dim")
    if dims is None or int(dims) != ff.dim:
        problems.append(f"{path}: wrong dimension: attribute dim={dims}, matrix has {ff.dim} columns")
    dupes = [uid for uid, n in Counter(ff.ids).items() if n > 1]
    if dupes:
        problems.append(f"{path}: {len(dupes)} duplicate utterance id(s), e.g. {dupes[:3]}")
    rows = ff.features[ff.available]
    if rows.size:
        bad = ~np.isfinite(rows).all(axis=1)
        if bad.any():
            ids = [uid for uid, a in zip(ff.ids, ff.available) if a]
            where = [ids[i] for i in np.flatnonzero(bad)[:3]]
            problems.append(f"{path}: {int(bad.sum())} row(s) with NaN/inf, e.g. {where}")
    if corpus is not None:
        if ff.attrs.get("corpus_fingerprint") != corpus.fingerprint():
            problems.append(
                f"{path}: corpus fingerprint mismatch: file was built from {ff.attrs.get('corpus_name')!r} "
                f"{str(ff.attrs.get('corpus_fingerprint'))[:16]}, the corpus given is {corpus.name!r} "
                f"{corpus.fingerprint()[:16]}; extract the features again for this corpus"
            )
        expected = corpus.utterance_ids()
        shard = str(ff.attrs.get("shard", "1/1"))
        if shard == "1/1":
            missing = sorted(set(expected) - set(ff.ids))
            if missing:
                problems.append(f"{path}: {len(missing)} corpus utterance(s) missing, e.g. {missing[:3]}")
        extra = sorted(set(ff.ids) - set(expected))
        if extra:
            problems.append(f"{path}: {len(extra)} id(s) not in the corpus, e.g. {extra[:3]}")
    return problems


def describe_features(ff: FeatureFile) -> str:
    """Metadata and coverage of a feature file, as readable tables."""
    attrs = ff.attrs
    meta_rows = []
    for key in ("corpus_name", "corpus_fingerprint", "modality", "extractor", "model_id", "weights_sha256",
                "dim", "shard", "created", "completed", "complete"):
        if key in attrs:
            value = attrs[key]
            meta_rows.append([key, str(value)[:16] if key.endswith(("fingerprint", "sha256")) else str(value)])
    config = json.loads(attrs.get("extractor_config") or "{}")
    for key, value in sorted(config.items()):
        meta_rows.append([f"config.{key}", json.dumps(value)])
    versions = json.loads(attrs.get("versions") or "{}")
    meta_rows.append(["versions", ", ".join(f"{k} {v}" for k, v in sorted(versions.items()))])
    n = len(ff.ids)
    absent = sum(kind == "absent" for _, kind, _ in ff.errors)  # mmemolr.extract.failures.ABSENT
    cover_rows = [
        ["utterances", n],
        ["processed", int(ff.done.sum())],
        ["available", int(ff.available.sum())],
        ["absent (nothing to extract)", absent],
        ["failed", len(ff.errors) - absent],
    ]
    parts = [format_table(["attribute", "value"], meta_rows, title=str(ff.path)),
             format_table(["coverage", "count"], cover_rows)]
    splits = Counter(uid.split("/", 1)[0] for uid in ff.ids if "/" in uid)
    if splits:
        parts.append(format_table(["id prefix", "count"], sorted(splits.items())))
    failures = [e for e in ff.errors if e[1] != "absent"]
    if failures:
        kinds = Counter(kind for _, kind, _ in failures)
        parts.append(format_table(["failure", "count"], sorted(kinds.items())))
        parts.append(format_table(["id", "kind", "message"], [list(e) for e in failures[:10]],
                                  title="first failures"))
    if ff.available.any():
        rows = ff.features[ff.available]
        norms = np.linalg.norm(rows, axis=1)
        parts.append(f"row L2 norm: mean {norms.mean():.3f}, min {norms.min():.3f}, max {norms.max():.3f}")
    return "\n\n".join(parts)
