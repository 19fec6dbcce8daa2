"""Tensor: a numpy array plus the node that recorded how it was computed.

Every operation goes through ``apply``: it runs a primitive's forward on the arrays and,
when grad mode is on and some input requires grad, records a ``Node`` for backward.
Composite operations (mean, var, std, softmax, stack, ...) are written here with
primitives and get their gradients for free.
"""

from __future__ import annotations

from collections import namedtuple
from types import SimpleNamespace

import numpy as np

from . import ops
from .autograd import Node, _state, _writes, backward, check_finite, creation_site, versions_of
from .devices import check_device, device

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
    "Generator",
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


class Generator(np.random.Generator):
    """A numpy ``Generator`` with ``torch.Generator``'s seeding methods.

    ``tg.Generator().manual_seed(42)`` is accepted wherever ``generator=`` is (creation
    functions, init functions, dropout, ``randperm``, ``DataLoader``), like any
    ``np.random.Generator``; the same seed gives the same draws as
    ``np.random.default_rng(seed)`` (not the same numbers as torch's generator).
    """

    def __init__(self, device="cpu"):
        check_device(device, "Generator")
        self._initial_seed = int(np.random.SeedSequence().entropy % 2**63)
        super().__init__(np.random.PCG64(self._initial_seed))

    def manual_seed(self, seed):
        """Restart the stream from ``seed`` (an int); returns the generator."""
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise TypeError(f"manual_seed expected an int seed, got {type(seed).__name__}")
        self._initial_seed = int(seed)
        self.bit_generator.state = np.random.PCG64(self._initial_seed).state
        return self

    def seed(self):
        """Reseed from fresh OS entropy; returns the new seed."""
        self.manual_seed(int(np.random.SeedSequence().entropy % 2**63))
        return self._initial_seed

    def initial_seed(self):
        """The seed this stream was last started from."""
        return self._initial_seed


_generator = Generator().manual_seed(0)


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
    _generator = Generator().manual_seed(seed)
    return _generator


def default_generator():
    """The ``np.random.Generator`` used when no ``generator=`` is given."""
    return _generator


# ----------------------------------------------------------------------------------------
# The one entry point of every operation


def apply(op, *args, params=()):
    """Run primitive ``op`` on ``args`` (Tensors or constants) and record it if needed."""
    arrays = []  # one plain loop: cheaper than comprehensions for 1-3 args
    key = 1  # a leading 1, then one bit per argument: whether it requires grad
    counted = False  # some input has a version counter (was written or aliased)
    for a in args:
        key += key
        if isinstance(a, Tensor):
            arrays.append(a._array)
            if a.requires_grad:
                key += 1
            if a._vc is not None:
                counted = True
        else:
            arrays.append(a)
    arrays = tuple(arrays)  # the node keeps it; made once, the call below unpacks it as is
    try:  # most ops have no params: a call without the second unpacking is cheaper
        out = op.forward(*arrays, *params) if params else op.forward(*arrays)
    except ValueError as e:
        shapes = ", ".join(str(np.shape(a)) for a in arrays)
        raise ShapeError(f"{op.name}: {e} (operand shapes: {shapes})") from None
    except TypeError as e:  # numpy refuses the dtypes (bool - bool, ...)
        dtypes = ", ".join(str(np.result_type(a)) for a in arrays if a is not None)
        raise DtypeError(f"{op.name}: {e} (operand dtypes: {dtypes})") from None
    if type(out) is not np.ndarray:
        out = np.asarray(out)
    # This thread's switches as its dict: one thread-local lookup, then plain dict reads
    # (each attribute read of a threading.local looks the thread up again).
    state = _state.__dict__
    tape = state["tape"]
    if tape is not None:  # tg.compile is recording this call
        tape.forward(op, args, arrays, params, out)
    t = _new_object(Tensor)  # Tensor._make, inlined: one call less per op
    if state["grad_enabled"] and key & (key - 1):  # not a power of 2: some input requires grad
        site = None
        if state["anomaly"]:
            site = creation_site()
            check_finite(op.name, out, "output", site)
        versions = versions_of(args) if counted else None
        needs = _NEEDS.get(key) or _new_needs(key)
        t._init_fields(out, Node(op, args, params, site, arrays, needs, versions))
    else:
        t._init_fields(out)
    return t


