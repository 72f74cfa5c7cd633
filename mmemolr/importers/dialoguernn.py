"""Import the feature pickles of the DialogueRNN lineage (DialogueRNN, DialogueGCN, MMGCN, ...).

Layouts (a pickled list/tuple; every ``video*`` item is a dict keyed by dialogue id):

- ``iemocap`` (9 items): videoIDs, videoSpeakers, videoLabels, videoText, videoAudio, videoVisual,
  videoSentence, trainVid, testVid. Speakers 'M'/'F'; labels 0 hap, 1 sad, 2 neu, 3 ang, 4 exc, 5 fru.
- ``meld`` (9 items): videoIDs, videoSpeakers, videoLabels, videoText, videoAudio, videoSentence,
  trainVid, testVid, and a ninth item (sentiment labels in the DialogueRNN release; ignored).
  Speakers are one-hot vectors over 9 slots; labels 0..6 = neutral, surprise, fear, sadness, joy,
  disgust, anger (the order of the DialogueRNN/MMGCN MELD loaders, the same as mmemolr's MELD adapter).
- ``meld-visual`` (10 items, MMGCN): as ``meld`` with videoVisual after videoAudio.

The result is a prepared corpus (``corpus.json``) plus one HDF5 feature file per modality, usable by
``train`` and ``compare`` as they are. Feature dimensions are read from the data.

None of these layouts holds a validation split (trainVid contains the corpus's validation dialogues).
``valid_ids`` names them (a list of dialogue ids, or the corpus.json of a prepared corpus whose dev
dialogues they are), so results stay comparable with runs on the original split; only without it are
validation dialogues carved from trainVid with a fixed seed.

A modality whose vectors are all the same (the all-zero audio and visual arrays some releases ship as
placeholders) is not imported: it carries no information, and a feature file would let ``--modalities
all`` train on it. Single all-zero rows inside a real modality are recorded as failed items.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmemolr.corpus.iemocap import IEMOCAP_EMOTIONS, carve_validation, load_trusted_pickle
from mmemolr.corpus.meld import MELD_EMOTIONS
from mmemolr.corpus.model import Corpus, CorpusError, Utterance, build_dialogues
from mmemolr.corpus.prepared import CORPUS_FILE, DEFAULT_FEATURES_DIR, load_prepared, save_prepared
from mmemolr.corpus.readers import read_text_file, repair_c1
from mmemolr.fileio import sha256_files
from mmemolr.progress import Progress
from mmemolr.store import FeatureWriter, library_versions, partial_path, read_attrs

log = logging.getLogger(__name__)

EXTRACTOR = "dialoguernn-import"
MODALITY_FIELDS = {"text": "videoText", "audio": "videoAudio", "visual": "videoVisual"}


@dataclass(frozen=True)
class Layout:
    fields: tuple[str, ...]
    labels: tuple[str, ...]
    description: str


LAYOUTS: dict[str, Layout] = {
    "iemocap": Layout(
        ("videoIDs", "videoSpeakers", "videoLabels", "videoText", "videoAudio", "videoVisual", "videoSentence",
         "trainVid", "testVid"),
        tuple(IEMOCAP_EMOTIONS), "IEMOCAP style, 9 items with videoVisual",
    ),
    "meld": Layout(
        ("videoIDs", "videoSpeakers", "videoLabels", "videoText", "videoAudio", "videoSentence", "trainVid",
         "testVid", "extra"),
        tuple(MELD_EMOTIONS), "MELD style, 9 items without videoVisual",
    ),
    "meld-visual": Layout(
        ("videoIDs", "videoSpeakers", "videoLabels", "videoText", "videoAudio", "videoVisual", "videoSentence",
         "trainVid", "testVid", "extra"),
        tuple(MELD_EMOTIONS), "MELD style (MMGCN), 10 items with videoVisual",
    ),
}


@dataclass
class ImportResult:
    corpus_dir: Path
    corpus: Corpus
    layout: str
    feature_files: dict[str, Path] = field(default_factory=dict)
    dims: dict[str, int] = field(default_factory=dict)
    failed: dict[str, int] = field(default_factory=dict)  # modality -> rows with non-finite values
    zero_rows: dict[str, int] = field(default_factory=dict)  # modality -> all-zero rows (failed items)
    placeholders: dict[str, str] = field(default_factory=dict)  # modality -> why it was not imported
    valid_split: str = ""  # where the validation dialogues came from
    warnings: list[str] = field(default_factory=list)


def _is_id_collection(value: Any) -> bool:
    if isinstance(value, (str, bytes, Mapping)):
        return False
    if not isinstance(value, (list, tuple, set, frozenset, np.ndarray)) and not hasattr(value, "__iter__"):
        return False
    try:
        items = list(value)
    except TypeError:
        return False
    return all(isinstance(x, (str, int, np.integer, np.str_)) for x in items)


def _layout_error(path: Path, items: Any, why: str) -> CorpusError:
    kinds = "; ".join(f"{name}: {len(lay.fields)} items {', '.join(lay.fields)}" for name, lay in LAYOUTS.items())
    got = f"{type(items).__name__} of {len(items)} items" if hasattr(items, "__len__") else type(items).__name__
    return CorpusError(f"{path}: {why} (got {got}). Known layouts -- {kinds}")


def detect_layout(items: Any, path: Path = Path("<pickle>")) -> str:
    """Name of the layout of an unpickled DialogueRNN-style feature file (see the module docstring)."""
    if not isinstance(items, (list, tuple)):
        raise _layout_error(path, items, "expected a list or tuple of dicts and dialogue-id lists")
    for name, layout in LAYOUTS.items():
        if len(items) != len(layout.fields):
            continue
        train, test = layout.fields.index("trainVid"), layout.fields.index("testVid")
        if _is_id_collection(items[train]) and _is_id_collection(items[test]) and isinstance(items[0], Mapping):
            return name
    raise _layout_error(path, items, "not a DialogueRNN-style feature pickle")


def _ordered_ids(value: Iterable[Any]) -> list[Any]:
    # A set has no stable order (string hashing is salted per process): sort it so imports are repeatable.
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=lambda v: (not isinstance(v, (int, np.integer)), v if isinstance(v, (int, np.integer)) else str(v)))
    return list(value)


def _text(value: Any) -> tuple[str, bool]:
    """Decode a sentence; undo UTF-8 read as latin-1 (Python 2 pickles) and cp1252 C1 characters."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    text = str(value)
    repaired = False
    if any(ord(c) > 127 for c in text):
        try:
            fixed = text.encode("latin-1").decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            fixed = text
        repaired = fixed != text
        text = fixed
    text, c1 = repair_c1(text)
    return text, repaired or c1


