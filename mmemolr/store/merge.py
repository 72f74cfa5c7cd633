"""Join shard files (``--shard I/N``) into one complete feature file."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from mmemolr.corpus.model import Corpus
from mmemolr.store.h5 import FeatureFileError, FeatureWriter, read_features

# Attributes every shard must share to be joined.
SHARED_ATTRS = ("corpus_name", "corpus_fingerprint", "modality", "extractor", "extractor_config", "model_id", "dim")


def merge_shards(shards: list[str | Path], out: str | Path, corpus: Corpus | None = None) -> Path:
    """Merge shard files; fails on disagreeing attributes, duplicate ids or (with a corpus) missing ids."""
    if not shards:
        raise FeatureFileError("no shard files given")
    files = [read_features(p) for p in shards]
    first = files[0]
    for ff in files[1:]:
        for key in SHARED_ATTRS:
            if str(ff.attrs.get(key)) != str(first.attrs.get(key)):
                raise FeatureFileError(
                    f"{ff.path} has {key}={ff.attrs.get(key)!r} but {first.path} has {first.attrs.get(key)!r}; "
                    "shards of different runs cannot be merged"
                )
    counts = Counter(uid for ff in files for uid in ff.ids)
    dupes = [uid for uid, n in counts.items() if n > 1]
    if dupes:
        raise FeatureFileError(f"{len(dupes)} utterance id(s) appear in more than one shard, e.g. {dupes[:3]}")
    if corpus is not None:
        if corpus.fingerprint() != first.attrs.get("corpus_fingerprint"):
            raise FeatureFileError(f"the shards were built from another corpus than {corpus.name!r} (fingerprint)")
        order = corpus.utterance_ids()
        missing = [uid for uid in order if uid not in counts]
        if missing:
            raise FeatureFileError(f"{len(missing)} corpus utterance(s) are in no shard, e.g. {missing[:3]}")
    else:
        order = [uid for ff in files for uid in ff.ids]
        total = {str(ff.attrs.get("shard", "")).split("/")[-1] for ff in files}
        if len(total) == 1 and total != {""} and int(total.pop()) != len(files):
            raise FeatureFileError(f"{len(files)} shard files given, but they were written as shards of {first.attrs.get('shard')}")
    attrs = {k: v for k, v in first.attrs.items() if k not in ("format", "format_version", "complete", "completed", "created")}
    attrs["shard"] = "1/1"
    attrs["merged_from"] = json.dumps([str(p) for p in shards])
    with FeatureWriter(out, order, attrs, overwrite=True) as writer:
        for ff in files:
            ok = ff.available
            writer.write([uid for uid, a in zip(ff.ids, ok) if a], ff.features[ok])
            for uid, kind, message in ff.errors:
                writer.fail(uid, kind, message)
        if not writer.complete:
            raise FeatureFileError(f"{len(writer.pending_ids)} ids were not processed in any shard, e.g. {writer.pending_ids[:3]}")
    return Path(out)
