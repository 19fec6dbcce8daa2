"""Functions of tensors under PyTorch's names: ``tg.sin(x)``, ``tg.mm(a, b)``, ``tg.topk``...

Every function here that PyTorch also has as a Tensor method is attached to ``Tensor``
at the end of this module (``x.topk(3)``, ``a.mm(b)``), unless ``tensor.py`` defines that
method itself.  Nothing here defines a gradient: each function is a primitive of
``ops.py`` applied through ``tensor.apply`` or a composite of Tensor operations, so
gradients (and ``create_graph=True``) come for free.  Sampling and comparison functions
return tensors without a gradient, as in PyTorch.
"""

from __future__ import annotations

import builtins
import functools
import math
import string

import numpy as np

from . import ops
from .devices import check_device
from .tensor import (
    DtypeError,
    ShapeError,
    Tensor,
    ValuesIndices,
    _axes,
    _data,
    _dim,
    _shape_args,
    _unrecordable,
    apply,
    default_generator,
    get_default_dtype,
    matmul,
    maximum,
    minimum,
    where,
)

__all__ = []  # filled below, so the list and the definitions cannot drift apart


def _tensor(x, fn, arg="input"):
    if not isinstance(x, Tensor):
        raise TypeError(f"{fn}(): argument '{arg}' must be Tensor, not {type(x).__name__}")
    return x


def _public(fn):
    __all__.append(fn.__name__)
    return fn


def _as_function(method):
    """``f(input, *args) = input.method(*args)``: the module-level form of a Tensor method."""
    name = method.__name__

    @functools.wraps(method)
    def f(input, *args, **kwargs):
        return method(_tensor(input, name), *args, **kwargs)

    __all__.append(name)
    return f


# ----------------------------------------------------------------------------------------
# Module-level forms of the methods tensor.py defines

abs = _as_function(Tensor.abs)
exp = _as_function(Tensor.exp)
log = _as_function(Tensor.log)
sqrt = _as_function(Tensor.sqrt)
sin = _as_function(Tensor.sin)
cos = _as_function(Tensor.cos)
tanh = _as_function(Tensor.tanh)
sigmoid = _as_function(Tensor.sigmoid)
relu = _as_function(Tensor.relu)
square = _as_function(Tensor.square)
sign = _as_function(Tensor.sign)
neg = _as_function(Tensor.neg)
clamp = _as_function(Tensor.clamp)
clip = _as_function(Tensor.clip)
pow = _as_function(Tensor.pow)
sum = _as_function(Tensor.sum)
mean = _as_function(Tensor.mean)
var = _as_function(Tensor.var)
std = _as_function(Tensor.std)
argmax = _as_function(Tensor.argmax)
argmin = _as_function(Tensor.argmin)
logsumexp = _as_function(Tensor.logsumexp)
softmax = _as_function(Tensor.softmax)
log_softmax = _as_function(Tensor.log_softmax)
reshape = _as_function(Tensor.reshape)
permute = _as_function(Tensor.permute)
transpose = _as_function(Tensor.transpose)
flatten = _as_function(Tensor.flatten)
squeeze = _as_function(Tensor.squeeze)
unsqueeze = _as_function(Tensor.unsqueeze)
clone = _as_function(Tensor.clone)
detach = _as_function(Tensor.detach)
numel = _as_function(Tensor.numel)


@_public
def add(input, other, *, alpha=1):
    """input + alpha * other (``torch.add``)."""
    return _tensor(input, "add") + (other if alpha == 1 else other * alpha)


@_public
def sub(input, other, *, alpha=1):
    """input - alpha * other (``torch.sub``)."""
    return _tensor(input, "sub") - (other if alpha == 1 else other * alpha)


@_public
def mul(input, other):
    """input * other (``torch.mul``)."""
    return _tensor(input, "mul") * other


@_public
def div(input, other, *, rounding_mode=None):
    """input / other; ``rounding_mode`` 'trunc' or 'floor' rounds the quotient (no gradient
    through the rounding, as in PyTorch)."""
    q = _tensor(input, "div") / other
    if rounding_mode is None:
        return q
    if rounding_mode == "trunc":
        return trunc(q)
    if rounding_mode == "floor":
        return floor(q)
    raise ValueError(
        f"div expected rounding_mode to be one of None, 'trunc', or 'floor' but found "
        f"{rounding_mode!r}"
    )


@_public
def max(input, dim=None, keepdim=False):
    """``max(input)``, ``max(input, dim, keepdim)`` -> (values, indices), or
    ``max(input, other)`` (= ``maximum``), as ``torch.max``."""
    if isinstance(dim, Tensor):
        return maximum(input, dim)
    return _tensor(input, "max").max(dim, keepdim)


@_public
def min(input, dim=None, keepdim=False):
    """``min(input)``, ``min(input, dim, keepdim)`` -> (values, indices), or
    ``min(input, other)`` (= ``minimum``), as ``torch.min``."""
    if isinstance(dim, Tensor):
        return minimum(input, dim)
    return _tensor(input, "min").min(dim, keepdim)


# ----------------------------------------------------------------------------------------
# Elementwise functions


def _unary(op):
    def f(input):
        return apply(op, _tensor(input, op.name))

    f.__name__ = f.__qualname__ = op.name
    __all__.append(op.name)
    return f


