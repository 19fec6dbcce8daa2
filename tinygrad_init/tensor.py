"""Tensor: a numpy array plus the node that recorded how it was computed.

Every operation goes through ``apply``: it runs a primitive's forward on the arrays and,
when grad mode is on and some input requires grad, records a ``Node`` for backward.
Composite operations (mean, var, std, softmax, stack, ...) are written here with
primitives and get their gradients for free.
"""

from __future__ import annotations

import builtins
from collections import namedtuple
from types import SimpleNamespace

import numpy as np

from . import ops
from .autograd import Node, _state, backward, check_finite, creation_site

__all__ = [
    "Tensor",
    "tensor",
    "zeros",
    "ones",
    "full",
    "arange",
    "linspace",
    "eye",
    "rand",
    "randn",
    "randint",
    "zeros_like",
    "ones_like",
    "full_like",
    "cat",
    "stack",
    "where",
    "maximum",
    "minimum",
    "matmul",
    "manual_seed",
    "default_generator",
    "get_default_dtype",
    "set_default_dtype",
    "ShapeError",
    "DtypeError",
]


class ShapeError(ValueError, RuntimeError):
    """Operand shapes that an op cannot combine (a ValueError; RuntimeError as in PyTorch)."""


class DtypeError(TypeError, RuntimeError):
    """A dtype an operation cannot accept (a TypeError; RuntimeError as in PyTorch)."""


# ----------------------------------------------------------------------------------------
# Defaults: dtype and random generator

_default_dtype = np.dtype(np.float32)
_generator = np.random.default_rng(0)


def get_default_dtype():
    """The dtype of tensors made from Python floats (float32 unless changed)."""
    return _default_dtype


def set_default_dtype(dtype):
    """Set the dtype of tensors made from Python floats: float32 or float64."""
    global _default_dtype
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64, np.float16):
        raise TypeError(
            f"set_default_dtype: expected a floating dtype (float16, float32 or "
            f"float64), got {dtype}"
        )
    _default_dtype = dtype


def manual_seed(seed):
    """Reseed the default generator: the same seed gives bit-identical results."""
    global _generator
    _generator = np.random.default_rng(seed)
    return _generator


def default_generator():
    """The ``np.random.Generator`` used when no ``generator=`` is given."""
    return _generator


# ----------------------------------------------------------------------------------------
# The one entry point of every operation


def apply(op, *args, params=()):
    """Run primitive ``op`` on ``args`` (Tensors or constants) and record it if needed."""
    arrays, needs = [], []  # one plain loop: cheaper than two comprehensions for 1-3 args
    for a in args:
        if isinstance(a, Tensor):
            arrays.append(a._array)
            needs.append(a.requires_grad)
        else:
            arrays.append(a)
            needs.append(False)
    try:
        out = op.forward(*arrays, *params)
    except ValueError as e:
        shapes = ", ".join(str(np.shape(a)) for a in arrays)
        raise ShapeError(f"{op.name}: {e} (operand shapes: {shapes})") from None
    if type(out) is not np.ndarray:
        out = np.asarray(out)
    if _state.tape is not None:  # tg.compile is recording this call
        _state.tape.forward(op, args, arrays, params, out)
    if _state.grad_enabled:
        if True in needs:
            site = None
            if _state.anomaly:
                site = creation_site()
                check_finite(op.name, out, "output", site)
            return Tensor._make(out, Node(op, args, params, site, arrays, needs))
    return Tensor._make(out)


def _data(x):
    return x._array if isinstance(x, Tensor) else x


def _unrecordable(construct):
    """Raise when tg.compile is recording: ``construct`` would not be replayed."""
    if _state.tape is not None:
        _state.tape.refuse(construct)


def _shape_args(shape):
    """Accept f(2, 3) and f((2, 3)) alike."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return tuple(int(n) for n in shape)


def _dim(dim, ndim, op):
    """Normalise one dim index, with PyTorch's error for a dim out of range."""
    lo, hi = -max(ndim, 1), max(ndim, 1) - 1
    if not isinstance(dim, (int, np.integer)) or isinstance(dim, bool):
        raise TypeError(f"{op}: dim must be an int, got {type(dim).__name__}")
    if not lo <= dim <= hi:
        raise IndexError(
            f"{op}: Dimension out of range (expected to be in range of [{lo}, {hi}], but got {dim})"
        )
    return int(dim) % max(ndim, 1)


