"""The one progress display: a bar on stderr for long work (training, checks, reports)."""

from __future__ import annotations

import sys
import time


class Progress:
    """A one-line progress bar on a terminal; plain lines elsewhere (logs, CI).

    ``terminal_only=True`` writes nothing at all when the stream is not a terminal (for
    work whose output is a result, not a log).  ``interval`` (seconds) skips updates that
    come sooner than that after the last one drawn, so a loop may report every element;
    the final update (``done == total``) is always drawn.
    """

    def __init__(self, stream=None, width=30, terminal_only=False, interval=0.0):
        self.stream = stream or sys.stderr
        self.width = width
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.enabled = self.tty or not terminal_only
        self.interval = interval
        self.start = time.perf_counter()
        self._drawn = None

    def __call__(self, done, total, label):
        if not self.enabled:
            return
        now = time.perf_counter()
        if (
            self.interval
            and done < total
            and self._drawn is not None
            and now - self._drawn < self.interval
        ):
            return
        self._drawn = now
        elapsed = now - self.start
        filled = int(self.width * done / total) if total else self.width
        bar = "#" * filled + "-" * (self.width - filled)
        line = f"[{bar}] {done}/{total} {elapsed:5.0f} s  {label}"
        if self.tty:
            self.stream.write("\r" + line.ljust(80) + ("\n" if done == total else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


def terminal_progress(interval=0.1):
    """A Progress on stderr that draws only on a terminal, at most every ``interval`` s."""
    return Progress(terminal_only=True, interval=interval)