log1p = _unary(ops.log1p)
expm1 = _unary(ops.expm1)
atan = _unary(ops.atan)
asin = _unary(ops.asin)
acos = _unary(ops.acos)
erf = _unary(ops.erf)
floor = _unary(ops.floor)
ceil = _unary(ops.ceil)
trunc = _unary(ops.trunc)
log1p.__doc__ = "log(1 + x), accurate for small x (``torch.log1p``)."
expm1.__doc__ = "exp(x) - 1, accurate for small x (``torch.expm1``)."
atan.__doc__ = "arctan(x); gradient 1 / (1 + x^2) (``torch.atan``)."
asin.__doc__ = "arcsin(x); gradient 1 / sqrt(1 - x^2), infinite at |x| = 1 (``torch.asin``)."
acos.__doc__ = "arccos(x); gradient -1 / sqrt(1 - x^2), infinite at |x| = 1 (``torch.acos``)."
erf.__doc__ = "The error function; gradient 2 / sqrt(pi) exp(-x^2) (``torch.erf``)."
floor.__doc__ = "Largest integer <= x; gradient 0 (``torch.floor``)."
ceil.__doc__ = "Smallest integer >= x; gradient 0 (``torch.ceil``)."
trunc.__doc__ = "x rounded toward 0; gradient 0 (``torch.trunc``)."


@_public
def round(input, *, decimals=0):
    """x rounded half to even, to ``decimals`` places; gradient 0 (``torch.round``)."""
    _tensor(input, "round")
    if decimals == 0:
        return apply(ops.round, input)
    scale = 10.0**decimals
    return apply(ops.round, input * scale) / scale


@_public
def frac(input):
    """x - trunc(x); gradient 1 (``torch.frac``)."""
    return input - trunc(input)


@_public
def log2(input):
    """log(x) / log(2) (``torch.log2``)."""
    return _tensor(input, "log2").log() / math.log(2)


@_public
def log10(input):
    """log(x) / log(10) (``torch.log10``)."""
    return _tensor(input, "log10").log() / math.log(10)


@_public
def exp2(input):
    """2^x = exp(x log 2) (``torch.exp2``)."""
    return (_tensor(input, "exp2") * math.log(2)).exp()


@_public
def rsqrt(input):
    """1 / sqrt(x) (``torch.rsqrt``)."""
    return 1 / _tensor(input, "rsqrt").sqrt()


@_public
def reciprocal(input):
    """1 / x (``torch.reciprocal``)."""
    return 1 / _tensor(input, "reciprocal")


@_public
def tan(input):
    """sin(x) / cos(x) (``torch.tan``)."""
    return _tensor(input, "tan").sin() / input.cos()


@_public
def sinh(input):
    """(exp(x) - exp(-x)) / 2 (``torch.sinh``)."""
    e = _tensor(input, "sinh").exp()
    return (e - 1 / e) / 2


@_public
def cosh(input):
    """(exp(x) + exp(-x)) / 2 (``torch.cosh``)."""
    e = _tensor(input, "cosh").exp()
    return (e + 1 / e) / 2


@_public
def lerp(input, end, weight):
    """input + weight * (end - input) (``torch.lerp``)."""
    return _tensor(input, "lerp") + weight * (end - input)


@_public
def masked_fill(input, mask, value):
    """``value`` where ``mask`` is True, ``input`` elsewhere (a select: no gradient reaches
    the filled positions) (``torch.masked_fill``)."""
    mask = np.asarray(_data(mask))
    if mask.dtype != np.bool_:
        raise DtypeError(
            f"masked_fill only supports boolean masks, but got mask with dtype {mask.dtype}"
        )
    _tensor(input, "masked_fill")
    value = _data(value)
    return where(mask, np.asarray(value, dtype=input.dtype), input)


@_public
def tril(input, diagonal=0):
    """Entries on and below the ``diagonal``-th diagonal, zeros above (``torch.tril``)."""
    _tensor(input, "tril")
    if input.ndim < 2:
        raise RuntimeError("tril: input tensor must have at least 2 dimensions")
    keep = np.tri(*input.shape[-2:], k=diagonal, dtype=bool)
    return where(keep, input, np.zeros((), dtype=input.dtype))


@_public
def triu(input, diagonal=0):
    """Entries on and above the ``diagonal``-th diagonal, zeros below (``torch.triu``)."""
    _tensor(input, "triu")
    if input.ndim < 2:
        raise RuntimeError("triu: input tensor must have at least 2 dimensions")
    keep = ~np.tri(*input.shape[-2:], k=diagonal - 1, dtype=bool)
    return where(keep, input, np.zeros((), dtype=input.dtype))


# ----------------------------------------------------------------------------------------
# Comparisons and tests (no gradient)


def _compare(name, fn):
    def f(input, other):
        return Tensor._make(np.asarray(fn(_data(_tensor(input, name)), _data(other))))

    f.__name__ = f.__qualname__ = name
    f.__doc__ = f"Elementwise ``{fn.__name__}`` as a bool tensor (``torch.{name}``)."
    __all__.append(name)
    return f


eq = _compare("eq", np.equal)
ne = _compare("ne", np.not_equal)
lt = _compare("lt", np.less)
le = _compare("le", np.less_equal)
gt = _compare("gt", np.greater)
ge = _compare("ge", np.greater_equal)
logical_and = _compare("logical_and", np.logical_and)
logical_or = _compare("logical_or", np.logical_or)
logical_xor = _compare("logical_xor", np.logical_xor)


def _test(name, fn, doc):
    def f(input):
        return Tensor._make(np.asarray(fn(_tensor(input, name)._array)))

    f.__name__ = f.__qualname__ = name
    f.__doc__ = doc
    __all__.append(name)
    return f


logical_not = _test("logical_not", np.logical_not, "Elementwise not (``torch.logical_not``).")
isnan = _test("isnan", np.isnan, "True where NaN (``torch.isnan``).")
isinf = _test("isinf", np.isinf, "True where +-inf (``torch.isinf``).")
isfinite = _test("isfinite", np.isfinite, "True where neither NaN nor inf (``torch.isfinite``).")


@_public
def isclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False):
    """|input - other| <= atol + rtol * |other|, elementwise (``torch.isclose``)."""
    a, b = _data(_tensor(input, "isclose")), _data(other)
    return Tensor._make(np.isclose(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan))


