"""The differentiable primitives: each op's forward and its gradient rule, side by side.

A primitive is a forward function on numpy arrays plus one vector-Jacobian product (VJP)
rule per differentiable input.  A rule has the signature

    rule(xp, g, out, *inputs, *params) -> gradient with respect to that input

where ``g`` is the gradient arriving at the op's output and ``out`` is the output.  Rules
use Python operators and the small array vocabulary ``xp`` (the names of ``NUMPY`` below).
The engine calls them in one of two ways:

* plain backward: numpy arrays and ``xp = NUMPY``, nothing is recorded (the fast path);
* ``create_graph=True``: Tensors and the Tensor implementation of the same vocabulary
  (``tensor.TENSOR_XP``), so the backward pass is itself a graph and can be differentiated.

Rules return gradients in the broadcast shape of the output; the engine sums them back to
each operand's shape in one place (``unbroadcast``).

Kinks are decided here, once: relu'(0) = 0; abs'(0) = 0; clamp passes the gradient on its
closed interval [min, max]; ties in ``maximum``/``minimum`` share the gradient equally; ties
in a full max/min reduction share it equally (NaN entries are the extreme when there is
one, as in PyTorch); max/min along a dim give it to the selected (first) index.  Masks are
applied by select (``where``, or relu's product of the gradient's bits with 0 or 1), never by
multiplying floats: a gradient that is infinite where the mask is 0 gives 0, not NaN
(``relu(x).sqrt()`` at 0).  Special points, also as PyTorch:
d(a ** b)/da = 0 where b == 0 (``x ** 0`` at x = 0); d(a ** b)/db = 0 where a == 0 and
b >= 0; std's square root passes 0 where std == 0 (constant data).

Each primitive also declares what its rules read (``saves``): the inputs, by position, and
"out".  The engine checks, before a rule runs, that none of those tensors was modified in
place since the op was recorded (their version counters), as PyTorch does for the tensors
it saves for backward.  Composite operations (sub, mean, var, softmax, ...) are built from these in
``tensor.py`` and get their gradients for free.
"""

from __future__ import annotations

import builtins
import math
from threading import local as _thread_local
from types import SimpleNamespace

import numpy as np

__all__ = ["Primitive", "NUMPY", "unbroadcast", "defjvp"]


class Primitive:
    """A named forward function with its VJP rules (one per differentiable input).

    ``variadic`` primitives (``cat``) take any number of inputs and one rule that receives
    the input's position first: ``rule(i, xp, g, out, inputs, *params)``.

    ``saves`` has one entry per rule: what that rule reads, as input positions and "out"
    (default: every input and the output).  ``view`` marks ops whose output shares its
    input's storage (reshape, permute, expand, basic indexing), as PyTorch's views do.
    ``batched`` marks ops whose numpy rules also take a cotangent with one extra leading
    dimension (a batch of cotangents, ``g.shape == (n,) + out.shape``) and return gradients
    with it (before unbroadcasting), so one backward carries n cotangents (func.jacrev).
    """

    __slots__ = ("name", "forward", "vjps", "variadic", "saves", "view", "jvps", "batched")

    def __init__(self, name, forward, *vjps, variadic=False, saves=None, view=False, batched=False):
        self.name = name
        self.forward = forward
        self.vjps = vjps
        self.variadic = variadic
        if saves is None:
            saves = (tuple(range(len(vjps))) + ("out",),) * len(vjps)
        if len(saves) != len(vjps):
            raise ValueError(f"primitive {name}: {len(vjps)} rules but {len(saves)} saves")
        # None when no rule reads anything, so the engine skips the version check at once
        self.saves = saves if builtins.any(saves) else None
        self.view = view
        self.batched = batched
        self.jvps = None  # tangent rules, set by defjvp

    def jvp(self, i, xp, t, out, inputs, params):
        """Contribution of input ``i``'s tangent ``t`` to the output's tangent (J_i t).

        The result broadcasts against the output; the caller sums the contributions."""
        if self.jvps is None:
            raise NotImplementedError(
                f"forward-mode derivative (jvp) of op '{self.name}' is not implemented"
            )
        if self.variadic:
            return self.jvps[0](i, xp, t, out, inputs, *params)
        return self.jvps[i](xp, t, out, *inputs, *params)

    def vjp(self, xp, g, out, inputs, params, needs):
        """Gradients for the inputs flagged in ``needs`` (None elsewhere)."""
        grads = []  # plain loops: cheaper than comprehensions for an op's 1-3 inputs
        if self.variadic:
            rule = self.vjps[0]
            for i, need in enumerate(needs):
                grads.append(rule(i, xp, g, out, inputs, *params) if need else None)
        else:
            args = (xp, g, out, *inputs, *params)  # the same arguments for every rule
            for rule, need in zip(self.vjps, needs):
                grads.append(rule(*args) if need else None)
        return grads

    def __repr__(self):
        return f"<primitive {self.name}>"


# ----------------------------------------------------------------------------------------
# Helpers shared by forwards and rules (all on numpy arrays).


def unbroadcast(xp, g, shape):
    """Sum ``g`` over the dimensions that broadcasting added or stretched, giving ``shape``.

    The one place where broadcasting is undone: leading dims are summed away, then dims
    where the operand had size 1 are summed with keepdims.
    """
    if g.shape == shape:
        return g
    extra = g.ndim - len(shape)
    axes = tuple(range(extra)) + tuple(
        extra + i for i, n in enumerate(shape) if n == 1 and g.shape[extra + i] != 1
    )
    if axes:
        g = xp.sum(g, axes, True)
    return xp.reshape(g, shape)


def _expand_reduced(xp, g, axis, keepdims):
    """Re-insert the dims removed by a reduction so ``g`` broadcasts against its input."""
    if keepdims or axis is None:
        return g
    return xp.expand_dims(g, axis)


def _is_basic_index(index):
    """True when assignment through ``index`` touches each element at most once."""
    items = index if isinstance(index, tuple) else (index,)
    return all(
        isinstance(i, (slice, int, np.integer))
        or i is None
        or i is Ellipsis
        or (isinstance(i, np.ndarray) and i.dtype == np.bool_)
        for i in items
    )


def _scatter(g, shape, index):
    """zeros(shape) with ``g`` added at ``index``; repeated indices accumulate."""
    out = np.zeros(shape, dtype=g.dtype)
    if _is_basic_index(index):
        out[index] = g
    else:
        np.add.at(out, index, g)
    return out


def _sigmoid(a):
    """1 / (1 + exp(-a)), evaluated without overflow on either side."""
    e = np.exp(-np.abs(a))
    return np.where(a >= 0, 1 / (1 + e), e / (1 + e))