def _new_needs(key):
    """The ``needs`` tuple that ``apply``'s ``key`` encodes: after the leading 1 bit, one
    bit per argument, the first argument's highest.  Kept in ``_NEEDS`` for keys of up to
    8 arguments, so that nodes share these tuples instead of allocating one each."""
    n = key.bit_length() - 1
    needs = tuple(key >> (n - 1 - i) & 1 == 1 for i in range(n))
    if n <= 8:
        _NEEDS[key] = needs
    return needs


_NEEDS = {}

_new_object = object.__new__


# ----------------------------------------------------------------------------------------
# Type promotion: PyTorch's rule, in this one place


def _promote(a, b):
    """The dtype of an op on two operands of one tier (PyTorch's promote_types): the floating
    one wins over integers and bool (int64 with float32 is float32, not numpy's float64);
    two floats or two integers promote as numpy does."""
    if a is None or a == b:
        return b
    if b is None:
        return a
    fa, fb = a.kind in "fc", b.kind in "fc"
    if fa != fb:
        return a if fa else b
    if a.kind == "b" or b.kind == "b":
        return b if a.kind == "b" else a
    return np.promote_types(a, b)


def _combine(higher, lower):
    """PyTorch's combine_categories: a lower tier changes the dtype only when it is of a
    higher category (float over int over bool)."""
    if higher is None:
        return lower
    if lower is None or higher.kind in "fc":
        return higher
    if higher.kind == "b" or lower.kind in "fc":
        return _promote(higher, lower)
    return higher


def _wrapped_dtype(x):
    """The dtype a Python or numpy scalar takes in an op (PyTorch's wrapped numbers)."""
    if isinstance(x, (bool, np.bool_)):
        return np.dtype(np.bool_)
    if isinstance(x, (int, np.integer)):
        return np.dtype(np.int64)
    if isinstance(x, (float, np.floating)):
        return _default_dtype
    return np.result_type(x)


def _result_type(*operands):
    """The dtype of an elementwise op on ``operands``, by PyTorch's promotion rule.

    Operands fall in three tiers: tensors with dims, 0-d tensors, and wrapped numbers
    (Python and numpy scalars: bool, int64, the default float).  Within a tier dtypes
    promote (``_promote``); a lower tier changes the result only when it is of a higher
    category (``_combine``).  So float32 * int64 tensor is float32; an int tensor with a
    Python float (or ``np.sqrt(d)``) gives the default float; a 0-d float64 tensor or a
    numpy float64 scalar leaves a float32 tensor float32; int32 + 0-d int64 is int32.
    """
    dim = zero = wrapped = None
    for x in operands:
        if isinstance(x, Tensor):
            x = x._array
        if isinstance(x, np.ndarray):
            if x.ndim:
                dim = _promote(dim, x.dtype)
            else:
                zero = _promote(zero, x.dtype)
        else:
            wrapped = _promote(wrapped, _wrapped_dtype(x))
    return _combine(dim, _combine(zero, wrapped))


def _cast(x, dtype):
    """Operand ``x`` in ``dtype``: tensors through the recorded cast, numbers as 0-d arrays."""
    if isinstance(x, Tensor):
        return x if x._array.dtype == dtype else x.to(dtype)
    if isinstance(x, np.ndarray):
        return x.astype(dtype, copy=False)
    return np.asarray(x, dtype=dtype)


def _binary(op, a, b, true_div=False):
    """``apply(op, a, b)`` with the operands promoted to ``_result_type(a, b)``; with
    ``true_div`` an integer result type becomes the default float (``/`` of ints).

    Fast path, no cast: two tensors of one dtype, or a tensor and a Python number that
    cannot change its dtype (numpy already treats Python numbers as weak)."""
    ta = type(a)
    if ta is Tensor or isinstance(a, Tensor):
        kind = a._array.dtype.kind
        tb = type(b)
        if tb is float:  # tested first: a Python float is the commonest constant
            fast = kind == "f"
        elif tb is Tensor or isinstance(b, Tensor):
            same = b._array.dtype is a._array.dtype
            fast = same and (kind == "f" or not (true_div or kind == "b"))
        else:
            fast = tb is int and kind in "fiu" and not true_div
    else:
        kind = b._array.dtype.kind
        fast = (ta is float and kind == "f") or (ta is int and kind in "fiu" and not true_div)
    if fast:
        return apply(op, a, b)
    if op is ops.sub and any(_is_bool(x) for x in (a, b)):
        raise DtypeError(
            "Subtraction, the `-` operator, with a bool tensor is not supported. If you are "
            "trying to invert a mask, use the `~` operator instead."
        )
    dtype = _result_type(a, b)
    if true_div and dtype.kind not in "fc":
        dtype = _default_dtype
    return apply(op, _cast(a, dtype), _cast(b, dtype))


