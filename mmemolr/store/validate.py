"""Checks of a feature file against itself and its corpus; each problem is one clear message."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from mmemolr.corpus.model import Corpus
from mmemolr.store.h5 import FeatureFile, FeatureFileError, read_features
from mmemolr.tables import format_table


def validate_features(path: str | Path, corpus: Corpus | None = None) -> list[str]:
    """Return the problems found (empty when the file is sound); ``features validate`` prints them."""
    try:
        ff = read_features(path, allow_partial=True)
    except FeatureFileError as err:
        return [str(err)]
    return feature_problems(ff, corpus)


def check_features(ff: FeatureFile, corpus: Corpus) -> None:
    """The check every command that reads features for a corpus runs (train, evaluate, predict, compare):
    :func:`feature_problems` with every corpus utterance required; raises with all problems found."""
    problems = feature_problems(ff, corpus, every_utterance=True)
    if problems:
        raise FeatureFileError("; ".join(problems))


def feature_problems(ff: FeatureFile, corpus: Corpus | None = None, every_utterance: bool | None = None) -> list[str]:
    """Every problem of a feature file, one message each: the one validation shared by ``features validate``
    and the commands that use features (see :func:`check_features`).

    With a corpus, the file must come from it and hold no other ids; ``every_utterance`` (default: unless
    the file is one shard of several) requires a row for each of its utterances.
    """
    problems = []
    path = Path(ff.path)
    n = len(ff.ids)
    if not ff.attrs.get("complete"):
        problems.append(f"{path}: incomplete: {int((~ff.done).sum())} of {n} ids not yet processed; rerun the "
                        "extraction to finish it")
    elif not ff.done.all():
        problems.append(f"{path}: marked complete, but {int((~ff.done).sum())} row(s) are not marked done, e.g. "
                        f"{_ids(ff, ~ff.done)}; the file is damaged: extract it again")
    dims = ff.attrs.get("dim")
    if dims is None or int(dims) != ff.dim:
        problems.append(f"{path}: wrong dimension: attribute dim={dims}, matrix has {ff.dim} columns; the file is "
                        "damaged: extract it again")
    dupes = [uid for uid, k in Counter(ff.ids).items() if k > 1]
    if dupes:
        problems.append(f"{path}: {len(dupes)} duplicate utterance id(s), e.g. {dupes[:3]}")
    if ff.available.any():
        rows = ff.features[ff.available]
        nonfinite = np.zeros(n, dtype=bool)
        nonfinite[ff.available] = ~np.isfinite(rows).all(axis=1)
        if nonfinite.any():
            problems.append(f"{path}: {int(nonfinite.sum())} row(s) with NaN/inf, e.g. {_ids(ff, nonfinite)}; "
                            "extract them again (or mark them unavailable)")
        zero = np.zeros(n, dtype=bool)
        zero[ff.available] = ~rows.any(axis=1)
        if zero.any():
            problems.append(f"{path}: {int(zero.sum())} row(s) marked available are all zeros, e.g. "
                            f"{_ids(ff, zero)}; a missing vector must be recorded as a failure (unavailable), "
                            "not written as zeros: extract them again")
    if corpus is not None:
        problems += _corpus_problems(ff, corpus, every_utterance)
    return problems


def _corpus_problems(ff: FeatureFile, corpus: Corpus, every_utterance: bool | None) -> list[str]:
    path = Path(ff.path)
    problems = []
    if ff.attrs.get("corpus_fingerprint") != corpus.fingerprint():
        problems.append(
            f"{path}: corpus fingerprint mismatch: the file was extracted from corpus {ff.attrs.get('corpus_name')!r} "
            f"({str(ff.attrs.get('corpus_fingerprint'))[:16]}), not from the prepared corpus {corpus.name!r} "
            f"({corpus.fingerprint()[:16]}); extract the features again for this corpus"
        )
    expected = corpus.utterance_ids()
    if every_utterance is None:
        every_utterance = str(ff.attrs.get("shard", "1/1")) == "1/1"
    present = set(ff.ids)
    if every_utterance:
        missing = [uid for uid in expected if uid not in present]
        if missing:
            problems.append(f"{path}: {len(missing)} corpus utterance(s) missing, e.g. {missing[:3]}; extract the "
                            "features again for this corpus")
    expected_set = set(expected)
    extra = [uid for uid in ff.ids if uid not in expected_set]
    if extra:
        problems.append(f"{path}: {len(extra)} id(s) not in the corpus, e.g. {extra[:3]}")
    return problems


def _ids(ff: FeatureFile, mask: np.ndarray, shown: int = 3) -> list[str]:
    return [ff.ids[i] for i in np.flatnonzero(mask)[:shown]]


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


def describe_progress(ff: FeatureFile, writing: bool) -> str:
    """How far an unfinished feature file has come, and whether an extraction is writing it now."""
    n, done = len(ff.ids), int(ff.done.sum())
    modified = datetime.fromtimestamp(Path(ff.path).stat().st_mtime, tz=timezone.utc)
    ago = (datetime.now(timezone.utc) - modified).total_seconds()
    state = ("being written now (another process holds it open)" if writing else
             "not being written: an interrupted extraction; rerun the same extract command to resume it")
    rows = [
        ["processed", f"{done} of {n} ({100 * done / n:.1f}%)" if n else "0 of 0"],
        ["last written", f"{modified.isoformat(timespec='seconds')} ({ago:.0f} s ago)"],
        ["state", state],
    ]
    return format_table(["in progress", ""], rows)
