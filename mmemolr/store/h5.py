"""HDF5 feature files: one per corpus and extractor, self-describing and resumable.

Layout (see features/README.md):
  features   float32 (N, D)  one row per utterance id, in corpus order
  ids        str (N,)        utterance ids
  available  bool (N,)       True where the row holds a real feature vector
  done       bool (N,)       True where the item was processed (written or failed)
  errors/{id,kind,message}   str (K,) per-item failures
  attrs: format, format_version, corpus_name, corpus_fingerprint, modality, extractor, extractor_config
         (JSON), model_id, weights_sha256, dim, versions (JSON), created, complete, shard, ...

A file is written under ``<name>.partial.h5`` and renamed to its final name only once every id is done,
so a file with the final name is complete; an interrupted run leaves the partial file, which resumes.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import platform
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from mmemolr.fileio import os_error_reason

FORMAT = "mmemolr-features"
FORMAT_VERSION = 1
_STR = h5py.string_dtype("utf-8")
# Reads of a file being written (read_snapshot) that meet a batch half-written are repeated this often.
SNAPSHOT_ATTEMPTS = 5
# Attributes that must agree between a partial file and the run that resumes it.
IDENTITY_ATTRS = ("corpus_fingerprint", "modality", "extractor", "extractor_config", "model_id", "dim", "shard")


class FeatureFileError(ValueError):
    """A feature file that cannot be used as asked; the message says which file and what to do."""


def partial_path(path: str | Path) -> Path:
    path = Path(path)
    return path.with_name(path.name[: -len(".h5")] + ".partial.h5" if path.name.endswith(".h5") else path.name + ".partial")


def library_versions(*names: str) -> dict[str, str]:
    """Versions of the libraries that shaped the features (plus numpy, h5py, python)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("mmemolr", "numpy", "h5py", *names):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


