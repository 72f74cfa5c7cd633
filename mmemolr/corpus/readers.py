"""Helpers shared by the adapters: tolerant CSV reading, text repair and time parsing."""

from __future__ import annotations

import codecs
import csv
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

from mmemolr.corpus.model import CorpusError

logger = logging.getLogger(__name__)
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


class DecodingLog:
    """Lines that were not valid UTF-8 (their invalid bytes read as cp1252), per file, while a corpus loads."""

    def __init__(self) -> None:
        self.lines: dict[str, list[int]] = {}

    def add(self, path: Path, line: int) -> None:
        self.lines.setdefault(str(path), []).append(line)

    def warnings(self, shown: int = 10) -> list[str]:
        out = []
        for path, lines in self.lines.items():
            listed = ", ".join(map(str, lines[:shown])) + (f" and {len(lines) - shown} more" if len(lines) > shown else "")
            out.append(
                f"{path}: {len(lines)} line(s) are not valid UTF-8; their invalid bytes were read as cp1252 "
                f"(Windows-1252): line(s) {listed}; check their text, or re-save the file as UTF-8"
            )
        return out


# The log of the corpus being loaded (set by load_corpus), so every adapter's reads are counted.
_DECODING_LOG: ContextVar[DecodingLog | None] = ContextVar("decoding_log", default=None)


@contextmanager
def logging_decoding() -> Iterator[DecodingLog]:
    """Collect, for the duration of the block, every line in which :func:`read_text_file` read cp1252 bytes."""
    log = DecodingLog()
    token = _DECODING_LOG.set(log)
    try:
        yield log
    finally:
        _DECODING_LOG.reset(token)


def _cp1252_for_invalid_bytes(err: UnicodeError) -> tuple[str, int]:
    """Codec error handler: the bytes UTF-8 cannot read are read as cp1252 (the rest of the line stays UTF-8)."""
    assert isinstance(err, UnicodeDecodeError)
    out = []
    for position in range(err.start, err.end):
        try:
            out.append(err.object[position:position + 1].decode("cp1252"))
        except UnicodeDecodeError:
            raise UnicodeDecodeError("cp1252", err.object, position, position + 1, "undefined in cp1252") from None
    return "".join(out), err.end


codecs.register_error("mmemolr-cp1252-fallback", _cp1252_for_invalid_bytes)


def decode_lines(raw: bytes, path: Path) -> str:
    """Decode as UTF-8; in a line that is not valid UTF-8 only the invalid bytes are read as cp1252 (the
    legacy encoding), so one stray byte garbles neither the other lines nor its own line's UTF-8 text.
    Each such line is logged; a byte that is neither is an error naming the file, line and column."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            return raw.decode("utf-16")
        except UnicodeDecodeError as err:
            raise CorpusError(f"{path}: starts like UTF-16 but does not decode as UTF-16 ({err.reason}); "
                              "re-save the file as UTF-8") from None
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        pass
    log = _DECODING_LOG.get()
    out = []
    # No multi-byte UTF-8 character contains the byte 0x0A, so lines split safely.
    for number, line in enumerate(raw.split(b"\n"), 1):
        try:
            out.append(line.decode("utf-8"))
            continue
        except UnicodeDecodeError:
            pass
        try:
            out.append(line.decode("utf-8", errors="mmemolr-cp1252-fallback"))
        except UnicodeDecodeError as err:
            raise CorpusError(
                f"{path}: line {number}: bytes are neither UTF-8 nor cp1252 (byte 0x{line[err.start]:02x} at "
                f"column {err.start + 1}); re-save the file as UTF-8"
            ) from None
        if log is not None:
            log.add(path, number)
        else:
            logger.warning("%s: line %d is not valid UTF-8; its invalid bytes were read as cp1252", path, number)
    return "\n".join(out)


def read_text_file(path: Path) -> str:
    """Read a text file as UTF-8; bytes that are not UTF-8 are read as cp1252 and logged (see decode_lines)."""
    return decode_lines(Path(path).read_bytes(), Path(path))


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
