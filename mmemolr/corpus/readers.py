"""Helpers shared by the adapters: tolerant CSV reading, text repair and time parsing."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from pathlib import Path

from mmemolr.corpus.model import CorpusError

_C1 = re.compile("[\u0080-\u009f]")


def repair_c1(text: str) -> tuple[str, bool]:
    """Map C1 control characters back to the cp1252 punctuation they stood for (``\\x92`` -> ``’``).

    Old MELD CSVs were decoded as latin-1 from cp1252 bytes, leaving U+0080..U+009F in the text.
    Code points undefined in cp1252 (0x81, 0x8D, 0x8F, 0x90, 0x9D) are left as they are.
    """
    if not _C1.search(text):
        return text, False

    def fix(match: re.Match[str]) -> str:
        try:
            return bytes([ord(match.group())]).decode("cp1252")
        except UnicodeDecodeError:
            return match.group()

    return _C1.sub(fix, text), True


def read_text_file(path: Path) -> str:
    """Read a text file as UTF-8, falling back to cp1252 for legacy files written in that code page."""
    raw = path.read_bytes()
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        try:
            return raw.decode("cp1252")
        except UnicodeDecodeError:
            line = raw[: err.start].count(b"\n") + 1
            raise CorpusError(
                f"{path}: line {line}: bytes are neither UTF-8 nor cp1252 ({err.reason}); "
                "re-save the file as UTF-8"
            ) from err


def read_csv_rows(path: Path, required: list[str]) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield ``(line_number, row)`` for each record; fail with the file and column when one is missing."""
    import io

    text = read_text_file(path)
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [h.strip() for h in (reader.fieldnames or [])]
    reader.fieldnames = header
    missing = [c for c in required if c not in header]
    if missing:
        raise CorpusError(
            f"{path}: missing column(s) {', '.join(missing)}; found {', '.join(header) or 'no header'}"
        )
    for row in reader:
        line = reader.line_num
        if None in row:  # more fields than header columns
            raise CorpusError(f"{path}: line {line}: {len(header) + len(row[None])} fields, header has {len(header)}")
        empty = [c for c in required if row.get(c) is None]
        if empty:
            raise CorpusError(f"{path}: line {line}: too few fields, no value for {', '.join(empty)}")
        yield line, row


_TIME = re.compile(r"^\s*(?:(\d+):)?(\d{1,2}):(\d{1,2})(?:[,.](\d+))?\s*$")


def parse_time(value: str | None, where: str = "") -> float | None:
    """Parse ``HH:MM:SS,mmm`` / ``H:MM:SS,mmm`` / ``HH:MM:SS.mmm`` (or plain seconds) into seconds."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    match = _TIME.match(value)
    if match:
        h, m, s, frac = match.groups()
        seconds = int(h or 0) * 3600 + int(m) * 60 + int(s)
        if frac:
            seconds += int(frac) / 10 ** len(frac)
        return float(seconds)
    try:
        return float(value)
    except ValueError:
        raise CorpusError(f"{where}: cannot read time {value!r} (expected HH:MM:SS,mmm or seconds)") from None


def parse_int(value: str, column: str, where: str) -> int:
    try:
        return int(value.strip())
    except (ValueError, AttributeError):
        raise CorpusError(f"{where}: column {column} must be an integer, got {value!r}") from None
