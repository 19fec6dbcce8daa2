"""Gradient clipping (``torch.nn.utils.clip_grad_norm_`` / ``clip_grad_value_``).

Both act in place on the ``.grad`` of the given parameters (a single Tensor or an
iterable of them); parameters whose ``.grad`` is None are skipped.
"""

from __future__ import annotations

import math

import numpy as np

from ..replay import effect
from ..tensor import Tensor

__all__ = ["clip_grad_norm_", "clip_grad_value_", "get_total_norm", "clip_grads_with_norm_"]


def _as_list(tensors):
    if isinstance(tensors, Tensor):
        return [tensors]
    return list(tensors)


def _grads(parameters):
    return [p for p in _as_list(parameters) if p.grad is not None]


def _vector_norm(a, p):
    """``torch.linalg.vector_norm(a, p)`` of an array, in its own dtype."""
    if a.size == 0:
        return a.dtype.type(0)
    if p == 2.0:
        flat = a.reshape(-1)
        return np.sqrt(np.dot(flat, flat))
    if p == math.inf:
        return np.maximum(a.max(), -a.min())
    if p == -math.inf:
        return np.abs(a).min()
    if p == 0.0:
        return a.dtype.type(np.count_nonzero(a))
    if p == 1.0:
        return np.abs(a).sum()
    return (np.abs(a) ** a.dtype.type(p)).sum() ** a.dtype.type(1.0 / p)


@effect
def get_total_norm(tensors, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    r"""The norm of the norms of ``tensors``: as if all were concatenated into one vector.

    ``total = ||(||t_1||_p, ..., ||t_n||_p)||_p``; ``norm_type`` may be ``inf``.  ``foreach``
    is accepted for PyTorch compatibility and ignored.
    """
    tensors = [t._array if isinstance(t, Tensor) else np.asarray(t) for t in _as_list(tensors)]
    norm_type = float(norm_type)
    if not tensors:
        return Tensor._make(np.asarray(0.0, dtype=np.float32))
    dtype = np.result_type(*tensors)
    norms = np.array([_vector_norm(t, norm_type) for t in tensors], dtype=dtype)
    total = np.asarray(_vector_norm(norms, norm_type), dtype=dtype)
    if error_if_nonfinite and not np.isfinite(total):
        raise RuntimeError(
            f"The total norm of order {norm_type} for gradients from "
            "`parameters` is non-finite, so it cannot be clipped. To disable "
            "this error and scale the gradients by the non-finite norm anyway, "
            "set `error_if_nonfinite=False`"
        )
    return Tensor._make(total)


@effect
def clip_grads_with_norm_(parameters, max_norm, total_norm, foreach=None):
    r"""Scale gradients given their precomputed ``total_norm``.

    ``g = g * min(1, max_norm / (total_norm + 1e-6))`` for every gradient; nothing is
    touched when that factor is 1.
    """
    params = _grads(parameters)
    total = total_norm._array if isinstance(total_norm, Tensor) else np.asarray(total_norm)
    coef = float(max_norm) / (total + total.dtype.type(1e-6))
    if coef >= 1.0:  # also False for NaN, which then spreads to the grads as in PyTorch
        return
    for p in params:
        g = p.grad._array
        if g.flags.writeable:
            g *= coef.astype(g.dtype)
        else:
            p.grad = Tensor._make(g * coef.astype(g.dtype))


@effect
def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False, foreach=None):
    r"""Scale the gradients in place so that their total norm is at most ``max_norm``.

    ``total = ||(||g_1||_p, ..., ||g_n||_p)||_p`` over all gradients, as if they were one
    vector (``norm_type`` p may be ``inf``: the largest absolute entry).  Then
    ``g = g * max_norm / (total + 1e-6)`` for every gradient, but only when that factor is
    below 1.  Returns ``total`` (before clipping) as a 0-d Tensor.

    With ``error_if_nonfinite=True`` a NaN or infinite total raises RuntimeError and the
    gradients are left as they were.
    """
    params = _grads(parameters)
    max_norm = float(max_norm)
    total = get_total_norm([p.grad for p in params], norm_type, error_if_nonfinite)
    clip_grads_with_norm_(params, max_norm, total)
    return total


@effect
def clip_grad_value_(parameters, clip_value, foreach=None):
    r"""Clamp every gradient entry to ``[-clip_value, clip_value]``, in place.

    ``g = min(max(g, -clip_value), clip_value)``.  Returns None.
    """
    clip_value = float(clip_value)
    for p in _grads(parameters):
        g = p.grad._array
        if g.flags.writeable:
            np.clip(g, -clip_value, clip_value, out=g)
        else:
            p.grad = Tensor._make(np.clip(g, -clip_value, clip_value))
