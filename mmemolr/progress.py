"""Progress of long work: a bar on a terminal, plain log lines everywhere else.

A tqdm bar redraws one line with carriage returns; under nohup, tmux logging or a batch scheduler that
is unreadable, and with the bar switched off a long command used to print nothing at all until it ended.
So every long command reports through :class:`Progress`: a bar when stderr is a terminal (or a Jupyter
kernel), otherwise one plain line per step with count, rate, elapsed time and ETA. ``--no-progress``
asks for the lines on a terminal too; only an explicit ``progress=False`` (``train --quiet``, library
callers) is silent.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, Literal, TextIO

ProgressMode = Literal["auto", "bar", "lines", "off"]
MODES = ("auto", "bar", "lines", "off")
# Fine-grained work (utterances) prints a line every 5% by default, and at least every LINE_INTERVAL
# seconds while items keep arriving, so a slow job still shows it is alive.
DEFAULT_LINES = 20
LINE_INTERVAL = 60.0


def resolve_mode(progress: bool | str, stream: TextIO | None = None) -> str:
    """``True``/``"auto"``: a bar on a terminal or in Jupyter, lines otherwise; ``False``/``"off"``:
    nothing; ``"bar"``/``"lines"`` as named."""
    if progress is True or progress == "auto":
        stream = stream if stream is not None else sys.stderr
        interactive = bool(getattr(stream, "isatty", lambda: False)()) or "ipykernel" in sys.modules
        return "bar" if interactive else "lines"
    if progress is False or progress == "off":
        return "off"
    if progress in ("bar", "lines"):
        return str(progress)
    raise ValueError(f"progress must be one of {', '.join(MODES)} (or True/False), got {progress!r}")


def format_duration(seconds: float) -> str:
    """``0:42``, ``12:05``, ``1:02:41``."""
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def format_rate(per_second: float, unit: str) -> str:
    """``834.2 utt/s`` for fast work; ``3.5 s/epoch`` or ``4.1 min/run`` for slow."""
    if per_second >= 1:
        return f"{per_second:.1f} {unit}/s"
    seconds = 1 / per_second
    return f"{seconds:.1f} s/{unit}" if seconds < 120 else f"{seconds / 60:.1f} min/{unit}"


class Progress:
    """Count finished items of ``total``; ``initial`` were done before (a resumed job).

    ``update(n, status)`` adds ``n`` finished items; ``status`` (e.g. "failed 3", a run's score) is shown
    after the bar or at the end of the line. In line mode a line is printed every ``every`` items
    (default: every 5% of the total), after ``interval`` seconds without one, and on close if the last
    items were not reported yet.
    """

    def __init__(self, total: int, desc: str, unit: str = "it", initial: int = 0, progress: bool | str = True,
                 every: int | None = None, interval: float = LINE_INTERVAL, stream: TextIO | None = None,
                 clock: Callable[[], float] = time.monotonic, **bar_options: Any) -> None:
        self.total, self.desc, self.unit = int(total), desc, unit
        self.initial = self.done = int(initial)
        self.stream = stream if stream is not None else sys.stderr
        self.mode = resolve_mode(progress, self.stream)
        self.every = max(1, int(every)) if every else max(1, self.total // DEFAULT_LINES)
        self.interval = interval
        self.clock = clock
        self.started = self.last_line = clock()
        self.next_line = self.done + self.every
        self.reported = self.done
        self.status: str | None = None
        self.bar: Any = None
        if self.mode == "bar":
            from tqdm.auto import tqdm

            self.bar = tqdm(total=self.total, initial=self.done, desc=desc, unit=unit, dynamic_ncols=True,
                            file=self.stream, **bar_options)

    def update(self, n: int = 1, status: str | None = None) -> None:
        self.done += n
        if status is not None and status != self.status:
            self.status = status
            if self.bar is not None:
                self.bar.set_postfix_str(status, refresh=False)
        if self.bar is not None:
            self.bar.update(n)
        elif self.mode == "lines":
            now = self.clock()
            if self.done >= self.next_line or self.done >= self.total or now - self.last_line >= self.interval:
                self._line(now)

    def line(self, now: float | None = None) -> str:
        """The plain progress line as it stands."""
        now = self.clock() if now is None else now
        elapsed = now - self.started
        parts = [f"{self.desc}: {self.done}/{self.total} {self.unit}"
                 + (f" ({100 * self.done / self.total:.0f}%)" if self.total else "")]
        new = self.done - self.initial
        if new > 0 and elapsed > 0:
            rate = new / elapsed
            parts.append(format_rate(rate, self.unit))
            parts.append(f"elapsed {format_duration(elapsed)}")
            if self.done < self.total:
                parts.append(f"ETA {format_duration((self.total - self.done) / rate)}")
        else:
            parts.append(f"elapsed {format_duration(elapsed)}")
        text = ", ".join(parts)
        return f"{text}; {self.status}" if self.status else text

    def _line(self, now: float) -> None:
        print(self.line(now), file=self.stream, flush=True)
        self.last_line = now
        self.reported = self.done
        self.next_line = (self.done // self.every + 1) * self.every

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
        elif self.mode == "lines" and self.done != self.reported:
            self._line(self.clock())

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
