"""Find and load the feature files of the chosen modalities and check they fit the corpus and each other."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from mmemolr.corpus.model import Corpus
from mmemolr.store import FeatureFile, check_features, find_feature_files, read_features

MODALITY_NAMES = {"t": "text", "a": "audio", "v": "visual"}
MODALITY_CODES = {name: code for code, name in MODALITY_NAMES.items()}
# How the command being run lets the user name a feature file ({code}: t, a, v): `train` takes the config
# key as a KEY=VALUE override, `compare` and `predict` a flag.
CHOOSE_BY_CONFIG = "features.{code}="
CHOOSE_BY_FLAG = "--features {code}="


def modality_code(name: str) -> str:
    """``"t"``/``"text"`` -> ``"t"``; anything else is an error listing the choices."""
    key = str(name).strip().lower()
    if key in MODALITY_NAMES:
        return key
    if key in MODALITY_CODES:
        return MODALITY_CODES[key]
    raise ValueError(f"unknown modality {name!r}; use t, a, v (or text, audio, visual)")


def normalise_modalities(modalities: Sequence[str] | str) -> list[str]:
    """Codes in the order given; at least one, none twice (``t,t`` or ``t,text`` is an error)."""
    if isinstance(modalities, str):
        modalities = [m for m in modalities.split(",") if m.strip()]
    codes = [modality_code(m) for m in modalities]
    if not codes:
        raise ValueError("no modality chosen; pass --modalities t (or t,a,v)")
    twice = [code for code in dict.fromkeys(codes) if codes.count(code) > 1]
    if twice:
        raise ValueError(f"modality {MODALITY_NAMES[twice[0]]!r} is given twice in {','.join(map(str, modalities))}; "
                         "list each modality once")
    return codes


def resolve_feature_files(corpus_folder: str | Path, modalities: Sequence[str],
                          chosen: Mapping[str, str] | None = None,
                          choose_with: str = CHOOSE_BY_CONFIG) -> dict[str, Path]:
    """Modality code -> feature file: the one given in ``chosen`` or the single file of that modality.

    ``choose_with`` is how the running command names a file (``CHOOSE_BY_CONFIG`` or ``CHOOSE_BY_FLAG``);
    messages tell the user to use it.
    """
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
                raise FileNotFoundError(f"the {name} feature file {path} given as {choose_with.format(code=code)}"
                                        f"{chosen_codes[code]} does not exist")
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
            option = choose_with.format(code=code)
            raise ValueError(
                f"{folder} holds several {name} feature files ({names}); choose one with "
                f"{option}FILE (e.g. {option}{found[0].name})"
            )
        out[code] = found[0]
    return out


def load_feature_files(paths: Mapping[str, Path], corpus: Corpus) -> dict[str, FeatureFile]:
    """Read each file and check it: modality, one corpus for all, and :func:`check_features` (every
    utterance of the corpus, no damage, no NaN/inf or all-zero rows posing as data)."""
    files = {code: read_features(path) for code, path in paths.items()}
    for code, ff in files.items():
        if ff.modality != MODALITY_NAMES[code]:
            raise ValueError(f"{ff.path} holds {ff.modality!r} features, but it was given as the "
                             f"{MODALITY_NAMES[code]} modality")
    _check_same_corpus(files)
    for ff in files.values():
        check_features(ff, corpus)
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
    """What a run folder records about a feature file it reads (inputs.json, results.json): its identity
    (extractor, options, weights hash, dimension; mmemolr.store.identity), a checksum of its content
    (compared on resume and evaluate: rundir.check_same_inputs) and, as provenance, where it and its model
    were."""
    record = {
        "path": str(Path(ff.path).resolve()),
        "modality": ff.modality,
        "extractor": str(ff.attrs.get("extractor", "")),
        "extractor_config": ff.config(),
        "model_id": str(ff.attrs.get("model_id", "")),
        "dim": ff.dim,
        "weights_sha256": str(ff.attrs.get("weights_sha256", "")),
        "content_sha256": ff.content_sha256(),
        "available": int(ff.available.sum()),
        "rows": len(ff.ids),
    }
    if ff.attrs.get("model_dir"):
        record["model_dir"] = str(ff.attrs["model_dir"])
    return record