def _is_bool(x):
    if isinstance(x, Tensor):
        return x._array.dtype.kind == "b"
    return isinstance(x, (bool, np.bool_))


def _floating(t):
    """``t``, or ``t`` cast to the default float when it is an integer or bool tensor: the
    input of exp, log, sqrt, ... (PyTorch: ``exp`` of an int tensor is float32)."""
    return t if t._array.dtype.kind in "fc" else t.to(_default_dtype)


def _can_cast(src, dst):
    """PyTorch's canCast for in-place results: no float into an integer tensor, nothing
    but bool into a bool tensor."""
    if src.kind in "fc" and dst.kind in "biu":
        return False
    return not (dst.kind == "b" and src.kind != "b")


def _data(x):
    return x._array if isinstance(x, Tensor) else x


def _compare(ufunc, a, b):
    """A comparison or logical op: a tensor without gradient; shapes that do not broadcast
    raise ShapeError (a RuntimeError, as in PyTorch)."""
    try:
        return Tensor._make(ufunc(_data(a), _data(b)))
    except ValueError as e:
        raise ShapeError(f"{ufunc.__name__}: {e}") from None


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
    """None (all dims) or a sorted tuple of non-negative dims.

    Checked as PyTorch checks them: a 0-d tensor accepts dims -1 and 0; a dim given twice
    raises RuntimeError."""
    if dim is None:
        return None
    dims = dim if isinstance(dim, (tuple, list)) else (dim,)
    axes = [_dim(d, ndim, op) for d in dims]
    if len(set(axes)) != len(axes):
        twice = next(a for a in axes if axes.count(a) > 1)
        raise RuntimeError(f"{op}: dim {twice} appears multiple times in the list of dims")
    return None if ndim == 0 else tuple(sorted(axes))


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
        "_vc",
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
        self._vc = None  # version counter: None (version 0, not shared) or a shared [n]

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
    def _version(self):
        """How many in-place writes this tensor's storage has had (``torch``'s ``_version``).

        Views and ``detach()`` share the counter with their base; ``.data`` does not, so
        writes through ``.data`` are not seen by autograd (as in PyTorch)."""
        vc = self._vc
        return 0 if vc is None else vc[0]

    def _shared_version(self):
        """This tensor's counter, created on first use so that an alias can share it."""
        if self._vc is None:
            self._vc = [0]
        return self._vc

    def _bump_version(self):
        """Count one in-place write (recorded ops check it before using saved values)."""
        if self._vc is None:
            self._vc = [1]
        else:
            self._vc[0] += 1
        _writes[0] += 1

    @property
    def shape(self):
        return self._array.shape

    @property
    def device(self):
        """Always ``device(type='cpu')``: arrays live in host memory."""
        return _CPU

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
        """A tensor sharing this data and its version counter, cut from the graph."""
        t = Tensor._make(self._array)
        t._vc = self._shared_version()
        return t

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

    def to(self, *args, dtype=None, device=None, copy=False):
        """``to(dtype)``, ``to(device)``, ``to(device, dtype)``, ``to(other)`` (its dtype).

        The device must be the CPU (``'cpu'``, ``tg.device('cpu')``). Casts to integer or
        bool types are not differentiable, so their result is cut from the graph (as in
        PyTorch)."""
        dtype = _to_dtype_arg(args, dtype, device)
        if dtype is None or dtype == self._array.dtype:
            return self.clone() if copy else self
        if dtype.kind not in "fc":
            return Tensor._make(self._array.astype(dtype))
        return apply(ops.astype, self, params=(dtype,))

    def cpu(self):
        """This tensor (it is on the CPU already)."""
        return self

    def cuda(self, device=None):
        """Raises: there is no CUDA device here."""
        raise RuntimeError(
            "Tensor.cuda(): device 'cuda' is not available: tinygrad_init computes on the "
            "CPU with numpy only (check tg.cuda.is_available(), which is False)"
        )

    def float(self):
        return self.to(np.float32)

    def double(self):
        return self.to(np.float64)

    def long(self):
        return self.to(np.int64)

    def clone(self):
        return apply(ops.clone, self)

    # -- in-place (PyTorch's rules) -----------------------------------------------------
    #
    # Every in-place op writes into this tensor's storage and bumps its version counter.
    # In grad mode, when the tensor or an operand requires grad, the op is recorded: on a
    # leaf that requires grad it raises (as PyTorch); on a non-leaf the op is applied to a
    # stand-in for the old value and this tensor takes the new node (PyTorch rebases the
    # history the same way).  Rules that read a tensor modified since it was recorded
    # raise at backward (the version check in autograd).

    def _check_inplace(self):
        """Raise for an in-place op that PyTorch refuses (or that is not supported here)."""
        if self._node is None:
            raise RuntimeError(
                "a leaf Variable that requires grad is being used in an in-place operation."
            )
        node = self._node
        if node.op.view and node.inputs is not None and self._vc is node.inputs[0]._vc:
            raise RuntimeError(
                f"in-place op on a view ({node.name()}) of a tensor that requires grad is "
                "not supported: its base would not see the change (PyTorch rewrites the "
                "base's history); apply the op to the base tensor, or build the result out "
                "of place"
            )

    def _recording(self, other=None):
        if not _state.grad_enabled:
            return False
        return self.requires_grad or (isinstance(other, Tensor) and other.requires_grad)

    def _stand_in(self, copy):
        """A tensor for this one's current value and node, to record an in-place op on.

        It shares the storage and counter, so ops recorded earlier still see the write;
        with ``copy`` the value is cloned first (a recorded clone), for rules that read it.
        """
        old = Tensor._make(self._array, self._node)
        old.requires_grad = self.requires_grad
        old._vc = self._shared_version()
        return apply(ops.clone, old) if copy else old

    def _take(self, result, name, any_cast=False):
        """Write ``result`` (a Tensor) into this tensor's storage; adopt its node if any."""
        _unrecordable(f"Tensor.{name}() (an in-place write)")
        arr = result._array
        if arr.shape != self._array.shape:
            raise ShapeError(
                f"{name}: output with shape {list(self._array.shape)} doesn't match the "
                f"broadcast shape {list(arr.shape)}"
            )
        if not any_cast and not _can_cast(arr.dtype, self._array.dtype):
            raise DtypeError(
                f"{name}: result type {arr.dtype} can't be cast to the desired output type "
                f"{self._array.dtype}"
            )
        if not self._array.flags.writeable:
            raise RuntimeError(
                f"{name}: this tensor's memory is read-only (an expand() view, where several "
                "elements share one location); clone() it first"
            )
        np.copyto(self._array, arr, casting="unsafe")
        self._bump_version()
        node = result._node
        if node is not None:
            if node.op.saves is not None and any("out" in r for r in node.op.saves):
                # the rule reads its output, which later in-place ops on this tensor
                # overwrite: it keeps ``result`` (never written), and this tensor a clone
                node = Node(ops.clone, (result,), ())
            self._node = node
            self.requires_grad = True
        return self

    def _update(self, op, other, name, reads_self=False, true_div=False):
        """``self = op(self, other)`` in place (add_, sub_, mul_, div_, pow_)."""
        if self._recording(other):
            self._check_inplace() if self.requires_grad else None
            base = self._stand_in(reads_self and self.requires_grad)
            return self._take(_binary(op, base, other, true_div), name)
        return self._take(_binary(op, self, other, true_div), name)

    def _assign(self, value, name):
        """Replace every value by ``value`` (broadcast and cast to this tensor's dtype):
        copy_, fill_, zero_, normal_, uniform_.  Recorded as a select, so no gradient
        reaches the old value and ``value``'s gradient is summed back to its shape."""
        _unrecordable(f"Tensor.{name}() (an in-place write)")
        try:
            np.broadcast_shapes(np.shape(_data(value)), self._array.shape)
        except ValueError:
            raise ShapeError(
                f"{name}: the source of shape {list(np.shape(_data(value)))} does not "
                f"broadcast to the tensor's shape {list(self._array.shape)}"
            ) from None
        if self._recording(value):
            if self.requires_grad:
                self._check_inplace()
            base = self._stand_in(False)
            keep = np.zeros(self._array.shape, dtype=bool)
            return self._take(apply(ops.where, base, value, params=(keep,)), name, True)
        if not self._array.flags.writeable:
            return self._take(Tensor._make(np.asarray(_data(value))), name, True)
        np.copyto(self._array, _data(value), casting="unsafe")
        self._bump_version()
        return self

    def add_(self, other, *, alpha=1):
        """self += alpha * other, in place (``torch.Tensor.add_``)."""
        return self._update(ops.add, other if alpha == 1 else other * alpha, "add_")

    def sub_(self, other, *, alpha=1):
        """self -= alpha * other, in place (``torch.Tensor.sub_``)."""
        return self._update(ops.sub, other if alpha == 1 else other * alpha, "sub_")

    def mul_(self, other):
        """self *= other, in place (``torch.Tensor.mul_``)."""
        needs_self = isinstance(other, Tensor) and other.requires_grad
        return self._update(ops.mul, other, "mul_", reads_self=needs_self)

    def div_(self, other):
        """self /= other, in place (``torch.Tensor.div_``); an integer tensor raises, as the
        quotient is a float."""
        return self._update(ops.div, other, "div_", true_div=True)

    def pow_(self, exponent):
        """self = self ** exponent, in place (``torch.Tensor.pow_``)."""
        return self._update(ops.pow, exponent, "pow_", reads_self=True)

    __iadd__ = add_
    __isub__ = sub_
    __imul__ = mul_
    __itruediv__ = div_
    __ipow__ = pow_

    def clamp_(self, min=None, max=None):
        """Limit values to [min, max] in place (``torch.Tensor.clamp_``)."""
        if self._recording():
            self._check_inplace()
            return self._take(self._stand_in(True).clamp(min, max), "clamp_")
        return self._take(self.clamp(min, max), "clamp_")

    def copy_(self, src):
        """Copy ``src`` (broadcast, cast to this dtype) into this tensor; the gradient flows
        to ``src`` (``torch.Tensor.copy_``)."""
        return self._assign(src, "copy_")

    def fill_(self, value):
        """Set every element to ``value`` (a number or a 0-d tensor)."""
        if isinstance(value, Tensor) and value.ndim:
            raise RuntimeError(
                f"fill_ only supports 0-dimension value tensor but got tensor with "
                f"{value.ndim} dimensions."
            )
        return self._assign(value, "fill_")

    def zero_(self):
        """Set every element to 0."""
        return self._assign(0, "zero_")

    def normal_(self, mean=0.0, std=1.0, *, generator=None):
        """Fill with samples of N(mean, std^2) (``torch.Tensor.normal_``)."""
        gen = generator or _generator
        values = gen.standard_normal(self._array.shape) * std + mean
        return self._assign(values.astype(self._array.dtype), "normal_")

    def uniform_(self, *args, generator=None, **kwargs):
        """Fill with samples of U(from, to), defaults 0 and 1 (``torch.Tensor.uniform_``;
        ``from`` and ``to`` by position or by name)."""
        bounds = dict(zip(("from", "to"), args))
        for key, value in kwargs.items():
            if key not in ("from", "to") or key in bounds:
                raise TypeError(f"uniform_() got an unexpected or repeated argument {key!r}")
            bounds[key] = value
        low, high = bounds.get("from", 0.0), bounds.get("to", 1.0)
        gen = generator or _generator
        values = gen.uniform(low, high, self._array.shape)
        return self._assign(values.astype(self._array.dtype), "uniform_")

    # -- arithmetic ----------------------------------------------------------------------
    # binary arithmetic promotes dtypes by PyTorch's rule (_result_type)
    def __add__(self, other):
        return _binary(ops.add, self, other)

    def __radd__(self, other):
        return _binary(ops.add, other, self)

    def __sub__(self, other):
        return _binary(ops.sub, self, other)

    def __rsub__(self, other):
        return _binary(ops.sub, other, self)

    def __mul__(self, other):
        return _binary(ops.mul, self, other)

    def __rmul__(self, other):
        return _binary(ops.mul, other, self)

    def __truediv__(self, other):
        return _binary(ops.div, self, other, true_div=True)

    def __rtruediv__(self, other):
        return _binary(ops.div, other, self, true_div=True)

    def __pow__(self, exponent):
        return _binary(ops.pow, self, exponent)

    def __rpow__(self, base):
        return _binary(ops.pow, base, self)

    def __matmul__(self, other):
        return matmul(self, other)

    def __rmatmul__(self, other):
        return matmul(other, self)

    def __neg__(self):
        return apply(ops.neg, self)

    def __pos__(self):
        return self

    # comparisons give tensors without gradient
    def __lt__(self, other):
        return _compare(np.less, self, other)

    def __le__(self, other):
        return _compare(np.less_equal, self, other)

    def __gt__(self, other):
        return _compare(np.greater, self, other)

    def __ge__(self, other):
        return _compare(np.greater_equal, self, other)

    def __eq__(self, other):
        return _compare(np.equal, self, other)

    def __ne__(self, other):
        return _compare(np.not_equal, self, other)

    def __and__(self, other):
        return _compare(np.bitwise_and, self, other)

    def __or__(self, other):
        return _compare(np.bitwise_or, self, other)

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
        return self**exponent

    def neg(self):
        return -self

    # -- elementwise functions ---------------------------------------------------------
    def exp(self):
        return apply(ops.exp, _floating(self))

    def log(self):
        return apply(ops.log, _floating(self))

    def sqrt(self):
        return apply(ops.sqrt, _floating(self))

    def abs(self):
        return apply(ops.abs, self)

    def sin(self):
        return apply(ops.sin, _floating(self))

    def cos(self):
        return apply(ops.cos, _floating(self))

    def tanh(self):
        return apply(ops.tanh, _floating(self))

    def sigmoid(self):
        return apply(ops.sigmoid, _floating(self))

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
        """sum / count; float16 is accumulated in float32 (as PyTorch), since its sum
        overflows past 65504."""
        if self._array.dtype.kind not in "fc":
            raise RuntimeError(
                "mean(): could not infer output dtype. Input dtype must be either a floating "
                f"point or complex dtype. Got: {self._array.dtype}"
            )
        if self._array.dtype == np.float16:
            return self.float().mean(dim, keepdim).to(np.float16)
        axes = _axes(dim, self.ndim, "mean")
        count = self._array.size if axes is None else int(np.prod([self.shape[a] for a in axes]))
        return apply(ops.sum, self, params=(axes, keepdim)) / count

    def var(self, dim=None, unbiased=True, keepdim=False, *, correction=None):
        """sum((x - mean)^2) / (N - correction); correction 1 (Bessel) unless unbiased=False."""
        correction = int(unbiased) if correction is None else correction
        axes = _axes(dim, self.ndim, "var")
        return apply(ops.var, _floating(self), params=(axes, keepdim, correction))

    def std(self, dim=None, unbiased=True, keepdim=False, *, correction=None):
        """sqrt(var); the gradient at std == 0 (constant data) is 0, see ``ops.std``."""
        return apply(ops.std, self.var(dim, unbiased, keepdim, correction=correction))

    def _extreme(self, full_op, dim_op, pick, name, dim, keepdim):
        if dim is None:
            return apply(full_op, self)
        axis = _dim(dim, self.ndim, name)
        if self.ndim == 0:  # a 0-d tensor is its own extreme, at index 0 (as PyTorch)
            return ValuesIndices(apply(ops.clone, self), Tensor._make(np.zeros((), np.int64)))
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
        """log(sum(exp(x))) along ``dim``, computed stably (shifted by the max); -inf over
        an empty dim."""
        axes = _axes(dim, self.ndim, "logsumexp")
        return apply(ops.logsumexp, _floating(self), params=(axes, keepdim))

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
        return _view(ops.reshape, self, shape)

    view = reshape

    def permute(self, *dims):
        dims = _shape_args(dims)
        if len(dims) != self.ndim:
            raise ValueError(f"permute: got {len(dims)} dims for a tensor of {self.ndim} dims")
        axes = tuple(_dim(d, self.ndim, "permute") for d in dims)
        if sorted(axes) != list(range(self.ndim)):
            raise ValueError(f"permute: dims {dims} are not a permutation of 0..{self.ndim - 1}")
        return _view(ops.permute, self, axes)

    def transpose(self, dim0, dim1):
        axes = list(range(self.ndim))
        a, b = _dim(dim0, self.ndim, "transpose"), _dim(dim1, self.ndim, "transpose")
        axes[a], axes[b] = axes[b], axes[a]
        return _view(ops.permute, self, tuple(axes))

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
        return _view(ops.expand, self, shape)

    def expand_as(self, other):
        return self.expand(other.shape)

    def __getitem__(self, index):
        """Basic and advanced indexing with PyTorch's layout (see ``_index_steps``)."""
        out = self
        for step in _index_steps(index):
            out = _view(ops.getitem, out, step)
        return out

    def __setitem__(self, index, value):
        """Write ``value`` into this tensor's data (in place, not recorded).

        Allowed where PyTorch allows it without a graph: tensors that do not require grad,
        and leaves under ``no_grad`` (e.g. editing weights).  Writing into a tensor that
        takes part in a recorded computation raises, as the recorded graph would no longer
        describe the data."""
        _unrecordable("tensor[...] = value (an in-place write)")
        if _state.grad_enabled:
            if self.requires_grad and self._node is None:
                raise RuntimeError(
                    "a leaf Variable that requires grad is being used in an in-place operation."
                )
            if self.requires_grad or (isinstance(value, Tensor) and value.requires_grad):
                raise RuntimeError(
                    "in-place assignment into a tensor is not recorded when the tensor or "
                    "the value requires grad: do it under tg.no_grad(), or build a new "
                    "tensor (tg.where, tg.cat)"
                )
        *steps, last = _index_steps(index)
        target = self._array
        for step in steps:  # integer steps: basic indices, so views of the storage
            target = target[step]
        target[last] = _data(value)
        self._bump_version()


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


