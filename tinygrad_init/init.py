"""Weight initializers (the ``torch.nn.init`` names, plus Keras/JAX's ``variance_scaling``).

Every initializer fills a tensor in place, returns it, and takes ``generator=`` (a
``np.random.Generator``; by default the one ``tg.manual_seed`` seeds). Nothing here is
recorded in the autograd graph: the functions write into the tensor's storage directly.

One mechanism, :func:`variance_scaling_`, draws every fan-based scheme::

    n        = fan_in | fan_out | (fan_in + fan_out) / 2      (mode)
    variance = scale / n
    uniform:           U(-sqrt(3 * variance), +sqrt(3 * variance))
    normal:            N(0, variance)
    truncated_normal:  N(0, std^2) cut at +-2 std, std = sqrt(variance) / 0.8796...
                       (the division restores the variance lost by the cut)

and the named schemes are presets of it:

=====================  =====  ========  ==================  =============================
function               scale  mode      distribution        paper
=====================  =====  ========  ==================  =============================
xavier_uniform_        g^2    fan_avg   uniform             Glorot & Bengio 2010
xavier_normal_         g^2    fan_avg   normal              Glorot & Bengio 2010
glorot_uniform_        1      fan_avg   uniform             Glorot & Bengio 2010 (Keras)
glorot_normal_         1      fan_avg   truncated_normal    Glorot & Bengio 2010 (Keras)
kaiming_uniform_       g^2    fan_in*   uniform             He et al. 2015
kaiming_normal_        g^2    fan_in*   normal              He et al. 2015
he_uniform_            2      fan_in    uniform             He et al. 2015 (Keras)
he_normal_             2      fan_in    truncated_normal    He et al. 2015 (Keras)
lecun_uniform_         1      fan_in    uniform             LeCun et al. 1998
lecun_normal_          1      fan_in    truncated_normal    LeCun et al. 1998
default_uniform_       1/3    fan_in    uniform             PyTorch's Linear/Conv default
=====================  =====  ========  ==================  =============================

(g is ``gain`` or ``calculate_gain(nonlinearity, a)``; * kaiming's mode is selectable.)
Fans follow PyTorch's weight layout ``(out, in, *kernel)``: see
:func:`_calculate_fan_in_and_fan_out`.
"""

from __future__ import annotations

import functools
import math
import numbers
import warnings
from collections.abc import Callable

import numpy as np
from numpy.polynomial.hermite_e import hermegauss

from tinygrad_init.tensor import Tensor, default_generator

__all__ = [
    "INITIALIZERS",
    "calculate_gain",
    "constant_",
    "default_uniform_",
    "delta_orthogonal_",
    "dirac_",
    "eye_",
    "fixup_",
    "get_initializer",
    "gpt2_residual_normal_",
    "glorot_normal_",
    "glorot_uniform_",
    "he_normal_",
    "he_uniform_",
    "kaiming_normal_",
    "kaiming_uniform_",
    "lecun_normal_",
    "lecun_uniform_",
    "lsuv_",
    "normal_",
    "ones_",
    "orthogonal_",
    "residual_scale",
    "scale_residual_branches_",
    "small_normal_",
    "sparse_",
    "trunc_normal_",
    "uniform_",
    "variance_scaling_",
    "xavier_normal_",
    "xavier_uniform_",
    "zero_init_residual_",
    "zeros_",
]

# Standard deviation of a standard normal truncated to [-2, 2] (as in Keras and JAX).
_TRUNC_STD_CORRECTION = 0.87962566103423978

_MODES = ("fan_in", "fan_out", "fan_avg")
_KAIMING_MODES = ("fan_in", "fan_out")
_DISTRIBUTIONS = ("truncated_normal", "normal", "untruncated_normal", "uniform")

# Gauss-Hermite points for the empirical gain of a callable; 200 is about the most
# numpy's hermegauss computes without overflow.
_QUAD_POINTS = 200


# --------------------------------------------------------------------------- helpers


def _data(tensor, fn: str, *, floating: bool = True) -> np.ndarray:
    """The numpy array behind ``tensor``, to be written in place, after checking its type
    and dtype."""
    if not isinstance(tensor, Tensor):
        raise TypeError(f"{fn}: expected a Tensor, got {type(tensor).__name__}")
    data = tensor._array
    if floating and not np.issubdtype(data.dtype, np.floating):
        raise TypeError(
            f"{fn}: needs a floating-point tensor, got dtype {data.dtype} "
            f"(shape {data.shape}); create the tensor with a float dtype such as float32"
        )
    tensor._bump_version()  # the caller writes into it in place
    return data


def _write(data: np.ndarray, values) -> None:
    data[...] = np.asarray(values).astype(data.dtype, copy=False)


def _generator(generator, fn: str) -> np.random.Generator:
    if generator is None:
        return default_generator()
    if not isinstance(generator, np.random.Generator):
        raise TypeError(
            f"{fn}: generator must be a numpy.random.Generator or None, "
            f"got {type(generator).__name__}"
        )
    return generator


