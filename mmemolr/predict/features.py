"""The feature files a trained run needs for a corpus: found by content, or extracted exactly as recorded.

A run records, for each modality, the extractor, its options and (for neural encoders) the weights'
SHA-256. A file of the corpus with that identity is used as it is, whatever model path it names; when
there is none, the recorded extractor is run with the recorded options. Its model is looked for at
the recorded path (as given, then as resolved at extraction time), or where ``--model`` says, and used
only when its weights hash matches.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmemolr.corpus.model import Corpus
from mmemolr.extract import (
    ExtractionResult,
    Shard,
    build_extractor,
    check_failures,
    default_output,
    parse_max_failures,
    run_extraction,
)
from mmemolr.extract.runner import usable_cpus
from mmemolr.fuse.sources import MODALITY_NAMES, modality_code
from mmemolr.store import feature_identity, find_feature_files, identity_differences, partial_path, read_attrs


@dataclass
class RunFeatures:
    """Feature file per modality code, and the extractions this call ran (for the summary)."""

    paths: dict[str, Path] = field(default_factory=dict)
    extracted: dict[str, ExtractionResult] = field(default_factory=dict)


def trained_record(results: Mapping[str, Any], code: str) -> dict[str, Any]:
    """The run's record of its ``code`` features, completed from the file itself when an older run did
    not record the extractor options."""
    record = dict(results["feature_files"][code])
    record.setdefault("modality", MODALITY_NAMES[code])
    if "extractor_config" not in record and Path(record.get("path", "")).is_file():
        attrs = read_attrs(record["path"])
        record["extractor_config"] = json.loads(attrs.get("extractor_config") or "{}")
        record.setdefault("model_dir", attrs.get("model_dir"))
    return record


def _describe(record: Mapping[str, Any]) -> str:
    weights = record.get("weights_sha256")
    return (f"extractor {record.get('extractor')!r} (model {record.get('model_id') or '-'!r}"
            + (f", weights SHA-256 {weights[:12]}…" if weights else "") + f", {record.get('dim')}-d)")


def matching_files(folder: Path, code: str, trained: Mapping[str, Any], fingerprint: str) -> tuple[list[Path], list[str]]:
    """Complete files of ``folder`` with the run's features for this corpus, and why the others are not."""
    want = feature_identity(trained)
    found, rejected = [], []
    for path in find_feature_files(folder, MODALITY_NAMES[code]):
        attrs = read_attrs(path)
        if attrs.get("corpus_fingerprint") != fingerprint:
            rejected.append(f"{path}: extracted from another corpus (fingerprint)")
            continue
        diffs = identity_differences(want, feature_identity(attrs))
        if diffs:
            rejected.append(f"{path}: " + "; ".join(diffs))
        else:
            found.append(path)
    return found, rejected


def run_extractor(trained: Mapping[str, Any], model: str | None, device: str, run_dir: Path):
    """The recorded extractor with the recorded options; its model found by path and accepted by hash."""
    from extractors import EXTRACTORS

    name = str(trained.get("extractor", ""))
    modality = str(trained.get("modality", ""))
    if name not in EXTRACTORS:
        raise ValueError(f"{run_dir} was trained on {modality} features from {name!r}, which mmemolr cannot run "
                         f"(features made elsewhere or imported); give a feature file of this corpus with those "
                         f"features: --features {modality[:1]}=FILE")
    cls = EXTRACTORS[name]
    config = dict(trained.get("extractor_config") or {})
    want = str(trained.get("weights_sha256") or "")
    if not (cls.weights_keys and want):
        if model:
            raise ValueError(f"--model: the {modality} extractor {name!r} of {run_dir} takes no model")
        return build_extractor(name, None, config, device)
    key = cls.weights_keys[0]
    recorded = [config.get(key), trained.get("model_dir")]
    candidates = [model] if model else list(dict.fromkeys(str(c) for c in recorded if c))
    tried = []
    for candidate in candidates:
        extractor = build_extractor(name, None, {**config, key: candidate}, device)
        try:
            got = str(extractor.provenance().get("weights_sha256") or "")
        except (OSError, ValueError) as err:
            tried.append(f"{candidate}: {str(err).splitlines()[0][:160]}")
            continue
        if got == want:
            return extractor
        tried.append(f"{candidate}: other weights (SHA-256 {got[:12]}…)")
        if model:
            raise ValueError(
                f"--model {model}: its weights (SHA-256 {got[:12]}…) are not those {run_dir} was trained with "
                f"({want[:12]}…, recorded as {config.get(key)!r}); give a folder holding that {modality} model"
            )
    raise FileNotFoundError(
        f"the {modality} model {run_dir} was trained with ({config.get(key)!r}, weights SHA-256 {want[:12]}…) was "
        f"not found: " + "; ".join(tried or ["no path recorded"]) + ". Pass --model DIR (a folder with the same "
        "weights; it is accepted by their SHA-256, whatever its path)"
    )


def ensure_features(run_dir: Path, results: Mapping[str, Any], modalities: list[str], corpus: Corpus, folder: Path,
                    chosen: Mapping[str, str] | None = None, models: Mapping[str, str] | None = None,
                    device: str = "cpu", max_failures: str | None = None, progress: bool = False) -> RunFeatures:
    """The feature file of each modality of a run for ``corpus`` (prepared in ``folder``): given, found by
    identity, or extracted into ``folder`` (resumable; cached for the next call)."""
    out = RunFeatures()
    fingerprint = corpus.fingerprint()
    chosen = {modality_code(k): v for k, v in (chosen or {}).items()}
    models = {modality_code(k): v for k, v in (models or {}).items()}
    for code in modalities:
        trained = trained_record(results, code)
        if code in chosen:
            path = Path(chosen[code])
            path = folder / path if not path.is_absolute() and not path.exists() else path
            if not path.is_file():
                raise FileNotFoundError(f"--features {code}={chosen[code]}: no such file")
            diffs = identity_differences(feature_identity(trained), feature_identity(read_attrs(path)))
            if diffs:
                raise ValueError(f"{path} holds other {MODALITY_NAMES[code]} features than {run_dir} was trained on "
                                 f"({_describe(trained)}): " + "; ".join(diffs))
            out.paths[code] = path
            continue
        found, rejected = matching_files(folder, code, trained, fingerprint)
        if found:
            out.paths[code] = found[0]
            continue
        try:
            extractor = run_extractor(trained, models.get(code), device, run_dir)
        except ValueError as err:
            if rejected:
                raise ValueError(f"{err}. Feature files of {folder} that do not fit: " + "; ".join(rejected)) from None
            raise
        path = default_output(folder, extractor, Shard(0, 1))
        overwrite = False
        for existing in (path, partial_path(path)):
            if existing.exists():
                attrs = read_attrs(existing)
                if attrs.get("corpus_fingerprint") != fingerprint:
                    overwrite = True  # made from an earlier version of this corpus: useless for it now
                elif existing == path:
                    diffs = identity_differences(feature_identity(trained), feature_identity(attrs))
                    raise ValueError(f"{path} exists but holds other {MODALITY_NAMES[code]} features ("
                                     + "; ".join(diffs) + "); move it away or choose a file with --features")
        workers = usable_cpus() if extractor.cpu_parallel else 1
        result = run_extraction(corpus, extractor, path, workers=workers, overwrite=overwrite, progress=progress)
        check_failures(result.path, result.errors, result.total, parse_max_failures(max_failures, extractor.modality))
        out.paths[code] = result.path
        out.extracted[code] = result
    return out
