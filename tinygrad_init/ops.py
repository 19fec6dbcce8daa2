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
in a full max/min reduction share it equally; max/min along a dim give it to the selected
(first) index.  Composite operations (sub, mean, var, softmax, ...) are built from these in
``tensor.py`` and get their gradients for free.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

__all__ = ["Primitive", "NUMPY", "unbroadcast"]


class Primitive:
    """A named forward function with its VJP rules (one per differentiable input).

    ``variadic`` primitives (``cat``) take any number of inputs and one rule that receives
    the input's position first: ``rule(i, xp, g, out, inputs, *params)``.
    """

    __slots__ = ("name", "forward", "vjps", "variadic")

    def __init__(self, name, forward, *vjps, variadic=False):
        self.name = name
        self.forward = forward
        self.vjps = vjps
        self.variadic = variadic

    def vjp(self, xp, g, out, inputs, params, needs):
        """Gradients for the inputs flagged in ``needs`` (None elsewhere)."""
        if self.variadic:
            rule = self.vjps[0]
            return [rule(i, xp, g, out, inputs, *params) if need else None
                    for i, need in enumerate(needs)]
        return [rule(xp, g, out, *inputs, *params) if need else None
                for rule, need in zip(self.vjps, needs)]

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
        extra + i for i, n in enumerate(shape) if n == 1 and g.shape[extra + i] != 1)
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
        isinstance(i, (slice, int, np.integer)) or i is None or i is Ellipsis
        or (isinstance(i, np.ndarray) and i.dtype == np.bool_)
        for i in items)


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
    m = np.max(a, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)
    out = np.log(np.sum(np.exp(a - m), axis=axis, keepdims=True)) + m
    return out if keepdims else np.squeeze(out, axis)


def _share_ties(a, b, dtype):
    """1 where a > b, 1/2 where a == b, 0 elsewhere: the gradient share of ``a``."""
    return ((a > b) + 0.5 * (a == b)).astype(dtype)


def _full_extreme_share(a, out):
    """Equal shares among the entries equal to the reduced extreme."""
    mask = (a == out).astype(a.dtype)
    return mask / mask.sum()


def _selected_onehot(a, axis, pick):
    """One-hot mask (keepdims layout) of the index that ``pick`` (argmax/argmin) selects."""
    idx = np.expand_dims(pick(a, axis=axis), axis)
    positions = np.arange(a.shape[axis]).reshape((-1,) + (1,) * (a.ndim - axis - 1))
    return (positions == idx).astype(a.dtype)


def _clamp_mask(a, lo, hi):
    mask = np.ones(a.shape, dtype=bool)
    if lo is not None:
        mask &= a >= lo
    if hi is not None:
        mask &= a <= hi
    return mask


def _matmul_rules():
    """numpy matmul semantics: 1-D operands are promoted, then the promoted dims removed."""

    def grad_a(xp, g, out, a, b):
        if b.ndim == 1:
            g = xp.expand_dims(g, (-1,))
            b = xp.reshape(b, (b.shape[0], 1))
        if a.ndim == 1:
            g = xp.expand_dims(g, (-2,))
            ga = g @ xp.matrix_transpose(b)
            return xp.sum(ga, (-2,), False) if ga.ndim > 2 else xp.reshape(ga, a.shape)
        return g @ xp.matrix_transpose(b)

    def grad_b(xp, g, out, a, b):
        if a.ndim == 1:
            g = xp.expand_dims(g, (-2,))
            a = xp.reshape(a, (1, a.shape[0]))
        if b.ndim == 1:
            g = xp.expand_dims(g, (-1,))
            gb = xp.matrix_transpose(a) @ g
            return xp.sum(gb, (-1,), False)
        return xp.matrix_transpose(a) @ g

    return grad_a, grad_b


def _cat_rule(i, xp, g, out, inputs, axis):
    start = sum(x.shape[axis] for x in inputs[:i])
    index = (slice(None),) * axis + (slice(start, start + inputs[i].shape[axis]),)
    return g[index]


def _linear_weight_grad(xp, g, out, x, w, b):
    """dL/dW = g^T x, with any leading batch dims of x folded into one."""
    if x.ndim != 2:
        g = xp.reshape(g, (-1, g.shape[-1]))
        x = xp.reshape(x, (-1, x.shape[-1]))
    return xp.matrix_transpose(g) @ x


def _linear_forward(x, w, b):
    out = x @ w.T
    if b is not None:
        out += b
    return out


# ----------------------------------------------------------------------------------------
# The table.  name = Primitive(name, forward, rule for input 0, rule for input 1, ...)

# arithmetic
add = Primitive("add", np.add,
                lambda xp, g, out, a, b: g,
                lambda xp, g, out, a, b: g)
sub = Primitive("sub", np.subtract,
                lambda xp, g, out, a, b: g,
                lambda xp, g, out, a, b: -g)
mul = Primitive("mul", np.multiply,
                lambda xp, g, out, a, b: g * b,
                lambda xp, g, out, a, b: g * a)
div = Primitive("div", np.divide,
                lambda xp, g, out, a, b: g / b,
                lambda xp, g, out, a, b: -g * out / b)
pow = Primitive("pow", np.power,
                lambda xp, g, out, a, b: g * b * a ** (b - 1),
                lambda xp, g, out, a, b: g * out * xp.log(a))
neg = Primitive("neg", np.negative,
                lambda xp, g, out, a: -g)
matmul = Primitive("matmul", np.matmul, *_matmul_rules())

# elementwise functions
exp = Primitive("exp", np.exp,
                lambda xp, g, out, a: g * out)
