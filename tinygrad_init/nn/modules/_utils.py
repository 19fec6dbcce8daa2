"""Small helpers shared by the layer files."""

from __future__ import annotations

import numpy as np

from ... import init as _init
from ...tensor import ShapeError, get_default_dtype

__all__ = ["pair", "float_dtype", "initialize", "shape_error", "check_positive_int"]


def pair(value, name, layer):
    """``(v, v)`` for an int, the pair itself for a 2-sequence."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return (int(value), int(value))
    if (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value)
    ):
        return (int(value[0]), int(value[1]))
    raise TypeError(f"{layer}: {name} must be an int or a pair of ints, got {value!r}")


def check_positive_int(value, name, layer):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{layer}: {name} must be a positive integer, got {value!r}")
    return int(value)


def float_dtype(dtype, layer):
    """``dtype`` as a numpy floating dtype (the default dtype when None)."""
    dtype = np.dtype(get_default_dtype() if dtype is None else dtype)
    if not np.issubdtype(dtype, np.floating):
        raise TypeError(f"{layer}: dtype must be a floating dtype, got {dtype}")
    return dtype


def initialize(tensor, chosen, default, generator):
    """Fill ``tensor`` (nothing when it is None) with the chosen initializer, a function or
    a registry name, or with ``default`` when none was chosen; both get ``generator``."""
    if tensor is None:
        return
    fill = default if chosen is None else _init.get_initializer(chosen)
    fill(tensor, generator=generator)


def shape_error(module, expected, got, described=None):
    """A ShapeError naming the layer (its one-line repr unless ``described``), what it
    expects and what it got."""
    described = described or f"{module._get_name()}({module.extra_repr()})"
    return ShapeError(f"{described}: expected {expected}, got shape {tuple(got)}")