@_public
def allclose(input, other, rtol=1e-05, atol=1e-08, equal_nan=False):
    """True when ``isclose`` holds everywhere (``torch.allclose``): a Python bool."""
    a, b = _data(_tensor(input, "allclose")), _data(_tensor(other, "allclose", "other"))
    return bool(np.allclose(a, b, rtol=rtol, atol=atol, equal_nan=equal_nan))


@_public
def equal(input, other):
    """True when both have the same shape and elements (``torch.equal``): a Python bool."""
    a, b = _data(_tensor(input, "equal")), _data(_tensor(other, "equal", "other"))
    return a.shape == b.shape and bool(np.array_equal(a, b))


def _bool_reduction(name, fn):
    def f(input, dim=None, keepdim=False):
        a = _tensor(input, name)._array
        axes = _axes(dim, a.ndim, name)
        return Tensor._make(np.asarray(fn(a, axis=axes, keepdims=keepdim)))

    f.__name__ = f.__qualname__ = name
    f.__doc__ = f"Whether {name} elements are nonzero, over ``dim`` (``torch.{name}``)."
    __all__.append(name)
    return f


all = _bool_reduction("all", np.all)
any = _bool_reduction("any", np.any)


@_public
def count_nonzero(input, dim=None):
    """Number of nonzero elements over ``dim`` (``torch.count_nonzero``)."""
    a = _tensor(input, "count_nonzero")._array
    return Tensor._make(np.asarray(np.count_nonzero(a, axis=_axes(dim, a.ndim, "count_nonzero"))))


# ----------------------------------------------------------------------------------------
# Reductions


@_public
def prod(input, dim=None, keepdim=False, *, dtype=None):
    """Product of the elements, over all or along one ``dim`` (``torch.prod``).  The
    gradient of element i is the product of the others, exact at zeros."""
    x = _tensor(input, "prod") if dtype is None else input.to(dtype)
    axis = None if dim is None else _dim(dim, x.ndim, "prod")
    return apply(ops.prod, x, params=(axis, keepdim))


@_public
def cumsum(input, dim, *, dtype=None):
    """Cumulative sum along ``dim`` (``torch.cumsum``)."""
    x = _tensor(input, "cumsum") if dtype is None else input.to(dtype)
    if x.ndim == 0:
        return x.clone()
    return apply(ops.cumsum, x, params=(_dim(dim, x.ndim, "cumsum"),))


def _extreme_along(input, dim, keepdim, name, largest):
    """amax/amin: every element equal to the extreme shares its gradient equally."""
    x = _tensor(input, name)
    if dim is None or (isinstance(dim, (tuple, list)) and len(dim) == 0):
        out = x.max() if largest else x.min()
        return out.reshape((1,) * x.ndim) if keepdim else out
    axes = _axes(dim, x.ndim, name) or ()
    if not axes:
        return x.clone()
    front = [a for a in range(x.ndim) if a not in axes]
    kept = tuple(x.shape[a] for a in front)
    rows = x.permute(*front, *axes).reshape(kept + (-1,))
    values = (np.max if largest else np.min)(rows._array, axis=-1)
    mask = rows._array == values[..., None]
    shared = (rows * (mask / mask.sum(-1, keepdims=True)).astype(x.dtype)).sum(-1)
    # the value is the exact extreme; the gradient is that of the tie-sharing sum
    out = Tensor._make(values) + (shared - shared.detach())
    if keepdim:
        out = out.reshape(tuple(1 if a in axes else n for a, n in enumerate(x.shape)))
    return out


@_public
def amax(input, dim=(), keepdim=False):
    """Maximum over ``dim`` (all dims when empty); ties share the gradient equally
    (``torch.amax``)."""
    return _extreme_along(input, dim, keepdim, "amax", True)


@_public
def amin(input, dim=(), keepdim=False):
    """Minimum over ``dim`` (all dims when empty); ties share the gradient equally
    (``torch.amin``)."""
    return _extreme_along(input, dim, keepdim, "amin", False)


@_public
def norm(input, p="fro", dim=None, keepdim=False, dtype=None):
    """The p-norm (sum |x|^p)^(1/p) over ``dim`` (all elements by default) (``torch.norm``).

    ``p``: a number >= 1, ``'fro'`` (= 2), ``inf`` (max |x|) or ``-inf`` (min |x|).  NOTE:
    at a zero vector the gradient is 0, as in PyTorch.
    """
    x = _tensor(input, "norm") if dtype is None else input.to(dtype)
    if p == "fro":
        p = 2
    if isinstance(p, str) or not isinstance(p, (int, float)):
        raise ValueError(f"norm: p must be a number, 'fro', inf or -inf; got {p!r}")
    if not np.issubdtype(x.dtype, np.floating):
        raise DtypeError(f"norm(): input dtype should be a floating point dtype, got {x.dtype}")
    if p in (math.inf, -math.inf):
        return _extreme_along(x.abs(), () if dim is None else dim, keepdim, "norm", p > 0)
    if p < 1:
        raise ValueError(f"norm: p must be at least 1 (or inf), got {p}")
    return apply(ops.norm, x, params=(p, _axes(dim, x.ndim, "norm"), keepdim))


# ----------------------------------------------------------------------------------------
# Products


def _check_ndim(t, n, fn, arg):
    _tensor(t, fn, arg)
    if t.ndim != n:
        raise RuntimeError(f"{fn}: {arg} must be a {n}D tensor, got a {t.ndim}D tensor")


@_public
def mm(input, mat2):
    """Matrix product of two 2D tensors (``torch.mm``)."""
    _check_ndim(input, 2, "mm", "self")
    _check_ndim(mat2, 2, "mm", "mat2")
    if input.shape[1] != mat2.shape[0]:
        raise ShapeError(
            f"mm: mat1 and mat2 shapes cannot be multiplied "
            f"({input.shape[0]}x{input.shape[1]} and {mat2.shape[0]}x{mat2.shape[1]})"
        )
    return matmul(input, mat2)