def _view(op, t, param):
    """``apply(op, t, param)`` for a view op; the result shares ``t``'s version counter
    when numpy made it a view of ``t``'s storage (reshape of a non-contiguous array and
    advanced indexing copy, as in PyTorch)."""
    out = apply(op, t, params=(param,))
    arr, base = out._array, t._array
    if arr.base is not None and arr.base is (base if base.base is None else base.base):
        out._vc = t._shared_version()
    return out


def _is_int(i):
    return isinstance(i, (int, np.integer)) and not isinstance(i, (bool, np.bool_))


def _index_steps(index):
    """The numpy indices that give PyTorch's result for ``index``, applied in turn.

    numpy counts an integer as an advanced index, so ``x[0, :, [0, 1]]`` (x of shape
    (2, 3, 4)) puts the advanced dim first, (2, 3); PyTorch first selects with the
    integers and then indexes the rest, (3, 2).  When integers and advanced (array)
    indices are mixed, the integers go in a first step (a view) and the rest in a second.
    """
    index = _index(index)
    if not isinstance(index, tuple) or not any(_is_int(i) for i in index):
        return (index,)
    if not any(isinstance(i, np.ndarray) for i in index):
        return (index,)
    first, second = [], []
    for i in index:
        if _is_int(i):
            first.append(i)
        elif isinstance(i, np.ndarray):
            first.extend([slice(None)] * (i.ndim if i.dtype == np.bool_ else 1))
            second.append(i)
        elif i is Ellipsis:
            first.append(i)
            second.append(i)
        else:  # a slice, or None (a new dim, present after the first step)
            first.append(i)
            second.append(slice(None))
    return tuple(first), tuple(second)