def _axes(dim, ndim, op):
    """None (all dims) or a sorted tuple of non-negative dims."""
    if dim is None or ndim == 0:
        return None
    dims = dim if isinstance(dim, (tuple, list)) else (dim,)
    return tuple(sorted({_dim(d, ndim, op) for d in dims}))


def _expanded_shape(shape, axes):
    """``shape`` with size-1 dims inserted at ``axes`` (positions in the result)."""
    n = len(shape) + len(axes)
    positions = {a % n for a in axes}
    sizes = iter(shape)
    return tuple(1 if i in positions else next(sizes) for i in range(n))


ValuesIndices = namedtuple("ValuesIndices", ["values", "indices"])


# ----------------------------------------------------------------------------------------


class Tensor:
    """An n-dimensional array that records the operations applied to it.

    ``data`` is a detached Tensor sharing this one's storage (as in PyTorch) and
    ``numpy()`` the numpy array; ``grad`` the accumulated gradient (a Tensor or None);
    ``requires_grad`` whether operations on it are recorded; ``grad_fn`` the node that
    produced it (None for leaves).  The array itself lives in ``_array``, which the engine
    reads on its hot path.
    """

    __slots__ = (
        "_array",
        "grad",
        "requires_grad",
        "_node",
        "_retains_grad",
        "_hooks",
        "name",
        "__weakref__",
    )
    __array_ufunc__ = None  # ndarray <op> Tensor defers to the Tensor's reflected operator
    __hash__ = object.__hash__

    def __init__(self, data, requires_grad=False, dtype=None, name=None):
        self._init_fields(_to_array(data, dtype))
        self.name = name
        if requires_grad:
            self.requires_grad_(True)

    def _init_fields(self, data, node=None):
        """Set every slot: the one place that lists a new tensor's state (subclasses too)."""
        self._array = data
        self.grad = None
        self.requires_grad = node is not None
        self._node = node
        self._retains_grad = False
        self._hooks = None
        self.name = None

    @classmethod
    def _make(cls, data, node=None):
        """Wrap an array without copying (internal fast path)."""
        t = object.__new__(cls)
        t._init_fields(data, node)
        return t

    # -- attributes -------------------------------------------------------------------
    @property
    def data(self):
        """A Tensor that shares this tensor's storage but not its graph (``torch``'s ``.data``).

        Writes through it (``p.data += ...``, ``p.data.copy_(...)``) change this tensor and
        are not recorded; ``p.data.std()`` is a Tensor method like any other.

            >>> p = tg.ones(3, requires_grad=True)
            >>> p.data.mul_(2); p
            tensor([2., 2., 2.], requires_grad=True)
        """
        return Tensor._make(self._array)

    @data.setter
    def data(self, value):
        _unrecordable("assigning tensor.data")
        if not isinstance(value, Tensor):
            raise TypeError(
                f"assigned data must be a Tensor, got {type(value).__name__} "
                "(wrap an array with tg.from_numpy or tg.tensor)"
            )
        self._array = value._array

    @property
    def shape(self):
        return self._array.shape

    @property
    def ndim(self):
        return self._array.ndim

    @property
    def dtype(self):
        return self._array.dtype

    @property
    def is_leaf(self):
        return self._node is None

    @property
    def grad_fn(self):
        return self._node

    @property
    def T(self):
        return self.permute(*reversed(range(self.ndim)))

    def size(self, dim=None):
        return self._array.shape if dim is None else self._array.shape[_dim(dim, self.ndim, "size")]

    def dim(self):
        return self._array.ndim

    def numel(self):
        return self._array.size

    def __len__(self):
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self._array.shape[0]

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def __bool__(self):
        _unrecordable("bool(tensor) (data-dependent Python control flow)")
        if self._array.size != 1:
            raise RuntimeError(
                f"Boolean value of Tensor with {self._array.size} values is ambiguous"
            )
        return bool(self._array)

    def __float__(self):
        return float(self.item())

    def __int__(self):
        return int(self.item())

    def __array__(self, dtype=None, copy=None):
        _unrecordable("np.asarray(tensor)")
        return self._array if dtype is None else self._array.astype(dtype)

    def __repr__(self):
        body = np.array2string(self._array, separator=", ", prefix="tensor(")
        extras = []
        if self._array.dtype not in (_default_dtype, np.int64, np.bool_):
            extras.append(f"dtype={self._array.dtype}")
        if self._node is not None:
            extras.append(f"grad_fn={self._node!r}")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + body + "".join(", " + e for e in extras) + ")"

    # -- autograd ---------------------------------------------------------------------
    def backward(self, gradient=None, retain_graph=None, create_graph=False):
        """Accumulate the gradient of this tensor into the ``.grad`` of every leaf.

        A non-scalar tensor needs ``gradient`` (same shape).  The graph is freed afterwards
        unless ``retain_graph=True`` (default: ``create_graph``).
        """
        backward(self, None if gradient is None else [gradient], retain_graph, create_graph)

    def requires_grad_(self, requires_grad=True):
        if self._node is not None and not requires_grad:
            raise RuntimeError(
                "you can only change requires_grad flags of leaf variables; "
                "use detach() to get a tensor that does not require grad"
            )
        if requires_grad and not np.issubdtype(self._array.dtype, np.floating):
            raise DtypeError(
                f"only tensors of floating point dtype can require gradients; "
                f"this one is {self._array.dtype} (convert it with .float())"
            )
        self.requires_grad = bool(requires_grad)
        return self

    def detach(self):
        """A tensor sharing this data, cut from the graph."""
        return Tensor._make(self._array)

    def retain_grad(self):
        """Keep ``.grad`` for this non-leaf tensor after backward."""
        if not self.requires_grad:
            raise RuntimeError("can't retain_grad on a tensor that has requires_grad=False")
        if self._node is not None:
            self._retains_grad = True

    def register_hook(self, hook):
        """Call ``hook(grad)`` when this tensor's gradient is computed.

        The hook may return a tensor to use instead.  Returns a handle with ``remove()``.
        """
        if not self.requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
        if self._hooks is None:
            self._hooks = {}
        return _HookHandle(self._hooks, hook)

    # -- conversion -------------------------------------------------------------------
    def numpy(self):
        _unrecordable("Tensor.numpy()")
        if self.requires_grad:
            raise RuntimeError(
                "Can't call numpy() on Tensor that requires grad. "
                "Use tensor.detach().numpy() instead."
            )
        return self._array

    def item(self):
        _unrecordable("Tensor.item()")
        if self._array.size != 1:
            raise RuntimeError(
                f"a Tensor with {self._array.size} elements cannot be converted to a Python scalar"
            )
        return self._array.item()

    def tolist(self):
        _unrecordable("Tensor.tolist()")
        return self._array.tolist()

    def to(self, dtype):
        dtype = np.dtype(dtype)
        return self if dtype == self._array.dtype else apply(ops.astype, self, params=(dtype,))

    def float(self):
        return self.to(np.float32)

    def double(self):
        return self.to(np.float64)

    def long(self):
        return self.to(np.int64)

    def clone(self):
        return apply(ops.clone, self)

    # -- in-place (on data, never recorded) ----------------------------------------------
    def zero_(self):
        _unrecordable("Tensor.zero_() (an in-place write)")
        self._array[...] = 0
        return self

    def fill_(self, value):
        _unrecordable("Tensor.fill_() (an in-place write)")
        self._array[...] = value
        return self

    def copy_(self, src):
        _unrecordable("Tensor.copy_() (an in-place write)")
        self._array[...] = _data(src)
        return self

    # -- arithmetic ----------------------------------------------------------------------
    def __add__(self, other):
        return apply(ops.add, self, other)

    def __radd__(self, other):
        return apply(ops.add, other, self)

    def __sub__(self, other):
        return apply(ops.sub, self, other)

    def __rsub__(self, other):
        return apply(ops.sub, other, self)

    def __mul__(self, other):
        return apply(ops.mul, self, other)

    def __rmul__(self, other):
        return apply(ops.mul, other, self)

    def __truediv__(self, other):
        return apply(ops.div, self, other)

    def __rtruediv__(self, other):
        return apply(ops.div, other, self)

    def __pow__(self, exponent):
        return apply(ops.pow, self, exponent)

    def __rpow__(self, base):
        return apply(ops.pow, base, self)

    def __matmul__(self, other):
        return apply(ops.matmul, self, other)

    def __rmatmul__(self, other):
        return apply(ops.matmul, other, self)

    def __neg__(self):
        return apply(ops.neg, self)

    def __pos__(self):
        return self

    # comparisons give tensors without gradient
    def __lt__(self, other):
        return Tensor._make(self._array < _data(other))

    def __le__(self, other):
        return Tensor._make(self._array <= _data(other))

    def __gt__(self, other):
        return Tensor._make(self._array > _data(other))

    def __ge__(self, other):
        return Tensor._make(self._array >= _data(other))

    def __eq__(self, other):
        return Tensor._make(self._array == _data(other))

    def __ne__(self, other):
        return Tensor._make(self._array != _data(other))

    def __and__(self, other):
        return Tensor._make(self._array & _data(other))

    def __or__(self, other):
        return Tensor._make(self._array | _data(other))

    def __invert__(self):
        return Tensor._make(~self._array)

    def add(self, other):
        return self + other

    def sub(self, other):
        return self - other

    def mul(self, other):
        return self * other

    def div(self, other):
        return self / other

    def matmul(self, other):
        return self @ other

    def pow(self, exponent):
        return apply(ops.pow, self, exponent)

    def neg(self):
        return -self

    # -- elementwise functions ---------------------------------------------------------
    def exp(self):
        return apply(ops.exp, self)

    def log(self):
        return apply(ops.log, self)

    def sqrt(self):
        return apply(ops.sqrt, self)

    def abs(self):
        return apply(ops.abs, self)

    def sin(self):
        return apply(ops.sin, self)

    def cos(self):
        return apply(ops.cos, self)

    def tanh(self):
        return apply(ops.tanh, self)

    def sigmoid(self):
        return apply(ops.sigmoid, self)

    def relu(self):
        return apply(ops.relu, self)

    def square(self):
        return self * self

    def sign(self):
        return Tensor._make(np.sign(self._array))

    def clamp(self, min=None, max=None):
        """Limit values to [min, max]; the gradient passes where min <= x <= max."""
        if min is None and max is None:
            raise ValueError("clamp: at least one of 'min' or 'max' must not be None")
        return apply(ops.clamp, self, params=(_data(min), _data(max)))

    clip = clamp

    # -- reductions --------------------------------------------------------------------
    def sum(self, dim=None, keepdim=False):
        return apply(ops.sum, self, params=(_axes(dim, self.ndim, "sum"), keepdim))

    def mean(self, dim=None, keepdim=False):
        axes = _axes(dim, self.ndim, "mean")
        count = self._array.size if axes is None else int(np.prod([self.shape[a] for a in axes]))
        return apply(ops.sum, self, params=(axes, keepdim)) / count

    def var(self, dim=None, unbiased=True, keepdim=False, *, correction=None):
        """sum((x - mean)^2) / (N - correction); correction 1 (Bessel) unless unbiased=False."""
        correction = int(unbiased) if correction is None else correction
        axes = _axes(dim, self.ndim, "var")
        count = self._array.size if axes is None else int(np.prod([self.shape[a] for a in axes]))
        centered = self - self.mean(axes, keepdim=True)
        return (centered * centered).sum(axes, keepdim) / builtins.max(count - correction, 0)

    def std(self, dim=None, unbiased=True, keepdim=False, *, correction=None):
        return self.var(dim, unbiased, keepdim, correction=correction).sqrt()

    def _extreme(self, full_op, dim_op, pick, name, dim, keepdim):
        if dim is None:
            return apply(full_op, self)
        axis = _dim(dim, self.ndim, name)
        values = apply(dim_op, self, params=(axis, keepdim))
        indices = Tensor._make(np.asarray(pick(self._array, axis=axis, keepdims=keepdim)))
        return ValuesIndices(values, indices)

    def max(self, dim=None, keepdim=False):
        """Full max (ties share the gradient) or (values, indices) along ``dim``."""
        return self._extreme(ops.amax, ops.max_dim, np.argmax, "max", dim, keepdim)

    def min(self, dim=None, keepdim=False):
        """Full min (ties share the gradient) or (values, indices) along ``dim``."""
        return self._extreme(ops.amin, ops.min_dim, np.argmin, "min", dim, keepdim)

    def argmax(self, dim=None, keepdim=False):
        if dim is None:
            return Tensor._make(np.asarray(np.argmax(self._array)))
        axis = _dim(dim, self.ndim, "argmax")
        return Tensor._make(np.argmax(self._array, axis=axis, keepdims=keepdim))

    def argmin(self, dim=None, keepdim=False):
        if dim is None:
            return Tensor._make(np.asarray(np.argmin(self._array)))
        axis = _dim(dim, self.ndim, "argmin")
        return Tensor._make(np.argmin(self._array, axis=axis, keepdims=keepdim))

    def logsumexp(self, dim=None, keepdim=False):
        """log(sum(exp(x))) along ``dim``, computed stably (shifted by the max)."""
        return apply(ops.logsumexp, self, params=(_axes(dim, self.ndim, "logsumexp"), keepdim))

    def log_softmax(self, dim):
        """x - logsumexp(x, dim)."""
        return self - self.logsumexp(dim, keepdim=True)

    def softmax(self, dim):
        """exp(x - logsumexp(x, dim))."""
        return self.log_softmax(dim).exp()

    # -- shapes ------------------------------------------------------------------------
    def reshape(self, *shape):
        shape = _shape_args(shape)
        if shape == self._array.shape:
            return self
        return apply(ops.reshape, self, params=(shape,))

    view = reshape

    def permute(self, *dims):
        dims = _shape_args(dims)
        if len(dims) != self.ndim:
            raise ValueError(f"permute: got {len(dims)} dims for a tensor of {self.ndim} dims")
        axes = tuple(_dim(d, self.ndim, "permute") for d in dims)
        if sorted(axes) != list(range(self.ndim)):
            raise ValueError(f"permute: dims {dims} are not a permutation of 0..{self.ndim - 1}")
        return apply(ops.permute, self, params=(axes,))

    def transpose(self, dim0, dim1):
        axes = list(range(self.ndim))
        a, b = _dim(dim0, self.ndim, "transpose"), _dim(dim1, self.ndim, "transpose")
        axes[a], axes[b] = axes[b], axes[a]
        return apply(ops.permute, self, params=(tuple(axes),))

    def flatten(self, start_dim=0, end_dim=-1):
        if self.ndim == 0:
            return self.reshape(1)
        s, e = _dim(start_dim, self.ndim, "flatten"), _dim(end_dim, self.ndim, "flatten")
        shape = self.shape[:s] + (int(np.prod(self.shape[s : e + 1])),) + self.shape[e + 1 :]
        return self.reshape(shape)

    def squeeze(self, dim=None):
        if dim is None:
            return self.reshape(tuple(n for n in self.shape if n != 1))
        axes = _axes(dim, self.ndim, "squeeze") or ()
        return self.reshape(
            tuple(n for i, n in enumerate(self.shape) if not (i in axes and n == 1))
        )

    def unsqueeze(self, dim):
        axis = _dim(dim, self.ndim + 1, "unsqueeze")
        return self.reshape(self.shape[:axis] + (1,) + self.shape[axis:])

    def expand(self, *sizes):
        sizes = _shape_args(sizes)
        lead = len(sizes) - self.ndim
        if lead < 0:
            raise ShapeError(
                f"expand: the number of sizes ({len(sizes)}) must be at least "
                f"the number of dims ({self.ndim}) of shape {self.shape}"
            )
        shape = tuple(
            self.shape[i - lead] if n == -1 and i >= lead else n for i, n in enumerate(sizes)
        )
        return apply(ops.expand, self, params=(shape,))

    def expand_as(self, other):
        return self.expand(other.shape)

    def __getitem__(self, index):
        return apply(ops.getitem, self, params=(_index(index),))

    def __setitem__(self, index, value):
        """Write ``value`` into this tensor's data (in place, not recorded).

        Allowed where PyTorch allows it without a graph: tensors that do not require grad,
        and leaves under ``no_grad`` (e.g. editing weights).  Writing into a tensor that
        takes part in a recorded computation raises, as the recorded graph would no longer
        describe the data."""
        _unrecordable("tensor[...] = value (an in-place write)")
        if self.requires_grad and _state.grad_enabled:
            kind = (
                "a leaf Variable that requires grad"
                if self._node is None
                else "a tensor produced by a recorded op"
            )
            raise RuntimeError(
                f"in-place assignment into {kind} is not recorded: do it "
                "under tg.no_grad(), or build a new tensor (tg.where, "
                "tg.cat)"
            )
        self._array[_index(index)] = _data(value)


