"""Functional layers, activations and losses (``torch.nn.functional`` names and defaults).

Reachable as ``tinygrad_init.nn.functional``.  Most functions are composites of Tensor
operations and get their gradients from the primitives they use; convolution, pooling,
the fused cross-entropy, ``erf`` and ``softplus`` are primitives in ``ops.py``.  Every
function validates its arguments first and names itself and the offending shapes in
its errors.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from . import ops
from .autograd import is_grad_enabled
from .replay import check_generator, effect
from .tensor import DtypeError, Tensor, _cast, _promote, apply, default_generator, where

__all__ = [
    # activations
    "relu",
    "leaky_relu",
    "sigmoid",
    "tanh",
    "gelu",
    "erf",
    "silu",
    "elu",
    "selu",
    "softplus",
    "softmax",
    "log_softmax",
    # layers
    "dropout",
    "linear",
    "conv2d",
    "max_pool2d",
    "avg_pool2d",
    "batch_norm",
    "layer_norm",
    "group_norm",
    "embedding",
    "scaled_dot_product_attention",
    # losses
    "mse_loss",
    "l1_loss",
    "huber_loss",
    "smooth_l1_loss",
    "cross_entropy",
    "nll_loss",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
]

_REDUCTIONS = ("mean", "sum", "none")

# Klambauer et al. 2017, "Self-Normalizing Neural Networks"
_SELU_ALPHA = 1.6732632423543772
_SELU_SCALE = 1.0507009873554805


# ----------------------------------------------------------------------------------------
# helpers


def _as_tensor(x, fn, what="input"):
    if isinstance(x, Tensor):
        return x
    if isinstance(x, (np.ndarray, list, tuple, int, float, np.generic)):
        return Tensor(x)
    raise TypeError(f"{fn}: {what} must be a Tensor, got {type(x).__name__}")


def _data(x):
    return x._array if isinstance(x, Tensor) else x


def _check_reduction(reduction, fn, size_average=None, reduce=None):
    """``reduction`` must be a known name; PyTorch's deprecated spellings are refused."""
    if size_average is not None or reduce is not None:
        raise TypeError(f"{fn}: size_average and reduce are deprecated; use reduction=")
    if reduction not in _REDUCTIONS:
        raise ValueError(
            f"{fn}: reduction must be one of {', '.join(map(repr, _REDUCTIONS))}, got {reduction!r}"
        )


def _reduce(loss, reduction):
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def _check_same_shape(input, target, fn):
    """PyTorch warns (and broadcasts) when target and input shapes differ; the warning
    names the line that called the loss (``loss(...)`` -> ``_pointwise_loss`` -> here)."""
    if input.shape == target.shape:
        return
    try:
        np.broadcast_shapes(input.shape, target.shape)
    except ValueError:
        raise ValueError(
            f"{fn}: target of shape {tuple(target.shape)} does not broadcast "
            f"with input of shape {tuple(input.shape)}"
        ) from None
    warnings.warn(
        f"{fn}: using a target size {tuple(target.shape)} that is different to "
        f"the input size {tuple(input.shape)}; this will likely lead to incorrect "
        "results due to broadcasting. Please ensure they have the same size.",
        stacklevel=4,
    )