@_public
def bmm(input, mat2):
    """Batched matrix product of (b, n, m) and (b, m, p) tensors (``torch.bmm``)."""
    _check_ndim(input, 3, "bmm", "batch1")
    _check_ndim(mat2, 3, "bmm", "batch2")
    if input.shape[0] != mat2.shape[0] or input.shape[2] != mat2.shape[1]:
        raise ShapeError(
            f"bmm: expected batch1 (b, n, m) and batch2 (b, m, p), got {input.shape} and "
            f"{mat2.shape}"
        )
    return matmul(input, mat2)


@_public
def mv(input, vec):
    """Matrix-vector product (``torch.mv``)."""
    _check_ndim(input, 2, "mv", "self")
    _check_ndim(vec, 1, "mv", "vec")
    return matmul(input, vec)


@_public
def dot(input, other):
    """Inner product of two 1D tensors (``torch.dot``)."""
    _check_ndim(input, 1, "dot", "self")
    _check_ndim(other, 1, "dot", "tensor")
    if input.shape != other.shape:
        raise ShapeError(
            f"dot: inconsistent tensor size, expected tensor [{input.shape[0]}] and src "
            f"[{other.shape[0]}] to have the same number of elements"
        )
    return matmul(input, other)


@_public
def outer(input, vec2):
    """input[i] * vec2[j] (``torch.outer``)."""
    _check_ndim(input, 1, "outer", "self")
    _check_ndim(vec2, 1, "outer", "vec2")
    return input.unsqueeze(1) * vec2.unsqueeze(0)


@_public
def addmm(input, mat1, mat2, *, beta=1, alpha=1):
    """beta * input + alpha * (mat1 @ mat2) (``torch.addmm``)."""
    product = mm(mat1, mat2)
    product = product if alpha == 1 else product * alpha
    return product + (input if beta == 1 else input * beta)


@_public
def t(input):
    """Transpose of a tensor with at most 2 dims (``torch.t``)."""
    _tensor(input, "t")
    if input.ndim > 2:
        raise RuntimeError(f"t() expects a tensor with <= 2 dimensions, but self is {input.ndim}D")
    return input if input.ndim < 2 else input.transpose(0, 1)


def _parse_einsum(equation, operands):
    """Letters of each operand and of the output, the ellipsis spelled out as letters."""
    if not isinstance(equation, str):
        raise TypeError(f"einsum(): equation must be a string, got {type(equation).__name__}")
    equation = equation.replace(" ", "")
    lhs, arrow, rhs = equation.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(operands):
        raise ValueError(
            f"einsum(): the equation has {len(terms)} operands but {len(operands)} tensors "
            "were given"
        )
    used = set(equation) - set(".,->")
    for ch in used:
        if ch not in string.ascii_letters:
            raise ValueError(f"einsum(): invalid subscript {ch!r} in {equation!r}")
    spare = iter(ch for ch in string.ascii_letters if ch not in used)
    ellipsis = ""
    letters = []
    for k, (term, x) in enumerate(zip(terms, operands)):
        if "..." in term:
            n = x.ndim - (len(term) - 3)
            while len(ellipsis) < n:
                ellipsis = next(spare) + ellipsis
            term = term.replace("...", ellipsis[len(ellipsis) - n :] if n else "")
        if "." in term or len(term) != x.ndim:
            raise ValueError(f"einsum(): operand {k} has {x.ndim} dims but subscripts {terms[k]!r}")
        if len(set(term)) != len(term):
            raise ValueError(
                f"einsum(): repeated subscripts in operand {k} ({terms[k]!r}): diagonals and "
                "traces are not supported; use tg.diagonal or indexing"
            )
        letters.append(term)
    if arrow:
        out = rhs.replace("...", ellipsis)
        if len(set(out)) != len(out) or not set(out) <= set("".join(letters)):
            raise ValueError(f"einsum(): invalid output subscripts {rhs!r}")
    else:
        counts = {ch: "".join(letters).count(ch) for ch in set("".join(letters))}
        once = sorted(ch for ch, n in counts.items() if n == 1 and ch not in ellipsis)
        out = ellipsis + "".join(once)
    sizes = {}
    for term, x in zip(letters, operands):
        for ch, n in zip(term, x.shape):
            if sizes.setdefault(ch, n) != n:
                raise ShapeError(
                    f"einsum(): subscript {ch!r} has size {n} in one operand and {sizes[ch]} "
                    "in another (broadcasting inside einsum is not supported)"
                )
    return letters, out, sizes


def _einsum_reduce(x, term, keep):
    """Sum ``x`` (subscripts ``term``) over the letters not in ``keep``."""
    drop = [i for i, ch in enumerate(term) if ch not in keep]
    if drop:
        x = x.sum(tuple(drop))
        term = "".join(ch for ch in term if ch in keep)
    return x, term


def _einsum_pair(a, ta, b, tb, keep, sizes):
    """Contract two operands with one matmul, keeping the letters in ``keep``."""
    batch = [ch for ch in ta if ch in tb and ch in keep]
    contract = [ch for ch in ta if ch in tb and ch not in keep]
    a_only = [ch for ch in ta if ch not in tb]
    b_only = [ch for ch in tb if ch not in ta]
    a = a.permute(*[ta.index(ch) for ch in batch + a_only + contract])
    b = b.permute(*[tb.index(ch) for ch in batch + contract + b_only])
    nb, na, nc, nbo = (
        int(np.prod([sizes[ch] for ch in group], dtype=np.int64))
        for group in (batch, a_only, contract, b_only)
    )
    out = matmul(a.reshape(nb, na, nc), b.reshape(nb, nc, nbo))
    term = "".join(batch + a_only + b_only)
    return out.reshape(tuple(sizes[ch] for ch in term)), term