class FeatureWriter:
    """Resumable writer of one feature file.

    ``ids`` are the utterance ids this file covers, in corpus order; ``attrs`` must hold at least
    corpus_name, corpus_fingerprint, modality, extractor, extractor_config (dict) and dim.
    ``overwrite`` starts a new file instead of resuming or reusing one; an existing finished file is
    replaced only when the new one is complete, so a killed run never loses it.
    """

    def __init__(self, path: str | Path, ids: Sequence[str], attrs: dict[str, Any], overwrite: bool = False) -> None:
        self.path = Path(path)
        self.partial = partial_path(self.path)
        self.ids = list(ids)
        if len(set(self.ids)) != len(self.ids):
            raise FeatureFileError(f"{self.path}: the ids to write contain duplicates")
        self.attrs = _normalise_attrs(attrs)
        self.dim = int(self.attrs["dim"])
        self.row_of = {uid: i for i, uid in enumerate(self.ids)}
        if overwrite:
            # The finished file stays until its replacement is complete (close() renames over it); only an
            # earlier run's partial file is dropped, and never while another process is writing it.
            if self.partial.exists():
                _check_not_in_use(self.partial)
                self.partial.unlink()
        elif self.path.exists():
            self._check_identity(self.path)
            self._file: h5py.File | None = None
            self._done = np.ones(len(self.ids), dtype=bool)
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise _os_error(self.path.parent, err, "create the folder") from None
        if self.partial.exists():
            self._check_identity(self.partial)
            try:
                self._file = h5py.File(self.partial, "r+")
            except OSError as err:
                if _is_lock_error(err):
                    raise FeatureFileError(in_use_message(self.partial)) from None
                raise FeatureFileError(
                    f"{self.partial}: the partial file is damaged ({err}); it was probably killed mid-write. "
                    "Delete it (or pass --overwrite) to start this extraction again"
                ) from None
        else:
            try:
                self._file = self._create(self.partial)
            except OSError as err:
                raise _os_error(self.partial, err, "create") from None
        self._done = self._file["done"][:]

    def _create(self, path: Path) -> h5py.File:
        n = len(self.ids)
        f = h5py.File(path, "w")
        chunk_rows = max(1, min(n, max(1, (1 << 20) // (4 * max(self.dim, 1)))))
        f.create_dataset("features", shape=(n, self.dim), dtype="float32", chunks=(chunk_rows, self.dim) if n else None)
        f.create_dataset("ids", data=np.array(self.ids, dtype=object), dtype=_STR)
        f.create_dataset("available", shape=(n,), dtype=bool, fillvalue=False)
        f.create_dataset("done", shape=(n,), dtype=bool, fillvalue=False)
        errors = f.create_group("errors")
        for name in ("id", "kind", "message"):
            errors.create_dataset(name, shape=(0,), maxshape=(None,), dtype=_STR)
        for key, value in self.attrs.items():
            f.attrs[key] = value
        f.attrs["complete"] = False
        f.flush()
        return f

    def _check_identity(self, path: Path) -> None:
        try:
            with h5py.File(path, "r") as f:
                existing = dict(f.attrs)
                stored_ids = [s.decode() if isinstance(s, bytes) else s for s in f["ids"][:]]
        except OSError as err:
            if _is_lock_error(err):
                raise FeatureFileError(in_use_message(path)) from None
            raise FeatureFileError(f"{path}: cannot be read ({err}); delete it or pass --overwrite") from None
        for key in IDENTITY_ATTRS:
            if key in self.attrs and str(existing.get(key)) != str(self.attrs[key]):
                raise FeatureFileError(
                    f"{path} was made with {key}={existing.get(key)!r}, this run has {self.attrs[key]!r}; "
                    "write to another --out file or pass --overwrite to replace it"
                )
        if stored_ids != self.ids:
            raise FeatureFileError(f"{path} covers other utterance ids than this run; pass --overwrite to replace it")

    @property
    def pending_ids(self) -> list[str]:
        return [uid for uid, done in zip(self.ids, self._done) if not done]

    @property
    def complete(self) -> bool:
        return bool(self._done.all())

    def write(self, ids: Sequence[str], vectors: np.ndarray) -> None:
        """Store real feature vectors for ``ids`` (one row each) and mark them done."""
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.shape != (len(ids), self.dim):
            raise FeatureFileError(f"{self.partial}: got vectors of shape {vectors.shape}, expected ({len(ids)}, {self.dim})")
        bad = ~np.isfinite(vectors).all(axis=1)
        if bad.any():
            raise FeatureFileError(f"{self.partial}: non-finite feature values for {ids[int(np.argmax(bad))]!r}")
        rows = np.array([self.row_of[uid] for uid in ids], dtype=np.int64)
        order = np.argsort(rows)
        assert self._file is not None
        # h5py fancy indexing needs increasing indices; contiguous runs become one slice write.
        sorted_rows, sorted_vectors = rows[order], vectors[order]
        if len(rows) and sorted_rows[-1] - sorted_rows[0] + 1 == len(rows):
            self._file["features"][sorted_rows[0] : sorted_rows[-1] + 1] = sorted_vectors
        else:
            self._file["features"][sorted_rows] = sorted_vectors
        self._set_done(sorted_rows, available=True)

    def fail(self, uid: str, kind: str, message: str) -> None:
        """Record a per-item failure: the row stays unavailable (never a zero vector posing as data)."""
        assert self._file is not None
        errors = self._file["errors"]
        k = errors["id"].shape[0]
        for name, value in (("id", uid), ("kind", kind), ("message", message)):
            errors[name].resize((k + 1,))
            errors[name][k] = value
        self._set_done(np.array([self.row_of[uid]]), available=False)

    def fail_many(self, uids: Sequence[str], kind: str, messages: Sequence[str]) -> None:
        """:meth:`fail` for many items at once (one resize and one flush)."""
        assert self._file is not None
        if not uids:
            return
        errors = self._file["errors"]
        k = errors["id"].shape[0]
        for name, values in (("id", list(uids)), ("kind", [kind] * len(uids)), ("message", list(messages))):
            errors[name].resize((k + len(values),))
            errors[name][k:] = np.array(values, dtype=object)
        self._set_done(np.sort(np.array([self.row_of[uid] for uid in uids], dtype=np.int64)), available=False)

    def _set_done(self, rows: np.ndarray, available: bool) -> None:
        assert self._file is not None
        self._done[rows] = True
        self._file["available"][rows] = available
        # done is written last and flushed, so a killed run never marks unwritten rows as done.
        self._file.flush()
        self._file["done"][rows] = True
        self._file.flush()

    def close(self) -> Path:
        """Close; once every id is done, mark complete and move the file to its final name."""
        if self._file is None:
            return self.path
        if self.complete:
            self._file.attrs["complete"] = True
            self._file.attrs["completed"] = _now()
        self._file.close()
        self._file = None
        if self.complete:
            os.replace(self.partial, self.path)
            return self.path
        return self.partial

    def __enter__(self) -> FeatureWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def in_use_message(path: Path) -> str:
    return (f"another process is writing {path} (it holds the file's HDF5 lock): wait for it to finish, or stop "
            "it and rerun this command to resume; to write elsewhere meanwhile, give another --out file. "
            "Do not delete the file while the other process runs")


def _is_lock_error(err: OSError) -> bool:
    """HDF5 could not take the file lock: another process has the file open for writing."""
    return err.errno in (errno.EAGAIN, errno.EWOULDBLOCK) or "unable to lock file" in str(err)


def _check_not_in_use(path: Path) -> None:
    """Fail when another process is writing ``path`` (a damaged, unreadable file is not in use)."""
    try:
        h5py.File(path, "r").close()
    except OSError as err:
        if _is_lock_error(err):
            raise FeatureFileError(in_use_message(path)) from None


def _os_error(path: Path, err: OSError, doing: str) -> FeatureFileError:
    """A plain message for an OS error on a feature file (h5py's own names flags and o_flags)."""
    if _is_lock_error(err):
        return FeatureFileError(in_use_message(path))
    return FeatureFileError(f"cannot {doing} {path}: {os_error_reason(err)}")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _normalise_attrs(attrs: dict[str, Any]) -> dict[str, Any]:
    required = ("corpus_name", "corpus_fingerprint", "modality", "extractor", "dim")
    missing = [k for k in required if k not in attrs]
    if missing:
        raise FeatureFileError(f"feature file attributes missing: {', '.join(missing)}")
    out: dict[str, Any] = {"format": FORMAT, "format_version": FORMAT_VERSION, "created": _now()}
    for key, value in attrs.items():
        if isinstance(value, (dict, list, tuple)):
            value = json.dumps(value, sort_keys=True)
        elif value is None:
            value = ""
        out[key] = value
    out.setdefault("extractor_config", "{}")
    out.setdefault("model_id", "")
    out.setdefault("shard", "1/1")
    out.setdefault("versions", json.dumps(library_versions(), sort_keys=True))
    return out


@dataclass
class FeatureFile:
    """A feature file read into memory."""

    path: Path
    attrs: dict[str, Any]
    ids: list[str]
    features: np.ndarray  # (N, D) float32
    available: np.ndarray  # (N,) bool
    done: np.ndarray  # (N,) bool
    errors: list[tuple[str, str, str]]

    @property
    def dim(self) -> int:
        return int(self.features.shape[1])

    @property
    def modality(self) -> str:
        return str(self.attrs.get("modality", ""))

    def config(self) -> dict[str, Any]:
        return json.loads(self.attrs.get("extractor_config") or "{}")

    def content_sha256(self) -> str:
        """SHA-256 of what training reads: the ids in order, the feature matrix and the availability mask.

        Independent of the file's path, attributes and HDF5 layout, so a moved or re-chunked copy has
        the same checksum and any changed value has another.
        """
        digest = hashlib.sha256()
        digest.update(json.dumps(self.ids).encode())
        features = np.ascontiguousarray(self.features, dtype="<f4")
        digest.update(f"{features.shape}".encode())
        digest.update(features.tobytes())
        digest.update(np.ascontiguousarray(self.available, dtype=bool).tobytes())
        return digest.hexdigest()

    def rows_for(self, ids: Iterable[str]) -> np.ndarray:
        index = {uid: i for i, uid in enumerate(self.ids)}
        return np.array([index[uid] for uid in ids], dtype=np.int64)


def read_features(path: str | Path, allow_partial: bool = False, locking: bool = True) -> FeatureFile:
    """Read a feature file; a partial (interrupted) file is refused unless ``allow_partial``.

    ``locking=False`` does not take HDF5's file lock (see ``read_snapshot``).
    """
    path = Path(path)
    if not path.exists():
        hint = f" (an interrupted run left {partial_path(path)}; rerun the extraction to finish it)" if partial_path(path).exists() else ""
        raise FeatureFileError(f"feature file {path} does not exist{hint}")
    try:
        with h5py.File(path, "r", locking=locking) as f:
            attrs = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in f.attrs.items()}
            if attrs.get("format") != FORMAT:
                raise FeatureFileError(f"{path} is not an mmemolr feature file (format={attrs.get('format')!r})")
            if not attrs.get("complete") and not allow_partial:
                raise FeatureFileError(f"{path} is incomplete (interrupted extraction); rerun the extraction to finish it")
            ids = [s.decode() if isinstance(s, bytes) else str(s) for s in f["ids"][:]]
            errors = []
            if "errors" in f:
                e = f["errors"]
                errors = [
                    tuple(x.decode() if isinstance(x, bytes) else str(x) for x in row)
                    for row in zip(e["id"][:], e["kind"][:], e["message"][:])
                ]
            return FeatureFile(
                path=path, attrs=attrs, ids=ids, features=f["features"][:],
                available=f["available"][:].astype(bool), done=f["done"][:].astype(bool), errors=errors,
            )
    except OSError as err:
        raise FeatureFileError(f"{path}: cannot be read as HDF5 ({err})") from None


def read_snapshot(path: str | Path) -> FeatureFile:
    """Read a feature file, complete or partial, even while an extraction is writing it.

    HDF5 locks a file open for writing against every other process, readers included, so this reads
    without the lock. The writer flushes after every batch; a read that meets a batch half-written fails
    or sees the datasets disagree, and is repeated.
    """
    for attempt in range(SNAPSHOT_ATTEMPTS):
        try:
            ff = read_features(path, allow_partial=True, locking=False)
            if len(ff.ids) == len(ff.done) == len(ff.available) == ff.features.shape[0]:
                return ff
            problem: Exception = FeatureFileError(f"{path}: datasets of different lengths (being written?)")
        except FeatureFileError as err:
            if "cannot be read as HDF5" not in str(err):
                raise
            problem = err
        except (KeyError, ValueError) as err:
            problem = err
        if attempt + 1 < SNAPSHOT_ATTEMPTS:
            time.sleep(0.2)  # the writer is between two flushes; look again
    raise problem


def being_written(path: str | Path) -> bool:
    """True when another process holds the file open for writing (its HDF5 lock is taken)."""
    try:
        with h5py.File(path, "r"):
            return False
    except OSError as err:
        return "lock" in str(err).lower()


def read_attrs(path: str | Path) -> dict[str, Any]:
    with h5py.File(path, "r") as f:
        return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in f.attrs.items()}


def find_feature_files(directory: str | Path, modality: str | None = None) -> list[Path]:
    """Complete feature files in ``directory`` (optionally of one modality), sorted by name."""
    out = []
    for path in sorted(Path(directory).glob("*.h5")):
        if path.name.endswith(".partial.h5"):
            continue
        try:
            attrs = read_attrs(path)
        except OSError:
            continue
        if attrs.get("format") == FORMAT and (modality is None or attrs.get("modality") == modality):
            out.append(path)
    return out