def _int_pair(value, fn, name, minimum):
    """int or pair of ints -> (int, int), each >= minimum."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        pair = (int(value), int(value))
    elif (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value)
    ):
        pair = (int(value[0]), int(value[1]))
    else:
        raise TypeError(f"{fn}: {name} must be an int or a pair of ints, got {value!r}")
    if min(pair) < minimum:
        raise ValueError(f"{fn}: {name} must be >= {minimum}, got {value!r}")
    return pair


def _image(input, fn):
    """4-D NCHW tensor for ``input`` (a 3-D CHW input is given a batch of one)."""
    input = _as_tensor(input, fn)
    if input.ndim == 4:
        return input, False
    if input.ndim == 3:
        return input.unsqueeze(0), True
    raise ValueError(
        f"{fn}: expected a 3-D (C, H, W) or 4-D (N, C, H, W) input, got input "
        f"of shape {tuple(input.shape)}"
    )


def _check_output_size(fn, shape, kernel, stride, padding, dilation):
    oh, ow = ops._geometry(shape, kernel, stride, padding, dilation)
    if oh < 1 or ow < 1:
        raise ValueError(
            f"{fn}: input of shape {tuple(shape)} with padding {padding[::2]} is too small "
            f"for kernel {kernel} with dilation {dilation}: the output would be "
            f"({oh}, {ow})"
        )


# ----------------------------------------------------------------------------------------
# activations


def relu(input, inplace=False):
    """max(x, 0); the gradient at 0 is 0."""
    return (input if isinstance(input, Tensor) else _as_tensor(input, "relu")).relu()


@effect
def _mask(compare, x, bound):
    """``compare(x, bound)`` (``np.greater``, ``np.less``) as a boolean array, for ``where``:
    an effect, so that a compiled replay computes it from each call's data rather than
    keep the mask it recorded."""
    return compare(x._array, bound)


def leaky_relu(input, negative_slope=0.01, inplace=False):
    """x if x > 0 else negative_slope * x."""
    input = _as_tensor(input, "leaky_relu")
    return where(_mask(np.greater, input, 0), input, input * negative_slope)


def sigmoid(input):
    """1 / (1 + exp(-x))."""
    return (input if isinstance(input, Tensor) else _as_tensor(input, "sigmoid")).sigmoid()


def tanh(input):
    """(exp(x) - exp(-x)) / (exp(x) + exp(-x))."""
    return (input if isinstance(input, Tensor) else _as_tensor(input, "tanh")).tanh()


def erf(input):
    """erf(x) = 2/sqrt(pi) * integral_0^x exp(-t^2) dt; d/dx = 2/sqrt(pi) exp(-x^2)."""
    return apply(ops.erf, _as_tensor(input, "erf"))


def gelu(input, approximate="none"):
    """Gaussian error linear unit (Hendrycks & Gimpel 2016).

    approximate='none': x * Phi(x) = 0.5 x (1 + erf(x / sqrt(2)));
    approximate='tanh': 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).
    """
    input = _as_tensor(input, "gelu")
    if approximate == "none":
        return 0.5 * input * (1 + erf(input * (1 / math.sqrt(2))))
    if approximate == "tanh":
        inner = math.sqrt(2 / math.pi) * (input + 0.044715 * input * input * input)
        return 0.5 * input * (1 + inner.tanh())
    raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")


def silu(input, inplace=False):
    """x * sigmoid(x) (also called swish)."""
    input = _as_tensor(input, "silu")
    return input * input.sigmoid()


def elu(input, alpha=1.0, inplace=False):
    """x if x > 0 else alpha * (exp(x) - 1) (Clevert et al. 2015)."""
    input = _as_tensor(input, "elu")
    negative = alpha * (input.clamp(max=0).exp() - 1)
    return where(_mask(np.greater, input, 0), input, negative)


def selu(input, inplace=False):
    """scale * elu(x, alpha) with alpha = 1.6732632423543772, scale = 1.0507009873554805
    (Klambauer et al. 2017)."""
    return _SELU_SCALE * elu(input, _SELU_ALPHA)


def softplus(input, beta=1.0, threshold=20.0):
    """log(1 + exp(beta x)) / beta, and x itself where beta x > threshold (as PyTorch)."""
    input = _as_tensor(input, "softplus")
    scaled = input * beta if beta != 1 else input
    smooth = apply(ops.softplus, scaled)
    if beta != 1:
        smooth = smooth / beta
    return where(_mask(np.greater, scaled, threshold), input, smooth)


def _softmax_dim(input, dim, fn):
    if dim is None:
        dim = 0 if input.ndim in (0, 1, 3) else 1
        warnings.warn(
            f"{fn}: implicit dimension choice is deprecated; pass dim= (using dim={dim})",
            stacklevel=3,
        )
    return dim


def softmax(input, dim=None, dtype=None):
    """exp(x_i) / sum_j exp(x_j) along ``dim``."""
    input = _as_tensor(input, "softmax")
    if dtype is not None:
        input = input.to(dtype)
    return input.softmax(_softmax_dim(input, dim, "softmax"))


def log_softmax(input, dim=None, dtype=None):
    """x_i - log(sum_j exp(x_j)) along ``dim``."""
    input = _as_tensor(input, "log_softmax")
    if dtype is not None:
        input = input.to(dtype)
    return input.log_softmax(_softmax_dim(input, dim, "log_softmax"))


# ----------------------------------------------------------------------------------------
# layers


def dropout(input, p=0.5, training=True, inplace=False, generator=None):
    """Inverted dropout: each element is zeroed with probability p, survivors are scaled
    by 1 / (1 - p), so the expectation is unchanged; the identity when not training."""
    if isinstance(p, bool) or not isinstance(p, (int, float, np.floating)) or not 0 <= p <= 1:
        raise ValueError(f"dropout: probability has to be between 0 and 1, but got {p!r}")
    input = _as_tensor(input, "dropout")
    if not training or p == 0:
        return input
    if p == 1:
        return input * np.zeros(input.shape, dtype=input.dtype)
    check_generator(generator, "dropout")
    return input * _dropout_scale(generator or default_generator(), input.shape, p, input.dtype)


@effect
def _dropout_scale(gen, shape, p, dtype):
    """1 / (1 - p) where an element is kept (probability 1 - p), 0 elsewhere."""
    keep = gen.random(shape) >= p
    return (keep * (1 / (1 - p))).astype(dtype)


def linear(input, weight, bias=None):
    """y = x W^T + b with W of shape (out_features, in_features)."""
    if not isinstance(input, Tensor):  # inline test: a call less on the common path
        input = _as_tensor(input, "linear")
    if not isinstance(weight, Tensor):
        weight = _as_tensor(weight, "linear", "weight")
    x, w = input._array, weight._array
    if (
        w.ndim != 2
        or x.ndim < 1
        or x.shape[-1] != w.shape[1]
        or (bias is not None and bias.shape != w.shape[:1])
    ):
        _linear_shape_error(x.shape, w.shape, bias)
    return apply(ops.linear, input, weight, bias)


def _linear_shape_error(x_shape, w_shape, bias):
    if len(w_shape) != 2:
        raise ValueError(
            f"linear: weight must be 2-D (out_features, in_features), got shape {tuple(w_shape)}"
        )
    if len(x_shape) < 1 or x_shape[-1] != w_shape[1]:
        raise ValueError(
            f"linear: expected input with last dim {w_shape[1]} (weight "
            f"{tuple(w_shape)}), got input of shape {tuple(x_shape)}"
        )
    raise ValueError(f"linear: expected bias of shape ({w_shape[0]},), got {tuple(bias.shape)}")


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D cross-correlation (PyTorch's conv2d), NCHW input, weight (out, in/groups, kh, kw):

    out[n, o, h, w] = bias[o] + sum_{c, i, j} weight[o, c, i, j]
                      * xpad[n, g(o) * in/groups + c, stride*h + dilation*i, stride*w + dilation*j]

    ``padding`` is an int, a pair, 'valid' (no padding) or 'same' (output size equals input
    size; stride 1 only; any odd extra goes to the bottom/right as in PyTorch).
    """
    fn = "conv2d"
    input, unbatched = _image(input, fn)
    weight = _as_tensor(weight, fn, "weight")
    if weight.ndim != 4:
        raise ValueError(
            f"conv2d: weight must be 4-D (out_channels, in_channels/groups, kh, "
            f"kw), got shape {tuple(weight.shape)}"
        )
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups < 1:
        raise ValueError(f"conv2d: groups must be a positive int, got {groups!r}")
    out_channels, in_per_group, kh, kw = weight.shape
    if out_channels % groups:
        raise ValueError(
            f"conv2d: out_channels ({out_channels}, weight "
            f"{tuple(weight.shape)}) must be divisible by groups ({groups})"
        )
    if input.shape[1] != in_per_group * groups:
        extra = f", groups={groups}" if groups != 1 else ""
        shown = input.shape[1:] if unbatched else input.shape
        raise ValueError(
            f"conv2d: expected input with {in_per_group * groups} channels "
            f"(weight {tuple(weight.shape)}{extra}), got input of shape "
            f"{tuple(shown)}"
        )
    if bias is not None and tuple(bias.shape) != (out_channels,):
        raise ValueError(
            f"conv2d: expected bias of shape ({out_channels},), got {tuple(bias.shape)}"
        )
    stride = _int_pair(stride, fn, "stride", 1)
    dilation = _int_pair(dilation, fn, "dilation", 1)
    if isinstance(padding, str):
        if padding == "valid":
            pads = (0, 0, 0, 0)
        elif padding == "same":
            if stride != (1, 1):
                raise ValueError(
                    "conv2d: padding='same' is not supported for strided "
                    f"convolutions (stride={stride})"
                )
            th, tw = dilation[0] * (kh - 1), dilation[1] * (kw - 1)
            pads = (th // 2, th - th // 2, tw // 2, tw - tw // 2)
        else:
            raise ValueError(
                f"conv2d: padding must be an int, a pair, 'valid' or 'same', got {padding!r}"
            )
    else:
        ph, pw = _int_pair(padding, fn, "padding", 0)
        pads = (ph, ph, pw, pw)
    _check_output_size(fn, input.shape, (kh, kw), stride, pads, dilation)
    out = apply(ops.conv2d, input, weight, bias, params=(stride, pads, dilation, int(groups)))
    return out.squeeze(0) if unbatched else out


def _pool_args(fn, kernel_size, stride, padding, dilation, ceil_mode):
    if ceil_mode:
        raise NotImplementedError(
            f"{fn}: ceil_mode=True is not supported; pad the input or use ceil_mode=False"
        )
    kernel = _int_pair(kernel_size, fn, "kernel_size", 1)
    stride = kernel if stride is None or stride == [] else _int_pair(stride, fn, "stride", 1)
    padding = _int_pair(padding, fn, "padding", 0)
    dilation = _int_pair(dilation, fn, "dilation", 1)
    if padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2:
        raise ValueError(f"{fn}: padding {padding} should be at most half of kernel size {kernel}")
    return kernel, stride, (padding[0], padding[0], padding[1], padding[1]), dilation


def max_pool2d(
    input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False, return_indices=False
):
    """out[n, c, h, w] = max_{i, j} xpad[n, c, stride*h + dilation*i, stride*w + dilation*j],
    padding with -inf.  The gradient goes to one element of each window, as PyTorch's
    indices: its last NaN (in row-major order) if it holds one, else its first maximal
    element, never a padded one.  With ``return_indices=True`` also returns those indices,
    flattened over the unpadded H * W plane."""
    fn = "max_pool2d"
    input, unbatched = _image(input, fn)
    kernel, stride, pads, dilation = _pool_args(
        fn, kernel_size, stride, padding, dilation, ceil_mode
    )
    _check_output_size(fn, input.shape, kernel, stride, pads, dilation)
    saved = ops._Saved() if input.requires_grad and is_grad_enabled() else None
    out = apply(ops.max_pool2d, input, params=(kernel, stride, pads, dilation, saved))
    if unbatched:
        out = out.squeeze(0)
    if not return_indices:
        return out
    k = ops._max_pool2d_scan(input._array, kernel, stride, pads, dilation, True)[1]
    oh, ow = k.shape[2:]
    rows = (np.arange(oh) * stride[0])[:, None] + (k // kernel[1]) * dilation[0] - pads[0]
    cols = (np.arange(ow) * stride[1])[None, :] + (k % kernel[1]) * dilation[1] - pads[2]
    indices = (rows * input.shape[3] + cols).astype(np.int64)
    return out, Tensor._make(indices[0] if unbatched else indices)


def avg_pool2d(
    input,
    kernel_size,
    stride=None,
    padding=0,
    ceil_mode=False,
    count_include_pad=True,
    divisor_override=None,
):
    """out[n, c, h, w] = sum of the window of zero-padded x / divisor, where divisor is
    ``divisor_override``, else kh * kw (count_include_pad=True) or the number of
    non-padding elements in the window."""
    fn = "avg_pool2d"
    input, unbatched = _image(input, fn)
    kernel, stride, pads, dilation = _pool_args(fn, kernel_size, stride, padding, 1, ceil_mode)
    if divisor_override is not None and (
        isinstance(divisor_override, bool)
        or not isinstance(divisor_override, (int, np.integer))
        or divisor_override < 1
    ):
        raise ValueError(
            f"avg_pool2d: divisor_override must be a positive int, got {divisor_override!r}"
        )
    _check_output_size(fn, input.shape, kernel, stride, pads, dilation)
    out = apply(
        ops.avg_pool2d,
        input,
        params=(kernel, stride, pads, bool(count_include_pad), divisor_override),
    )
    return out.squeeze(0) if unbatched else out


def _channel_shape(input, fn):
    if input.ndim < 2:
        raise ValueError(
            f"{fn}: expected an input of at least 2 dims (N, C, ...), got shape "
            f"{tuple(input.shape)}"
        )
    return (1, input.shape[1]) + (1,) * (input.ndim - 2)


@effect
def _update_running_stats(running_mean, running_var, mean, var, momentum, count):
    """running = (1 - momentum) * running + momentum * batch statistic, in place (the
    variance unbiased: times count / (count - 1))."""
    c = mean._array.size
    if running_mean is not None:
        rm = _data(running_mean)
        rm *= 1 - momentum
        rm += momentum * mean._array.reshape(c).astype(rm.dtype)
    if running_var is not None:
        rv = _data(running_var)
        rv *= 1 - momentum
        rv += momentum * (var._array.reshape(c) * (count / (count - 1))).astype(rv.dtype)


def batch_norm(
    input, running_mean, running_var, weight=None, bias=None, training=False, momentum=0.1, eps=1e-5
):
    """y = (x - mean) / sqrt(var + eps) * weight + bias, statistics per channel (dim 1).

    training=True: mean and biased var of the batch (over every dim but 1), and running
    stats, if given, are updated in place: running = (1 - momentum) * running
    + momentum * batch_stat, with the unbiased variance (Ioffe & Szegedy 2015, PyTorch).
    training=False: the running statistics are used.
    """
    fn = "batch_norm"
    input = _as_tensor(input, fn)
    shape = _channel_shape(input, fn)
    c = input.shape[1]
    for name, t in (
        ("running_mean", running_mean),
        ("running_var", running_var),
        ("weight", weight),
        ("bias", bias),
    ):
        if t is not None and tuple(np.shape(_data(t))) != (c,):
            raise ValueError(
                f"{fn}: expected {name} of shape ({c},) for input of shape "
                f"{tuple(input.shape)}, got {tuple(np.shape(_data(t)))}"
            )
    axes = (0,) + tuple(range(2, input.ndim))
    if training:
        count = input._array.size // c
        if count <= 1:
            raise ValueError(
                f"{fn}: expected more than 1 value per channel when training, "
                f"got input of shape {tuple(input.shape)}"
            )
        if momentum is None or not isinstance(momentum, (int, float)):
            raise TypeError(f"{fn}: momentum must be a float, got {momentum!r}")
        mean = input.mean(axes, keepdim=True)
        centered = input - mean
        var = (centered * centered).mean(axes, keepdim=True)
        _update_running_stats(running_mean, running_var, mean, var, momentum, count)
        out = centered / (var + eps).sqrt()
    else:
        if running_mean is None or running_var is None:
            raise ValueError(f"{fn}: running_mean and running_var are required when training=False")
        rm = np.asarray(_data(running_mean), dtype=input.dtype).reshape(shape)
        rv = np.asarray(_data(running_var), dtype=input.dtype).reshape(shape)
        out = (input - rm) * (1 / np.sqrt(rv + eps)).astype(input.dtype)
    if weight is not None:
        out = out * (
            weight.reshape(shape) if isinstance(weight, Tensor) else np.reshape(weight, shape)
        )
    if bias is not None:
        out = out + (bias.reshape(shape) if isinstance(bias, Tensor) else np.reshape(bias, shape))
    return out


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    """y = (x - mean) / sqrt(var + eps) * weight + bias over the last
    len(normalized_shape) dims, with the biased variance (Ba et al. 2016)."""
    fn = "layer_norm"
    input = _as_tensor(input, fn)
    if isinstance(normalized_shape, (int, np.integer)):
        normalized_shape = (int(normalized_shape),)
    normalized_shape = tuple(normalized_shape)
    k = len(normalized_shape)
    if k == 0 or input.ndim < k or tuple(input.shape[input.ndim - k :]) != normalized_shape:
        raise ValueError(
            f"{fn}: normalized_shape {normalized_shape} does not match the last "
            f"dims of input of shape {tuple(input.shape)}"
        )
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and tuple(np.shape(_data(t))) != normalized_shape:
            raise ValueError(
                f"{fn}: expected {name} of shape {normalized_shape}, got "
                f"{tuple(np.shape(_data(t)))}"
            )
    axes = tuple(range(input.ndim - k, input.ndim))
    centered = input - input.mean(axes, keepdim=True)
    var = (centered * centered).mean(axes, keepdim=True)
    out = centered / (var + eps).sqrt()
    if weight is not None:
        out = out * weight
    if bias is not None:
        out = out + bias
    return out


def group_norm(input, num_groups, weight=None, bias=None, eps=1e-5):
    """y = (x - mean) / sqrt(var + eps) * weight + bias, the mean and biased variance taken
    per sample over each group of C / num_groups channels and all positions (Wu & He 2018,
    "Group normalization"; PyTorch's ``group_norm``); weight and bias are per channel."""
    fn = "group_norm"
    input = _as_tensor(input, fn)
    if input.ndim < 2:
        raise ValueError(f"{fn}: expected input of shape (N, C, *), got {tuple(input.shape)}")
    n, c = input.shape[:2]
    if isinstance(num_groups, bool) or not isinstance(num_groups, (int, np.integer)):
        raise TypeError(f"{fn}: num_groups must be an int, got {num_groups!r}")
    if num_groups < 1 or c % num_groups:
        raise ValueError(
            f"{fn}: Expected number of channels in input to be divisible by num_groups, but "
            f"got input of shape {tuple(input.shape)} and num_groups={num_groups}"
        )
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and tuple(np.shape(_data(t))) != (c,):
            raise ValueError(
                f"{fn}: expected {name} of shape ({c},), got {tuple(np.shape(_data(t)))}"
            )
    grouped = input.reshape(n, int(num_groups), -1) if n else input.reshape(0, int(num_groups), 0)
    centered = grouped - grouped.mean(2, keepdim=True)
    var = (centered * centered).mean(2, keepdim=True)
    out = (centered / (var + eps).sqrt()).reshape(input.shape)
    shape = (1, c) + (1,) * (input.ndim - 2)
    if weight is not None:
        out = out * (
            weight.reshape(shape) if isinstance(weight, Tensor) else np.reshape(weight, shape)
        )
    if bias is not None:
        out = out + (bias.reshape(shape) if isinstance(bias, Tensor) else np.reshape(bias, shape))
    return out


def embedding(input, weight, padding_idx=None):
    """out[...] = weight[input[...]]: rows of ``weight`` (num_embeddings, dim) picked by
    integer indices; the row at ``padding_idx`` receives no gradient."""
    fn = "embedding"
    weight = _as_tensor(weight, fn, "weight")
    idx = np.asarray(_data(input))
    if not np.issubdtype(idx.dtype, np.integer):
        raise TypeError(f"{fn}: indices must be integers, got dtype {idx.dtype}")
    if weight.ndim != 2:
        raise ValueError(
            f"{fn}: weight must be 2-D (num_embeddings, embedding_dim), got "
            f"shape {tuple(weight.shape)}"
        )
    n = weight.shape[0]
    if idx.size and (idx.min() < 0 or idx.max() >= n):  # no negative indices, as PyTorch
        bad = idx.max() if idx.max() >= n else idx.min()
        raise IndexError(
            f"{fn}: index {bad} is out of range for weight of shape {tuple(weight.shape)}"
        )
    if padding_idx is not None and not -n <= padding_idx < n:
        raise ValueError(f"{fn}: padding_idx {padding_idx} must be within num_embeddings {n}")
    out = weight[idx]
    if padding_idx is not None:
        pad = (idx % n == padding_idx % n)[..., None]
        out = where(pad, weight.detach()[idx], out)
    return out


def _attention_bias(mask, allowed_when_true, shape, dtype, fn):
    """An additive mask as a numpy array (a bool mask) or a Tensor (a float mask) that
    broadcasts to the scores' ``shape``; bool entries become 0 (attend) or -inf (ignore)."""
    data = np.asarray(_data(mask))
    try:
        np.broadcast_shapes(data.shape, shape)
    except ValueError:
        raise ValueError(
            f"{fn}: mask of shape {data.shape} does not broadcast to the attention "
            f"scores of shape {tuple(shape)} (..., L, S)"
        ) from None
    if data.dtype == np.bool_:
        attend = data if allowed_when_true else ~data
        return np.where(attend, 0.0, -np.inf).astype(dtype)
    if not np.issubdtype(data.dtype, np.floating):
        raise TypeError(f"{fn}: mask must be bool or floating point, got dtype {data.dtype}")
    return mask if isinstance(mask, Tensor) else data.astype(dtype)


def _attend(query, key, value, bias, dropout_p, scale, generator=None):
    """softmax(q k^T * scale + bias) v along the last dim and the attention weights.

    A row in which every score is -inf (every key masked) gets zero weights, hence a zero
    output and zero gradients, as PyTorch 2.x's scaled_dot_product_attention returns."""
    scores = (query @ key.transpose(-2, -1)) * scale
    if bias is not None:
        scores = scores + bias
    dead = np.all(np.isneginf(scores._array), axis=-1, keepdims=True)
    if dead.any():
        scores = where(dead, np.zeros((), scores.dtype), scores)
    weights = scores.softmax(-1)
    if dead.any():
        weights = where(dead, np.zeros((), weights.dtype), weights)
    if dropout_p > 0:
        weights = dropout(weights, dropout_p, generator=generator)
    return weights @ value, weights


def scaled_dot_product_attention(
    query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, enable_gqa=False
):
    """softmax(Q K^T * scale + bias) V (Vaswani et al. 2017; PyTorch's
    ``scaled_dot_product_attention``), with Q (..., L, E), K (..., S, E), V (..., S, Ev).

    ``scale`` defaults to 1 / sqrt(E), which keeps the logits at unit variance when the
    entries of Q and K have unit variance.  ``attn_mask``: a bool mask (True = the query
    may attend to that key) or a float mask added to the scores, broadcast to (..., L, S);
    ``is_causal=True`` allows key j for query i only when j <= i (the top-left aligned
    lower triangle) and excludes ``attn_mask``.  ``dropout_p``: dropout on the attention
    weights, applied whenever it is positive (as PyTorch; pass 0.0 in evaluation).
    ``enable_gqa``: key and value may have fewer heads (dim -3) than the query, each
    shared by ``H_q / H_kv`` query heads.  A query whose every key is masked gets zeros.
    """
    fn = "scaled_dot_product_attention"
    query = _as_tensor(query, fn, "query")
    key = _as_tensor(key, fn, "key")
    value = _as_tensor(value, fn, "value")
    if query.ndim < 2 or key.ndim < 2 or value.ndim < 2:
        raise ValueError(
            f"{fn}: query, key and value need at least 2 dims (..., L, E), got shapes "
            f"{tuple(query.shape)}, {tuple(key.shape)}, {tuple(value.shape)}"
        )
    if query.shape[-1] != key.shape[-1] or key.shape[-2] != value.shape[-2]:
        raise ValueError(
            f"{fn}: expected query (..., L, E), key (..., S, E) and value (..., S, Ev), "
            f"got shapes {tuple(query.shape)}, {tuple(key.shape)}, {tuple(value.shape)}"
        )
    if isinstance(dropout_p, bool) or not 0 <= dropout_p <= 1:
        raise ValueError(f"{fn}: dropout_p must be between 0 and 1, got {dropout_p!r}")
    if is_causal and attn_mask is not None:
        raise RuntimeError(f"{fn}: Explicit attn_mask should not be set when is_causal=True")
    if enable_gqa and query.ndim >= 3 and key.shape[-3] != query.shape[-3]:
        hq, hkv = query.shape[-3], key.shape[-3]
        if hq % hkv or value.shape[-3] != hkv:
            raise ValueError(
                f"{fn}: with enable_gqa the query heads ({hq}) must be a multiple of the "
                f"key/value heads ({hkv}, {value.shape[-3]})"
            )
        key, value = _repeat_heads(key, hq // hkv), _repeat_heads(value, hq // hkv)
    L, S = query.shape[-2], key.shape[-2]
    scale = 1 / math.sqrt(query.shape[-1]) if scale is None else float(scale)
    bias = None
    if is_causal:
        bias = _attention_bias(np.tri(L, S, dtype=bool), True, (L, S), query.dtype, fn)
    elif attn_mask is not None:
        shape = np.broadcast_shapes(query.shape[:-1], key.shape[:-2] + (1,)) + (S,)
        bias = _attention_bias(attn_mask, True, shape, query.dtype, fn)
    return _attend(query, key, value, bias, dropout_p, scale)[0]


def _repeat_heads(t, n):
    """(..., H, S, E) -> (..., H * n, S, E), each head repeated n times in place
    (``repeat_interleave`` on dim -3)."""
    shape = t.shape
    expanded = t.unsqueeze(-3).expand(*shape[:-2], n, *shape[-2:])
    return expanded.reshape(*shape[:-3], shape[-3] * n, *shape[-2:])


# ----------------------------------------------------------------------------------------
# losses


def _pointwise_loss(fn, input, target, reduction):
    _check_reduction(reduction, fn)
    input = _as_tensor(input, fn)
    target = _as_tensor(target, fn, "target")
    _check_same_shape(input, target, fn)
    return input, target


def mse_loss(input, target, reduction="mean"):
    """(x - y)^2 over the broadcast shape, reduced by ``reduction``: one primitive
    (``ops.mse_loss``) whose gradient is 2 (x - y) g / N for 'mean', 2 (x - y) g otherwise.

    As PyTorch, which broadcasts the two first: the dtype is the promotion of both (a 0-d
    float64 target makes a float32 input's loss float64), and it must be floating point."""
    input, target = _pointwise_loss("mse_loss", input, target, reduction)
    a, b = input._array.dtype, target._array.dtype
    if a is not b or a.kind != "f":
        dtype = _promote(a, b)
        if dtype.kind != "f":
            raise DtypeError(f"mse_loss: not implemented for dtype {dtype} (it needs a float)")
        input, target = _cast(input, dtype), _cast(target, dtype)
    return apply(ops.mse_loss, input, target, params=(reduction,))


def l1_loss(input, target, reduction="mean"):
    """|x - y|, reduced by ``reduction`` (gradient 0 where x == y)."""
    input, target = _pointwise_loss("l1_loss", input, target, reduction)
    return _reduce((input - target).abs(), reduction)


def huber_loss(input, target, reduction="mean", delta=1.0):
    """0.5 d^2 if |d| < delta else delta (|d| - 0.5 delta), d = x - y."""
    input, target = _pointwise_loss("huber_loss", input, target, reduction)
    if delta <= 0:
        raise ValueError(f"huber_loss: delta must be positive, got {delta!r}")
    d = input - target
    a = d.abs()
    loss = where(_mask(np.less, a, delta), 0.5 * d * d, delta * (a - 0.5 * delta))
    return _reduce(loss, reduction)


def smooth_l1_loss(input, target, reduction="mean", beta=1.0):
    """0.5 d^2 / beta if |d| < beta else |d| - 0.5 beta, d = x - y (huber_loss / beta)."""
    input, target = _pointwise_loss("smooth_l1_loss", input, target, reduction)
    if beta < 0:
        raise ValueError(f"smooth_l1_loss: beta must be non-negative, got {beta!r}")
    d = input - target
    a = d.abs()
    if beta == 0:
        return _reduce(a, reduction)
    loss = where(_mask(np.less, a, beta), (0.5 / beta) * d * d, a - 0.5 * beta)
    return _reduce(loss, reduction)


def _class_weight(weight, c, fn):
    if weight is None:
        return None
    w = np.asarray(_data(weight))
    if w.shape != (c,):
        raise ValueError(f"{fn}: expected weight of shape ({c},) for {c} classes, got {w.shape}")
    return w


def _classes_last(input, target, fn):
    """(N, C, d1, ...) logits and (N, d1, ...) targets -> (M, C) and (M,)."""
    if input.ndim == 1:
        return input.unsqueeze(0), target.reshape(1) if target.ndim == 0 else target, ()
    if input.ndim == 2:
        return input, target, None
    c = input.shape[1]
    perm = (0,) + tuple(range(2, input.ndim)) + (1,)
    spatial = (input.shape[0],) + tuple(input.shape[2:])
    return input.permute(*perm).reshape(-1, c), target.reshape(-1), spatial


def cross_entropy(
    input,
    target,
    weight=None,
    size_average=None,
    ignore_index=-100,
    reduce=None,
    reduction="mean",
    label_smoothing=0.0,
):
    """Cross entropy of logits ``input`` (N, C) (or (C,), or (N, C, d1, ...)) against
    integer class ``target`` (N,), or class probabilities of the input's shape.

    loss_n = -w[y_n] ((1 - ls) log p[n, y_n] + (ls / C) sum_c w[c] / w[y_n] log p[n, c]),
    p = softmax(x); 'mean' divides by sum_n w[y_n] over targets != ignore_index.
    The backward for class targets is one fused rule: (softmax(x) - onehot(y)) / N for an
    unweighted mean.
    """
    fn = "cross_entropy"
    _check_reduction(reduction, fn, size_average, reduce)
    input = _as_tensor(input, fn)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(
            f"{fn}: label_smoothing must be between 0.0 and 1.0, got {label_smoothing!r}"
        )
    shape = input._array.shape
    ndim = len(shape)
    if ndim == 0:
        raise ValueError(f"{fn}: expected input of shape (C,) or (N, C, ...), got a scalar")
    c = shape[0] if ndim == 1 else shape[1]
    w = _class_weight(weight, c, fn)
    t = _data(target)
    if type(t) is not np.ndarray:
        t = np.asarray(t)
    kind = t.dtype.kind
    if kind == "f":
        if t.shape != shape:
            raise ValueError(
                f"{fn}: class-probability target must have the input's shape {shape}, got {t.shape}"
            )
        axis = 0 if ndim == 1 else 1
        target = _as_tensor(target, fn, "target")
        if label_smoothing:
            target = target * (1 - label_smoothing) + label_smoothing / c
        logp = input.log_softmax(axis)
        if w is not None:
            wshape = (c,) if ndim == 1 else (1, c) + (1,) * (ndim - 2)
            logp = logp * w.reshape(wshape).astype(input.dtype)
        loss = -(logp * target).sum(axis)
        return _reduce(loss, reduction)
    if kind not in "iu":
        raise TypeError(
            f"{fn}: target must hold integer class indices or float "
            f"probabilities, got dtype {t.dtype}"
        )
    expected = shape[:1] + shape[2:] if ndim > 1 else ()
    if t.shape != expected:
        raise ValueError(
            f"{fn}: expected target of shape {expected} for input of shape {shape}, got {t.shape}"
        )
    x2, t2, spatial = _classes_last(input, t, fn)
    saved = ops._Saved() if input.requires_grad and is_grad_enabled() else None
    loss = apply(
        ops.cross_entropy,
        x2,
        params=(t2, w, ignore_index, float(label_smoothing), reduction, saved),
    )
    if reduction == "none":
        if spatial == ():
            return loss.reshape(())
        if spatial is not None:
            return loss.reshape(spatial)
    return loss


def nll_loss(
    input, target, weight=None, size_average=None, ignore_index=-100, reduce=None, reduction="mean"
):
    """-w[y_n] * input[n, y_n] for log-probabilities ``input`` (N, C); 'mean' divides by
    sum_n w[y_n] over targets != ignore_index."""
    fn = "nll_loss"
    _check_reduction(reduction, fn, size_average, reduce)
    input = _as_tensor(input, fn)
    if input.ndim not in (1, 2):
        raise ValueError(f"{fn}: expected input of shape (N, C) or (C,), got {tuple(input.shape)}")
    c = input.shape[-1]
    w = _class_weight(weight, c, fn)
    t = np.asarray(_data(target))
    if not np.issubdtype(t.dtype, np.integer):
        raise TypeError(f"{fn}: target must hold integer class indices, got dtype {t.dtype}")
    expected = () if input.ndim == 1 else (input.shape[0],)
    if t.shape != expected:
        raise ValueError(
            f"{fn}: expected target of shape {expected} for input of shape "
            f"{tuple(input.shape)}, got {t.shape}"
        )
    bad = (t != ignore_index) & ((t < 0) | (t >= c))
    if bad.any():
        raise IndexError(f"{fn}: target {t[bad].flat[0]} is out of bounds for {c} classes")
    x2 = input.unsqueeze(0) if input.ndim == 1 else input
    t2 = t.reshape(-1)
    keep = t2 != ignore_index
    safe = np.where(keep, t2, 0)
    wy = (np.ones(len(t2)) if w is None else w[safe]) * keep
    wy = wy.astype(input.dtype)
    loss = -x2[np.arange(len(t2)), safe] * wy
    if reduction == "none":
        return loss.reshape(()) if input.ndim == 1 else loss
    if reduction == "sum":
        return loss.sum()
    total = wy.sum()
    if total == 0:  # every target ignored: NaN with a zero gradient, as PyTorch
        return where(np.asarray(True), np.asarray(np.nan, dtype=input.dtype), loss.sum())
    return loss.sum() / np.asarray(total, dtype=input.dtype)


@effect
def _check_probabilities(input, fn):
    """Raise ValueError unless every element of ``input`` is in [0, 1] (an effect, so that
    a compiled replay checks each call's input as eager mode does)."""
    x = input._array
    if not ((x >= 0) & (x <= 1)).all():  # NaN fails both comparisons, as in PyTorch
        raise ValueError(f"{fn}: all elements of input should be between 0 and 1")


def _log_clamped(x):
    """max(log(x), -100) with a zero gradient (not NaN) where x == 0."""
    positive = _mask(np.greater, x, 0)
    safe = where(positive, x, np.ones((), dtype=x.dtype))
    return where(positive, safe.log(), np.full((), -100, dtype=x.dtype)).clamp(min=-100)


def _binary_loss_inputs(fn, input, target, reduction, size_average, reduce):
    """Checked tensors for the binary losses, whose target must match the input's shape."""
    _check_reduction(reduction, fn, size_average, reduce)
    input = _as_tensor(input, fn)
    target = _as_tensor(target, fn, "target")
    if tuple(target.shape) != tuple(input.shape):
        raise ValueError(
            f"{fn}: target of shape {tuple(target.shape)} must have the same "
            f"shape as input of shape {tuple(input.shape)}"
        )
    return input, target


def binary_cross_entropy(
    input, target, weight=None, size_average=None, reduce=None, reduction="mean"
):
    """-w (y log(x) + (1 - y) log(1 - x)), each log clamped to >= -100 as PyTorch does."""
    fn = "binary_cross_entropy"
    input, target = _binary_loss_inputs(fn, input, target, reduction, size_average, reduce)
    _check_probabilities(input, fn)
    loss = -(target * _log_clamped(input) + (1 - target) * _log_clamped(1 - input))
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


def binary_cross_entropy_with_logits(
    input, target, weight=None, size_average=None, reduce=None, reduction="mean", pos_weight=None
):
    """-w (p y log(sigmoid(x)) + (1 - y) log(1 - sigmoid(x))), p = pos_weight, computed
    stably as w ((1 - y) x + (1 + (p - 1) y) softplus(-x))."""
    fn = "binary_cross_entropy_with_logits"
    input, target = _binary_loss_inputs(fn, input, target, reduction, size_average, reduce)
    sp = apply(ops.softplus, -input)
    if pos_weight is None:
        loss = (1 - target) * input + sp
    else:
        loss = (1 - target) * input + (1 + (pos_weight - 1) * target) * sp
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)