def _index(index):
    """Tensors and lists inside an index become numpy arrays."""
    if isinstance(index, tuple):
        return tuple(_index(i) for i in index)
    if isinstance(index, Tensor):
        return index._array
    if isinstance(index, list):
        return np.asarray(index)
    return index


_CPU = device("cpu")


def _to_dtype_arg(args, dtype, device_):
    """The dtype that ``Tensor.to``'s arguments ask for (None: keep), devices checked."""
    if len(args) > 2:
        raise TypeError(f"to() takes at most 2 positional arguments, got {len(args)}")
    for a in args:
        if isinstance(a, Tensor):
            a = a._array.dtype
        if isinstance(a, (str, device)) and not _is_dtype_name(a):
            check_device(a, "to()")
            continue
        if dtype is not None:
            raise TypeError("to(): dtype given twice")
        dtype = a
    check_device(device_, "to()")
    return None if dtype is None else np.dtype(dtype)


def _is_dtype_name(a):
    """True for dtype names numpy knows ('float32'), false for device names ('cpu')."""
    if not isinstance(a, str):
        return False
    try:
        np.dtype(a)
    except TypeError:
        return False
    return True


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


def tensor(data, dtype=None, device=None, requires_grad=False):
    """A new leaf tensor holding a copy of ``data`` (Python floats become float32)."""
    check_device(device, "tensor")
    return Tensor(data, requires_grad=requires_grad, dtype=dtype)


