"""Progress of long runs (training, lr sweeps, tracked inference runs) on stderr: a tqdm bar
with the total, the rate and an ETA, the latest loss/energy as postfix.

tqdm is imported lazily (the core imports only the standard library, pluggy, attrs and
array-api-compat); without it the same information goes out as a plain status line.
Callers update the bar only where they already have host numbers (training: at each
``log_every`` flush), so progress never adds a device-to-host sync.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any

from ..hookspecs import hookimpl


def _tqdm() -> Any:
    """The ``tqdm`` class, or None when tqdm is not installed."""
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm


def write(message: str) -> None:
    """Print ``message`` on stderr without breaking an active progress bar."""
    tqdm = _tqdm()
    if tqdm is None:
        print(message, file=sys.stderr, flush=True)
    else:
        tqdm.write(message, file=sys.stderr)


def _format(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


class Progress:
    """A progress bar on stderr: ``label`` (e.g. ``"[eo] epoch 1/3"``), ``done/total``
    ``unit``s, rate, ETA and a postfix of the latest numbers. Does nothing when not
    ``enabled``. Use as a context manager or call :meth:`close`.
    """

    def __init__(self, enabled: bool, label: str, total: int | None = None, initial: int = 0,
                 unit: str = "step"):
        self.enabled, self.total, self.unit = bool(enabled), total, unit
        self._bar, self._line = None, None
        if not self.enabled:
            return
        tqdm = _tqdm()
        if tqdm is not None:
            tty = sys.stderr.isatty()
            self._bar = tqdm(total=total, initial=initial, desc=label, unit=unit, file=sys.stderr,
                             dynamic_ncols=tty, mininterval=0.2 if tty else 5.0, leave=True)
        else:
            self._line = _PlainLine(label, total, initial, unit)

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def update(self, done: int, label: str | None = None, **postfix: Any) -> None:
        """``done`` units finished in all (absolute, not an increment); ``label`` replaces
        the description; ``postfix`` (e.g. ``loss=0.12``) the numbers shown after the ETA
        (None values are left out)."""
        shown = {k: _format(v) for k, v in postfix.items() if v is not None}
        if self._bar is not None:
            if label is not None:
                self._bar.set_description_str(label, refresh=False)
            if shown:
                self._bar.set_postfix(shown, refresh=False)
            if done != self._bar.n:
                self._bar.update(done - self._bar.n)
        elif self._line is not None:
            self._line.update(done, label, shown)

    def close(self) -> None:
        """Show the final state and end the line."""
        if self._bar is not None:
            self._bar.close()
        elif self._line is not None:
            self._line.close()
        self._bar = self._line = None


class _PlainLine:
    """The fallback without tqdm: ``label done/total unit [elapsed<eta] k=v`` on one line,
    rewritten in place on a terminal, else printed every ~5 s."""

    def __init__(self, label: str, total: int | None, initial: int, unit: str):
        self.label, self.total, self.unit = label, total, unit
        self.tty = sys.stderr.isatty()
        self.start, self.first, self.done = time.monotonic(), initial, initial
        self.postfix: dict = {}
        self._last, self._dirty, self._shown = 0.0, False, False

    def update(self, done: int, label: str | None, postfix: dict) -> None:
        self.done, self._dirty = done, True
        self.label = self.label if label is None else label
        self.postfix.update(postfix)
        now = time.monotonic()
        if now - self._last >= (0.2 if self.tty else 5.0):
            self._last = now
            self._show()

    def _text(self) -> str:
        elapsed = time.monotonic() - self.start
        count = f"{self.done}" if self.total is None else f"{self.done}/{self.total}"
        times = _clock(elapsed)
        rate = (self.done - self.first) / elapsed if elapsed > 0 else 0.0
        if self.total is not None and rate > 0:
            times += f"<{_clock((self.total - self.done) / rate)}"
        extra = ", ".join(f"{k}={v}" for k, v in self.postfix.items())
        return f"{self.label}: {count} {self.unit} [{times}{', ' + extra if extra else ''}]"

    def _show(self) -> None:
        line = self._text()
        print(f"\r{line}\033[K" if self.tty else line, end="" if self.tty else "\n",
              file=sys.stderr, flush=True)
        self._dirty, self._shown = False, True

    def close(self) -> None:
        if self._dirty:
            self._show()
        if self.tty and self._shown:
            print(file=sys.stderr, flush=True)


def _clock(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


class InferenceProgress:
    """Observer plugin advancing ``progress`` at inference steps: ``offset + iteration``.

    For runs that are observed step by step anyway (e.g. with trackers): it declares
    ``pccore_every = every`` (pass the gcd of the other observers' ``every``) so it never
    makes the driver stop at more points than they do, and reads no device value.
    """

    def __init__(self, progress: Progress, offset: int = 0, every: int = 1):
        self.progress, self.offset, self.pccore_every = progress, offset, every

    @hookimpl
    def pccore_inference_step(self, step):
        self.progress.update(self.offset + step.iteration)