def _real(value, name: str, fn: str, *, allow_inf: bool = False) -> float:
    """``value`` as a float; bools, non-numbers and NaN are errors."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{fn}: {name} must be a real number, got {value!r}")
    value = float(value)
    if math.isnan(value) or (math.isinf(value) and not allow_inf):
        raise ValueError(f"{fn}: {name} must be a finite number, got {value}")
    return value


def _non_negative(value, name: str, fn: str) -> float:
    value = _real(value, name, fn)
    if value < 0:
        raise ValueError(f"{fn}: {name} must be non-negative, got {value}")
    return value


def _choice(value, allowed: tuple[str, ...], name: str, fn: str) -> str:
    if not isinstance(value, str) or value not in allowed:
        listed = ", ".join(repr(a) for a in allowed)
        raise ValueError(f"{fn}: {name} must be one of {listed}; got {value!r}")
    return value


def _calculate_fan_in_and_fan_out(shape) -> tuple[int, int]:
    """Fans of a weight of PyTorch layout ``(out, in, *kernel)``; accepts a shape or a tensor.

    ``receptive = prod(shape[2:])``, ``fan_in = shape[1] * receptive``,
    ``fan_out = shape[0] * receptive`` (PyTorch's ``_calculate_fan_in_and_fan_out``).
    """
    shape = tuple(int(s) for s in getattr(shape, "shape", shape))
    if len(shape) < 2:
        raise ValueError(
            f"fan in and fan out can not be computed for a tensor with fewer than 2 "
            f"dimensions, got shape {shape}; fan-based initializers need a weight of shape "
            f"(out, in, *kernel)"
        )
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def _truncated_standard_normal(
    lo: float, hi: float, size: int, gen: np.random.Generator
) -> np.ndarray:
    """``size`` exact draws of N(0, 1) conditioned on ``lo <= z <= hi`` (float64).

    Rejection sampling with the proposal that keeps the acceptance rate above about
    1/3 wherever the interval lies (Robert 1995, "Simulation of truncated normal
    variables"): the normal itself for wide intervals around 0, a uniform on
    ``[lo, hi]`` for narrow ones, and a shifted exponential for wide tail intervals.
    """
    if size == 0:
        return np.empty(0)
    if lo == hi:
        return np.full(size, lo)
    flip = hi <= 0.0  # sample the mirror image on the positive side, then negate
    if flip:
        lo, hi = -hi, -lo
    out = np.empty(size)
    filled = 0
    while filled < size:
        m = 2 * (size - filled) + 16
        if lo < 0.0 < hi:
            if hi - lo >= 1.0:
                x = gen.standard_normal(m)
                keep = (x >= lo) & (x <= hi)
            else:
                x = gen.uniform(lo, hi, m)
                keep = gen.random(m) < np.exp(-0.5 * x * x)
        elif (hi - lo) * hi <= 1.0:  # 0 <= lo < hi, narrow: uniform, acceptance >= e^-1
            x = gen.uniform(lo, hi, m)
            keep = gen.random(m) < np.exp(0.5 * (lo * lo - x * x))
        else:  # 0 <= lo < hi, wide tail: exponential proposal with Robert's optimal rate
            rate = 0.5 * (lo + math.sqrt(lo * lo + 4.0))
            x = lo + gen.standard_exponential(m) / rate
            keep = (gen.random(m) < np.exp(-0.5 * (x - rate) ** 2)) & (x <= hi)
        x = x[keep][: size - filled]
        out[filled : filled + x.size] = x
        filled += x.size
    np.clip(out, lo, hi, out=out)
    return -out if flip else out


# --------------------------------------------------------------------------- gain

_GAIN_ONE = (
    "linear",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "sigmoid",
)
_NONLINEARITIES = _GAIN_ONE + ("tanh", "relu", "leaky_relu", "selu")


@functools.lru_cache(maxsize=1)
def _hermite_rule() -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights with ``E[g(z)] ~= sum(w * g(x))`` for ``z ~ N(0, 1)``."""
    x, w = hermegauss(_QUAD_POINTS)
    return x, w / math.sqrt(2.0 * math.pi)


def _evaluate_activation(fn: Callable, x: np.ndarray) -> np.ndarray:
    """``fn(x)`` as float64; ``fn`` may work on numpy arrays or on Tensors."""
    try:
        y = fn(x.copy())
    except Exception as numpy_error:
        try:
            y = fn(Tensor(x.copy()))
        except Exception as tensor_error:
            raise TypeError(
                f"calculate_gain: the activation {fn!r} failed on a numpy array "
                f"({numpy_error!r}) and on a Tensor ({tensor_error!r})"
            ) from tensor_error
    if isinstance(y, Tensor):
        y = y._array
    y = np.asarray(y, dtype=np.float64)
    if y.shape != x.shape:
        raise ValueError(
            f"calculate_gain: the activation {fn!r} must be elementwise; an input of shape "
            f"{x.shape} gave an output of shape {y.shape}"
        )
    return y


def calculate_gain(nonlinearity, param=None) -> float:
    """The gain that keeps activations at unit scale through ``nonlinearity``.

    PyTorch's table (``torch.nn.init.calculate_gain``): linear, conv*, conv_transpose*
    and sigmoid 1; tanh 5/3; relu sqrt(2); leaky_relu ``sqrt(2 / (1 + a^2))`` with
    ``a = param`` (default 0.01); selu 3/4.

    Any callable activation (a numpy ufunc such as ``np.tanh``, or a function of a numpy
    array or of a Tensor) gets the empirical gain

        gain = 1 / sqrt(E[f(z)^2]),   z ~ N(0, 1),

    computed deterministically with 200-point Gauss-Hermite quadrature
    (``E[g(z)] ~= sum_i w_i g(x_i) / sqrt(2 pi)``). It is exact to rounding for relu and
    leaky relu (the rule is symmetric and exact for ``z^2``), near-exact for smooth
    activations (tanh: 1.59254), and converges slowly for discontinuous ones (a step
    function is off by about 3e-2 in ``E[f^2]``). ``param`` is ignored for callables.
    """
    if isinstance(nonlinearity, str):
        if nonlinearity in _GAIN_ONE:
            return 1.0
        if nonlinearity == "tanh":
            return 5.0 / 3.0
        if nonlinearity == "relu":
            return math.sqrt(2.0)
        if nonlinearity == "leaky_relu":
            if param is None:
                slope = 0.01
            elif isinstance(param, bool) or not isinstance(param, numbers.Real):
                raise ValueError(
                    f"calculate_gain: negative_slope (param) {param!r} is not a valid number"
                )
            else:
                slope = float(param)
            return math.sqrt(2.0 / (1.0 + slope**2))
        if nonlinearity == "selu":
            return 3.0 / 4.0
        raise ValueError(
            f"calculate_gain: unsupported nonlinearity {nonlinearity!r}; expected one of "
            f"{', '.join(_NONLINEARITIES)}, or a callable activation"
        )
    if callable(nonlinearity):
        x, w = _hermite_rule()
        y = _evaluate_activation(nonlinearity, x)
        second_moment = float(np.sum(w * y * y))
        if not math.isfinite(second_moment) or second_moment <= 0.0:
            raise ValueError(
                f"calculate_gain: E[f(z)^2] of {nonlinearity!r} is {second_moment}; the gain "
                f"1 / sqrt(E[f(z)^2]) needs a finite positive value"
            )
        return 1.0 / math.sqrt(second_moment)
    raise TypeError(
        "calculate_gain: nonlinearity must be a name or a callable, "
        f"got {type(nonlinearity).__name__}"
    )


# --------------------------------------------------------------------------- basic fills


def uniform_(tensor, a: float = 0.0, b: float = 1.0, generator=None):
    """Fill with ``U(a, b)`` (``torch.nn.init.uniform_``)."""
    data = _data(tensor, "uniform_")
    a, b = _real(a, "a", "uniform_"), _real(b, "b", "uniform_")
    if a > b:
        raise ValueError(f"uniform_: a must be <= b, got a={a}, b={b}")
    gen = _generator(generator, "uniform_")
    _write(data, gen.uniform(a, b, data.shape))
    return tensor


def normal_(tensor, mean: float = 0.0, std: float = 1.0, generator=None):
    """Fill with ``N(mean, std^2)`` (``torch.nn.init.normal_``)."""
    data = _data(tensor, "normal_")
    mean = _real(mean, "mean", "normal_")
    std = _non_negative(std, "std", "normal_")
    gen = _generator(generator, "normal_")
    _write(data, mean + std * gen.standard_normal(data.shape))
    return tensor


def trunc_normal_(
    tensor, mean: float = 0.0, std: float = 1.0, a: float = -2.0, b: float = 2.0, generator=None
):
    """Fill with ``N(mean, std^2)`` conditioned on ``a <= x <= b``.

    As in ``torch.nn.init.trunc_normal_``, ``a`` and ``b`` are absolute bounds (not
    multiples of ``std``) and ``std`` is that of the normal before truncation. Sampling is
    exact (rejection sampling, efficient even when ``[a, b]`` lies far in a tail). With
    ``std == 0`` the tensor is filled with ``mean`` clipped to ``[a, b]``.
    """
    fn = "trunc_normal_"
    data = _data(tensor, fn)
    mean = _real(mean, "mean", fn)
    std = _non_negative(std, "std", fn)
    a, b = _real(a, "a", fn, allow_inf=True), _real(b, "b", fn, allow_inf=True)
    if a > b:
        raise ValueError(f"{fn}: a must be <= b, got a={a}, b={b}")
    gen = _generator(generator, fn)
    if std == 0.0:
        _write(data, np.full(data.shape, min(max(mean, a), b)))
        return tensor
    z = _truncated_standard_normal((a - mean) / std, (b - mean) / std, data.size, gen)
    _write(data, np.clip(mean + std * z, a, b).reshape(data.shape))
    return tensor


def constant_(tensor, val, generator=None):
    """Fill with ``val`` (``torch.nn.init.constant_``); any numeric dtype; ``generator`` unused."""
    _write(_data(tensor, "constant_", floating=False), val)
    return tensor


def ones_(tensor, generator=None):
    """Fill with 1 (``torch.nn.init.ones_``)."""
    _write(_data(tensor, "ones_", floating=False), 1)
    return tensor


def zeros_(tensor, generator=None):
    """Fill with 0 (``torch.nn.init.zeros_``)."""
    _write(_data(tensor, "zeros_", floating=False), 0)
    return tensor


def small_normal_(tensor, generator=None):
    """Fill with ``N(0, 0.01^2)``: registry name ``'small_normal'``."""
    return normal_(tensor, 0.0, 0.01, generator=generator)


def eye_(tensor, generator=None):
    """Fill a 2-D tensor with the identity (``torch.nn.init.eye_``); rectangular allowed."""
    data = _data(tensor, "eye_", floating=False)
    if data.ndim != 2:
        raise ValueError(f"eye_: only 2-D tensors are supported, got shape {data.shape}")
    _write(data, np.eye(*data.shape))
    return tensor


def dirac_(tensor, groups: int = 1, generator=None):
    """Fill a 3-, 4- or 5-D conv weight with the Dirac delta (``torch.nn.init.dirac_``).

    ``weight[g * out_per_group + d, d, centre] = 1`` for ``d < min(out_per_group, in)``
    and each group ``g``, zero elsewhere: a convolution with it keeps its input channels
    unchanged (the first ``min(out_per_group, in)`` of each group; extra outputs are 0).
    """
    fn = "dirac_"
    data = _data(tensor, fn, floating=False)
    if data.ndim not in (3, 4, 5):
        raise ValueError(
            f"{fn}: only 3-, 4- and 5-D tensors (conv weights) are supported, "
            f"got shape {data.shape}"
        )
    if isinstance(groups, bool) or not isinstance(groups, numbers.Integral) or groups < 1:
        raise ValueError(f"{fn}: groups must be a positive integer, got {groups!r}")
    if data.shape[0] % groups != 0:
        raise ValueError(
            f"{fn}: dim 0 of shape {data.shape} ({data.shape[0]}) must be divisible by "
            f"groups ({groups})"
        )
    out_per_group = data.shape[0] // groups
    n = min(out_per_group, data.shape[1])
    centre = tuple(k // 2 for k in data.shape[2:])
    values = np.zeros(data.shape)
    for g in range(groups):
        for d in range(n):
            values[(g * out_per_group + d, d) + centre] = 1.0
    _write(data, values)
    return tensor


def orthogonal_(tensor, gain: float = 1.0, generator=None):
    """Fill with a (semi-)orthogonal matrix times ``gain`` (``torch.nn.init.orthogonal_``).

    Saxe et al. 2014, "Exact solutions to the nonlinear dynamics of learning in deep
    linear neural networks". The tensor is viewed as ``(shape[0], prod(shape[1:]))``; ``Q``
    from the QR decomposition of a standard normal matrix, with the signs of ``diag(R)``
    folded in so that ``Q`` is Haar-distributed. Rows are orthonormal when rows <= cols
    (``W W^T = gain^2 I``), columns otherwise (``W^T W = gain^2 I``).
    """
    fn = "orthogonal_"
    data = _data(tensor, fn)
    if data.ndim < 2:
        raise ValueError(
            f"{fn}: only tensors with 2 or more dimensions are supported, got shape {data.shape}"
        )
    gain = _real(gain, "gain", fn)
    gen = _generator(generator, fn)
    if data.size == 0:
        return tensor
    rows = data.shape[0]
    cols = data.size // rows
    flat = gen.standard_normal((rows, cols))
    if rows < cols:
        flat = flat.T
    q, r = np.linalg.qr(flat)
    q *= np.where(np.diag(r) >= 0.0, 1.0, -1.0)
    if rows < cols:
        q = q.T
    _write(data, (gain * q).reshape(data.shape))
    return tensor


def sparse_(tensor, sparsity: float, std: float = 0.01, generator=None):
    """Fill a 2-D tensor with ``N(0, std^2)`` and zero a fraction of each column.

    ``ceil(sparsity * rows)`` entries of every column, at random rows, are set to 0
    (``torch.nn.init.sparse_``; Martens 2010, "Deep learning via Hessian-free
    optimization"). ``0 <= sparsity < 1``.
    """
    fn = "sparse_"
    data = _data(tensor, fn)
    if data.ndim != 2:
        raise ValueError(f"{fn}: only 2-D tensors are supported, got shape {data.shape}")
    sparsity = _real(sparsity, "sparsity", fn)
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"{fn}: sparsity must be in [0, 1), got {sparsity}")
    std = _non_negative(std, "std", fn)
    gen = _generator(generator, fn)
    rows, cols = data.shape
    num_zeros = math.ceil(sparsity * rows)
    values = std * gen.standard_normal((rows, cols))
    order = gen.permuted(np.tile(np.arange(rows)[:, None], (1, cols)), axis=0)
    values[order[:num_zeros], np.arange(cols)] = 0.0
    _write(data, values)
    return tensor


# --------------------------------------------------------------------------- variance scaling


def variance_scaling_(
    tensor,
    scale: float = 1.0,
    mode: str = "fan_in",
    distribution: str = "truncated_normal",
    generator=None,
):
    """Fill with variance ``scale / n`` (Keras' ``VarianceScaling``, JAX's ``variance_scaling``).

    ``n`` is ``fan_in``, ``fan_out`` or ``(fan_in + fan_out) / 2`` (``mode``).
    ``distribution``:

    - ``'truncated_normal'``: ``N(0, std^2)`` truncated at +-2 std, with
      ``std = sqrt(scale / n) / 0.87962566103423978`` so that the variance is ``scale / n``;
    - ``'normal'`` (alias ``'untruncated_normal'``): ``N(0, scale / n)``;
    - ``'uniform'``: ``U(-limit, limit)``, ``limit = sqrt(3 * scale / n)``.
    """
    fn = "variance_scaling_"
    data = _data(tensor, fn)
    scale = _non_negative(scale, "scale", fn)
    mode = _choice(mode, _MODES, "mode", fn)
    distribution = _choice(distribution, _DISTRIBUTIONS, "distribution", fn)
    gen = _generator(generator, fn)
    fan_in, fan_out = _calculate_fan_in_and_fan_out(data.shape)
    if data.size == 0:
        return tensor
    n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2.0}[mode]
    variance = scale / n
    if distribution == "truncated_normal":
        std = math.sqrt(variance) / _TRUNC_STD_CORRECTION
        values = std * _truncated_standard_normal(-2.0, 2.0, data.size, gen)
    elif distribution in ("normal", "untruncated_normal"):
        values = math.sqrt(variance) * gen.standard_normal(data.size)
    else:
        limit = math.sqrt(3.0 * variance)
        values = gen.uniform(-limit, limit, data.size)
    _write(data, values.reshape(data.shape))
    return tensor


def _gain_squared(gain, fn: str) -> float:
    return _non_negative(gain, "gain", fn) ** 2


def _kaiming_scale(a, mode, nonlinearity, fn: str) -> float:
    _choice(mode, _KAIMING_MODES, "mode", fn)
    return calculate_gain(nonlinearity, a) ** 2


def xavier_uniform_(tensor, gain: float = 1.0, generator=None):
    """Glorot & Bengio 2010: ``U(-b, b)``, ``b = gain * sqrt(6 / (fan_in + fan_out))``.

    ``torch.nn.init.xavier_uniform_``; ``variance_scaling_(gain^2, 'fan_avg', 'uniform')``.
    """
    s = _gain_squared(gain, "xavier_uniform_")
    return variance_scaling_(tensor, s, "fan_avg", "uniform", generator)


def xavier_normal_(tensor, gain: float = 1.0, generator=None):
    """Glorot & Bengio 2010: ``N(0, std^2)``, ``std = gain * sqrt(2 / (fan_in + fan_out))``.

    Not truncated, as ``torch.nn.init.xavier_normal_``;
    ``variance_scaling_(gain^2, 'fan_avg', 'normal')``.
    """
    s = _gain_squared(gain, "xavier_normal_")
    return variance_scaling_(tensor, s, "fan_avg", "normal", generator)


def kaiming_uniform_(
    tensor, a: float = 0, mode: str = "fan_in", nonlinearity="leaky_relu", generator=None
):
    """He et al. 2015: ``U(-b, b)``, ``b = gain * sqrt(3 / fan)``.

    ``gain = calculate_gain(nonlinearity, a)``. ``torch.nn.init.kaiming_uniform_``; ``fan``
    is ``fan_in`` or ``fan_out`` (``mode``); ``variance_scaling_(gain^2, mode, 'uniform')``.
    """
    s = _kaiming_scale(a, mode, nonlinearity, "kaiming_uniform_")
    return variance_scaling_(tensor, s, mode, "uniform", generator)


def kaiming_normal_(
    tensor, a: float = 0, mode: str = "fan_in", nonlinearity="leaky_relu", generator=None
):
    """He et al. 2015: ``N(0, std^2)``, ``std = gain / sqrt(fan)``.

    ``gain = calculate_gain(nonlinearity, a)``.
    Not truncated, as ``torch.nn.init.kaiming_normal_``; ``fan`` is ``fan_in`` or
    ``fan_out`` (``mode``); ``variance_scaling_(gain^2, mode, 'normal')``.
    """
    s = _kaiming_scale(a, mode, nonlinearity, "kaiming_normal_")
    return variance_scaling_(tensor, s, mode, "normal", generator)


def glorot_uniform_(tensor, generator=None):
    """Glorot & Bengio 2010 (Keras/JAX): ``U(-b, b)``, ``b = sqrt(6 / (fan_in + fan_out))``."""
    return variance_scaling_(tensor, 1.0, "fan_avg", "uniform", generator)


def glorot_normal_(tensor, generator=None):
    """Glorot & Bengio 2010 (Keras/JAX): truncated normal, variance ``2 / (fan_in + fan_out)``.

    Truncated at +-2 std (unlike :func:`xavier_normal_`); ``variance_scaling_(1, 'fan_avg')``.
    """
    return variance_scaling_(tensor, 1.0, "fan_avg", "truncated_normal", generator)


def he_uniform_(tensor, generator=None):
    """He et al. 2015 (Keras/JAX): ``U(-b, b)``, ``b = sqrt(6 / fan_in)``."""
    return variance_scaling_(tensor, 2.0, "fan_in", "uniform", generator)


def he_normal_(tensor, generator=None):
    """He et al. 2015 (Keras/JAX): truncated normal, variance ``2 / fan_in``.

    Truncated at +-2 std (unlike :func:`kaiming_normal_`); ``variance_scaling_(2, 'fan_in')``.
    """
    return variance_scaling_(tensor, 2.0, "fan_in", "truncated_normal", generator)


def lecun_uniform_(tensor, generator=None):
    """LeCun et al. 1998, "Efficient BackProp": ``U(-b, b)``, ``b = sqrt(3 / fan_in)``."""
    return variance_scaling_(tensor, 1.0, "fan_in", "uniform", generator)


def lecun_normal_(tensor, generator=None):
    """LeCun et al. 1998, "Efficient BackProp": truncated normal, variance ``1 / fan_in``.

    Truncated at +-2 std, as in Keras and JAX; ``variance_scaling_(1, 'fan_in')``.
    """
    return variance_scaling_(tensor, 1.0, "fan_in", "truncated_normal", generator)


def default_uniform_(tensor, fan_in: int | None = None, generator=None):
    """PyTorch's default for Linear/Conv weights and biases: ``U(-b, b)``, ``b = 1 / sqrt(fan_in)``.

    This is what ``torch.nn.Linear.reset_parameters`` amounts to (there written as
    ``kaiming_uniform_(a=sqrt(5))``). ``fan_in`` defaults to the tensor's own; pass the
    weight's ``fan_in`` to initialize a bias. Registry name ``'pytorch_default'``.
    """
    fn = "default_uniform_"
    data = _data(tensor, fn)
    if fan_in is None:
        fan_in, _ = _calculate_fan_in_and_fan_out(data.shape)
    elif isinstance(fan_in, bool) or not isinstance(fan_in, numbers.Integral) or fan_in < 1:
        raise ValueError(f"{fn}: fan_in must be a positive integer or None, got {fan_in!r}")
    gen = _generator(generator, fn)
    if data.size == 0:
        return tensor
    bound = 1.0 / math.sqrt(fan_in)
    _write(data, gen.uniform(-bound, bound, data.shape))
    return tensor


# --------------------------------------------------------------------------- LSUV


def _weighted_layers(model) -> list:
    modules = getattr(model, "modules", None)
    if not callable(modules):
        raise TypeError(
            f"lsuv_: model must be a Module (with .modules()), got {type(model).__name__}"
        )
    layers, seen = [], set()
    for m in modules():
        w = getattr(m, "weight", None)
        if isinstance(w, Tensor) and w.ndim >= 2 and id(m) not in seen:
            seen.add(id(m))
            layers.append(m)
    return layers


def lsuv_(model, data, tol: float = 0.1, max_iter: int = 10, generator=None):
    """Layer-sequential unit-variance initialization (Mishkin & Matas 2016, "All you need
    is a good init").

    Every layer with a weight of 2 or more dimensions (Linear, Conv) is first given an
    orthogonal weight (:func:`orthogonal_`); then, layer by layer in the order the forward
    pass reaches them, the weight is divided by ``sqrt(var(output))`` of that layer on the
    batch ``data`` until ``|var(output) - 1| < tol`` or after ``max_iter`` rescalings. A layer
    that does not converge is reported with ``warnings.warn``. Biases are left alone.
    Returns ``model``.
    """
    fn = "lsuv_"
    tol = _real(tol, "tol", fn)
    if tol <= 0:
        raise ValueError(f"{fn}: tol must be positive, got {tol}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, numbers.Integral) or max_iter < 1:
        raise ValueError(f"{fn}: max_iter must be a positive integer, got {max_iter!r}")
    gen = _generator(generator, fn)
    layers = _weighted_layers(model)
    if not layers:
        raise ValueError(f"{fn}: the model has no layer with a weight of 2 or more dimensions")

    from tinygrad_init.autograd import no_grad

    def forward() -> None:
        with no_grad():
            model(data)

    for layer in layers:
        orthogonal_(layer.weight, generator=gen)

    # The forward order: the order in which one pass first calls each layer.
    order: list = []

    def record(module, inputs, output) -> None:
        if all(module is not m for m in order):
            order.append(module)

    handles = [layer.register_forward_hook(record) for layer in layers]
    try:
        forward()
    finally:
        for h in handles:
            h.remove()
    unused = [type(m).__name__ for m in layers if all(m is not o for o in order)]
    if unused:
        warnings.warn(
            f"{fn}: {len(unused)} layer(s) not reached by model(data) were left "
            f"orthogonal-initialized: {', '.join(unused)}",
            stacklevel=2,
        )

    for index, layer in enumerate(order):
        seen: list[float] = []

        def capture(module, inputs, output, seen=seen) -> None:
            if len(seen) == 0:
                out = output._array if isinstance(output, Tensor) else output
                seen.append(float(np.var(np.asarray(out, dtype=np.float64))))

        handle = layer.register_forward_hook(capture)
        weight = layer.weight._array

        def measure(seen=seen) -> float:
            seen.clear()
            forward()
            return seen[0]

        try:
            var = measure()
            for _ in range(max_iter):
                if abs(var - 1.0) < tol or not math.isfinite(var) or var <= 0.0:
                    break
                weight[...] = (weight / math.sqrt(var)).astype(weight.dtype)
                var = measure()
        finally:
            handle.remove()
        if not abs(var - 1.0) < tol:
            warnings.warn(
                f"{fn}: layer {index} ({type(layer).__name__}) did not reach unit output "
                f"variance: var = {var:.4g} after {max_iter} rescaling(s), tol = {tol}",
                stacklevel=2,
            )
    return model


# --------------------------------------------------------------------------- residual networks
#
# A module that adds branches to a residual stream says so with a method
# ``residual_branches()`` returning one list of modules per branch (``nn.Residual``: its
# ``branch``; ``nn.TransformerEncoderLayer``: ``[self_attn]`` and ``[linear1, linear2]``).
# The functions below find branches through it, so they work on any model built from such
# blocks; the weighted layers of a branch are its modules with a ``weight``, in order.
#
# Two schemes of the same era are deliberately not rules of ``residual_scale``:
#
# - T-Fixup (Huang et al. 2020) starts from Xavier weights and N(0, d^(-1/2)) embeddings, then
#   scales the value and output projections of every attention block and both feed-forward
#   weights of an N-layer encoder by 0.67 N^(-1/4) (decoder blocks and the embeddings by
#   (9N)^(-1/4)). The factor reaches every weighted layer of a branch and the embeddings, not
#   only a branch's last layer, and it is derived for, and only works with, the LayerNorms
#   removed and no warm-up: an architectural change a factor cannot express.
# - muP (Yang & Hu 2021, Tensor Programs V, table 3 for Adam) scales by width n, not depth:
#   hidden weights Var = 1/fan_in with learning rate proportional to 1/fan_in, the output
#   layer Var = 1/fan_in^2 (or zero) with learning rate 1/fan_in, attention logits q.k / d
#   instead of q.k / sqrt(d). At a fixed width its init differs from the standard one only in
#   the output layer, and the rest is a per-layer learning-rate rule, which belongs to the
#   optimizer's parameter groups, not to an init factor.

_RESIDUAL_RULES = ("none", "zero", "sqrt_depth", "gpt2", "fixup")


def residual_scale(rule: str, n_layers: int, branch_layers: int = 2) -> float:
    """The factor a scheme applies to the last layer of every residual branch.

    ==========  ==============================  =======================================
    rule        factor                          paper / code
    ==========  ==============================  =======================================
    none        1                               He et al. 2016 (plain He branches)
    zero        0                               Goyal et al. 2017; torchvision's
                                                ``zero_init_residual``
    sqrt_depth  1 / sqrt(L)                     e.g. Hanin & Rolnick 2018
    gpt2        1 / sqrt(2 L)                   Radford et al. 2019 (GPT-2); nanoGPT's
                                                ``c_proj`` init
    fixup       L^(-1 / (2 m - 2))              Zhang et al. 2019 (applied to every layer
                                                of a branch but its last, which is 0)
    ==========  ==============================  =======================================

    L = ``n_layers`` (residual blocks), m = ``branch_layers``.  With branches that preserve
    the variance of their input, the stream's variance grows by ``(1 + factor^2)`` per
    block: 2^L unscaled, about e with 1 / sqrt(L), about e^(1/2) with 1 / sqrt(2 L), 1 for
    zero.
    """
    fn = "residual_scale"
    rule = _choice(rule, _RESIDUAL_RULES, "rule", fn)
    n = _positive_int(n_layers, "n_layers", fn)
    m = _positive_int(branch_layers, "branch_layers", fn)
    if rule == "none":
        return 1.0
    if rule == "zero":
        return 0.0
    if rule == "sqrt_depth":
        return 1.0 / math.sqrt(n)
    if rule == "gpt2":
        return 1.0 / math.sqrt(2 * n)
    if m < 2:
        raise ValueError(f"{fn}: Fixup's exponent -1/(2m-2) needs branch_layers >= 2, got {m}")
    return n ** (-1.0 / (2 * m - 2))


def _positive_int(value, name: str, fn: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{fn}: {name} must be a positive integer, got {value!r}")
    return int(value)


def _residual_branches(model, fn: str) -> list[list]:
    """Every residual branch of ``model`` as the list of its modules with a weight."""
    if not callable(getattr(model, "modules", None)):
        raise TypeError(
            f"{fn}: model must be a Module (with .modules()), got {type(model).__name__}"
        )
    branches = []
    for m in model.modules():
        if callable(getattr(m, "residual_branches", None)):
            for branch in m.residual_branches():
                layers = []
                for part in branch:
                    for sub in part.modules():
                        if isinstance(getattr(sub, "weight", None), Tensor) and all(
                            sub is not seen for seen in layers
                        ):
                            layers.append(sub)
                branches.append(layers)
    if not branches:
        raise ValueError(
            f"{fn}: the model has no residual blocks (modules with residual_branches(), "
            "such as nn.Residual or nn.TransformerEncoderLayer)"
        )
    return branches


def _count_blocks(model) -> int:
    return sum(callable(getattr(m, "residual_branches", None)) for m in model.modules())


def scale_residual_branches_(model, rule: str = "gpt2", n_layers: int | None = None):
    """Multiply the weight of the last weighted layer of every residual branch by
    :func:`residual_scale` ``(rule, n_layers)``; returns ``model``.

    The last weighted layer is the branch's last Linear/Conv, or its last normalization
    layer when one follows it (then its gain gamma is scaled, as torchvision zeroes the
    last BatchNorm's weight); its bias is left alone, except that rule 'zero' zeroes it
    too so that the branch is exactly 0.  ``n_layers`` defaults to the number of residual
    blocks, so ``rule='gpt2'`` on a transformer of N layers (two branches
    each) gives std / sqrt(2 N) on the attention output projections and the second
    feed-forward layers, GPT-2's scheme.  Apply it after the base initialization.
    """
    fn = "scale_residual_branches_"
    if rule == "fixup":
        raise ValueError(f"{fn}: Fixup changes more than the last layer; use fixup_(model)")
    branches = _residual_branches(model, fn)
    factor = residual_scale(rule, _count_blocks(model) if n_layers is None else n_layers)
    for layers in branches:
        if layers:
            last = layers[-1]
            last.weight._array *= np.asarray(factor, dtype=last.weight.dtype)
            if factor == 0.0 and getattr(last, "bias", None) is not None:
                zeros_(last.bias)
    return model


def zero_init_residual_(model):
    """Zero the last weighted layer (weight and bias) of every residual branch
    (``scale_residual_branches_`` with rule 'zero'): each block starts as the identity,
    so the stream's variance is exactly that of the stem at any depth.  Goyal et al. 2017,
    "Accurate, large minibatch SGD"; torchvision's ``resnet(zero_init_residual=True)``."""
    return scale_residual_branches_(model, "zero")


def gpt2_residual_normal_(tensor, n_layers: int, std: float = 0.02, generator=None):
    """GPT-2's residual projection init: ``N(0, (std / sqrt(2 * n_layers))^2)``.

    Radford et al. 2019; nanoGPT initialises every ``c_proj`` weight so, the other weights
    ``N(0, 0.02^2)``: a transformer of ``n_layers`` blocks adds ``2 * n_layers`` branches to
    its stream, and the division keeps the sum of their variances at ``std^2``.
    """
    fn = "gpt2_residual_normal_"
    factor = residual_scale("gpt2", n_layers)
    return normal_(tensor, 0.0, _non_negative(std, "std", fn) * factor, generator=generator)


def fixup_(model, classifier=None):
    """Fixup (Zhang, Dauphin & Ma 2019, "Fixup initialization: residual learning without
    normalization") on a model whose weights hold a standard (He) initialization.

    With L residual branches of m weighted layers each: every layer of a branch but its
    last is multiplied by ``L^(-1 / (2m - 2))``, the last layer of each branch is zeroed,
    and so are the classifier's weight and bias (``classifier``, or the last weighted layer
    outside the branches); the branch biases are zeroed and every scalar multiplier of a
    branch (an ``nn.ResidualGate``, a module with ``alpha``) is set to 1.  Fixup's scalar
    biases before each layer are part of the architecture, not of the init: a Linear or
    Conv with a bias (started at 0 here) plays their role.  Returns ``model``.
    """
    fn = "fixup_"
    branches = _residual_branches(model, fn)
    n = len(branches)
    in_branch = set()
    for layers in branches:
        weighted = [m for m in layers if m.weight.ndim >= 2]
        in_branch.update(id(m) for m in layers)
        if not weighted:
            continue
        factor = residual_scale("fixup", n, max(len(weighted), 2))
        for layer in weighted[:-1]:
            layer.weight._array *= np.asarray(factor, dtype=layer.weight.dtype)
        zeros_(weighted[-1].weight)
        for layer in weighted:
            if getattr(layer, "bias", None) is not None:
                zeros_(layer.bias)
    for m in model.modules():
        if isinstance(getattr(m, "alpha", None), Tensor):
            ones_(m.alpha)
    if classifier is None:
        outside = [
            m
            for m in model.modules()
            if id(m) not in in_branch
            and isinstance(getattr(m, "weight", None), Tensor)
            and m.weight.ndim >= 2
        ]
        if not outside:
            raise ValueError(f"{fn}: no weighted layer outside the branches to use as classifier")
        classifier = outside[-1]
    zeros_(classifier.weight)
    if getattr(classifier, "bias", None) is not None:
        zeros_(classifier.bias)
    return model


def delta_orthogonal_(tensor, gain: float = 1.0, generator=None):
    """Delta-orthogonal init of a conv weight (Xiao et al. 2018, "Dynamical isometry and a
    mean field theory of CNNs"; JAX's ``delta_orthogonal``).

    ``weight[:, :, centre] = gain * H`` with H an (out, in) matrix with orthonormal
    columns (Haar-distributed, :func:`orthogonal_`), zero at every other kernel position:
    at init the convolution is an orthogonal map of the channels at each pixel, so it
    preserves norms exactly (dynamical isometry for the linear part).  Needs a 3-, 4- or
    5-D weight with ``out_channels >= in_channels``.
    """
    fn = "delta_orthogonal_"
    data = _data(tensor, fn)
    if data.ndim not in (3, 4, 5):
        raise ValueError(
            f"{fn}: only 3-, 4- and 5-D tensors (conv weights) are supported, got shape "
            f"{data.shape}"
        )
    if data.shape[0] < data.shape[1]:
        raise ValueError(
            f"{fn}: in_channels ({data.shape[1]}) must be <= out_channels ({data.shape[0]}) "
            f"for an orthogonal map of the channels, got shape {data.shape}"
        )
    centre = Tensor(np.empty(data.shape[:2]))
    orthogonal_(centre, gain, generator=generator)
    values = np.zeros(data.shape)
    values[(slice(None), slice(None)) + tuple(k // 2 for k in data.shape[2:])] = centre._array
    _write(data, values)
    return tensor


# --------------------------------------------------------------------------- registry

# Names usable with defaults only. constant_ and sparse_ need an argument: pass e.g.
# functools.partial(init.sparse_, sparsity=0.9) where an initializer is expected.
INITIALIZERS: dict[str, Callable] = {
    "zeros": zeros_,
    "ones": ones_,
    "uniform": uniform_,
    "normal": normal_,
    "small_normal": small_normal_,
    "trunc_normal": trunc_normal_,
    "xavier_uniform": xavier_uniform_,
    "xavier_normal": xavier_normal_,
    "glorot_uniform": glorot_uniform_,
    "glorot_normal": glorot_normal_,
    "kaiming_uniform": kaiming_uniform_,
    "kaiming_normal": kaiming_normal_,
    "he_uniform": he_uniform_,
    "he_normal": he_normal_,
    "lecun_uniform": lecun_uniform_,
    "lecun_normal": lecun_normal_,
    "orthogonal": orthogonal_,
    "eye": eye_,
    "dirac": dirac_,
    "delta_orthogonal": delta_orthogonal_,
    "pytorch_default": default_uniform_,
}


def get_initializer(name_or_fn) -> Callable:
    """The initializer ``fn(tensor, generator=None)`` for a registry name; a callable is
    returned unchanged. Names: the keys of :data:`INITIALIZERS`."""
    if isinstance(name_or_fn, str):
        try:
            return INITIALIZERS[name_or_fn]
        except KeyError:
            raise ValueError(
                f"get_initializer: unknown initializer {name_or_fn!r}; known names: "
                f"{', '.join(sorted(INITIALIZERS))} (constant_ and sparse_ need an argument: "
                f"pass functools.partial(init.sparse_, sparsity=0.9) or similar)"
            ) from None
    if callable(name_or_fn):
        return name_or_fn
    raise TypeError(
        f"get_initializer: expected an initializer name or a callable, "
        f"got {type(name_or_fn).__name__}"
    )
