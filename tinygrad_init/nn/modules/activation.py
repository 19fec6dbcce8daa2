"""Activation layers (``torch.nn`` names); each calls the function of the same name in
``tinygrad_init.functional``.  ``inplace`` is accepted for PyTorch compatibility and shown
in the repr, but results are always new tensors."""

from __future__ import annotations

from ... import functional as F
from .module import Module

__all__ = [
    "ReLU",
    "LeakyReLU",
    "Sigmoid",
    "Tanh",
    "GELU",
    "SiLU",
    "ELU",
    "SELU",
    "Softplus",
    "Softmax",
    "LogSoftmax",
]


class _Inplace(Module):
    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace

    def extra_repr(self):
        return "inplace=True" if self.inplace else ""


class ReLU(_Inplace):
    """relu(x) = max(x, 0); relu'(0) = 0."""

    def forward(self, input):
        return F.relu(input)


class SiLU(_Inplace):
    """silu(x) = x * sigmoid(x) (swish)."""

    def forward(self, input):
        return F.silu(input)


class SELU(_Inplace):
    """selu(x) = scale * (max(0, x) + min(0, alpha * (exp(x) - 1))), with alpha ~ 1.6733 and
    scale ~ 1.0507 (Klambauer et al. 2017)."""

    def forward(self, input):
        return F.selu(input)


class LeakyReLU(Module):
    """leaky_relu(x) = x if x >= 0 else negative_slope * x."""

    def __init__(self, negative_slope=0.01, inplace=False):
        super().__init__()
        self.negative_slope, self.inplace = negative_slope, inplace

    def forward(self, input):
        return F.leaky_relu(input, self.negative_slope)

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}" + (", inplace=True" if self.inplace else "")


class ELU(Module):
    """elu(x) = x if x > 0 else alpha * (exp(x) - 1)."""

    def __init__(self, alpha=1.0, inplace=False):
        super().__init__()
        self.alpha, self.inplace = alpha, inplace

    def forward(self, input):
        return F.elu(input, self.alpha)

    def extra_repr(self):
        return f"alpha={self.alpha}" + (", inplace=True" if self.inplace else "")


class Sigmoid(Module):
    """sigmoid(x) = 1 / (1 + exp(-x))."""

    def forward(self, input):
        return F.sigmoid(input)


class Tanh(Module):
    """tanh(x) = (exp(x) - exp(-x)) / (exp(x) + exp(-x))."""

    def forward(self, input):
        return F.tanh(input)


class GELU(Module):
    """gelu(x) = x * Phi(x) (Phi the standard normal CDF); with ``approximate='tanh'``,
    0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))) (Hendrycks & Gimpel 2016)."""

    def __init__(self, approximate="none"):
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(f"GELU: approximate must be 'none' or 'tanh', got {approximate!r}")
        self.approximate = approximate

    def forward(self, input):
        return F.gelu(input, approximate=self.approximate)

    def extra_repr(self):
        return f"approximate={self.approximate!r}"


class Softplus(Module):
    """softplus(x) = log(1 + exp(beta * x)) / beta, and x itself where beta * x > threshold."""

    def __init__(self, beta=1.0, threshold=20.0):
        super().__init__()
        self.beta, self.threshold = beta, threshold

    def forward(self, input):
        return F.softplus(input, self.beta, self.threshold)

    def extra_repr(self):
        return f"beta={self.beta}, threshold={self.threshold}"


class _SoftmaxBase(Module):
    def __init__(self, dim=None):
        super().__init__()
        self.dim = dim

    def _dim(self):
        if self.dim is None:
            raise ValueError(
                f"{self._get_name()}(dim=None): pass the dimension to normalize "
                f"over, e.g. {self._get_name()}(dim=1) for (N, C) logits; the "
                f"implicit choice of PyTorch's legacy behaviour is not supported"
            )
        return self.dim

    def extra_repr(self):
        return f"dim={self.dim}"


class Softmax(_SoftmaxBase):
    """softmax(x)_i = exp(x_i) / sum_j exp(x_j) along ``dim`` (required)."""

    def forward(self, input):
        return F.softmax(input, self._dim())


class LogSoftmax(_SoftmaxBase):
    """log_softmax(x)_i = x_i - log(sum_j exp(x_j)) along ``dim`` (required)."""

    def forward(self, input):
        return F.log_softmax(input, self._dim())
