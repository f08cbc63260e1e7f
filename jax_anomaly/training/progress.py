"""A progress line for long work (epochs, scoring chunks, table rows), written to stderr.

On a terminal it is one line rewritten in place; elsewhere (CI logs, files) it is a plain
line at every tenth of the work and at the end. It shows done/total, the rate, the ETA and
the elapsed time, and any metrics given. (A library such as ``rich`` or ``tqdm`` would
draw the terminal line, but neither writes the plain periodic lines a log needs, and the
whole class is this page.)
"""

from __future__ import annotations

import sys
import time


def format_seconds(seconds: float) -> str:
    """``75.2 -> '1m15s'``, ``3.4 -> '3.4s'``, ``4000 -> '1h06m'``."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


class Progress:
    """``label k/total  rate unit/s  ETA ...  metrics  [elapsed]``.

    Args:
      total: units of work (epochs, samples, classes).
      label: what is being done (``train``, ``score``).
      enabled: False makes every call a no-op (``--quiet``, ``progress=False``).
      unit: what ``total`` counts, shown with the rate.
      stream: where to write (stderr).
    """

    def __init__(self, total: int, label: str, *, enabled: bool = True, unit: str = "", stream=None):
        self.total, self.label, self.enabled, self.unit = total, label, enabled, unit
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.start = time.perf_counter()
        self._open = False
        self._first = None  # (k, time) of the first update past 0: the rate leaves out start-up
        self._printed = -1

    def line(self, k: int, metrics: dict | None = None) -> str:
        """The text shown after ``k`` of ``total`` units."""
        now = time.perf_counter()
        parts = [f"{self.label} {k}/{self.total}"]
        if self._first is not None and k > self._first[0] and now > self._first[1]:
            rate = (k - self._first[0]) / (now - self._first[1])
            unit = f" {self.unit}/s" if self.unit else "/s"
            parts.append(f"{rate:,.0f}{unit}" if rate >= 10 else f"{rate:.3g}{unit}")
            if k < self.total:
                parts.append(f"ETA {format_seconds((self.total - k) / rate)}")
        parts += [f"{name} {value:.4g}" for name, value in (metrics or {}).items()]
        parts.append(f"[{format_seconds(now - self.start)}]")
        return "  ".join(parts)

    def update(self, k: int, metrics: dict | None = None) -> None:
        """Reports ``k`` units done (cumulative; more than ``total``, e.g. padded rows, counts
        as ``total``)."""
        if not self.enabled:
            return
        k = min(k, self.total)
        if self._first is None and k > 0:  # the rate starts after the first unit (compiles)
            self._first = (k, time.perf_counter())
        step = max(1, self.total // 10)
        if not self.tty and (k == self._printed or (k // step == self._printed // step and k != self.total)):
            return  # a log file: a line every tenth, the last once
        self._printed = k
        if self.tty:
            self.stream.write("\r" + self.line(k, metrics) + "\033[K")
            self._open = True
        else:
            self.stream.write(self.line(k, metrics) + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self._open:
            self.stream.write("\n")
            self.stream.flush()
            self._open = False