def _filled(shape, value, dtype, requires_grad, device=None):
    check_device(device, "creation function")
    return Tensor(
        np.full(_shape_args(shape), value, dtype=dtype or _default_dtype),
        requires_grad=requires_grad,
    )


def zeros(*size, dtype=None, device=None, requires_grad=False):
    return _filled(size, 0, dtype, requires_grad, device)


def ones(*size, dtype=None, device=None, requires_grad=False):
    return _filled(size, 1, dtype, requires_grad, device)


def full(size, fill_value, dtype=None, device=None, requires_grad=False):
    """A tensor of ``size`` filled with ``fill_value``; without ``dtype`` the value decides
    it, as in PyTorch: bool, int64 for an int, the default float for a float."""
    if dtype is None:
        dtype = _wrapped_dtype(_data(fill_value))
    return _filled(
        (size,) if isinstance(size, int) else tuple(size), fill_value, dtype, requires_grad, device
    )


def zeros_like(t, dtype=None, device=None, requires_grad=False):
    return _filled(t.shape, 0, dtype or t.dtype, requires_grad, device)


def ones_like(t, dtype=None, device=None, requires_grad=False):
    return _filled(t.shape, 1, dtype or t.dtype, requires_grad, device)


def full_like(t, fill_value, dtype=None, device=None, requires_grad=False):
    return _filled(t.shape, fill_value, dtype or t.dtype, requires_grad, device)