def _speaker(value: Any, where: str) -> str:
    if isinstance(value, (str, np.str_)):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("latin-1")
    vec = np.asarray(value, dtype=np.float64).ravel()
    if vec.size == 0 or not np.isfinite(vec).all() or vec.max() <= 0:
        raise CorpusError(f"{where}: speaker {value!r} is neither a name nor a one-hot vector")
    return f"p{int(np.argmax(vec))}"  # MELD: one-hot over 9 speaker slots


def _entry(fields: dict[str, Any], name: str, vid: Any, path: Path) -> Any:
    table = fields[name]
    if not isinstance(table, Mapping):
        raise CorpusError(f"{path}: item {name} should be a dict keyed by dialogue id, got {type(table).__name__}")
    try:
        return table[vid]
    except KeyError:
        raise CorpusError(f"{path}: dialogue {vid!r} is listed in trainVid/testVid but missing from {name}") from None


def import_dialoguernn(
    path: str | Path,
    corpus_name: str,
    *,
    trust_pickle: bool = False,
    layout: str = "auto",
    labels: list[str] | None = None,
    features_dir: str | Path = DEFAULT_FEATURES_DIR,
    out_dir: str | Path | None = None,
    valid_ids: str | Path | Sequence[str] | None = None,
    valid_fraction: float | None = None,
    valid_seed: int | None = None,
    overwrite: bool = False,
    progress: bool | str = True,
) -> ImportResult:
    """Read a DialogueRNN-style pickle into ``<features_dir>/<corpus_name>/`` (or ``out_dir``).

    The validation dialogues are ``valid_ids`` (see ``read_valid_ids``), which must come from trainVid;
    without them ``valid_fraction`` (0.1) of trainVid is carved out with ``valid_seed`` (0), a split of
    this import's own. Rerunning with the same file keeps what is there; another corpus in the folder
    needs ``overwrite``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"feature pickle {path} does not exist")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", corpus_name):
        raise ValueError(f"corpus name {corpus_name!r}: use letters, digits, '.', '_' and '-' only")
    if valid_ids is not None and (valid_fraction is not None or valid_seed is not None):
        raise ValueError("give either validation dialogue ids (--valid-ids) or a carve (--valid-fraction, "
                         "--valid-seed), not both")
    valid_fraction = 0.1 if valid_fraction is None else valid_fraction
    valid_seed = 0 if valid_seed is None else valid_seed
    if not 0.0 < valid_fraction < 1.0:
        raise ValueError(f"valid fraction {valid_fraction} must be between 0 and 1 (exclusive)")
    given_valid = read_valid_ids(valid_ids) if valid_ids is not None else None
    items = load_trusted_pickle(path, trust_pickle)
    if layout == "auto":
        layout = detect_layout(items, path)
    elif layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; known: auto, {', '.join(LAYOUTS)}")
    elif detect_layout(items, path) != layout:
        raise _layout_error(path, items, f"the file does not have the {layout!r} layout")
    spec = LAYOUTS[layout]
    label_names = list(labels) if labels else list(spec.labels)
    if len(set(label_names)) != len(label_names):
        raise ValueError(f"labels {label_names} contain duplicates")
    fields = dict(zip(spec.fields, items))
    digest = sha256_files(path)

    train_ids, test_ids = _ordered_ids(fields["trainVid"]), _ordered_ids(fields["testVid"])
    key_of: dict[str, Any] = {}
    split_of: dict[str, str] = {}
    for split, vids in (("train", train_ids), ("test", test_ids)):
        for vid in vids:
            did = str(vid)
            if did in split_of:
                raise CorpusError(f"{path}: dialogue {did!r} is listed twice (in {split_of[did]} and {split})")
            split_of[did], key_of[did] = split, vid
    if not train_ids or not test_ids:
        raise CorpusError(f"{path}: trainVid has {len(train_ids)} and testVid {len(test_ids)} dialogues; both must be non-empty")
    warnings: list[str] = []
    if given_valid is not None:
        valid = _check_valid_ids(given_valid, split_of, path)
        valid_split = f"{len(valid)} dialogues from {given_valid.source}"
        warnings += _compare_splits(given_valid, split_of, path)
        split_provenance: dict[str, Any] = {"valid_split": "given", "valid_source": given_valid.source}
    else:
        valid = carve_validation([str(v) for v in train_ids], valid_fraction, valid_seed)
        valid_split = (f"{len(valid)} dialogues carved from trainVid ({valid_fraction:g}, seed {valid_seed}); "
                       "not the corpus's own validation split (give it with --valid-ids)")
        split_provenance = {"valid_split": "carved", "valid_fraction": valid_fraction, "valid_seed": valid_seed}

    modalities = [m for m, name in MODALITY_FIELDS.items() if name in fields]
    raw_ids: list[tuple[str, Any]] = []
    rows: list[Utterance] = []
    vectors: dict[str, list[np.ndarray]] = {m: [] for m in modalities}
    dims: dict[str, int] = {}
    repaired = 0
    bar = Progress(len(key_of), f"read {path.name}", "dialogue", progress=progress)
    for did, vid in key_of.items():
        where = f"{path}: dialogue {did!r}"
        utt_ids = list(_entry(fields, "videoIDs", vid, path))
        speakers = list(_entry(fields, "videoSpeakers", vid, path))
        labels_ = list(_entry(fields, "videoLabels", vid, path))
        sentences = list(_entry(fields, "videoSentence", vid, path))
        n = len(utt_ids)
        if n == 0:
            raise CorpusError(f"{where}: no utterances in videoIDs")
        for name, seq in (("videoSpeakers", speakers), ("videoLabels", labels_), ("videoSentence", sentences)):
            if len(seq) != n:
                raise CorpusError(f"{where}: {name} has {len(seq)} entries, videoIDs has {n}")
        for modality in modalities:
            name = MODALITY_FIELDS[modality]
            try:
                arr = np.asarray(_entry(fields, name, vid, path), dtype=np.float32)
            except (TypeError, ValueError) as err:
                raise CorpusError(f"{where}: {name} is not a numeric array ({err})") from None
            if arr.ndim != 2 or arr.shape[0] != n:
                raise CorpusError(f"{where}: {name} has shape {arr.shape}, expected ({n}, dim)")
            dims.setdefault(modality, arr.shape[1])
            if arr.shape[1] != dims[modality]:
                raise CorpusError(f"{where}: {name} is {arr.shape[1]}-d, earlier dialogues are {dims[modality]}-d")
            vectors[modality].append(arr)
        split = "dev" if did in valid else split_of[did]
        for i in range(n):
            y = labels_[i]
            try:
                y = int(y)
            except (TypeError, ValueError):
                raise CorpusError(f"{where}, utterance {i}: label {y!r} is not an integer id") from None
            if not 0 <= y < len(label_names):
                raise CorpusError(
                    f"{where}, utterance {i}: label id {y} outside 0..{len(label_names) - 1} of the labels "
                    f"{label_names}; pass the corpus's label names in id order with --labels"
                )
            text, fixed = _text(sentences[i])
            repaired += fixed
            raw_ids.append((did, utt_ids[i]))
            rows.append(Utterance(
                id="", dialogue_id=did, index=i, speaker=_speaker(speakers[i], f"{where}, utterance {i}"),
                text=text, label=label_names[y], split=split, extra={"source_id": str(utt_ids[i])},
            ))
        bar.update(1)
    bar.close()
    # Ids as in videoIDs when they are unique strings (IEMOCAP), else dialogue/utterance (MELD's 0, 1, ...).
    plain = [str(u) for _, u in raw_ids]
    use_plain = all(isinstance(u, (str, np.str_)) for _, u in raw_ids) and len(set(plain)) == len(plain)
    for row, (did, uid), p in zip(rows, raw_ids, plain):
        row.id = p if use_plain else f"{did}/{uid}"
    dupes = len(rows) - len({r.id for r in rows})
    if dupes:
        raise CorpusError(f"{path}: {dupes} duplicate utterance id(s) within a dialogue in videoIDs")

    matrices = {m: np.concatenate(vectors[m]) for m in modalities}
    placeholders = {m: why for m in modalities if (why := placeholder_reason(matrices[m])) is not None}
    for modality, why in placeholders.items():
        warnings.append(f"{path}: {MODALITY_FIELDS[modality]} ({dims[modality]}-d) {why}: a placeholder, not "
                        f"features; the {modality} modality is not imported (unavailable)")
    corpus = Corpus(
        name=corpus_name,
        labels=label_names,
        dialogues=build_dialogues(rows),
        provenance={"format": "dialoguernn", "layout": layout, "file": path.name, "sha256": digest,
                    **split_provenance, "feature_dims": dims,
                    "placeholder_modalities": dict(placeholders)},
        report={"repaired_text": repaired},
    )
    corpus.validate()
    out = Path(out_dir) if out_dir else Path(features_dir) / corpus_name
    _save_corpus(corpus, out, overwrite)

    result = ImportResult(corpus_dir=out, corpus=corpus, layout=layout, dims=dims, placeholders=placeholders,
                          valid_split=valid_split, warnings=warnings)
    ids = corpus.utterance_ids()  # build_dialogues keeps the read order, so rows line up with ids
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", path.stem)
    for modality in modalities:
        target = out / f"{modality}-{stem}.h5"
        if modality in placeholders:
            _remove_earlier_import(target, digest, warnings)
            continue
        matrix = matrices[modality]
        attrs = {
            "corpus_name": corpus_name, "corpus_fingerprint": corpus.fingerprint(), "modality": modality,
            "extractor": EXTRACTOR,
            "extractor_config": {"source": path.name, "layout": layout, "item": MODALITY_FIELDS[modality]},
            "model_id": f"{path.name} sha256:{digest}", "weights_sha256": digest, "dim": dims[modality],
            "versions": library_versions(),
        }
        writer = FeatureWriter(target, ids, attrs, overwrite=overwrite)
        try:
            pending = set(writer.pending_ids)
            finite = np.isfinite(matrix).all(axis=1)
            zero = ~(matrix != 0).any(axis=1)
            good = [i for i, uid in enumerate(ids) if uid in pending and finite[i] and not zero[i]]
            if good:
                writer.write([ids[i] for i in good], matrix[good])
            for i, uid in enumerate(ids):
                if uid in pending and not finite[i]:
                    writer.fail(uid, "non_finite", f"{MODALITY_FIELDS[modality]} holds NaN/inf for this utterance")
                elif uid in pending and zero[i]:
                    writer.fail(uid, "all-zero", f"{MODALITY_FIELDS[modality]} holds an all-zero vector for this "
                                "utterance (a placeholder for a missing one)")
            result.failed[modality] = int((~finite).sum())
            result.zero_rows[modality] = int(zero.sum())
        finally:
            result.feature_files[modality] = writer.close()
        if result.zero_rows[modality]:
            warnings.append(f"{path}: {result.zero_rows[modality]} of {len(ids)} {MODALITY_FIELDS[modality]} rows are "
                            "all zeros; stored as unavailable (failed items), not as features")
    for warning in warnings:
        log.warning("warning: %s", warning)
    return result


def _remove_earlier_import(target: Path, digest: str, warnings: list[str]) -> None:
    """Delete a feature file that an earlier import made from this same pickle for a placeholder modality
    (versions before placeholders were detected wrote one), so that ``--modalities all`` does not find it."""
    for path in (target, partial_path(target)):
        if not path.exists():
            continue
        try:
            attrs = read_attrs(path)
        except OSError:
            continue
        if attrs.get("extractor") == EXTRACTOR and attrs.get("weights_sha256") == digest:
            path.unlink()
            warnings.append(f"{path}: removed; an earlier import wrote these placeholder vectors as features")


def placeholder_reason(matrix: np.ndarray) -> str | None:
    """Why a modality's (N, D) matrix holds no information, or None: every finite row the same vector."""
    rows = matrix[np.isfinite(matrix).all(axis=1)]
    if len(rows) < 2 or (rows != rows[0]).any():
        return None
    return "is all zeros" if not rows[0].any() else "holds the same vector for every utterance"