class _HookHandle:
    """Returned by ``register_hook``; ``remove()`` detaches the hook."""

    _next_id = 0

    def __init__(self, hooks, hook):
        self._hooks = hooks
        self.id = _HookHandle._next_id
        _HookHandle._next_id += 1
        hooks[self.id] = hook

    def remove(self):
        self._hooks.pop(self.id, None)


def _index(index):
    """Tensors and lists inside an index become numpy arrays."""
    if isinstance(index, tuple):
        return tuple(_index(i) for i in index)
    if isinstance(index, Tensor):
        return index._array
    if isinstance(index, list):
        return np.asarray(index)
    return index


def _to_array(data, dtype):
    """numpy array for the Tensor constructor (always a copy, as torch.tensor)."""
    if isinstance(data, Tensor):
        data = data._array
    if dtype is not None:
        return np.array(data, dtype=np.dtype(dtype))
    from_numpy = isinstance(data, (np.ndarray, np.generic))
    array = np.array(data)
    if array.dtype == object or array.dtype.kind in "USV":
        raise TypeError(
            f"cannot make a tensor from {type(data).__name__} data of dtype "
            f"{array.dtype}: expected numbers, nested lists or a numpy array"
        )
    if not from_numpy and array.dtype == np.float64:
        array = array.astype(_default_dtype)
    return array


