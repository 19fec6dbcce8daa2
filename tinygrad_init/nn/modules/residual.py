"""Residual blocks: ``Residual`` (x + branch(x)) and ``ResidualGate`` (ReZero / SkipInit)."""

from __future__ import annotations

import numbers

import numpy as np

from ...tensor import Tensor
from ._utils import float_dtype
from .module import Module, Parameter

__all__ = ["Residual", "ResidualGate"]


class Residual(Module):
    """``y = post(x + branch(x))`` (He et al. 2016, "Deep residual learning"); ``post``
    (e.g. torchvision's ReLU after the addition) is skipped when None.

    Not a PyTorch class: torchvision writes the addition inside each block's forward.  The
    block names its branch through ``residual_branches()``, which the residual-era inits
    (``init.zero_init_residual_``, ``init.scale_residual_branches_``, ``init.fixup_``) and
    the diagnostics read.  Parameter names are ``branch.<...>`` (and ``post.<...>``).
    """

    def __init__(self, branch, post=None):
        super().__init__()
        if not isinstance(branch, Module):
            raise TypeError(f"Residual: branch must be a Module, got {type(branch).__name__}")
        if post is not None and not isinstance(post, Module):
            raise TypeError(f"Residual: post must be a Module or None, got {type(post).__name__}")
        self.branch = branch
        self.post = post

    def residual_branches(self):
        return [[self.branch]]

    def forward(self, input):
        out = input + self.branch(input)
        return out if self.post is None else self.post(out)


class ResidualGate(Module):
    """``y = alpha * x`` with one trainable scalar ``alpha``, put at the end of a residual
    branch: ``x + alpha * F(x)``.  ``alpha = 0`` at init (the default) makes every block
    the identity, so signals and gradients pass unchanged at any depth: ReZero (Bachlechner
    et al. 2020, "ReZero is all you need") and SkipInit (De & Smith 2020, "Batch
    normalization biases residual blocks towards the identity function").  With
    ``alpha=1`` it is Fixup's scalar multiplier (``init.fixup_`` sets it to 1).
    """

    def __init__(self, alpha=0.0, dtype=None):
        super().__init__()
        if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real):
            raise TypeError(f"ResidualGate: alpha must be a real number, got {alpha!r}")
        self.initial_alpha = float(alpha)
        self.alpha = Parameter(np.array(self.initial_alpha, float_dtype(dtype, "ResidualGate")))

    def reset_parameters(self):
        """alpha = its initial value."""
        self.alpha._array[...] = self.initial_alpha

    def forward(self, input):
        if not isinstance(input, Tensor):
            raise TypeError(f"ResidualGate: expected a Tensor input, got {type(input).__name__}")
        return input * self.alpha

    def extra_repr(self):
        return f"alpha={float(self.alpha._array):g}"
