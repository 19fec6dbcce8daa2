"""Writing a diagram to a file whose extension names the format."""

from __future__ import annotations

import os

from .._io import atomic_write

__all__ = ["FORMATS", "render", "write_source"]

FORMATS = {".svg": "svg", ".png": "png", ".pdf": "pdf", ".dot": "dot", ".gv": "dot"}


def _format(path):
    ext = os.path.splitext(str(path))[1].lower()
    if ext not in FORMATS:
        raise ValueError(
            f"cannot tell the output format of {str(path)!r}: use one of {', '.join(FORMATS)}"
        )
    return FORMATS[ext]


def write_source(dot, path):
    """Write the DOT source of ``dot`` to ``path``."""
    return atomic_write(path, dot.source.encode("utf-8"), "write_source")


def render(dot, path):
    """Write ``dot`` to ``path`` in the format its extension names (atomically)."""
    fmt = _format(path)
    if fmt == "dot":
        return write_source(dot, path)
    return atomic_write(path, dot.pipe(format=fmt), "render")
