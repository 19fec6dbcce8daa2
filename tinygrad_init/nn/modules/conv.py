"""Convolution and pooling: ``Conv2d``, ``MaxPool2d``, ``AvgPool2d`` (NCHW layout)."""

from __future__ import annotations

import math
from functools import partial

import numpy as np

from ... import functional as F
from ... import init as _init
from ._utils import check_positive_int, float_dtype, initialize, pair, shape_error
from .module import Module, Parameter

__all__ = ["Conv2d", "MaxPool2d", "AvgPool2d"]


def _image_check(module, input, channels=None):
    """Accept (N, C, H, W) or unbatched (C, H, W), with ``channels`` channels if given."""
    if channels is None:
        if input.ndim not in (3, 4):
            raise shape_error(module, "input of shape (N, C, H, W) or (C, H, W)", input.shape)
        return
    if input.ndim not in (3, 4) or input.shape[-3] != channels:
        raise shape_error(
            module,
            f"input with {channels} channels, of shape (N, {channels}, H, W) or ({channels}, H, W)",
            input.shape,
        )


class Conv2d(Module):
    """2-D cross-correlation over NCHW images (``torch.nn.Conv2d``)::

        out[n, o, h, w] = bias[o] + sum_{c, i, j} weight[o, c, i, j]
                          * xpad[n, g(o) * C_in/groups + c, stride*h + dilation*i,
                                 stride*w + dilation*j]

    weight has shape (out_channels, in_channels / groups, kh, kw).  Default
    initialization: weight and bias ~ ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` with
    ``fan_in = in_channels / groups * kh * kw`` (PyTorch's ``kaiming_uniform_(a=sqrt(5))``,
    written plainly).  ``weight_init`` / ``bias_init`` / ``generator`` as in ``Linear``.
    Only ``padding_mode='zeros'`` is supported.
    """

    def __init__(
        self,
        in_channels,
        out_channels,
        kernel_size,
        stride=1,
        padding=0,
        dilation=1,
        groups=1,
        bias=True,
        padding_mode="zeros",
        dtype=None,
        *,
        weight_init=None,
        bias_init=None,
        generator=None,
    ):
        super().__init__()
        name = "Conv2d"
        self.in_channels = check_positive_int(in_channels, "in_channels", name)
        self.out_channels = check_positive_int(out_channels, "out_channels", name)
        self.groups = check_positive_int(groups, "groups", name)
        if self.in_channels % self.groups:
            raise ValueError(
                f"{name}: in_channels must be divisible by groups ({in_channels} % {groups} != 0)"
            )
        if self.out_channels % self.groups:
            raise ValueError(
                f"{name}: out_channels must be divisible by groups ({out_channels} % {groups} != 0)"
            )
        if padding_mode != "zeros":
            raise ValueError(
                f"{name}: padding_mode must be 'zeros' (the only mode "
                f"supported), got {padding_mode!r}"
            )
        self.kernel_size = pair(kernel_size, "kernel_size", name)
        self.stride = pair(stride, "stride", name)
        self.dilation = pair(dilation, "dilation", name)
        if isinstance(padding, str):
            if padding not in ("valid", "same"):
                raise ValueError(
                    f"{name}: invalid padding string {padding!r}, should be one "
                    f"of ('valid', 'same')"
                )
            if padding == "same" and self.stride != (1, 1):
                raise ValueError(
                    f"{name}: padding='same' is not supported for strided convolutions"
                )
            self.padding = padding
        else:
            self.padding = pair(padding, "padding", name)
        if min(self.kernel_size + self.stride + self.dilation) < 1 or (
            not isinstance(self.padding, str) and min(self.padding) < 0
        ):
            raise ValueError(
                f"{name}: kernel_size, stride and dilation must be positive and "
                f"padding non-negative"
            )
        self.padding_mode = padding_mode
        dtype = float_dtype(dtype, name)
        self.weight_init, self.bias_init, self.generator = weight_init, bias_init, generator
        self.weight = Parameter(
            np.empty((self.out_channels, self.in_channels // self.groups) + self.kernel_size, dtype)
        )
        if bias:
            self.bias = Parameter(np.empty((self.out_channels,), dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        """Draw the weight and bias again (the default or the given initializers)."""
        fan_in = self.in_channels // self.groups * math.prod(self.kernel_size)
        initialize(self.weight, self.weight_init, _init.default_uniform_, self.generator)
        initialize(
            self.bias,
            self.bias_init,
            partial(_init.default_uniform_, fan_in=fan_in),
            self.generator,
        )

    def forward(self, input):
        _image_check(self, input, self.in_channels)
        return F.conv2d(
            input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups
        )

    def extra_repr(self):
        s = (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}"
        )
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return s


class MaxPool2d(Module):
    """out[n, c, h, w] = max over the window at (stride*h, stride*w) of the -inf-padded
    input (``torch.nn.MaxPool2d``); stride defaults to kernel_size."""

    def __init__(
        self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False, ceil_mode=False
    ):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding, self.dilation = padding, dilation
        self.return_indices, self.ceil_mode = return_indices, ceil_mode

    def forward(self, input):
        _image_check(self, input)
        return F.max_pool2d(
            input,
            self.kernel_size,
            self.stride,
            self.padding,
            self.dilation,
            ceil_mode=self.ceil_mode,
            return_indices=self.return_indices,
        )

    def extra_repr(self):
        return (
            f"kernel_size={self.kernel_size}, stride={self.stride}, "
            f"padding={self.padding}, dilation={self.dilation}, ceil_mode={self.ceil_mode}"
        )


class AvgPool2d(Module):
    """out[n, c, h, w] = mean over the window at (stride*h, stride*w) of the zero-padded
    input (``torch.nn.AvgPool2d``); stride defaults to kernel_size."""

    def __init__(
        self,
        kernel_size,
        stride=None,
        padding=0,
        ceil_mode=False,
        count_include_pad=True,
        divisor_override=None,
    ):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding, self.ceil_mode = padding, ceil_mode
        self.count_include_pad, self.divisor_override = count_include_pad, divisor_override

    def forward(self, input):
        _image_check(self, input)
        return F.avg_pool2d(
            input,
            self.kernel_size,
            self.stride,
            self.padding,
            self.ceil_mode,
            self.count_include_pad,
            self.divisor_override,
        )

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"
