"""Find and load the feature files of the chosen modalities and check they fit the corpus and each other."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from mmemolr.corpus.model import Corpus
from mmemolr.store import FeatureFile, find_feature_files, read_features

MODALITY_NAMES = {"t": "text", "a": "audio", "v": "visual"}
MODALITY_CODES = {name: code for code, name in MODALITY_NAMES.items()}


def modality_code(name: str) -> str:
    """``"t"``/``"text"`` -> ``"t"``; anything else is an error listing the choices."""
    key = str(name).strip().lower()
    if key in MODALITY_NAMES:
        return key
    if key in MODALITY_CODES:
        return MODALITY_CODES[key]
    raise ValueError(f"unknown modality {name!r}; use t, a, v (or text, audio, visual)")


def normalise_modalities(modalities: Sequence[str] | str) -> list[str]:
    """Codes in the order given, without duplicates; at least one."""
    if isinstance(modalities, str):
        modalities = [m for m in modalities.split(",") if m.strip()]
    codes = list(dict.fromkeys(modality_code(m) for m in modalities))
    if not codes:
        raise ValueError("no modality chosen; pass --modalities t (or t,a,v)")
    return codes


def resolve_feature_files(corpus_folder: str | Path, modalities: Sequence[str],
                          chosen: Mapping[str, str] | None = None) -> dict[str, Path]:
    """Modality code -> feature file: the one given in ``chosen`` or the single file of that modality."""
    folder = Path(corpus_folder)
    chosen_codes = {modality_code(k): Path(v) for k, v in (chosen or {}).items()}
    out: dict[str, Path] = {}
    for code in normalise_modalities(modalities):
        name = MODALITY_NAMES[code]
        if code in chosen_codes:
            path = chosen_codes[code]
            if not path.is_absolute() and not path.exists() and (folder / path).exists():
                path = folder / path
            if not path.exists():
                raise FileNotFoundError(f"the {name} feature file {path} given in features.{code} does not exist")
            out[code] = path
            continue
        found = find_feature_files(folder, name)
        if not found:
            raise FileNotFoundError(
                f"modality {name!r} was asked for but {folder} holds no complete {name} feature file; "
                f"run `mmemolr extract` for it first, or drop it from --modalities"
            )
        if len(found) > 1:
            names = ", ".join(p.name for p in found)
            raise ValueError(
                f"{folder} holds several {name} feature files ({names}); choose one with "
                f"features.{code}=FILE (e.g. features.{code}={found[0].name})"
            )
        out[code] = found[0]
    return out


def load_feature_files(paths: Mapping[str, Path], corpus: Corpus) -> dict[str, FeatureFile]:
    """Read each file and check it: modality, one corpus for all, the corpus's utterances, no NaN/inf."""
    files = {code: read_features(path) for code, path in paths.items()}
    for code, ff in files.items():
        if ff.modality != MODALITY_NAMES[code]:
            raise ValueError(f"{ff.path} holds {ff.modality!r} features, but it was given as the "
                             f"{MODALITY_NAMES[code]} modality")
    _check_same_corpus(files)
    fingerprint = corpus.fingerprint()
    expected = corpus.utterance_ids()
    expected_set = set(expected)
    for ff in files.values():
        if ff.attrs.get("corpus_fingerprint") != fingerprint:
            raise ValueError(
                f"{ff.path} was extracted from corpus {ff.attrs.get('corpus_name')!r} "
                f"(fingerprint {str(ff.attrs.get('corpus_fingerprint'))[:12]}), not from the prepared corpus "
                f"{corpus.name!r} (fingerprint {fingerprint[:12]}); extract the features again for this corpus"
            )
        ids = set(ff.ids)
        missing = [uid for uid in expected if uid not in ids]
        extra = [uid for uid in ff.ids if uid not in expected_set]
        if missing or extra or len(ids) != len(ff.ids):
            parts = []
            if missing:
                parts.append(f"{len(missing)} corpus utterance(s) missing (e.g. {missing[:3]})")
            if extra:
                parts.append(f"{len(extra)} id(s) not in the corpus (e.g. {extra[:3]})")
            if len(ids) != len(ff.ids):
                parts.append("duplicate ids")
            raise ValueError(f"{ff.path} does not cover the utterances of corpus {corpus.name!r}: "
                             + "; ".join(parts) + "; extract the features again for this corpus")
        rows = ff.features[ff.available]
        if rows.size:
            bad = ~np.isfinite(rows).all(axis=1)
            if bad.any():
                avail_ids = [uid for uid, a in zip(ff.ids, ff.available) if a]
                where = [avail_ids[i] for i in np.flatnonzero(bad)[:3]]
                raise ValueError(f"{ff.path}: {int(bad.sum())} feature row(s) hold NaN or inf, e.g. utterance(s) "
                                 f"{where}; extract them again (or mark them unavailable)")
    return files