# ----------------------------------------------------------------------------------------
# Creation functions (PyTorch names and signatures)


def tensor(data, dtype=None, requires_grad=False):
    """A new leaf tensor holding a copy of ``data`` (Python floats become float32)."""
    return Tensor(data, requires_grad=requires_grad, dtype=dtype)


def _filled(shape, value, dtype, requires_grad):
    return Tensor(
        np.full(_shape_args(shape), value, dtype=dtype or _default_dtype),
        requires_grad=requires_grad,
    )


def zeros(*size, dtype=None, requires_grad=False):
    return _filled(size, 0, dtype, requires_grad)


def ones(*size, dtype=None, requires_grad=False):
    return _filled(size, 1, dtype, requires_grad)


def full(size, fill_value, dtype=None, requires_grad=False):
    return _filled(
        (size,) if isinstance(size, int) else tuple(size), fill_value, dtype, requires_grad
    )


def zeros_like(t, dtype=None, requires_grad=False):
    return _filled(t.shape, 0, dtype or t.dtype, requires_grad)


def ones_like(t, dtype=None, requires_grad=False):
    return _filled(t.shape, 1, dtype or t.dtype, requires_grad)


def full_like(t, fill_value, dtype=None, requires_grad=False):
    return _filled(t.shape, fill_value, dtype or t.dtype, requires_grad)