@dataclass(frozen=True)
class ValidIds:
    """Validation dialogue ids and where they came from; ``train``/``test`` too when a corpus gave them."""

    ids: list[str]
    source: str
    train: frozenset[str] | None = None
    test: frozenset[str] | None = None


def read_valid_ids(source: str | Path | Sequence[str]) -> ValidIds:
    """Validation dialogue ids from a list, from a text file (one id per line; '#' starts a comment), from
    a JSON list, or from a prepared corpus (its folder or corpus.json: the ids of its dev dialogues)."""
    if not isinstance(source, (str, Path)):
        ids = [str(x) for x in source]
        return ValidIds(_nonempty(ids, "the validation id list"), f"a list of {len(ids)} ids")
    path = Path(source)
    if path.is_dir() or path.name == CORPUS_FILE:
        corpus = load_prepared(path)
        dev = [d.id for d in corpus.split_dialogues("dev")]
        return ValidIds(_nonempty(dev, f"the dev split of {path}"), f"the dev split of {path}",
                        train=frozenset(d.id for d in corpus.split_dialogues("train")),
                        test=frozenset(d.id for d in corpus.split_dialogues("test")))
    if not path.is_file():
        raise FileNotFoundError(f"validation id file {path} does not exist")
    text = read_text_file(path)
    if text.lstrip().startswith("["):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise CorpusError(f"{path}: not a JSON list of dialogue ids ({err})") from None
        if not isinstance(data, list):
            raise CorpusError(f"{path}: expected a JSON list of dialogue ids")
        ids = [str(x) for x in data]
    else:
        ids = [line.split("#", 1)[0].strip() for line in text.splitlines()]
        ids = [x for x in ids if x]
    return ValidIds(_nonempty(ids, str(path)), str(path))


