"""``--shard I/N``: split a corpus into N contiguous, dialogue-aligned parts of similar size.

Shards follow corpus order and never cut a dialogue, so shard files joined in index order are in corpus
order and every shard can build dialogue context on its own.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mmemolr.corpus.model import Corpus


@dataclass(frozen=True)
class Shard:
    index: int  # 0-based
    count: int

    @property
    def whole(self) -> bool:
        return self.count == 1

    @property
    def label(self) -> str:
        """The ``shard`` attribute of the feature file; ``1/1`` marks a whole-corpus file."""
        return "1/1" if self.whole else f"{self.index}/{self.count}"

    @property
    def file_suffix(self) -> str:
        return "" if self.whole else f".shard-{self.index}-of-{self.count}"


def parse_shard(spec: str | None) -> Shard:
    """``"I/N"`` with 0 <= I < N (``0/2`` and ``1/2`` are the two halves); None means the whole corpus."""
    if spec is None or spec == "":
        return Shard(0, 1)
    match = re.fullmatch(r"\s*([-+]?\d+)\s*/\s*([-+]?\d+)\s*", spec)
    if not match:
        raise ValueError(f"--shard {spec!r} must look like I/N, e.g. 0/4 for the first of four shards")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1:
        raise ValueError(f"--shard {spec!r}: N, the number of shards, must be at least 1 (1/1 is the whole corpus)")
    if not 0 <= index < count:
        raise ValueError(f"--shard {spec!r}: I must be in 0..{count - 1} (shards are numbered from 0), "
                         f"e.g. 0/{count} for the first of {count}")
    return Shard(index, count)


def shard_ids(corpus: Corpus, shard: Shard) -> list[str]:
    """Utterance ids of ``shard``, in corpus order.

    A dialogue goes to the shard in which its first utterance falls when the corpus is cut into N equal
    runs of utterances, so shards are balanced to within one dialogue.
    """
    total = sum(len(d) for d in corpus.dialogues)
    if shard.whole:
        return corpus.utterance_ids()
    out: list[str] = []
    before = 0
    for dialogue in corpus.dialogues:
        if min(shard.count - 1, before * shard.count // max(total, 1)) == shard.index:
            out.extend(u.id for u in dialogue.utterances)
        before += len(dialogue)
    return out