@_public
def einsum(equation, *operands):
    """Sum of products over the subscripts that the output omits (``torch.einsum``).

    ``einsum('ij,jk->ik', a, b)``; the output may be implicit (``'ij,jk'``) and ``...``
    stands for leading or trailing dims.  Each pair of operands is contracted with one
    matmul (batch, kept and summed letters sorted out first), left to right, so gradients
    come from matmul, permute, reshape and sum.  Repeated subscripts within an operand
    (diagonals, traces) are not supported and raise ``ValueError``.
    """
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    if not operands:
        raise ValueError("einsum(): must provide at least one operand")
    for k, x in enumerate(operands):
        _tensor(x, "einsum", f"operands[{k}]")
    letters, out, sizes = _parse_einsum(equation, operands)
    x, term = operands[0], letters[0]
    for k in range(1, len(operands)):
        later = set(out).union(*letters[k + 1 :])
        x, term = _einsum_reduce(x, term, later | set(letters[k]))
        y, ty = _einsum_reduce(operands[k], letters[k], later | set(term))
        x, term = _einsum_pair(x, term, y, ty, later, sizes)
    x, term = _einsum_reduce(x, term, set(out))
    if len(term) and term != out:
        x = x.permute(*[term.index(ch) for ch in out])
    return x


# ----------------------------------------------------------------------------------------
# Selecting, splitting, reordering


def _along(dim, ndim, index):
    """A full index that applies ``index`` along ``dim``."""
    return (slice(None),) * dim + (index,)


@_public
def narrow(input, dim, start, length):
    """input[..., start:start+length, ...] along ``dim`` (``torch.narrow``)."""
    d = _dim(dim, _tensor(input, "narrow").ndim, "narrow")
    if start < 0:
        start += input.shape[d]
    if not 0 <= start <= start + length <= input.shape[d] or length < 0:
        raise IndexError(
            f"narrow: start ({start}) + length ({length}) exceeds dimension size ({input.shape[d]})"
        )
    return input[_along(d, input.ndim, slice(start, start + length))]


@_public
def index_select(input, dim, index):
    """The entries at ``index`` (a 1D int tensor) along ``dim`` (``torch.index_select``)."""
    d = _dim(dim, _tensor(input, "index_select").ndim, "index_select")
    idx = np.asarray(_data(index))
    if idx.ndim > 1 or idx.dtype.kind not in "iu":
        raise IndexError("index_select(): index must be a 1D integer tensor")
    return input[_along(d, input.ndim, idx.reshape(-1))]


def _take_along(input, dim, index):
    """input[i_0, ..., index[i], ..., i_n] with ``index`` placed along ``dim``."""
    grid = list(np.indices(index.shape, sparse=True))
    grid[dim] = index
    return input[tuple(grid)]


@_public
def gather(input, dim, index):
    """out[i][j][k] = input[index[i][j][k]][j][k] for dim 0, and so on (``torch.gather``)."""
    d = _dim(dim, _tensor(input, "gather").ndim, "gather")
    idx = np.asarray(_data(index))
    if idx.dtype.kind not in "iu":
        raise RuntimeError(f"gather(): Expected dtype int64 for index, got {idx.dtype}")
    if idx.ndim != input.ndim:
        raise RuntimeError(
            "gather(): Index tensor must have the same number of dimensions as input tensor"
        )
    for a, (n, m) in enumerate(zip(idx.shape, input.shape)):
        if a != d and n > m:
            raise RuntimeError(
                f"gather(): Size does not match at dimension {a}: index {idx.shape} and "
                f"input {input.shape}"
            )
    return _take_along(input, d, idx)


@_public
def flip(input, dims):
    """Reverse the order along each of ``dims`` (``torch.flip``)."""
    _tensor(input, "flip")
    dims = (dims,) if isinstance(dims, (int, np.integer)) else dims
    index = [slice(None)] * input.ndim
    for d in dims:
        index[_dim(d, input.ndim, "flip")] = slice(None, None, -1)
    return input[tuple(index)]


@_public
def roll(input, shifts, dims=None):
    """Elements shifted by ``shifts`` along ``dims``, wrapping around (``torch.roll``)."""
    _tensor(input, "roll")
    if dims is None:
        return roll(input.flatten(), shifts, 0).reshape(input.shape)
    shifts = (shifts,) if isinstance(shifts, (int, np.integer)) else tuple(shifts)
    dims = (dims,) if isinstance(dims, (int, np.integer)) else tuple(dims)
    if len(shifts) != len(dims):
        raise RuntimeError(f"roll: shifts ({len(shifts)}) and dims ({len(dims)}) must align")
    out = input
    for s, d in zip(shifts, dims):
        d = _dim(d, input.ndim, "roll")
        n = input.shape[d]
        out = out[_along(d, input.ndim, (np.arange(n) - s) % n)] if n else out
    return out