def arange(start, end=None, step=1, dtype=None, device=None, requires_grad=False):
    """Like torch.arange: int64 for integer arguments, the default float dtype otherwise."""
    check_device(device, "arange")
    if end is None:
        start, end = 0, start
    is_int = all(isinstance(v, (int, np.integer)) for v in (start, end, step))
    dtype = dtype or (np.int64 if is_int else _default_dtype)
    return Tensor(np.arange(start, end, step, dtype=dtype), requires_grad=requires_grad)


def linspace(start, end, steps, dtype=None, device=None, requires_grad=False):
    check_device(device, "linspace")
    return Tensor(
        np.linspace(start, end, steps, dtype=dtype or _default_dtype), requires_grad=requires_grad
    )


def eye(n, m=None, dtype=None, device=None, requires_grad=False):
    check_device(device, "eye")
    return Tensor(np.eye(n, m, dtype=dtype or _default_dtype), requires_grad=requires_grad)


def rand(*shape, size=None, generator=None, dtype=None, device=None, requires_grad=False):
    """Uniform samples on [0, 1) (``rand(2, 3)``, ``rand((2, 3))`` or ``rand(size=(2, 3))``)."""
    _unrecordable("tg.rand() (a random draw)")
    check_device(device, "rand")
    gen = generator or _generator
    dtype = np.dtype(dtype or _default_dtype)
    shape = _shape_args(shape if size is None else (size,))
    return Tensor(gen.random(shape, dtype=dtype), requires_grad=requires_grad)


