"""Normalization layers: ``BatchNorm1d``, ``BatchNorm2d``, ``LayerNorm``, ``GroupNorm``."""

from __future__ import annotations

import numbers

import numpy as np

from ... import functional as F
from ... import init as _init
from ...replay import effect, refuse
from ...tensor import Tensor
from ._utils import check_positive_int, float_dtype, initialize, shape_error
from .module import Module, Parameter

__all__ = ["BatchNorm1d", "BatchNorm2d", "LayerNorm", "GroupNorm"]


class _BatchNorm(Module):
    """Shared code of BatchNorm1d/2d.

    y = (x - mean) / sqrt(var + eps) * gamma + beta, per channel (dim 1), with gamma =
    ``weight`` (ones) and beta = ``bias`` (zeros) when ``affine``.

    Training mode: mean and biased variance of the batch (over every dim but 1); the
    running statistics are updated as
    ``running = (1 - momentum) * running + momentum * batch_stat`` using the *unbiased*
    batch variance, and ``num_batches_tracked`` counts the updates.  ``momentum=None``
    gives the cumulative average (momentum = 1 / num_batches_tracked).
    Evaluation mode: the running statistics are used (the batch statistics when
    ``track_running_stats=False``).  Ioffe & Szegedy 2015; ``torch.nn.BatchNorm*``.
    """

    _expected_dims: tuple = ()
    _layout = ""

    def __init__(
        self,
        num_features,
        eps=1e-5,
        momentum=0.1,
        affine=True,
        track_running_stats=True,
        dtype=None,
        *,
        bias=True,
        weight_init=None,
        bias_init=None,
        generator=None,
    ):
        super().__init__()
        name = type(self).__name__
        self.num_features = check_positive_int(num_features, "num_features", name)
        if momentum is not None and not (isinstance(momentum, numbers.Real) and 0 <= momentum <= 1):
            raise ValueError(f"{name}: momentum must be in [0, 1] or None, got {momentum!r}")
        if not isinstance(eps, numbers.Real) or eps < 0:
            raise ValueError(f"{name}: eps must be a non-negative number, got {eps!r}")
        self.eps, self.momentum = eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        self.weight_init, self.bias_init, self.generator = weight_init, bias_init, generator
        dtype = float_dtype(dtype, name)
        c = self.num_features
        if affine:
            self.weight = Parameter(np.ones(c, dtype))
            if bias:
                self.bias = Parameter(np.zeros(c, dtype))
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", Tensor(np.zeros(c, dtype)))
            self.register_buffer("running_var", Tensor(np.ones(c, dtype)))
            self.register_buffer("num_batches_tracked", Tensor(np.array(0, np.int64)))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        self.reset_parameters()

    def reset_running_stats(self):
        """running_mean = 0, running_var = 1, num_batches_tracked = 0."""
        if self.track_running_stats:
            self.running_mean._array[...] = 0
            self.running_var._array[...] = 1
            self.num_batches_tracked._array[...] = 0

    def reset_parameters(self):
        """Reset the running statistics; weight = 1 and bias = 0 unless initializers given."""
        self.reset_running_stats()
        initialize(self.weight, self.weight_init, _init.ones_, self.generator)
        initialize(self.bias, self.bias_init, _init.zeros_, self.generator)

    def _check_input(self, input):
        c = self.num_features
        if input.ndim not in self._expected_dims or input.shape[1] != c:
            raise shape_error(
                self, f"input with {c} features, of shape {self._layout.format(c=c)}", input.shape
            )

    @effect
    def _count_batch(self):
        """num_batches_tracked += 1; the momentum to use (the cumulative average's 1 / n
        when ``momentum`` is None)."""
        self.num_batches_tracked._array += 1
        if self.momentum is None:
            return 1.0 / float(self.num_batches_tracked._array)
        return self.momentum

    def forward(self, input):
        self._check_input(input)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            count = input._array.size // self.num_features
            if count <= 1:
                raise ValueError(
                    f"{self._get_name()}: expected more than 1 value per "
                    f"channel when training, got input of shape "
                    f"{tuple(input.shape)}"
                )
            if self.momentum is None:
                refuse("BatchNorm with momentum=None (a factor read from num_batches_tracked)")
            factor = self._count_batch()
        use_batch_stats = self.training or self.running_mean is None
        track = not self.training or self.track_running_stats
        return F.batch_norm(
            input,
            self.running_mean if track else None,
            self.running_var if track else None,
            self.weight,
            self.bias,
            use_batch_stats,
            factor,
            self.eps,
        )

    def extra_repr(self):
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
            f"affine={self.affine}, bias={self.bias is not None}, "
            f"track_running_stats={self.track_running_stats}"
        )