def _nonempty(ids: list[str], where: str) -> list[str]:
    if not ids:
        raise CorpusError(f"{where} holds no validation dialogue ids")
    return list(dict.fromkeys(ids))


def _check_valid_ids(given: ValidIds, split_of: dict[str, str], path: Path) -> set[str]:
    """The given ids, which must all be trainVid dialogues of the pickle and leave training some."""
    unknown = [x for x in given.ids if x not in split_of]
    if unknown:
        raise CorpusError(f"{given.source}: {len(unknown)} validation dialogue id(s) are not in {path} "
                          f"(neither trainVid nor testVid), e.g. {unknown[:5]}")
    in_test = [x for x in given.ids if split_of[x] == "test"]
    if in_test:
        raise CorpusError(f"{given.source}: {len(in_test)} validation dialogue id(s) are testVid dialogues of "
                          f"{path}, e.g. {in_test[:5]}; validation dialogues must come from trainVid")
    if len(given.ids) >= sum(1 for split in split_of.values() if split == "train"):
        raise CorpusError(f"{given.source}: the validation ids cover every trainVid dialogue of {path}; "
                          "training needs some")
    return set(given.ids)


def _compare_splits(given: ValidIds, split_of: dict[str, str], path: Path) -> list[str]:
    """Warnings where a prepared corpus that gave the validation ids splits train/test otherwise."""
    if given.train is None or given.test is None:
        return []
    out = []
    test = {d for d, s in split_of.items() if s == "test"}
    train = {d for d, s in split_of.items() if s == "train"} - set(given.ids)
    for name, ours, theirs in (("test", test, given.test), ("train", train, given.train)):
        if ours != theirs:
            out.append(f"{path}: its {name} dialogues differ from those of {given.source} "
                       f"({len(ours - theirs)} only here, {len(theirs - ours)} only there)")
    return out


def _save_corpus(corpus: Corpus, out: Path, overwrite: bool) -> None:
    if (out / CORPUS_FILE).exists() and not overwrite:
        try:
            existing = load_prepared(out).fingerprint()
        except ValueError:
            existing = "unreadable"
        if existing != corpus.fingerprint():
            raise ValueError(
                f"{out / CORPUS_FILE} holds another corpus (fingerprint {existing[:16]}, this import "
                f"{corpus.fingerprint()[:16]}); choose another --corpus-name or --out, or pass --overwrite"
            )
        return
    save_prepared(corpus, out)