def randn(*shape, size=None, generator=None, dtype=None, device=None, requires_grad=False):
    """Standard normal samples (the shape given as for ``rand``)."""
    _unrecordable("tg.randn() (a random draw)")
    check_device(device, "randn")
    gen = generator or _generator
    dtype = np.dtype(dtype or _default_dtype)
    shape = _shape_args(shape if size is None else (size,))
    return Tensor(gen.standard_normal(shape, dtype=dtype), requires_grad=requires_grad)


def randint(low, high=None, size=(), generator=None, dtype=np.int64, device=None):
    """Integers uniform on [low, high) (``randint(high, size)`` also works)."""
    _unrecordable("tg.randint() (a random draw)")
    check_device(device, "randint")
    if isinstance(high, (tuple, list)):  # randint(high, size), as torch.randint allows
        size, high = high, None
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
    """``input`` where ``condition`` holds, else ``other`` (gradient flows to the chosen);
    the operands are promoted as for arithmetic."""
    cond = np.asarray(_data(condition), dtype=bool)
    dtype = _result_type(input, other)
    return apply(ops.where, _cast(input, dtype), _cast(other, dtype), params=(cond,))


def maximum(input, other):
    """Elementwise max; at ties each operand gets half the gradient."""
    return _binary(ops.maximum, input, other)


def minimum(input, other):
    """Elementwise min; at ties each operand gets half the gradient."""
    return _binary(ops.minimum, input, other)


def matmul(input, other):
    """Matrix product (numpy's matmul broadcasting); both operands must have one dtype, as
    in PyTorch (no promotion)."""
    da, db = np.result_type(_data(input)), np.result_type(_data(other))
    if da != db:
        raise DtypeError(
            f"matmul: expected m1 and m2 to have the same dtype, but got: {da} != {db}"
        )
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
    cumsum=lambda x, axis: apply(ops.cumsum, x, params=(axis,)),
)