class BatchNorm1d(_BatchNorm):
    __doc__ = (
        "Batch normalization of (N, C) or (N, C, L) inputs.\n\n    "
        + _BatchNorm.__doc__.split("\n", 2)[2].lstrip()
    )
    _expected_dims = (2, 3)
    _layout = "(N, {c}) or (N, {c}, L)"


class BatchNorm2d(_BatchNorm):
    __doc__ = (
        "Batch normalization of (N, C, H, W) inputs.\n\n    "
        + _BatchNorm.__doc__.split("\n", 2)[2].lstrip()
    )
    _expected_dims = (4,)
    _layout = "(N, {c}, H, W)"


def _affine_parameters(module, shape, affine, bias, dtype):
    """Register ``weight`` (ones) and ``bias`` (zeros) of ``shape``, or None for each one
    that ``affine`` / ``bias`` turn off, then initialize them."""
    module.register_parameter("weight", Parameter(np.ones(shape, dtype)) if affine else None)
    module.register_parameter(
        "bias", Parameter(np.zeros(shape, dtype)) if affine and bias else None
    )
    module.reset_parameters()


class _AffineNorm(Module):
    """A normalization layer with an optional per-feature scale and shift."""

    def reset_parameters(self):
        """weight = 1 and bias = 0, unless initializers were given."""
        initialize(self.weight, self.weight_init, _init.ones_, self.generator)
        initialize(self.bias, self.bias_init, _init.zeros_, self.generator)


class LayerNorm(_AffineNorm):
    """y = (x - mean) / sqrt(var + eps) * gamma + beta, the mean and (biased) variance
    taken over the last ``len(normalized_shape)`` dims of each sample; gamma = ``weight``
    (ones) and beta = ``bias`` (zeros) have shape ``normalized_shape`` when
    ``elementwise_affine``.  Ba et al. 2016; ``torch.nn.LayerNorm``.
    """

    def __init__(
        self,
        normalized_shape,
        eps=1e-5,
        elementwise_affine=True,
        bias=True,
        dtype=None,
        *,
        weight_init=None,
        bias_init=None,
        generator=None,
    ):
        super().__init__()
        if isinstance(normalized_shape, numbers.Integral):
            normalized_shape = (int(normalized_shape),)
        self.normalized_shape = tuple(int(n) for n in normalized_shape)
        if not self.normalized_shape or min(self.normalized_shape) < 1:
            raise ValueError(
                f"LayerNorm: normalized_shape must be non-empty with positive "
                f"sizes, got {normalized_shape!r}"
            )
        self.eps, self.elementwise_affine = eps, elementwise_affine
        self.weight_init, self.bias_init, self.generator = weight_init, bias_init, generator
        dtype = float_dtype(dtype, "LayerNorm")
        _affine_parameters(self, self.normalized_shape, elementwise_affine, bias, dtype)

    def forward(self, input):
        k = len(self.normalized_shape)
        if input.ndim < k or tuple(input.shape[input.ndim - k :]) != self.normalized_shape:
            raise shape_error(
                self, f"input whose last dimensions are {self.normalized_shape}", input.shape
            )
        return F.layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return (
            f"{self.normalized_shape}, eps={self.eps}, "
            f"elementwise_affine={self.elementwise_affine}, bias={self.bias is not None}"
        )


class GroupNorm(_AffineNorm):
    """y = (x - mean) / sqrt(var + eps) * gamma + beta, the mean and (biased) variance
    taken per sample over each of ``num_groups`` groups of ``num_channels / num_groups``
    channels and all their positions; gamma = ``weight`` (ones) and beta = ``bias``
    (zeros, none with ``bias=False``) are per channel when ``affine``.  Independent of
    the batch size, the same in training and evaluation.  Wu & He 2018; ``torch.nn.GroupNorm``.
    """

    def __init__(
        self,
        num_groups,
        num_channels,
        eps=1e-5,
        affine=True,
        dtype=None,
        *,
        bias=True,
        weight_init=None,
        bias_init=None,
        generator=None,
    ):
        super().__init__()
        self.num_groups = check_positive_int(num_groups, "num_groups", "GroupNorm")
        self.num_channels = check_positive_int(num_channels, "num_channels", "GroupNorm")
        if self.num_channels % self.num_groups:
            raise ValueError("GroupNorm: num_channels must be divisible by num_groups")
        self.eps, self.affine = eps, affine
        self.weight_init, self.bias_init, self.generator = weight_init, bias_init, generator
        dtype = float_dtype(dtype, "GroupNorm")
        _affine_parameters(self, self.num_channels, affine, bias, dtype)

    def forward(self, input):
        c = self.num_channels
        if input.ndim < 2 or input.shape[1] != c:
            raise shape_error(self, f"input with {c} channels, of shape (N, {c}, *)", input.shape)
        return F.group_norm(input, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return (
            f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}, "
            f"bias={self.bias is not None}"
        )
