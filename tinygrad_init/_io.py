"""Writing files atomically: a temporary file beside the target, then a rename.

A reader sees either the old file or the complete new one, never a half-written file, and
a failure (or Ctrl-C) at any point leaves an earlier file untouched and no temporary file
behind.  New files get the usual permissions (0666 less the umask).
"""

from __future__ import annotations

import contextlib
import os
import secrets

__all__ = ["atomic_write"]


def atomic_write(path, data, what="write"):
    """Write the bytes ``data`` to a temporary file beside ``path``, fsync it, then rename it
    over ``path``; return ``path`` as a string.  ``what`` names the caller in errors."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = os.path.join(directory, f".{base}.{secrets.token_hex(6)}.tmp")
        try:
            fd = os.open(tmp, flags, 0o666)  # the umask applies, as for a plain open()
            break
        except FileExistsError:
            continue
        except OSError as e:
            raise type(e)(
                e.errno,
                f"{what}: cannot create a file in {directory!r} to write {path!r}: {e.strerror}",
            ) from e
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if hasattr(os, "O_DIRECTORY"):  # make the rename itself durable (POSIX)
        with contextlib.suppress(OSError):
            dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
    return path
