"""Progress of a training run: one status line on stderr."""

from __future__ import annotations

import sys
import time


class Progress:
    """One status line on stderr (rewritten in place on a terminal, else every ~2 s)."""

    def __init__(self, enabled: bool, label: str):
        self.enabled, self.label = enabled, label
        self.tty = enabled and sys.stderr.isatty()
        self._last, self._text, self._shown = 0.0, None, None

    def update(self, text: str) -> None:
        if not self.enabled:
            return
        self._text = text
        now = time.monotonic()
        if now - self._last >= (0.2 if self.tty else 2.0):
            self._last = now
            self._show()

    def _show(self) -> None:
        line = f"{self.label} {self._text}"
        print(f"\r{line}\033[K" if self.tty else line, end="" if self.tty else "\n",
              file=sys.stderr, flush=True)
        self._shown = self._text

    def close(self) -> None:
        """Show the last state (if not shown yet) and end the line."""
        if self.enabled and self._text is not None and self._text != self._shown:
            self._show()
        if self.tty and self._shown is not None:
            print(file=sys.stderr, flush=True)
