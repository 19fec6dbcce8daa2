"""Writing a diagram to a file whose extension names the format."""

from __future__ import annotations

import os
import tempfile

__all__ = ["FORMATS", "render", "write_source"]

FORMATS = {".svg": "svg", ".png": "png", ".pdf": "pdf", ".dot": "dot", ".gv": "dot"}


def _format(path):
    ext = os.path.splitext(str(path))[1].lower()
    if ext not in FORMATS:
        raise ValueError(f"cannot tell the output format of {str(path)!r}: use one of "
                         f"{', '.join(FORMATS)}")
    return FORMATS[ext]


def _atomic_write(path, data):
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-")
    try:
        os.chmod(tmp, 0o666 & ~_umask())   # mkstemp makes 0600; a new file gets the usual
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return str(path)


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_source(dot, path):
    """Write the DOT source of ``dot`` to ``path``."""
    return _atomic_write(path, dot.source.encode("utf-8"))


def render(dot, path):
    """Write ``dot`` to ``path`` in the format its extension names (atomically)."""
    fmt = _format(path)
    if fmt == "dot":
        return write_source(dot, path)
    return _atomic_write(path, dot.pipe(format=fmt))
