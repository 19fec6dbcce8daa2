"""Small built-in data sets for examples, the demo and the command-line tool.

All generators are deterministic given a ``np.random.Generator`` (default: the package's
default generator) and return ``(inputs, labels)`` as Tensors: float inputs in the default
dtype and int64 class labels.
"""

from __future__ import annotations

import numpy as np

from .tensor import Tensor, default_generator, get_default_dtype

__all__ = ["spirals", "blobs", "digits", "bars"]


def _as_tensors(x, y):
    return Tensor(x.astype(get_default_dtype())), Tensor(y.astype(np.int64))


def spirals(n=600, classes=3, noise=0.1, dim=2, generator=None):
    """``classes`` interleaved spiral arms in the plane, ``n`` points in all.

    Point k of arm c sits at radius r = k / m and angle 4 r + 2 pi c / classes (plus
    Gaussian angle noise of std ``noise * 4``), with m = n // classes.  With ``dim`` > 2
    the plane is embedded in ``dim`` dimensions by a random orthogonal map (distances
    kept), so wide input layers can be studied on the same task.  Coordinates are scaled
    to unit standard deviation.  Not linearly separable.
    """
    if classes < 2 or n < classes:
        raise ValueError(
            f"spirals: need classes >= 2 and n >= classes, got n={n}, classes={classes}"
        )
    if dim < 2:
        raise ValueError(f"spirals: dim must be at least 2, got {dim}")
    gen = generator or default_generator()
    per_class = n // classes
    radius = np.tile(np.linspace(0.05, 1.0, per_class), classes)
    label = np.repeat(np.arange(classes), per_class)
    angle = 4 * radius + 2 * np.pi * label / classes + gen.normal(0, noise * 4, radius.shape)
    x = np.stack([radius * np.sin(angle), radius * np.cos(angle)], axis=1)
    order = gen.permutation(len(label))
    x, label = x[order] / x.std(), label[order]
    if dim > 2:
        q, _ = np.linalg.qr(gen.standard_normal((dim, dim)))
        x = x @ q[:2]
    return _as_tensors(x, label)


def blobs(n=600, classes=4, dim=2, spread=0.5, generator=None):
    """Gaussian blobs: class c ~ N(mu_c, spread^2 I) with centres mu_c ~ N(0, 4 I)."""
    if classes < 2 or n < classes:
        raise ValueError(f"blobs: need classes >= 2 and n >= classes, got n={n}, classes={classes}")
    gen = generator or default_generator()
    centres = gen.normal(0, 2, (classes, dim))
    label = gen.integers(0, classes, n)
    x = centres[label] + gen.normal(0, spread, (n, dim))
    return _as_tensors(x, label)


def bars(n=256, size=12, noise=0.3, generator=None):
    """Images (n, 1, size, size) of one horizontal (label 0) or vertical (label 1) bar."""
    gen = generator or default_generator()
    label = gen.integers(0, 2, n)
    images = gen.normal(0, noise, (n, 1, size, size))
    where = gen.integers(1, size - 1, n)
    horizontal = label == 0
    images[np.flatnonzero(horizontal), 0, where[horizontal], :] += 1.0
    images[np.flatnonzero(~horizontal), 0, :, where[~horizontal]] += 1.0
    return _as_tensors(images, label)


def digits(flatten=True):
    """The 1,797 8x8 handwritten digits that scikit-learn ships (offline), scaled to [0, 1].

    Needs the optional extra ``data`` (``pip install tinygrad_init[data]``).  Returns
    inputs of shape (1797, 64), or (1797, 1, 8, 8) with ``flatten=False``.
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise ImportError(
            "digits() needs scikit-learn: pip install 'tinygrad_init[data]'"
        ) from None
    bunch = load_digits()
    x = bunch.data / 16.0
    if not flatten:
        x = x.reshape(-1, 1, 8, 8)
    return _as_tensors(x, bunch.target)