def arange(start, end=None, step=1, dtype=None, requires_grad=False):
    """Like torch.arange: int64 for integer arguments, the default float dtype otherwise."""
    if end is None:
        start, end = 0, start
    is_int = all(isinstance(v, (int, np.integer)) for v in (start, end, step))
    dtype = dtype or (np.int64 if is_int else _default_dtype)
    return Tensor(np.arange(start, end, step, dtype=dtype), requires_grad=requires_grad)


def linspace(start, end, steps, dtype=None, requires_grad=False):
    return Tensor(
        np.linspace(start, end, steps, dtype=dtype or _default_dtype), requires_grad=requires_grad
    )


def eye(n, m=None, dtype=None, requires_grad=False):
    return Tensor(np.eye(n, m, dtype=dtype or _default_dtype), requires_grad=requires_grad)


def rand(*size, generator=None, dtype=None, requires_grad=False):
    """Uniform samples on [0, 1)."""
    _unrecordable("tg.rand() (a random draw)")
    gen = generator or _generator
    dtype = np.dtype(dtype or _default_dtype)
    return Tensor(gen.random(_shape_args(size), dtype=dtype), requires_grad=requires_grad)


def randn(*size, generator=None, dtype=None, requires_grad=False):
    """Standard normal samples."""
    _unrecordable("tg.randn() (a random draw)")
    gen = generator or _generator
    dtype = np.dtype(dtype or _default_dtype)
    return Tensor(gen.standard_normal(_shape_args(size), dtype=dtype), requires_grad=requires_grad)


