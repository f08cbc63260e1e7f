"""A dependency-free progress line for long loops (epochs, chunks), written to stderr."""

from __future__ import annotations

import sys
import time


class Progress:
    """Prints ``label k/total  metrics  elapsed`` in place on a terminal, or a line every
    ``max(1, total // 10)`` updates when stderr is not a terminal (logs stay short)."""

    def __init__(self, total: int, label: str, *, enabled: bool = True, stream=None):
        self.total, self.label, self.enabled = total, label, enabled
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.start = time.perf_counter()
        self._open = False

    def update(self, k: int, metrics: dict | None = None) -> None:
        if not self.enabled:
            return
        every = max(1, self.total // 10)
        if not self.tty and k % every and k != self.total:
            return
        shown = "  ".join(f"{name} {value:.4g}" for name, value in (metrics or {}).items())
        line = f"{self.label} {k}/{self.total}  {shown}  [{time.perf_counter() - self.start:.1f}s]"
        if self.tty:
            self.stream.write("\r" + line + "\033[K")
            self._open = True
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self._open:
            self.stream.write("\n")
            self.stream.flush()
            self._open = False