@_public
def chunk(input, chunks, dim=0):
    """Split into ``chunks`` pieces of size ceil(n / chunks) along ``dim`` (``torch.chunk``)."""
    d = _dim(dim, _tensor(input, "chunk").ndim, "chunk")
    if chunks <= 0:
        raise RuntimeError(f"chunk expects `chunks` to be greater than 0, got: {chunks}")
    size = -(-input.shape[d] // chunks) if input.shape[d] else 1
    return split(input, builtins.max(size, 1), d)


@_public
def split(tensor, split_size_or_sections, dim=0):
    """Pieces of ``split_size`` along ``dim`` (the last smaller), or of the given sizes
    (``torch.split``)."""
    d = _dim(dim, _tensor(tensor, "split", "tensor").ndim, "split")
    n = tensor.shape[d]
    if isinstance(split_size_or_sections, (int, np.integer)):
        size = int(split_size_or_sections)
        if size <= 0:
            raise RuntimeError(f"split expects split_size be positive, but got {size}")
        sizes = [builtins.min(size, n - s) for s in range(0, n, size)] or [0]
    else:
        sizes = [int(s) for s in split_size_or_sections]
        if builtins.sum(sizes) != n:
            raise RuntimeError(
                f"split_with_sizes expects split_sizes to sum exactly to {n} (input tensor's "
                f"size at dimension {d}), but got split_sizes={sizes}"
            )
    starts = np.cumsum([0] + sizes[:-1])
    return tuple(
        tensor[_along(d, tensor.ndim, slice(int(s), int(s) + m))] for s, m in zip(starts, sizes)
    )


@_public
def unbind(input, dim=0):
    """The slices along ``dim``, that dim removed (``torch.unbind``)."""
    d = _dim(dim, _tensor(input, "unbind").ndim, "unbind")
    return tuple(input[_along(d, input.ndim, i)] for i in range(input.shape[d]))


@_public
def diag(input, diagonal=0):
    """A 1D tensor -> the square matrix with it on the ``diagonal``-th diagonal; a 2D
    tensor -> its ``diagonal``-th diagonal (``torch.diag``)."""
    _tensor(input, "diag")
    if input.ndim == 1:
        n = input.shape[0] + builtins.abs(diagonal)
        rows = np.arange(input.shape[0]) + builtins.max(-diagonal, 0)
        cols = np.arange(input.shape[0]) + builtins.max(diagonal, 0)
        picked = np.zeros((n, n), dtype=np.int64)
        picked[rows, cols] = np.arange(input.shape[0])
        on = np.zeros((n, n), dtype=bool)
        on[rows, cols] = True
        return where(on, input[picked], np.zeros((), dtype=input.dtype))
    if input.ndim == 2:
        return _diagonal(input, diagonal)
    raise RuntimeError(f"diag(): Supports 1D or 2D tensors. Got {input.ndim}D")


@_public
def diagonal(input, offset=0, dim1=0, dim2=1):
    """The ``offset``-th diagonal of the (dim1, dim2) planes, as the last dim
    (``torch.diagonal``)."""
    _tensor(input, "diagonal")
    a, b = _dim(dim1, input.ndim, "diagonal"), _dim(dim2, input.ndim, "diagonal")
    if a == b:
        raise RuntimeError(f"diagonal dimensions cannot be identical {dim1}, {dim2}")
    rest = [i for i in range(input.ndim) if i not in (a, b)]
    x = input.permute(*rest, a, b)
    rows, cols = x.shape[-2:]
    start_r, start_c = builtins.max(-offset, 0), builtins.max(offset, 0)
    n = builtins.max(builtins.min(rows - start_r, cols - start_c), 0)
    i = np.arange(n)
    return x[(Ellipsis, i + start_r, i + start_c)]


_diagonal = diagonal


def _sorted_indices(a, dim, descending):
    """Stable ordering indices along ``dim`` (descending keeps ties in their order)."""
    if descending:  # negate (bools and unsigned ints: complement) so ties stay in order
        a = ~a if a.dtype.kind in "ub" else -a
    return np.argsort(a, axis=dim, kind="stable")


@_public
def sort(input, dim=-1, descending=False, stable=False):
    """(values, indices) sorted along ``dim`` (``torch.sort``); equal values keep their
    order; the gradient flows to the elements where they came from."""
    x = _tensor(input, "sort")
    if x.ndim == 0:
        return ValuesIndices(x.clone(), Tensor._make(np.zeros((), dtype=np.int64)))
    d = _dim(dim, x.ndim, "sort")
    idx = _sorted_indices(x._array, d, descending)
    return ValuesIndices(_take_along(x, d, idx), Tensor._make(idx.astype(np.int64)))


@_public
def argsort(input, dim=-1, descending=False, stable=False):
    """The indices that sort ``input`` along ``dim`` (``torch.argsort``)."""
    return sort(input, dim, descending, stable).indices


@_public
def topk(input, k, dim=-1, largest=True, sorted=True):
    """The ``k`` largest (or smallest) entries along ``dim`` and their indices
    (``torch.topk``); ties are taken in index order."""
    x = _tensor(input, "topk")
    d = _dim(dim, x.ndim, "topk") if x.ndim else 0
    n = x.shape[d] if x.ndim else 1
    if not 0 <= k <= n:
        raise RuntimeError(f"topk: selected index k ({k}) out of range for a dim of size {n}")
    if x.ndim == 0:
        return ValuesIndices(x.clone(), Tensor._make(np.zeros((), dtype=np.int64)))
    idx = _sorted_indices(x._array, d, largest)
    idx = np.take(idx, np.arange(k), axis=d)
    return ValuesIndices(_take_along(x, d, idx), Tensor._make(idx.astype(np.int64)))


# ----------------------------------------------------------------------------------------
# Creation and sampling


@_public
def from_numpy(ndarray):
    """A tensor sharing memory with ``ndarray`` (``torch.from_numpy``): writes to either
    show in the other; the dtype is kept (float64 stays float64)."""
    if not isinstance(ndarray, np.ndarray):
        raise TypeError(f"expected np.ndarray (got {type(ndarray).__name__})")
    if ndarray.dtype == object or ndarray.dtype.kind in "USVc":
        raise TypeError(
            f"can't convert np.ndarray of type {ndarray.dtype}. The only supported types are: "
            "float64, float32, float16, int64, int32, int16, int8, uint8, and bool."
        )
    return Tensor._make(ndarray)


@_public
def as_tensor(data, dtype=None, device=None):
    """``data`` as a tensor, sharing memory when it already is a Tensor or ndarray of that
    dtype (``torch.as_tensor``); otherwise a new tensor as ``tg.tensor`` makes it."""
    check_device(device, "as_tensor")
    if isinstance(data, Tensor):
        return data if dtype is None else data.to(dtype)
    if isinstance(data, np.ndarray) and (dtype is None or np.dtype(dtype) == data.dtype):
        return from_numpy(data)
    return Tensor(data, dtype=dtype)


@_public
def is_tensor(obj):
    """True for Tensors (``torch.is_tensor``)."""
    return isinstance(obj, Tensor)


@_public
def is_floating_point(input):
    """True for float16, float32 and float64 tensors (``torch.is_floating_point``)."""
    return bool(np.issubdtype(_tensor(input, "is_floating_point").dtype, np.floating))


@_public
def empty(*size, dtype=None, device=None, requires_grad=False):
    """A new tensor of ``size``; its values are zeros here (``torch.empty`` leaves them
    unspecified)."""
    check_device(device, "empty")
    return Tensor(
        np.zeros(_shape_args(size), dtype=dtype or get_default_dtype()),
        requires_grad=requires_grad,
    )


@_public
def empty_like(input, dtype=None, device=None, requires_grad=False):
    """``empty`` with the shape (and dtype) of ``input``."""
    return empty(
        _tensor(input, "empty_like").shape,
        dtype=dtype or input.dtype,
        device=device,
        requires_grad=requires_grad,
    )


def _float_like(input, dtype, fn):
    dtype = np.dtype(dtype or _tensor(input, fn).dtype)
    if not np.issubdtype(dtype, np.floating):
        raise DtypeError(f"{fn}: expected a floating point dtype, got {dtype}")
    return dtype


@_public
def rand_like(input, dtype=None, device=None, requires_grad=False, generator=None):
    """Uniform [0, 1) samples with the shape of ``input`` (``torch.rand_like``)."""
    check_device(device, "rand_like")
    dtype = _float_like(input, dtype, "rand_like")
    _unrecordable("tg.rand_like() (a random draw)")
    gen = generator or default_generator()
    return Tensor(gen.random(input.shape, dtype=dtype), requires_grad=requires_grad)


@_public
def randn_like(input, dtype=None, device=None, requires_grad=False, generator=None):
    """Standard normal samples with the shape of ``input`` (``torch.randn_like``)."""
    check_device(device, "randn_like")
    dtype = _float_like(input, dtype, "randn_like")
    _unrecordable("tg.randn_like() (a random draw)")
    gen = generator or default_generator()
    return Tensor(gen.standard_normal(input.shape, dtype=dtype), requires_grad=requires_grad)


@_public
def randint_like(input, low=0, high=None, dtype=None, device=None, generator=None):
    """Integers uniform on [low, high) with the shape of ``input`` (``torch.randint_like``)."""
    check_device(device, "randint_like")
    if high is None:
        low, high = 0, low
    _unrecordable("tg.randint_like() (a random draw)")
    gen = generator or default_generator()
    values = gen.integers(low, high, size=_tensor(input, "randint_like").shape)
    return Tensor(values.astype(dtype or input.dtype))


@_public
def randperm(n, *, generator=None, dtype=np.int64, device=None, requires_grad=False):
    """A random permutation of 0..n-1 (``torch.randperm``)."""
    check_device(device, "randperm")
    if n < 0:
        raise RuntimeError(f"randperm: n must be non-negative, got {n}")
    _unrecordable("tg.randperm() (a random draw)")
    gen = generator or default_generator()
    return Tensor(gen.permutation(int(n)).astype(dtype), requires_grad=requires_grad)


@_public
def normal(mean, std=1.0, size=None, *, generator=None, dtype=None, device=None):
    """Samples of N(mean, std^2): elementwise for tensor ``mean``/``std``, or of ``size``
    for numbers (``torch.normal``)."""
    check_device(device, "normal")
    _unrecordable("tg.normal() (a random draw)")
    gen = generator or default_generator()
    m, s = _data(mean), _data(std)
    if size is None:
        if not (isinstance(mean, Tensor) or isinstance(std, Tensor)):
            raise TypeError("normal(): give size= when mean and std are numbers")
        shape = np.broadcast_shapes(np.shape(m), np.shape(s))
        ref = mean if isinstance(mean, Tensor) else std
        dtype = dtype or ref.dtype
    else:
        shape = _shape_args((size,))
        dtype = dtype or get_default_dtype()
    if np.any(np.asarray(s) < 0):
        raise RuntimeError("normal expects std >= 0.0")
    return Tensor((m + s * gen.standard_normal(shape)).astype(dtype))


@_public
def multinomial(input, num_samples, replacement=False, *, generator=None):
    """``num_samples`` indices per row drawn with probabilities proportional to the row
    (``torch.multinomial``); 1D input gives 1D output.  Without replacement the draws are
    successive (a drawn index leaves the pool), done as the top-k of log p + Gumbel noise,
    which has the same distribution."""
    p = np.asarray(_tensor(input, "multinomial")._array, dtype=np.float64)
    if p.ndim not in (1, 2):
        raise RuntimeError(f"prob_dist must be 1 or 2 dim, got {p.ndim}")
    rows = p.reshape(-1, p.shape[-1])
    if not np.all(np.isfinite(rows)) or np.any(rows < 0):
        raise RuntimeError("probability tensor contains either `inf`, `nan` or element < 0")
    totals = rows.sum(axis=1, keepdims=True)
    if np.any(totals <= 0):
        raise RuntimeError("invalid multinomial distribution (sum of probabilities <= 0)")
    if num_samples <= 0:
        raise RuntimeError(f"cannot sample n_sample <= 0 samples, got {num_samples}")
    if not replacement and num_samples > rows.shape[1]:
        raise RuntimeError(
            "cannot sample n_sample > prob_dist.size(-1) samples without replacement"
        )
    if not replacement and num_samples > np.count_nonzero(rows, axis=1).min():
        raise RuntimeError(
            "invalid multinomial distribution (with replacement=False, not enough "
            "non-negative category to sample)"
        )
    _unrecordable("tg.multinomial() (a random draw)")
    gen = generator or default_generator()
    if replacement:
        cdf = np.cumsum(rows / totals, axis=1)
        u = gen.random((rows.shape[0], num_samples))
        out = np.stack([np.searchsorted(c, ui, side="right") for c, ui in zip(cdf, u)])
        out = np.minimum(out, rows.shape[1] - 1)
    else:
        with np.errstate(divide="ignore"):
            keys = np.log(rows) + gen.gumbel(size=rows.shape)
        out = np.argsort(-keys, axis=1, kind="stable")[:, :num_samples]
    out = out.astype(np.int64)
    return Tensor._make(out[0] if p.ndim == 1 else out)


# ----------------------------------------------------------------------------------------
# Methods that only exist on Tensor in PyTorch


def _nelement(self):
    """The number of elements (``Tensor.nelement``, = ``numel``)."""
    return self._array.size


def _view_as(self, other):
    """``self.view(other.shape)``."""
    return self.reshape(other.shape)


def _type_as(self, other):
    """``self`` cast to ``other``'s dtype."""
    return self.to(other.dtype)


def _new(self, size, fill, dtype, requires_grad, device, fn):
    check_device(device, fn)
    return Tensor(
        np.full(_shape_args(size), fill, dtype=np.dtype(dtype or self.dtype)),
        requires_grad=requires_grad,
    )


def _new_zeros(self, *size, dtype=None, device=None, requires_grad=False):
    """Zeros of ``size`` with this tensor's dtype unless given (``Tensor.new_zeros``)."""
    return _new(self, size, 0, dtype, requires_grad, device, "new_zeros")


def _new_ones(self, *size, dtype=None, device=None, requires_grad=False):
    """Ones of ``size`` with this tensor's dtype unless given (``Tensor.new_ones``)."""
    return _new(self, size, 1, dtype, requires_grad, device, "new_ones")


def _new_empty(self, *size, dtype=None, device=None, requires_grad=False):
    """A new tensor of ``size`` (zeros here) with this tensor's dtype (``Tensor.new_empty``)."""
    return _new(self, size, 0, dtype, requires_grad, device, "new_empty")


def _new_full(self, size, fill_value, dtype=None, device=None, requires_grad=False):
    """``fill_value`` everywhere, this tensor's dtype unless given (``Tensor.new_full``)."""
    return _new(self, (size,), fill_value, dtype, requires_grad, device, "new_full")


def _new_tensor(self, data, dtype=None, device=None, requires_grad=False):
    """A copy of ``data`` with this tensor's dtype unless given (``Tensor.new_tensor``)."""
    check_device(device, "new_tensor")
    return Tensor(data, dtype=dtype or self.dtype, requires_grad=requires_grad)


def _cast(dtype, name):
    def method(self):
        return self.to(dtype)

    method.__name__ = method.__qualname__ = name
    method.__doc__ = f"``self.to({np.dtype(dtype).name})`` (``Tensor.{name}``)."
    return method


def _repeat(self, *sizes):
    """Tile the tensor ``sizes[i]`` times along each dim (``Tensor.repeat``); extra leading
    sizes add dims.  Built as reshape, expand, reshape."""
    sizes = _shape_args(sizes)
    if len(sizes) < self.ndim:
        raise RuntimeError(
            "Number of dimensions of repeat dims can not be smaller than number of dimensions "
            "of tensor"
        )
    shape = (1,) * (len(sizes) - self.ndim) + self.shape
    spread = self.reshape(tuple(v for n in shape for v in (1, n)))
    tiled = spread.expand(tuple(v for r, n in zip(sizes, shape) for v in (r, n)))
    return tiled.reshape(tuple(r * n for r, n in zip(sizes, shape)))


@_public
def tile(input, dims):
    """``input.repeat(dims)``, with fewer ``dims`` than dims padded by ones (``torch.tile``)."""
    dims = tuple(dims)
    return _repeat(_tensor(input, "tile"), (1,) * (input.ndim - len(dims)) + dims)


def _contiguous(self, memory_format=None):
    """This tensor (``Tensor.contiguous``: layouts are numpy's business here)."""
    return self


def _element_size(self):
    """Bytes per element (``Tensor.element_size``)."""
    return self._array.itemsize


_METHOD_ONLY = {
    "nelement": _nelement,
    "view_as": _view_as,
    "reshape_as": _view_as,
    "type_as": _type_as,
    "new_zeros": _new_zeros,
    "new_ones": _new_ones,
    "new_empty": _new_empty,
    "new_full": _new_full,
    "new_tensor": _new_tensor,
    "half": _cast(np.float16, "half"),
    "int": _cast(np.int32, "int"),
    "short": _cast(np.int16, "short"),
    "char": _cast(np.int8, "char"),
    "byte": _cast(np.uint8, "byte"),
    "bool": _cast(np.bool_, "bool"),
    "repeat": _repeat,
    "contiguous": _contiguous,
    "element_size": _element_size,
    "ndimension": Tensor.dim,
}

# Functions that PyTorch also has as Tensor methods (its constructors and those that take
# no tensor first, such as einsum or from_numpy, are function-only).
_FUNCTION_ONLY = {
    "einsum",
    "from_numpy",
    "as_tensor",
    "is_tensor",
    "empty",
    "rand_like",
    "randn_like",
    "randint_like",
    "randperm",
    "normal",
    "tile",
}


# PyTorch's second names for functions above (functions and methods alike).
_ALIASES = {
    "negative": neg,
    "subtract": sub,
    "multiply": mul,
    "divide": div,
    "true_divide": div,
    "swapaxes": transpose,
    "arctan": atan,
    "arcsin": asin,
    "arccos": acos,
    "fix": trunc,
    "greater": gt,
    "greater_equal": ge,
    "less": lt,
    "less_equal": le,
    "not_equal": ne,
    "inner": dot,
    "ger": outer,
}
globals().update(_ALIASES)
__all__ += list(_ALIASES)


def _attach_methods():
    """Give Tensor each function above as a method, where tensor.py defines none."""
    module = globals()
    methods = {n: module[n] for n in __all__ if n not in _FUNCTION_ONLY}
    methods.update(_METHOD_ONLY)
    for name, fn in methods.items():
        if name not in Tensor.__dict__:
            setattr(Tensor, name, fn)


_attach_methods()