def _logsumexp(a, axis, keepdims):
    """log(sum(exp(a))) along ``axis``, shifted by the max for stability."""
    m = np.max(a, axis=axis, keepdims=True, initial=-np.inf)  # -inf over an empty dim
    m = np.where(np.isfinite(m), m, 0)
    with np.errstate(divide="ignore"):  # log(0) = -inf: the sum over an empty dim
        out = np.log(np.sum(np.exp(a - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis)


def _tie_share(xp, g, a, b):
    """The gradient share of ``a`` in max(a, b): 0 where a < b, g / 2 where a == b, else g
    (so both operands get g where either is NaN, as in PyTorch's maximum_backward)."""
    a, b = xp.raw(a), xp.raw(b)
    return xp.where(a < b, 0, xp.where(a == b, g * 0.5, g))


def _full_extreme_grad(xp, g, out, a):
    """Equal shares of ``g`` among the entries equal to the reduced extreme (or NaN when the
    extreme is NaN, as PyTorch's evenly_distribute_backward), 0 elsewhere."""
    a, o = xp.raw(a), xp.raw(out)
    mask = a == o
    if o != o:  # NaN propagated: the NaN entries are the extreme
        mask = np.isnan(a)
    return xp.where(mask, g / np.asarray(mask.sum(), dtype=a.dtype), 0)


def _selected_grad(xp, g, a, axis, keepdims, pick):
    """``g`` at the index that ``pick`` (argmax/argmin) selects along ``axis``, 0 elsewhere."""
    a = xp.raw(a)
    idx = np.expand_dims(pick(a, axis=axis), axis)
    positions = np.arange(a.shape[axis]).reshape((-1,) + (1,) * (a.ndim - axis - 1))
    return xp.where(positions == idx, _expand_reduced(xp, g, (axis,), keepdims), 0)


# the unsigned integer of each float's width, to view its bits
_BITS = {
    np.dtype(np.float16): np.uint16,
    np.dtype(np.float32): np.uint32,
    np.dtype(np.float64): np.uint64,
}


def _relu_grad(xp, g, out, a):
    """g where out = max(a, 0) != 0 (a > 0, or a NaN), +0 where a <= 0 whatever g is (inf
    and NaN too): PyTorch's threshold_backward(g, out, 0).

    On numpy it is g's bits times the mask (1 or 0), the select bit for bit in one call:
    np.where with a scalar measured 7x slower inside an MLP's backward (64x256 float32,
    57 us -> 7.6 us), the and of g's bits with a mask widened to words of ones 1.3x slower
    (16x64 float32, 5.1 us -> 3.7 us; 64x256, 11.4 us -> 9.1 us)."""
    if xp is NUMPY:
        bits = _BITS.get(g.dtype) if type(g) is np.ndarray else None
        if bits is None or g.shape != out.shape:
            return np.where(out != 0, g, 0)
        return np.multiply(g.view(bits), out != 0).view(g.dtype)
    return xp.where(xp.raw(out) == 0, 0, g)


def _clamp_mask(a, lo, hi):
    """Where the gradient passes: lo <= a <= hi."""
    mask = np.ones(a.shape, dtype=bool)
    if lo is not None:
        mask &= a >= lo
    if hi is not None:
        mask &= a <= hi
    return mask


def _pow_grad_base(xp, g, out, a, b):
    """d(a ** b)/da = b * a ** (b - 1), and 0 wherever b == 0, whatever g is (PyTorch's
    pow_backward: a ** 0 is the constant 1; the formula would give 0 * inf = NaN at a = 0,
    and NaN for an infinite g).  b == 0 is a special point: the rule is not differentiable
    in b there."""
    zero = xp.raw(b) == 0
    if np.all(zero):
        return xp.where(zero, 0, g)
    with np.errstate(divide="ignore", invalid="ignore"):
        full = g * b * a ** (b - 1)
    return xp.where(zero, 0, full) if np.any(zero) else full


def _pow_grad_exponent(xp, g, out, a, b):
    """d(a ** b)/db = g * (a ** b * log(a)), the factor 0 where a == 0 and b >= 0 (PyTorch's
    pow_backward_exponent: the formula gives 0 * -inf = NaN there)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        local = out * xp.log(a)
    special = (xp.raw(a) == 0) & (xp.raw(b) >= 0)
    if np.any(special):  # the select is inside the product, as PyTorch has it
        local = xp.where(special, 0, local)
    with np.errstate(invalid="ignore"):
        return g * local


def _var_parts(xp, a, axis, correction):
    """(a - mean(a) over ``axis``, keepdims layout; the divisor max(N - correction, 0)).

    The data is first shifted by its first element along ``axis`` (the shifted two-pass
    algorithm): the same centred values, but exactly 0 for constant data, where the plain
    mean can round away from the value and leave a tiny variance (then std's gradient
    would be huge instead of PyTorch's 0)."""
    count = int(np.prod(a.shape if axis is None else [a.shape[i] for i in axis]))
    if count:
        dims = range(len(a.shape)) if axis is None else axis
        first = tuple(slice(0, 1) if i in dims else slice(None) for i in range(len(a.shape)))
        shift = a[first]
        a = a - xp.where(np.isfinite(xp.raw(shift)), shift, 0)  # inf - inf would be NaN
    mean = xp.sum(a, axis, True) / np.asarray(builtins.max(count, 1), dtype=xp.raw(a).dtype)
    return a - mean, builtins.max(count - correction, 0)


def _var_forward(a, axis, keepdims, correction):
    """sum((a - mean)^2) / max(N - correction, 0) over ``axis``."""
    centered, divisor = _var_parts(NUMPY, a, axis, correction)
    with np.errstate(divide="ignore", invalid="ignore"):  # N <= correction: inf or NaN
        return np.sum(centered * centered, axis=axis, keepdims=keepdims) / divisor


def _var_grad(xp, g, out, a, axis, keepdims, correction):
    """g * 2 (a - mean) / (N - correction), as PyTorch's var_backward: written directly,
    not through the mean, so an infinite g gives +-inf rather than inf - inf = NaN."""
    centered, divisor = _var_parts(xp, a, axis, correction)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = np.asarray(2 / divisor if divisor else np.inf, dtype=xp.raw(a).dtype)
        return _expand_reduced(xp, g, axis, keepdims) * (centered * scale)


def _std_grad(xp, g, out, var):
    """d sqrt(var) = g / (2 std), and 0 where std == 0: there the data is constant, every
    centred value is 0 and so is the gradient of var, so the product is decided as 0
    rather than 0 * inf = NaN (PyTorch's std_backward masks result == 0 the same way)."""
    zero = xp.raw(out) == 0
    with np.errstate(divide="ignore"):
        full = g * 0.5 / out
    return xp.where(zero, 0, full) if np.any(zero) else full


def _matmul_rules():
    """numpy matmul semantics: 1-D operands are promoted, then the promoted dims removed."""

    def grad_a(xp, g, out, a, b):
        if a.ndim == 1 and b.ndim == 1:  # g is a scalar, or a batch of them
            return xp.expand_dims(g, (-1,)) * b
        if b.ndim == 1:
            g = xp.expand_dims(g, (-1,))
            b = xp.reshape(b, (b.shape[0], 1))
        if a.ndim == 1:
            g = xp.expand_dims(g, (-2,))
            ga = g @ xp.matrix_transpose(b)
            return xp.sum(ga, (-2,), False) if ga.ndim > 2 else xp.reshape(ga, a.shape)
        return g @ xp.matrix_transpose(b)

    def grad_b(xp, g, out, a, b):
        if a.ndim == 1 and b.ndim == 1:
            return xp.expand_dims(g, (-1,)) * a
        if a.ndim == 1:
            g = xp.expand_dims(g, (-2,))
            a = xp.reshape(a, (1, a.shape[0]))
        if b.ndim == 1:
            g = xp.expand_dims(g, (-1,))
            gb = xp.matrix_transpose(a) @ g
            return xp.sum(gb, (-1,), False)
        return xp.matrix_transpose(a) @ g

    return grad_a, grad_b


def _cat_index(i, inputs, axis):
    """The slice of the concatenation that input ``i`` occupies."""
    start = builtins.sum(x.shape[axis] for x in inputs[:i])
    return (slice(None),) * axis + (slice(start, start + inputs[i].shape[axis]),)


def _cat_rule(i, xp, g, out, inputs, axis):
    return g[_cat_index(i, inputs, axis)]


def _linear_grad_x(xp, g, out, x, w, b):
    """dL/dx = g W."""
    return g @ w


def _linear_grad_w(xp, g, out, x, w, b):
    """dL/dW = g^T x, with any leading batch dims of x folded into one."""
    if x.ndim == 2:
        return g.T @ x
    g = xp.reshape(g, (-1, g.shape[-1]))
    x = xp.reshape(x, (-1, x.shape[-1]))
    return xp.matrix_transpose(g) @ x


def _linear_grad_b(xp, g, out, x, w, b):
    """dL/db = g summed over every dim but the last (one reduction of numpy's for a batch)."""
    if xp is NUMPY and g.ndim == 2:
        return np.add.reduce(g, 0)
    return xp.sum(g, tuple(range(g.ndim - 1)))


def _linear_forward(x, w, b):
    out = x @ w.T
    if b is not None:
        out += b
    return out


# ----------------------------------------------------------------------------------------
# The table.  name = Primitive(name, forward, rule for input 0, rule for input 1, ...)

# arithmetic
# saves: per rule, what it reads (input positions, "out"); NONE1/NONE2 for rules that read
# nothing but shapes.
NONE1, NONE2 = ((),), ((), ())

# arithmetic
add = Primitive(
    "add", np.add, lambda xp, g, out, a, b: g, lambda xp, g, out, a, b: g, saves=NONE2, batched=True
)
sub = Primitive(
    "sub",
    np.subtract,
    lambda xp, g, out, a, b: g,
    lambda xp, g, out, a, b: -g,
    saves=NONE2,
    batched=True,
)
mul = Primitive(
    "mul",
    np.multiply,
    lambda xp, g, out, a, b: g * b,
    lambda xp, g, out, a, b: g * a,
    saves=((1,), (0,)),
    batched=True,
)
div = Primitive(
    "div",
    np.divide,
    lambda xp, g, out, a, b: g / b,
    lambda xp, g, out, a, b: -g * out / b,
    saves=((1,), (1, "out")),
    batched=True,
)
pow = Primitive("pow", np.power, _pow_grad_base, _pow_grad_exponent, saves=((0, 1), (0, 1, "out")))
neg = Primitive("neg", np.negative, lambda xp, g, out, a: -g, saves=NONE1, batched=True)
matmul = Primitive("matmul", np.matmul, *_matmul_rules(), saves=((1,), (0,)), batched=True)

# elementwise functions
OUT, IN0 = (("out",),), ((0,),)
exp = Primitive("exp", np.exp, lambda xp, g, out, a: g * out, saves=OUT, batched=True)
log = Primitive("log", np.log, lambda xp, g, out, a: g / a, saves=IN0, batched=True)
sqrt = Primitive("sqrt", np.sqrt, lambda xp, g, out, a: g * 0.5 / out, saves=OUT)
var = Primitive("var", _var_forward, _var_grad, saves=IN0)
std = Primitive("std", np.sqrt, _std_grad, saves=OUT)  # sqrt of a variance: see _std_grad
abs = Primitive(  # g * sgn(a), with sgn(NaN) = 0 as PyTorch's sgn
    "abs", np.abs, lambda xp, g, out, a: g * np.nan_to_num(np.sign(xp.raw(a))), saves=IN0
)
sin = Primitive("sin", np.sin, lambda xp, g, out, a: g * xp.cos(a), saves=IN0, batched=True)
cos = Primitive("cos", np.cos, lambda xp, g, out, a: -g * xp.sin(a), saves=IN0, batched=True)
tanh = Primitive(
    "tanh", np.tanh, lambda xp, g, out, a: g * (1 - out * out), saves=OUT, batched=True
)
sigmoid = Primitive(
    "sigmoid", _sigmoid, lambda xp, g, out, a: g * out * (1 - out), saves=OUT, batched=True
)
relu = Primitive("relu", lambda a: np.maximum(a, 0), _relu_grad, saves=OUT)
clamp = Primitive(
    "clamp",
    np.clip,
    lambda xp, g, out, a, lo, hi: xp.where(_clamp_mask(xp.raw(a), lo, hi), g, 0),
    saves=IN0,
)
maximum = Primitive(
    "maximum",
    np.maximum,
    lambda xp, g, out, a, b: _tie_share(xp, g, a, b),
    lambda xp, g, out, a, b: _tie_share(xp, g, b, a),
    saves=((0, 1), (0, 1)),
)
minimum = Primitive(
    "minimum",
    np.minimum,
    lambda xp, g, out, a, b: _tie_share(xp, g, b, a),
    lambda xp, g, out, a, b: _tie_share(xp, g, a, b),
    saves=((0, 1), (0, 1)),
)
where = Primitive(
    "where",
    lambda a, b, cond: np.where(cond, a, b),
    lambda xp, g, out, a, b, cond: xp.where(cond, g, 0),
    lambda xp, g, out, a, b, cond: xp.where(cond, 0, g),
    saves=NONE2,
)

# reductions (axis is None or a tuple of non-negative ints; max/min along one int axis)
sum = Primitive(
    "sum",
    lambda a, axis, keepdims: np.sum(a, axis=axis, keepdims=keepdims),
    lambda xp, g, out, a, axis, keepdims: xp.broadcast_to(
        _expand_reduced(xp, g, axis, keepdims), a.shape
    ),
    saves=NONE1,
)
amax = Primitive("max", lambda a: np.max(a), _full_extreme_grad, saves=((0, "out"),))
amin = Primitive("min", lambda a: np.min(a), _full_extreme_grad, saves=((0, "out"),))
max_dim = Primitive(
    "max",
    lambda a, axis, keepdims: np.max(a, axis=axis, keepdims=keepdims),
    lambda xp, g, out, a, axis, keepdims: _selected_grad(xp, g, a, axis, keepdims, np.argmax),
    saves=IN0,
)
min_dim = Primitive(
    "min",
    lambda a, axis, keepdims: np.min(a, axis=axis, keepdims=keepdims),
    lambda xp, g, out, a, axis, keepdims: _selected_grad(xp, g, a, axis, keepdims, np.argmin),
    saves=IN0,
)
logsumexp = Primitive(
    "logsumexp",
    _logsumexp,
    lambda xp, g, out, a, axis, keepdims: (
        _expand_reduced(xp, g, axis, keepdims)
        * xp.exp(a - _expand_reduced(xp, out, axis, keepdims))
    ),
    saves=((0, "out"),),
)

# copies and casts
clone = Primitive("clone", np.copy, lambda xp, g, out, a: g, saves=NONE1, batched=True)
astype = Primitive(
    "to",
    lambda a, dtype: a.astype(dtype),
    lambda xp, g, out, a, dtype: xp.astype(g, a.dtype),
    saves=NONE1,
)

# shapes (views of their input, as in PyTorch)
reshape = Primitive(
    "reshape",
    np.reshape,
    lambda xp, g, out, a, shape: xp.reshape(g, a.shape),
    saves=NONE1,
    view=True,
)
permute = Primitive(
    "permute",
    np.transpose,
    lambda xp, g, out, a, axes: xp.permute(g, tuple(np.argsort(axes))),
    saves=NONE1,
    view=True,
)
expand = Primitive(
    "expand", np.broadcast_to, lambda xp, g, out, a, shape: g, saves=NONE1, view=True
)
getitem = Primitive(
    "getitem",
    lambda a, index: a[index],
    lambda xp, g, out, a, index: xp.scatter(g, a.shape, index),
    saves=NONE1,
    view=True,  # for basic indices; advanced indexing copies (tensor.py tells them apart)
)
scatter = Primitive("scatter", _scatter, lambda xp, g, out, a, shape, index: g[index], saves=NONE1)
cat = Primitive(
    "cat",
    lambda *arrays_and_axis: np.concatenate(arrays_and_axis[:-1], axis=arrays_and_axis[-1]),
    _cat_rule,
    variadic=True,
    saves=NONE1,
)

# layers
linear = Primitive(
    "linear",
    _linear_forward,
    _linear_grad_x,
    _linear_grad_w,
    _linear_grad_b,
    saves=((1,), (0,), ()),
)


# ----------------------------------------------------------------------------------------
# layers: convolution, pooling, fused losses
#
# Images are NCHW.  Geometry arrives normalised by ``functional``: ``stride``, ``dilation``
# and ``kernel`` are (h, w) pairs of ints, ``padding`` is (top, bottom, left, right).
# Windows are read through ``as_strided`` views (no copy); a convolution then makes one
# im2col copy and one matmul.  The forward output of conv2d is a transposed view of a
# (out_channels, N, OH, OW) buffer, which is what that matmul writes.  These rules compute
# with numpy only: double backward through conv and pooling raises NotImplementedError.


class _Workspace(_thread_local):
    """Per-thread buffers reused for temporaries that die inside one forward or rule.

    Large arrays freed and reallocated on every call are returned to the OS and faulted in
    again, which costs more than the arithmetic on them; reusing one buffer per role (the
    im2col columns, the transposed output gradient) avoids that.  Buffers above
    ``limit`` bytes are not kept.
    """

    limit = 1 << 26

    def __init__(self):
        self.buffers = {}

    def get(self, role, shape, dtype):
        dtype = np.dtype(dtype)
        n = int(np.prod(shape))
        if n * dtype.itemsize > self.limit:
            return np.empty(shape, dtype=dtype)
        buf = self.buffers.get((role, dtype))
        if buf is None or buf.size < n:
            buf = self.buffers[(role, dtype)] = np.empty(n, dtype=dtype)
        return buf[:n].reshape(shape)


_workspace = _Workspace()


def _out_size(size, pad, kernel, stride, dilation):
    """floor((size + pad - dilation * (kernel - 1) - 1) / stride) + 1 (PyTorch's formula)."""
    return (size + pad - dilation * (kernel - 1) - 1) // stride + 1


def _pad2d(x, padding, value=0):
    """``x`` (N, C, H, W) padded on H and W (no copy when there is nothing to pad)."""
    top, bottom, left, right = padding
    if not (top or bottom or left or right):
        return x
    n, c, h, w = x.shape
    out = np.full((n, c, h + top + bottom, w + left + right), value, dtype=x.dtype)
    out[:, :, top : top + h, left : left + w] = x
    return out


def _geometry(x_shape, kernel, stride, padding, dilation):
    """Output height and width of a sliding window over an NCHW input."""
    oh = _out_size(x_shape[2], padding[0] + padding[1], kernel[0], stride[0], dilation[0])
    ow = _out_size(x_shape[3], padding[2] + padding[3], kernel[1], stride[1], dilation[1])
    return oh, ow


def _windows(xp, kernel, stride, dilation, oh, ow, order):
    """Read-only view of the windows of padded ``xp``, axes named by ``order``.

    Axis letters: n, c (batch, channel), i, j (kernel row, column), h, w (output row,
    column); e.g. order "cijnhw" is the im2col layout of a convolution.
    """
    sn, sc, sh, sw = xp.strides
    sizes = {"n": xp.shape[0], "c": xp.shape[1], "i": kernel[0], "j": kernel[1], "h": oh, "w": ow}
    steps = {
        "n": sn,
        "c": sc,
        "i": dilation[0] * sh,
        "j": dilation[1] * sw,
        "h": stride[0] * sh,
        "w": stride[1] * sw,
    }
    return np.lib.stride_tricks.as_strided(
        xp, tuple(sizes[a] for a in order), tuple(steps[a] for a in order), writeable=False
    )


def _slab(i, j, stride, dilation, oh, ow):
    """Index of the (OH, OW) grid of padded-input positions that kernel offset (i, j) reads."""
    r, s = i * dilation[0], j * dilation[1]
    return (
        slice(None),
        slice(None),
        slice(r, r + stride[0] * (oh - 1) + 1, stride[0]),
        slice(s, s + stride[1] * (ow - 1) + 1, stride[1]),
    )


def _offsets(kernel):
    return [(i, j) for i in range(kernel[0]) for j in range(kernel[1])]


def _fold(cols, x_shape, kernel, stride, padding, dilation):
    """Adjoint of the window view: add each kernel offset's slab back into the input.

    ``cols`` has layout (C, kh, kw, OH, OW, N), so that each slab added into the
    (C, H, W, N) buffer is long contiguous runs of OW * N values (a batch-first buffer would
    give runs of only OW); the loop is over the kh * kw kernel offsets.  Returns a
    C-contiguous (N, C, H, W) array.
    """
    n, c, h, w = x_shape
    top, bottom, left, right = padding
    oh, ow = cols.shape[3:5]
    buf = np.zeros((c, h + top + bottom, w + left + right, n), dtype=cols.dtype)
    for i, j in _offsets(kernel):
        r, s = i * dilation[0], j * dilation[1]
        buf[
            :,
            r : r + stride[0] * (oh - 1) + 1 : stride[0],
            s : s + stride[1] * (ow - 1) + 1 : stride[1],
        ] += cols[:, i, j]
    return np.ascontiguousarray(buf[:, top : top + h, left : left + w].transpose(3, 0, 1, 2))


def _numpy_only(xp, name):
    if xp is not NUMPY:
        raise NotImplementedError(f"double backward of {name} is not supported")


def _im2col(x, w_shape, stride, padding, dilation, groups):
    """(groups, C/groups * kh * kw, N * OH * OW) columns of ``x`` (the one copy)."""
    kernel = w_shape[2:]
    xp = _pad2d(x, padding)
    oh, ow = _geometry(x.shape, kernel, stride, padding, dilation)
    view = _windows(xp, kernel, stride, dilation, oh, ow, "cijnhw")
    cols = _workspace.get("cols", view.shape, x.dtype)
    np.copyto(cols, view)
    rows = x.shape[1] // groups * kernel[0] * kernel[1]  # explicit: N may be 0
    return cols.reshape(groups, rows, x.shape[0] * oh * ow), oh, ow


def _conv2d_forward(x, w, b, stride, padding, dilation, groups):
    """out[n, o] = b[o] + sum_{c, i, j} w[o, c, i, j] * xpad[n, g*Cg + c, s*h + d*i, s*w + d*j]."""
    cols, oh, ow = _im2col(x, w.shape, stride, padding, dilation, groups)
    n, o = x.shape[0], w.shape[0]
    if groups == 1:
        out = w.reshape(o, -1) @ cols[0]
    else:
        out = w.reshape(groups, o // groups, -1) @ cols
    out = out.reshape(o, n, oh, ow)
    if b is not None:
        out += b.reshape(o, 1, 1, 1)
    return out.transpose(1, 0, 2, 3)


def _grad_rows(g, groups, axes):
    """``g`` (N, O, OH, OW) transposed by ``axes`` (O first) as (groups, O/groups, -1) rows."""
    o = g.shape[1]
    rows = g.transpose(axes)
    if not rows.flags.c_contiguous:
        buf = _workspace.get("rows", rows.shape, g.dtype)
        np.copyto(buf, rows)
        rows = buf
    return rows.reshape(groups, o // groups, -1)


def _conv2d_grad_x(xp, g, out, x, w, b, stride, padding, dilation, groups):
    _numpy_only(xp, "conv2d")
    o, cg, kh, kw = w.shape
    rows = _grad_rows(g, groups, (1, 2, 3, 0))
    cols = _workspace.get("cols", (groups, cg * kh * kw, rows.shape[2]), np.result_type(w, g))
    if groups == 1:
        np.matmul(w.reshape(o, -1).T, rows[0], out=cols[0])
    else:
        np.matmul(w.reshape(groups, o // groups, -1).transpose(0, 2, 1), rows, out=cols)
    n, oh, ow = g.shape[0], g.shape[2], g.shape[3]
    cols = cols.reshape(x.shape[1], kh, kw, oh, ow, n)
    return _fold(cols, x.shape, (kh, kw), stride, padding, dilation)


def _conv2d_grad_w(xp, g, out, x, w, b, stride, padding, dilation, groups):
    _numpy_only(xp, "conv2d")
    cols, _, _ = _im2col(x, w.shape, stride, padding, dilation, groups)
    rows = _grad_rows(g, groups, (1, 0, 2, 3))
    if groups == 1:
        return (rows[0] @ cols[0].T).reshape(w.shape)
    return (rows @ cols.transpose(0, 2, 1)).reshape(w.shape)


def _conv2d_grad_b(xp, g, out, x, w, b, stride, padding, dilation, groups):
    _numpy_only(xp, "conv2d")
    return g.sum(axis=(0, 2, 3))


conv2d = Primitive(
    "conv2d",
    _conv2d_forward,
    _conv2d_grad_x,
    _conv2d_grad_w,
    _conv2d_grad_b,
    saves=((1,), (0,), ()),
)


class _Saved:
    """A slot through which a forward hands an intermediate to its rule (a params entry).

    The rule takes the value only if it was stored with the very output array the rule is
    given, so a forward re-run on other inputs (as gradient checking does) can never feed
    a rule stale data; otherwise the rule recomputes it.
    """

    __slots__ = ("out", "value")

    def __init__(self):
        self.out = self.value = None

    def put(self, out, value):
        self.out, self.value = out, value

    def get(self, out):
        return self.value if self.out is out else None

    def __repr__(self):
        return "<saved>"


def _max_pool2d_scan(x, kernel, stride, padding, dilation, want_pick):
    """Maximum over the kernel offsets (padding counts as -inf).

    The windows are first copied offset by offset into one (kh * kw, N, C, OH, OW) buffer
    (a strided read of each element, once); everything after runs on its contiguous slabs.
    Returns (max, pick) where pick is the offset k = i * kw + j that PyTorch's scan keeps:
    the last NaN of a window holding one, else the first maximum among its real (unpadded)
    elements.  With n_k = (slab_k != max or slab_k is padding), the first maximum is at
    pick = n_0 + n_0 n_1 + ... + n_0 ... n_{K-2}: byte-wide logic instead of masked writes.
    In a NaN window every n_k holds; there each offset holding a NaN then overwrites pick.
    """
    oh, ow = _geometry(x.shape, kernel, stride, padding, dilation)
    xp = _pad2d(x, padding, -np.inf)
    view = _windows(xp, kernel, stride, dilation, oh, ow, "ijnchw")
    slabs = _workspace.get("windows", view.shape, x.dtype)
    np.copyto(slabs, view)
    slabs = slabs.reshape((-1,) + slabs.shape[2:])
    best = np.maximum.reduce(slabs, axis=0)
    if not want_pick:
        return best, None
    is_pad = None
    if any(padding):
        is_pad = _pad2d(np.zeros((1, 1) + x.shape[2:], dtype=bool), padding, True)
        is_pad = _windows(is_pad, kernel, stride, dilation, oh, ow, "ijnchw")
        is_pad = is_pad.reshape((-1,) + is_pad.shape[2:])

    def passed(k):
        """n_k: offset k holds no real maximum of its window."""
        n = slabs[k] != best
        if is_pad is not None:  # padding is never picked, even where the max is -inf
            n |= is_pad[k]
        return n

    run = passed(0)
    pick = run.astype(np.uint8 if len(slabs) < 256 else np.int32)
    for k in range(1, len(slabs) - 1):
        run &= passed(k)
        pick += run
    if np.isnan(best).any():
        for k, slab in enumerate(slabs):
            np.copyto(pick, k, where=np.isnan(slab))
    return best, pick


def _max_pool2d_forward(x, kernel, stride, padding, dilation, saved):
    """out[n, c, h, w] = max over the window (padding counts as -inf).  With a ``saved``
    slot (given when a gradient will be needed) the argmax positions are kept for the rule."""
    out, pick = _max_pool2d_scan(x, kernel, stride, padding, dilation, saved is not None)
    if saved is not None:
        saved.put(out, pick)
    return out


def _max_pool2d_grad(xp, g, out, x, kernel, stride, padding, dilation, saved):
    """The gradient goes to each window's picked element (see ``_max_pool2d_scan``: its last
    NaN, else its first real maximum), accumulating on overlap."""
    _numpy_only(xp, "max_pool2d")
    pick = None if saved is None else saved.get(out)
    if pick is None:
        pick = _max_pool2d_scan(x, kernel, stride, padding, dilation, True)[1]
    n, c, h, w = x.shape
    top, bottom, left, right = padding
    oh, ow = g.shape[2:]
    # laid out as x (channel-major after a conv): the next rules mix it with arrays like x
    buf = np.zeros_like(x, g.dtype, shape=(n, c, h + top + bottom, w + left + right))
    overlap = (
        stride[0] < dilation[0] * (kernel[0] - 1) + 1
        or stride[1] < dilation[1] * (kernel[1] - 1) + 1
    )
    # g where offset k is picked, else +0: g's bits times the selection (as relu's rule),
    # written straight into the slab where windows do not overlap
    bits = _BITS[g.dtype]
    g_bits, buf_bits = g.view(bits), buf.view(bits)
    for k, (i, j) in enumerate(_offsets(kernel)):
        index = _slab(i, j, stride, dilation, oh, ow)
        if overlap:
            buf[index] += np.multiply(g_bits, pick == k).view(g.dtype)
        else:  # each input position is in at most one window
            np.multiply(g_bits, pick == k, out=buf_bits[index])
    return buf[:, :, top : top + h, left : left + w]


max_pool2d = Primitive("max_pool2d", _max_pool2d_forward, _max_pool2d_grad, saves=((0, "out"),))


def _avg_divisor(x_shape, kernel, stride, padding, count_include_pad, divisor, dtype):
    """Per-window divisor: ``divisor`` if given, else kh * kw or the count of real inputs."""
    if divisor is not None:
        return np.asarray(divisor, dtype=dtype)
    if count_include_pad or not any(padding):
        return np.asarray(kernel[0] * kernel[1], dtype=dtype)
    ones = np.ones((1, 1) + tuple(x_shape[2:]), dtype=dtype)
    return _window_sum(ones, kernel, stride, padding)[0, 0]


def _window_sum(x, kernel, stride, padding):
    """Sum over each window of zero-padded ``x``, slab by slab."""
    oh, ow = _geometry(x.shape, kernel, stride, padding, (1, 1))
    xp = _pad2d(x, padding)
    offsets = _offsets(kernel)
    total = np.array(xp[_slab(*offsets[0], stride, (1, 1), oh, ow)])
    for i, j in offsets[1:]:
        total += xp[_slab(i, j, stride, (1, 1), oh, ow)]
    return total


def _avg_pool2d_forward(x, kernel, stride, padding, count_include_pad, divisor):
    """out[n, c, h, w] = sum over the window (zero padded) / divisor."""
    total = _window_sum(x, kernel, stride, padding)
    total /= _avg_divisor(x.shape, kernel, stride, padding, count_include_pad, divisor, x.dtype)
    return total


def _avg_pool2d_grad(xp, g, out, x, kernel, stride, padding, count_include_pad, divisor):
    """Each window element receives g / divisor."""
    _numpy_only(xp, "avg_pool2d")
    scaled = g / _avg_divisor(x.shape, kernel, stride, padding, count_include_pad, divisor, g.dtype)
    cols = np.broadcast_to(
        scaled.transpose(1, 2, 3, 0)[:, None, None],
        (x.shape[1],) + tuple(kernel) + g.shape[2:] + (x.shape[0],),
    )
    return _fold(cols, x.shape, kernel, stride, padding, (1, 1))


avg_pool2d = Primitive("avg_pool2d", _avg_pool2d_forward, _avg_pool2d_grad, saves=NONE1)


def _cross_entropy_parts(x, target, weight, ignore_index, label_smoothing):
    """Per-sample losses and weights for logits ``x`` (N, C) and class indices ``target``.

    loss_n = w[y_n] * (1 - ls) * (-log p[n, y_n]) + (ls / C) * sum_c w[c] * (-log p[n, c]),
    and 0 where y_n == ignore_index; returns (loss, w[y_n] or 0 where ignored).
    """
    n, c = x.shape
    logp = x - _logsumexp(x, 1, True)
    keep = _kept(target, ignore_index)
    safe = np.where(keep, target, 0)
    picked = -logp[np.arange(n), safe]
    wy = np.ones(n, dtype=x.dtype) if weight is None else weight[safe].astype(x.dtype)
    wy = wy * keep
    loss = (1 - label_smoothing) * wy * picked
    if label_smoothing:
        smooth = -(logp if weight is None else logp * weight).sum(axis=1) * keep
        loss = loss + (label_smoothing / c) * smooth
    return loss, wy


def _kept(target, ignore_index):
    """Mask of the targets that count: all of them when ``ignore_index`` is None (the caller
    has established that no target is ignored), else those != ``ignore_index``."""
    if ignore_index is None:
        return np.ones(target.shape, dtype=bool)
    return target != ignore_index


def _targets_in_range(t, c):
    """True when integer targets ``t`` are all in [0, c) (False when there are none).

    One reduction bounds both sides: viewed as unsigned 64-bit, a negative index is larger
    than any class count."""
    if not t.size:
        return False
    unsigned = t.view(np.uint64) if t.itemsize == 8 else t.astype(np.uint64)
    return int(np.maximum.reduce(unsigned, axis=None)) < c


def _check_class_targets(t, c, ignore_index):
    """Raise IndexError for a target that is neither a class nor ``ignore_index`` (None:
    no target is ignored).

    Returns the ``ignore_index`` the rest of the forward needs: None when every target is
    a class and none equals ``ignore_index`` (so it skips looking for ignored ones).  The
    forward makes this check, not ``functional``, so that a ``tg.compile`` replay, which
    calls the forward, checks each call's targets once, as eager mode does."""
    if _targets_in_range(t, c):
        if ignore_index is None or not (0 <= ignore_index < c and (t == ignore_index).any()):
            return None
        return ignore_index
    bad = (t < 0) | (t >= c)  # ignored targets, bad ones, or none
    if ignore_index is not None:
        bad &= t != ignore_index
    if bad.any():
        raise IndexError(f"cross_entropy: target {t[bad].flat[0]} is out of bounds for {c} classes")
    return ignore_index


def _is_plain_mean(target, weight, ignore_index, label_smoothing, reduction):
    """The common case: no class weights, no smoothing, no ignored target, reduction mean.

    Cheapest test first: ``ignore_index`` None (no target ignored, as ``functional`` passes
    it when it has checked) settles the last condition without looking at the targets."""
    if weight is not None or label_smoothing or reduction != "mean" or not target.size:
        return False
    return ignore_index is None or not (target == ignore_index).any()


def _plain_mean_cross_entropy(x, target, want_grad):
    """mean_n(logsumexp(x_n) - x[n, y_n]) and, if ``want_grad``, its gradient with respect to
    ``x``, (softmax(x) - onehot(y)) / N, from the same exponentials (as one writes it by
    hand).  Returns (loss, gradient or None); the loss is NaN when some logit is not finite
    (the caller then takes the general path)."""
    n, c = x.shape
    shifted = np.subtract(x, np.maximum.reduce(x, 1, keepdims=True), order="C")
    flat = shifted.reshape(-1)  # a view (C order): entry (i, y_i) is flat[i * c + y_i]
    picks = np.arange(0, n * c, c) + target
    picked = flat[picks]
    e = np.exp(shifted, out=shifted)
    s = np.add.reduce(e, 1, keepdims=True)
    loss = np.asarray(np.add.reduce(np.log(s[:, 0]) - picked, 0) / n)
    if not want_grad:
        return loss, None
    e /= s
    flat[picks] -= 1  # flat indices: 2.4x cheaper than e[rows, target] at 16x10
    e /= np.asarray(n, dtype=x.dtype)
    return loss, e


def _cross_entropy_forward(x, target, weight, ignore_index, label_smoothing, reduction, saved=None):
    """The loss; with a ``saved`` slot (given when a gradient will be needed) the common
    case also keeps its gradient for the rule."""
    ignore_index = _check_class_targets(target, x.shape[1], ignore_index)
    if _is_plain_mean(target, weight, ignore_index, label_smoothing, reduction):
        loss, grad = _plain_mean_cross_entropy(x, target, saved is not None)
        if math.isfinite(loss):
            if saved is not None:
                saved.put(loss, grad)
            return loss
    loss, wy = _cross_entropy_parts(x, target, weight, ignore_index, label_smoothing)
    if reduction == "none":
        return loss
    if reduction == "sum":
        return loss.sum()
    with np.errstate(invalid="ignore"):  # every target ignored: 0 / 0 = NaN, as PyTorch
        return loss.sum() / wy.sum()


def _cross_entropy_grad(
    xp, g, out, x, target, weight, ignore_index, label_smoothing, reduction, saved=None
):
    """dloss/dx = (1 - ls) w[y] (softmax(x) - onehot(y)) + (ls / C) (softmax(x) sum(w) - w),
    times g (per sample for 'none'), divided by sum of w[y] for 'mean'.  Written with ``xp``
    so that it can be differentiated again; plain backward of the common case (unweighted
    mean, nothing ignored or smoothed) takes (softmax(x) - onehot(y)) / N as the forward
    computed it, or computes it the same way."""
    if xp is NUMPY:
        grad = None if saved is None else saved.get(out)
        if (
            grad is None
            and _is_plain_mean(target, weight, ignore_index, label_smoothing, reduction)
            and math.isfinite(out)
        ):
            grad = _plain_mean_cross_entropy(x, target, True)[1]
        if grad is not None:
            return grad * g
    xr = xp.raw(x)
    n, c = xr.shape
    keep = _kept(target, ignore_index)
    safe = np.where(keep, target, 0)
    dtype = xr.dtype
    wy = (np.ones(n, dtype=dtype) if weight is None else weight[safe].astype(dtype)) * keep
    onehot = np.zeros((n, c), dtype=dtype)
    onehot[np.arange(n), safe] = 1
    ls = label_smoothing
    wsum = c if weight is None else weight.sum()
    wvec = np.ones(c, dtype=dtype) if weight is None else weight.astype(dtype)
    # coefficient of softmax(x) and the constant part, per row
    coef = ((1 - ls) * wy + (ls / c) * wsum * keep).astype(dtype)[:, None]
    const = ((1 - ls) * wy[:, None] * onehot + (ls / c) * keep[:, None] * wvec).astype(dtype)
    m = np.max(xr, axis=1, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    e = xp.exp(x - m)
    p = e / xp.sum(e, (1,), True)
    grad = p * coef - const
    if reduction == "none":
        return grad * xp.expand_dims(g, (1,))
    if reduction == "mean":
        # every target ignored: the rows are all 0 already, and stay 0 (PyTorch's gradient)
        grad = grad / np.asarray(wy.sum() or 1, dtype=dtype)
    return grad * g


cross_entropy = Primitive(
    "cross_entropy", _cross_entropy_forward, _cross_entropy_grad, saves=((0, "out"),)
)


def _mse_forward(x, y, reduction):
    """(x - y)^2 per element of the broadcast shape, or its 'sum', or its 'mean' (the sum
    divided by the count; float16 is summed in float32, as ``Tensor.mean``)."""
    d = x - y
    d *= d
    if reduction == "none":
        return d
    if reduction == "sum":
        return np.add.reduce(d, None)
    if not d.size:  # 0 / 0, without numpy's warning: NaN, as PyTorch
        return np.full((), np.nan, dtype=d.dtype)
    if d.dtype == np.float16:
        return (np.add.reduce(d, None, np.float32) / d.size).astype(np.float16)
    return np.add.reduce(d, None) / d.size


def _mse_scale(xp, g, d, reduction):
    """The factor of (x - y) in the gradient: 2 g / N for 'mean' over N elements, else 2 g."""
    if reduction == "mean":
        n = xp.raw(d).size
        return g * (2 / n) if n else g * 0  # no element: no gradient to scale
    return g * 2


def _mse_grad_input(xp, g, out, x, y, reduction):
    """d/dx of mse_loss = 2 (x - y) g / N for 'mean' (N the broadcast size), 2 (x - y) g
    otherwise (PyTorch's mse_loss_backward)."""
    d = x - y
    return d * _mse_scale(xp, g, d, reduction)


def _mse_grad_target(xp, g, out, x, y, reduction):
    """d/dy of mse_loss = -2 (x - y) g / N: the input's gradient, negated."""
    d = y - x
    return d * _mse_scale(xp, g, d, reduction)


# mean squared error as one primitive: a forward of four numpy calls and one rule per
# input, where the composite (x - y)^2 reduced is four ops and five rules
mse_loss = Primitive(
    "mse_loss", _mse_forward, _mse_grad_input, _mse_grad_target, saves=((0, 1), (0, 1))
)


def _erf(x):
    """The error function erf(x) = 2/sqrt(pi) * integral_0^x exp(-t^2) dt, to ~1e-15.

    |x| < 3: erf(x) = 2/sqrt(pi) exp(-x^2) sum_k 2^k x^(2k+1) / (1 * 3 * ... * (2k+1))
    (a series of positive terms, so no cancellation); |x| >= 3: erfc from its continued
    fraction erfc(x) = exp(-x^2)/sqrt(pi) / (x + (1/2)/(x + 1/(x + (3/2)/(x + ...)))).
    """
    x = np.asarray(x)
    z = np.abs(x.astype(np.float64))
    out = np.empty_like(z)
    small = z < 3.0
    zs = z[small]
    z2 = zs * zs
    ratio = 2.0 * z2  # term_k = term_(k-1) * 2 x^2 / (2k + 1)
    term, total, k = zs.copy(), zs.copy(), 0
    scratch = np.empty_like(zs)  # one buffer for the temporaries: no allocation per term
    while term.size:
        k += 1
        term *= np.divide(ratio, 2 * k + 1, out=scratch)
        total += term
        # Tested every 4th term: past k = 20 the terms only shrink, and one below 1e-17 of
        # the sum (under half an ulp) leaves it unchanged, as do the few after it.
        if k > 20 and k % 4 == 0 and np.all(term <= np.multiply(total, 1e-17, out=scratch)):
            break
    out[small] = (2 / np.sqrt(np.pi)) * np.exp(-z2) * total
    zl = z[~small]
    f = zl.copy()
    for k in range(40, 0, -1):
        f = zl + (k / 2) / f
    out[~small] = 1.0 - np.exp(-zl * zl) / (np.sqrt(np.pi) * f)
    out = np.copysign(out, x)
    return out.astype(x.dtype) if np.issubdtype(x.dtype, np.floating) else out


erf = Primitive(
    "erf", _erf, lambda xp, g, out, a: g * (2 / np.sqrt(np.pi)) * xp.exp(-(a * a)), saves=IN0
)


def _softplus(a):
    return np.logaddexp(a, np.zeros((), dtype=a.dtype))


# softplus(x) = log(1 + exp(x)); its derivative sigmoid(x) = exp(x - softplus(x)) never
# overflows because x - softplus(x) <= 0.
softplus = Primitive(
    "softplus", _softplus, lambda xp, g, out, a: g * xp.exp(a - out), saves=((0, "out"),)
)


# ----------------------------------------------------------------------------------------
# More elementwise functions and reductions (the torch-style functions of tensor_functions)

log1p = Primitive("log1p", np.log1p, lambda xp, g, out, a: g / (1 + a))
expm1 = Primitive("expm1", np.expm1, lambda xp, g, out, a: g * (out + 1))
atan = Primitive("atan", np.arctan, lambda xp, g, out, a: g / (1 + a * a))
# asin, acos: the gradient is infinite at |a| = 1, as in PyTorch
asin = Primitive("asin", np.arcsin, lambda xp, g, out, a: g * (1 - a * a) ** -0.5)
acos = Primitive("acos", np.arccos, lambda xp, g, out, a: -g * (1 - a * a) ** -0.5)


def _zero_rule(xp, g, out, a):
    """Piecewise-constant functions: the gradient is 0 everywhere (PyTorch's choice at the
    jumps too)."""
    return g * 0


floor = Primitive("floor", np.floor, _zero_rule)
ceil = Primitive("ceil", np.ceil, _zero_rule)
round = Primitive("round", np.round, _zero_rule)  # half to even, as torch.round
trunc = Primitive("trunc", np.trunc, _zero_rule)


def _reverse(axis):
    """An index that reverses ``axis``."""
    return (slice(None),) * axis + (slice(None, None, -1),)


# cumsum along one axis; its VJP is the reversed cumulative sum of g
cumsum = Primitive(
    "cumsum",
    lambda a, axis: np.cumsum(a, axis=axis),
    lambda xp, g, out, a, axis: xp.cumsum(g[_reverse(axis)], axis)[_reverse(axis)],
)


def _exclusive_products(a, axis):
    """prod_{j != i} a_j along ``axis`` for every i, without dividing (exact at zeros)."""
    ones = np.ones_like(np.take(a, [0], axis=axis))
    left = np.cumprod(np.concatenate([ones, np.delete(a, -1, axis=axis)], axis=axis), axis=axis)
    flipped = np.flip(a, axis)
    right = np.cumprod(
        np.concatenate([ones, np.delete(flipped, -1, axis=axis)], axis=axis), axis=axis
    )
    return left * np.flip(right, axis)


def _prod_grad(xp, g, out, a, axis, keepdims):
    """d prod / d a_i = prod_{j != i} a_j (no division, so zeros in ``a`` are exact)."""
    _numpy_only(xp, "prod")
    if axis is None:
        others = _exclusive_products(a.reshape(-1), 0).reshape(a.shape)
    else:
        others = _exclusive_products(a, axis)
    return _expand_reduced(xp, g, None if axis is None else (axis,), keepdims) * others


# prod over all elements (axis None) or one axis
prod = Primitive(
    "prod", lambda a, axis, keepdims: np.prod(a, axis=axis, keepdims=keepdims), _prod_grad
)


def _norm_forward(a, p, axis, keepdims):
    """(sum |a|^p)^(1/p) over ``axis`` (p >= 1 finite); p = 2 as sqrt(sum a^2)."""
    if p == 2:
        return np.sqrt(np.sum(a * a, axis=axis, keepdims=keepdims))
    return np.sum(np.abs(a) ** p, axis=axis, keepdims=keepdims) ** (1 / p)


def _norm_grad(xp, g, out, a, p, axis, keepdims):
    """d||a||_p / da = sign(a) |a|^(p-1) / ||a||^(p-1); 0 where the norm is 0 (PyTorch's
    choice: the subgradient of smallest size), applied by select so no NaN can leak."""
    g = _expand_reduced(xp, g, axis, keepdims)
    out = _expand_reduced(xp, out, axis, keepdims)
    zero = xp.raw(out) == 0
    safe = xp.where(zero, 1, out)
    if p == 2:
        grad = g * a / safe
    elif p == 1:
        grad = g * np.sign(xp.raw(a))
    else:
        sign = np.sign(xp.raw(a))
        grad = g * sign * (a * sign) ** (p - 1) / safe ** (p - 1)
    return xp.where(np.broadcast_to(zero, np.shape(xp.raw(grad))), 0, grad)


norm = Primitive("norm", _norm_forward, _norm_grad)


# ----------------------------------------------------------------------------------------
# Tangent (JVP) rules: rule(xp, t, out, *inputs, *params) -> J_i t, the contribution of
# input i's tangent ``t`` (shaped like that input) to the output's tangent; it may be any
# shape that broadcasts to the output's.  Checked against the VJP rules above by the
# identity <u, J v> = <J^T u, v> for every primitive (tests/test_func.py).


def defjvp(primitive, *rules):
    """Attach one tangent rule per differentiable input (one for a variadic primitive)."""
    primitive.jvps = rules


def _numpy_tangent(xp, name):
    if xp is not NUMPY:
        raise NotImplementedError(
            f"forward-mode derivative of {name} through recorded tangents (forward over "
            "reverse, or a tangent that requires grad) is not supported"
        )


# An elementwise primitive has a diagonal Jacobian, so J t = J^T t: its VJP rules, applied
# to the tangent, are its tangent rules (broadcast operands included: the rule of a
# broadcast operand returns the output-shaped product).
for _op in (add, sub, mul, div, pow, neg, exp, log, sqrt, abs, sin, cos, tanh, sigmoid, relu,
            clamp, maximum, minimum, where, clone, erf, softplus, std, log1p, expm1, atan,
            asin, acos, floor, ceil, round, trunc):  # fmt: skip
    defjvp(_op, *_op.vjps)
del _op


def _reduction_tangent(vjp, reduced):
    """The tangent rule of a reduction whose VJP is ``expand(g) * D(a)``: J t is
    ``sum(t * D(a))`` over the reduced axes, with D(a) read from the VJP rule at g = 1.
    ``reduced(*params)`` gives ``(axis, keepdims)`` with ``axis`` a tuple or None."""

    def rule(xp, t, out, a, *params):
        axis, keepdims = reduced(*params)
        return xp.sum(t * vjp(xp, out * 0 + 1, out, a, *params), axis, keepdims)

    return rule


defjvp(var, _reduction_tangent(_var_grad, lambda axis, keepdims, correction: (axis, keepdims)))
defjvp(
    prod,
    _reduction_tangent(
        _prod_grad, lambda axis, keepdims: _whole() if axis is None else _one_axis(axis, keepdims)
    ),
)
defjvp(norm, _reduction_tangent(_norm_grad, lambda p, axis, keepdims: (axis, keepdims)))
defjvp(cumsum, lambda xp, t, out, a, axis: xp.cumsum(t, axis))

defjvp(matmul, lambda xp, t, out, a, b: t @ b, lambda xp, t, out, a, b: a @ t)
defjvp(sum, lambda xp, t, out, a, axis, keepdims: xp.sum(t, axis, keepdims))


def _whole():
    """A reduction over every axis, without keepdims."""
    return None, False


def _one_axis(axis, keepdims):
    """A reduction over the one int ``axis``."""
    return (axis,), keepdims


defjvp(amax, _reduction_tangent(amax.vjps[0], _whole))
defjvp(amin, _reduction_tangent(amin.vjps[0], _whole))
defjvp(max_dim, _reduction_tangent(max_dim.vjps[0], _one_axis))
defjvp(min_dim, _reduction_tangent(min_dim.vjps[0], _one_axis))
defjvp(
    logsumexp,
    lambda xp, t, out, a, axis, keepdims: xp.sum(
        t * xp.exp(a - _expand_reduced(xp, out, axis, keepdims)), axis, keepdims
    ),
)
defjvp(astype, lambda xp, t, out, a, dtype: xp.astype(t, dtype))
defjvp(reshape, lambda xp, t, out, a, shape: xp.reshape(t, out.shape))
defjvp(permute, lambda xp, t, out, a, axes: xp.permute(t, axes))
defjvp(expand, lambda xp, t, out, a, shape: xp.broadcast_to(t, out.shape))
defjvp(getitem, lambda xp, t, out, a, index: t[index])
defjvp(scatter, lambda xp, t, out, a, shape, index: xp.scatter(t, shape, index))
defjvp(
    cat, lambda i, xp, t, out, inputs, axis: xp.scatter(t, out.shape, _cat_index(i, inputs, axis))
)
defjvp(
    linear,
    lambda xp, t, out, x, w, b: t @ xp.matrix_transpose(w),
    lambda xp, t, out, x, w, b: x @ xp.matrix_transpose(t),
    lambda xp, t, out, x, w, b: t,
)


def _conv2d_tangent_x(xp, t, out, x, w, b, stride, padding, dilation, groups):
    """conv2d is bilinear: d out = conv2d(dx, w) + conv2d(x, dw) + db."""
    _numpy_tangent(xp, "conv2d")
    return _conv2d_forward(t, w, None, stride, padding, dilation, groups)


def _conv2d_tangent_w(xp, t, out, x, w, b, stride, padding, dilation, groups):
    _numpy_tangent(xp, "conv2d")
    return _conv2d_forward(x, t, None, stride, padding, dilation, groups)


def _conv2d_tangent_b(xp, t, out, x, w, b, stride, padding, dilation, groups):
    _numpy_tangent(xp, "conv2d")
    return t.reshape(-1, 1, 1)


defjvp(conv2d, _conv2d_tangent_x, _conv2d_tangent_w, _conv2d_tangent_b)


def _max_pool2d_tangent(xp, t, out, x, kernel, stride, padding, dilation, saved):
    """Each window's tangent is the tangent of its picked element (as the gradient)."""
    _numpy_tangent(xp, "max_pool2d")
    pick = None if saved is None else saved.get(out)
    if pick is None:
        pick = _max_pool2d_scan(x, kernel, stride, padding, dilation, True)[1]
    tp = _pad2d(t, padding)
    oh, ow = out.shape[2:]
    result = np.zeros(out.shape, dtype=t.dtype)
    for k, (i, j) in enumerate(_offsets(kernel)):
        result += np.where(pick == k, tp[_slab(i, j, stride, dilation, oh, ow)], 0)
    return result


def _avg_pool2d_tangent(xp, t, out, x, kernel, stride, padding, count_include_pad, divisor):
    """avg_pool2d is linear: its tangent is the pooled tangent."""
    _numpy_tangent(xp, "avg_pool2d")
    return _avg_pool2d_forward(t, kernel, stride, padding, count_include_pad, divisor)


defjvp(max_pool2d, _max_pool2d_tangent)
defjvp(avg_pool2d, _avg_pool2d_tangent)


def _cross_entropy_tangent(xp, t, out, x, target, weight, ignore_index, ls, reduction, saved=None):
    """<dloss/dx, t>, per sample (summed over classes) for reduction 'none'."""
    ones = np.ones(xp.raw(out).shape, dtype=xp.raw(x).dtype)
    grad = _cross_entropy_grad(xp, ones, out, x, target, weight, ignore_index, ls, reduction, saved)
    return xp.sum(grad * t, (1,) if reduction == "none" else None)


defjvp(cross_entropy, _cross_entropy_tangent)


def _mse_tangent(vjp):
    """J t of mse_loss through input ``vjp``'s rule: the rule at g = 1 is the elementwise
    derivative D, so J t is D * t, summed unless the reduction is 'none'."""

    def rule(xp, t, out, x, y, reduction):
        ones = np.ones(xp.raw(out).shape, dtype=xp.raw(out).dtype)
        local = vjp(xp, ones, out, x, y, reduction) * t
        return local if reduction == "none" else xp.sum(local)

    return rule


defjvp(mse_loss, _mse_tangent(_mse_grad_input), _mse_tangent(_mse_grad_target))


# The array vocabulary that rules use, implemented for numpy arrays (the fast path; array
# methods where they exist, as they skip numpy's Python-level dispatch).
NUMPY = SimpleNamespace(
    raw=lambda x: x,
    exp=np.exp,
    log=np.log,
    sin=np.sin,
    cos=np.cos,
    where=np.where,
    sum=lambda x, axis=None, keepdims=False: np.add.reduce(x, axis, keepdims=keepdims),
    broadcast_to=np.broadcast_to,
    reshape=lambda x, shape: x.reshape(shape),
    permute=lambda x, axes: x.transpose(axes),
    expand_dims=np.expand_dims,
    matrix_transpose=lambda x: x.swapaxes(-1, -2),
    scatter=_scatter,
    astype=lambda x, dtype: x.astype(dtype),
    cumsum=lambda x, axis: np.cumsum(x, axis=axis),
)