def feature_file_problems(path: str | Path, corpus: Corpus, code: str) -> list[str]:
    """Everything that would stop a training on ``path`` as modality ``code`` of ``corpus``, one message
    each (empty: usable): unreadable or incomplete file, another corpus, missing or extra utterances,
    NaN/inf rows, another modality, no training utterance with a vector. `mmemolr compare` checks every
    file of a sweep with it before training anything."""
    from mmemolr.store import validate_features

    problems = validate_features(path, corpus)
    if problems:
        return problems
    ff = read_features(path)
    name = MODALITY_NAMES[code]
    if ff.modality != name:
        return [f"{path} holds {ff.modality!r} features, but it was given as the {name} modality"]
    train = [u.id for u in corpus.utterances("train")]
    if train and not ff.available[ff.rows_for(train)].any():
        kinds = sorted({kind for uid, kind, _ in ff.errors})
        problems.append(f"{path}: none of the {len(train):,} training utterances has {name} features "
                        f"({', '.join(kinds) or 'unavailable'}), so there is nothing to normalise or train on")
    return problems


def _check_same_corpus(files: Mapping[str, FeatureFile]) -> None:
    items = list(files.values())
    for other in items[1:]:
        first = items[0]
        if other.attrs.get("corpus_fingerprint") != first.attrs.get("corpus_fingerprint"):
            raise ValueError(
                f"the feature files come from different corpora: {first.path} "
                f"({first.attrs.get('corpus_name')!r}, fingerprint {str(first.attrs.get('corpus_fingerprint'))[:12]}) "
                f"and {other.path} ({other.attrs.get('corpus_name')!r}, fingerprint "
                f"{str(other.attrs.get('corpus_fingerprint'))[:12]})"
            )
        if sorted(other.ids) != sorted(first.ids):
            only_first = sorted(set(first.ids) - set(other.ids))
            only_other = sorted(set(other.ids) - set(first.ids))
            raise ValueError(
                f"{first.path} and {other.path} cover different utterances: {len(only_first)} only in the first "
                f"(e.g. {only_first[:3]}), {len(only_other)} only in the second (e.g. {only_other[:3]})"
            )


def describe_file(ff: FeatureFile) -> dict:
    """What results.json records about a feature file: its identity (extractor, options, weights hash,
    dimension; mmemolr.store.identity) and, as provenance, where it and its model were."""
    record = {
        "path": str(Path(ff.path).resolve()),
        "modality": ff.modality,
        "extractor": str(ff.attrs.get("extractor", "")),
        "extractor_config": ff.config(),
        "model_id": str(ff.attrs.get("model_id", "")),
        "dim": ff.dim,
        "weights_sha256": str(ff.attrs.get("weights_sha256", "")),
        "available": int(ff.available.sum()),
        "rows": len(ff.ids),
    }
    if ff.attrs.get("model_dir"):
        record["model_dir"] = str(ff.attrs["model_dir"])
    return record
