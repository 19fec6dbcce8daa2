"""The one registry of activations: how each is recognised, computed, initialised and judged.

A module is an activation when ``isinstance(module, spec.cls)`` for a registered spec, so a
user's subclass of ``nn.ReLU`` is a ReLU; ``nn.Identity``, ``Dropout`` and the
normalization layers are not activations.  Normalization layers are recognised here too
(:func:`is_norm`), by ``isinstance`` of the project's norm classes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .. import nn
from ..init import calculate_gain

__all__ = ["Activation", "REGISTRY", "lookup", "is_norm", "recommended_init", "gaussian_moments"]

_HE = "kaiming_normal (He: std = sqrt(2 / fan_in))"


def _sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))


_ERF = np.vectorize(math.erf, otypes=[float])
_SELU_SCALE, _SELU_ALPHA = 1.0507009873554805, 1.6732632423543772


@dataclass(frozen=True)
class Activation:
    """One activation: ``fn(module)`` gives its numpy function, ``gain(module)`` the init
    gain it needs (``calculate_gain``), ``saturated(y)`` a mask of outputs near an
    asymptote (None: it does not saturate), ``rectifier``: its units can die (output 0
    for every input); ``advice``: the init that matches it."""

    name: str
    cls: type
    fn: object
    gain: object
    saturated: object = None
    rectifier: bool = False
    advice: str = _HE


REGISTRY = (
    Activation(
        "ReLU",
        nn.ReLU,
        lambda m: lambda z: np.maximum(z, 0.0),
        lambda m: calculate_gain("relu"),
        rectifier=True,
    ),
    Activation(
        "LeakyReLU",
        nn.LeakyReLU,
        lambda m: lambda z: np.where(z > 0, z, m.negative_slope * z),
        lambda m: calculate_gain("leaky_relu", float(m.negative_slope)),
        advice="kaiming_normal with a=negative_slope (std = sqrt(2 / ((1 + a^2) fan_in)))",
    ),
    Activation(
        "Sigmoid",
        nn.Sigmoid,
        lambda m: _sigmoid,
        lambda m: calculate_gain("sigmoid"),
        saturated=lambda y: (y < 0.01) | (y > 0.99),
        advice="xavier_normal (Glorot: std = sqrt(2 / (fan_in + fan_out))) for a few "
        "layers; sigmoid's slope is at most 1/4 and its output is not centred, so deep "
        "sigmoid stacks vanish under any such init (Glorot & Bengio 2010): prefer "
        "tanh or ReLU",
    ),
    Activation(
        "Tanh",
        nn.Tanh,
        lambda m: np.tanh,
        lambda m: calculate_gain("tanh"),
        saturated=lambda y: np.abs(y) > 0.99,
        advice="xavier_normal with gain=calculate_gain('tanh') (Glorot: "
        "std = 5/3 * sqrt(2 / (fan_in + fan_out)))",
    ),
    Activation(
        "GELU",
        nn.GELU,
        lambda m: lambda z: 0.5 * z * (1.0 + _ERF(z / math.sqrt(2.0))),
        lambda m: calculate_gain("relu"),
    ),
    Activation(
        "SiLU", nn.SiLU, lambda m: lambda z: z * _sigmoid(z), lambda m: calculate_gain("relu")
    ),
    Activation(
        "ELU",
        nn.ELU,
        lambda m: lambda z: np.where(z > 0, z, m.alpha * np.expm1(np.minimum(z, 0))),
        lambda m: calculate_gain("relu"),
    ),
    Activation(
        "SELU",
        nn.SELU,
        lambda m: (
            lambda z: _SELU_SCALE * np.where(z > 0, z, _SELU_ALPHA * np.expm1(np.minimum(z, 0)))
        ),
        lambda m: calculate_gain("selu"),
        advice="lecun_normal (std = sqrt(1 / fan_in))",
    ),
    Activation(
        "Softplus",
        nn.Softplus,
        lambda m: lambda z: np.logaddexp(0.0, m.beta * z) / m.beta,
        lambda m: calculate_gain("relu"),
    ),
)
_NORMS = tuple(
    c
    for c in (
        getattr(nn, n, None)
        for n in ("BatchNorm1d", "BatchNorm2d", "LayerNorm", "GroupNorm", "RMSNorm")
    )
    if c is not None
)


def lookup(module):
    """The :class:`Activation` of ``module`` (by ``isinstance``), or None."""
    return next((spec for spec in REGISTRY if isinstance(module, spec.cls)), None)


def is_norm(module):
    """Whether ``module`` is a normalization layer (BatchNorm, LayerNorm, ...)."""
    return isinstance(module, _NORMS)


def recommended_init(activation):
    """The init that matches an activation (a module, an :class:`Activation` or a class
    name), as advice text."""
    if isinstance(activation, str):
        spec = next((s for s in REGISTRY if s.name == activation), None)
    elif isinstance(activation, Activation):
        spec = activation
    else:
        spec = lookup(activation)
    if spec is None:
        return "xavier_normal or lecun_normal (std ~ sqrt(1 / fan_in))"
    return spec.advice


_GRID = np.linspace(-8.0, 8.0, 4001)
_WEIGHTS = np.exp(-0.5 * _GRID**2)
_WEIGHTS /= _WEIGHTS.sum()


def gaussian_moments(fn, q):
    """E[f(z)], E[f(z)^2], E[f'(z)^2] for z ~ N(0, q) (dense quadrature, kinks are fine)."""
    s = math.sqrt(max(q, 0.0))
    z = s * _GRID
    h = 1e-4 * max(1.0, s)
    with np.errstate(all="ignore"):
        y = fn(z)
        dy = (fn(z + h) - fn(z - h)) / (2 * h)
    return (
        float(np.sum(_WEIGHTS * y)),
        float(np.sum(_WEIGHTS * y * y)),
        float(np.sum(_WEIGHTS * dy * dy)),
    )