log = Primitive("log", np.log,
                lambda xp, g, out, a: g / a)
sqrt = Primitive("sqrt", np.sqrt,
                 lambda xp, g, out, a: g * 0.5 / out)
abs = Primitive("abs", np.abs,
                lambda xp, g, out, a: g * np.sign(xp.raw(a)))
sin = Primitive("sin", np.sin,
                lambda xp, g, out, a: g * xp.cos(a))
cos = Primitive("cos", np.cos,
                lambda xp, g, out, a: -g * xp.sin(a))
tanh = Primitive("tanh", np.tanh,
                 lambda xp, g, out, a: g * (1 - out * out))
sigmoid = Primitive("sigmoid", _sigmoid,
                    lambda xp, g, out, a: g * out * (1 - out))
relu = Primitive("relu", lambda a: np.maximum(a, 0),
                 lambda xp, g, out, a: g * (xp.raw(a) > 0))
clamp = Primitive("clamp", np.clip,
                  lambda xp, g, out, a, lo, hi: g * _clamp_mask(xp.raw(a), lo, hi))
maximum = Primitive("maximum", np.maximum,
                    lambda xp, g, out, a, b: g * _share_ties(xp.raw(a), xp.raw(b), g.dtype),
                    lambda xp, g, out, a, b: g * _share_ties(xp.raw(b), xp.raw(a), g.dtype))
minimum = Primitive("minimum", np.minimum,
                    lambda xp, g, out, a, b: g * _share_ties(xp.raw(b), xp.raw(a), g.dtype),
                    lambda xp, g, out, a, b: g * _share_ties(xp.raw(a), xp.raw(b), g.dtype))
where = Primitive("where", lambda a, b, cond: np.where(cond, a, b),
                  lambda xp, g, out, a, b, cond: xp.where(cond, g, 0),
                  lambda xp, g, out, a, b, cond: xp.where(cond, 0, g))

# reductions (axis is None or a tuple of non-negative ints; max/min along one int axis)
sum = Primitive("sum", lambda a, axis, keepdims: np.sum(a, axis=axis, keepdims=keepdims),
                lambda xp, g, out, a, axis, keepdims:
                    xp.broadcast_to(_expand_reduced(xp, g, axis, keepdims), a.shape))
amax = Primitive("max", lambda a: np.max(a),
                 lambda xp, g, out, a: g * _full_extreme_share(xp.raw(a), xp.raw(out)))
amin = Primitive("min", lambda a: np.min(a),
                 lambda xp, g, out, a: g * _full_extreme_share(xp.raw(a), xp.raw(out)))
max_dim = Primitive("max", lambda a, axis, keepdims: np.max(a, axis=axis, keepdims=keepdims),
                    lambda xp, g, out, a, axis, keepdims:
                        _expand_reduced(xp, g, (axis,), keepdims)
                        * _selected_onehot(xp.raw(a), axis, np.argmax))
min_dim = Primitive("min", lambda a, axis, keepdims: np.min(a, axis=axis, keepdims=keepdims),
                    lambda xp, g, out, a, axis, keepdims:
                        _expand_reduced(xp, g, (axis,), keepdims)
                        * _selected_onehot(xp.raw(a), axis, np.argmin))
logsumexp = Primitive("logsumexp", _logsumexp,
                      lambda xp, g, out, a, axis, keepdims:
                          _expand_reduced(xp, g, axis, keepdims)
                          * xp.exp(a - _expand_reduced(xp, out, axis, keepdims)))

# copies and casts
clone = Primitive("clone", np.copy,
                  lambda xp, g, out, a: g)
astype = Primitive("to", lambda a, dtype: a.astype(dtype),
                   lambda xp, g, out, a, dtype: xp.astype(g, a.dtype))

# shapes
reshape = Primitive("reshape", np.reshape,
                    lambda xp, g, out, a, shape: xp.reshape(g, a.shape))
permute = Primitive("permute", np.transpose,
                    lambda xp, g, out, a, axes: xp.permute(g, tuple(np.argsort(axes))))
expand = Primitive("expand", np.broadcast_to,
                   lambda xp, g, out, a, shape: g)
getitem = Primitive("getitem", lambda a, index: a[index],
                    lambda xp, g, out, a, index: xp.scatter(g, a.shape, index))
scatter = Primitive("scatter", _scatter,
                    lambda xp, g, out, a, shape, index: g[index])
cat = Primitive("cat", lambda *arrays_and_axis: np.concatenate(arrays_and_axis[:-1],
                                                               axis=arrays_and_axis[-1]),
                _cat_rule, variadic=True)

# layers
linear = Primitive("linear", _linear_forward,
                   lambda xp, g, out, x, w, b: g @ w,
                   _linear_weight_grad,
                   lambda xp, g, out, x, w, b: g)


# The array vocabulary that rules use, implemented for numpy arrays (the fast path; array
# methods where they exist, as they skip numpy's Python-level dispatch).
NUMPY = SimpleNamespace(
    raw=lambda x: x,
    exp=np.exp,
    log=np.log,
    sin=np.sin,
    cos=np.cos,
    where=np.where,
    sum=lambda x, axis=None, keepdims=False: x.sum(axis, keepdims=keepdims),
    broadcast_to=np.broadcast_to,
    reshape=lambda x, shape: x.reshape(shape),
    permute=lambda x, axes: x.transpose(axes),
    expand_dims=np.expand_dims,
    matrix_transpose=lambda x: x.swapaxes(-1, -2),
    scatter=_scatter,
    astype=lambda x, dtype: x.astype(dtype),
)
