"""Per-item failures of an extraction: the ``--max-failures`` policy and the end-of-run summary."""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import h5py

from mmemolr.tables import format_table

# Text comes from the corpus itself, so any failure is a real problem; media corpora always have a few
# broken clips, which the models handle through the availability mask.
DEFAULT_MAX_FAILURES = {"text": "0", "audio": "1%", "visual": "1%"}
# Error-table kind of an item with nothing for the modality (a text-only or audio-only row): masked like a
# failure, but not one; --max-failures counts the items that have media and failed.
ABSENT = "absent"

Error = tuple[str, str, str]  # (utterance id, kind, message)


def split_absent(errors: list[Error]) -> tuple[list[Error], list[Error]]:
    """(failures, absent items) of an errors table."""
    failures = [e for e in errors if e[1] != ABSENT]
    return failures, [e for e in errors if e[1] == ABSENT]


@dataclass(frozen=True)
class FailurePolicy:
    """How many failed items a run tolerates: a count (``5``) or a share of the items (``1%``)."""

    spec: str
    count: int | None = None
    percent: float | None = None

    def allowed(self, total: int) -> int:
        if self.count is not None:
            return self.count
        assert self.percent is not None
        return math.floor(self.percent / 100.0 * total + 1e-9)

    def exceeded(self, failures: int, total: int) -> bool:
        return failures > self.allowed(total)


def parse_max_failures(spec: str | None, modality: str) -> FailurePolicy:
    """Parse ``--max-failures``: ``N`` items or ``P%`` of the items; None gives the modality default."""
    if spec is None:
        spec = DEFAULT_MAX_FAILURES.get(modality, "0")
    text = str(spec).strip()
    percent = re.fullmatch(r"(\d+(?:\.\d*)?|\.\d+)\s*%", text)
    if percent:
        value = float(percent.group(1))
        if value > 100:
            raise ValueError(f"--max-failures {spec!r}: a percentage must be at most 100%")
        return FailurePolicy(text, percent=value)
    if re.fullmatch(r"\d+", text):
        return FailurePolicy(text, count=int(text))
    raise ValueError(f"--max-failures {spec!r} must be a number of items (e.g. 0 or 25) or a percentage (e.g. 1%)")


def read_errors(path: str | Path) -> list[tuple[str, str, str]]:
    """The errors table ``(id, kind, message)`` of a (possibly partial) feature file."""
    with h5py.File(path, "r") as f:
        if "errors" not in f:
            return []
        e = f["errors"]
        return [
            tuple(x.decode() if isinstance(x, bytes) else str(x) for x in row)  # type: ignore[misc]
            for row in zip(e["id"][:], e["kind"][:], e["message"][:])
        ]


def failure_summary(errors: list[Error], total: int, examples: int = 2) -> str:
    """Absent items (counted by reason), then a table of failure kinds with counts, share of the items
    that have media, and the first examples."""
    failures, absent = split_absent(errors)
    parts = []
    if absent:
        reasons = Counter(message for _, _, message in absent)
        parts.append(f"{len(absent):,} of {total:,} items absent ({'; '.join(f'{m}: {n:,}' for m, n in reasons.most_common())})"
                     ": nothing to extract for this modality; masked, not failures")
    present = total - len(absent)
    if not failures:
        parts.append(f"no failures: all {present:,} items {'with media ' if absent else ''}have features")
        return "\n".join(parts)
    kinds = Counter(kind for _, kind, _ in failures)
    first: dict[str, list[tuple[str, str]]] = {}
    for uid, kind, message in failures:
        bucket = first.setdefault(kind, [])
        if len(bucket) < examples:
            bucket.append((uid, message))
    rows = []
    for kind, n in kinds.most_common():
        for j, (uid, message) in enumerate(first[kind]):
            short = message if len(message) <= 100 else message[:97] + "..."
            rows.append([kind if j == 0 else "", n if j == 0 else None,
                         f"{100.0 * n / max(present, 1):.2f}%" if j == 0 else "", uid, short])
    title = f"{len(failures):,} of {present:,} items failed (rows marked unavailable, no vector written)"
    parts.append(format_table(["failure", "count", "share", "example id", "message"], rows, title=title))
    return "\n".join(parts)


def check_failures(path: str | Path, errors: list[Error], total: int, policy: FailurePolicy) -> None:
    """Raise when the failures (absent items not counted) exceed ``policy``, a share of the items with media."""
    failures, absent = split_absent(errors)
    present = total - len(absent)
    if policy.exceeded(len(failures), present):
        raise RuntimeError(
            f"{len(failures)} of {present} items failed, more than --max-failures {policy.spec} allows "
            f"({policy.allowed(present)}); the failures are recorded in {path} (mmemolr features inspect); fix "
            "the inputs and rerun with --overwrite, or raise --max-failures"
        )