def randint(low, high=None, size=(), generator=None, dtype=np.int64):
    """Integers uniform on [low, high) (``randint(high, size)`` also works)."""
    _unrecordable("tg.randint() (a random draw)")
    if high is None:
        low, high = 0, low
    gen = generator or _generator
    return Tensor(gen.integers(low, high, size=tuple(size), dtype=dtype))


# ----------------------------------------------------------------------------------------
# Functions of several tensors


def cat(tensors, dim=0):
    """Concatenate along an existing dim."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("cat: expected a non-empty sequence of tensors")
    axis = _dim(dim, tensors[0].ndim, "cat")
    return apply(ops.cat, *tensors, params=(axis,))


def stack(tensors, dim=0):
    """Stack along a new dim."""
    tensors = list(tensors)
    if not tensors:
        raise ValueError("stack: expected a non-empty sequence of tensors")
    shapes = {t.shape for t in tensors}
    if len(shapes) != 1:
        raise ShapeError(
            f"stack: expects each tensor to be equal size, got shapes {[t.shape for t in tensors]}"
        )
    axis = _dim(dim, tensors[0].ndim + 1, "stack")
    return cat([t.unsqueeze(axis) for t in tensors], axis)


def where(condition, input, other):
    """``input`` where ``condition`` holds, else ``other`` (gradient flows to the chosen)."""
    return apply(ops.where, input, other, params=(np.asarray(_data(condition), dtype=bool),))


def maximum(input, other):
    """Elementwise max; at ties each operand gets half the gradient."""
    return apply(ops.maximum, input, other)


def minimum(input, other):
    """Elementwise min; at ties each operand gets half the gradient."""
    return apply(ops.minimum, input, other)


def matmul(input, other):
    return apply(ops.matmul, input, other)


# The rule vocabulary of ops.NUMPY, implemented with recorded Tensor operations so that a
# backward pass run with create_graph=True is itself differentiable.
TENSOR_XP = SimpleNamespace(
    raw=_data,
    exp=lambda x: apply(ops.exp, x),
    log=lambda x: apply(ops.log, x),
    sin=lambda x: apply(ops.sin, x),
    cos=lambda x: apply(ops.cos, x),
    where=lambda cond, a, b: apply(ops.where, a, b, params=(cond,)),
    sum=lambda x, axis=None, keepdims=False: apply(ops.sum, x, params=(axis, keepdims)),
    broadcast_to=lambda x, shape: apply(ops.expand, x, params=(tuple(shape),)),
    reshape=lambda x, shape: apply(ops.reshape, x, params=(tuple(shape),)),
    permute=lambda x, axes: apply(ops.permute, x, params=(tuple(axes),)),
    expand_dims=lambda x, axes: apply(
        ops.reshape, x, params=(_expanded_shape(x.shape, tuple(axes)),)
    ),
    matrix_transpose=lambda x: apply(
        ops.permute, x, params=(tuple(range(x.ndim - 2)) + (x.ndim - 1, x.ndim - 2),)
    ),
    scatter=lambda g, shape, index: apply(ops.scatter, g, params=(shape, index)),
    astype=lambda x, dtype: apply(ops.astype, x, params=(dtype,)),
)
