"""Every core op against central finite differences (tg.gradcheck, float64), against numpy
for its forward values, and against second derivatives (tg.gradgradcheck).

Hypothesis draws shapes (size-1 dims, broadcasting pairs), dims and keepdim, and values
from per-op ranges that avoid kinks (tests/strategies.py).  Kink and tie semantics, dtype
rules for Python scalars and comparisons are asserted explicitly.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import (
    arrays,
    broadcast_pairs,
    dims,
    distinct_arrays,
    grid_arrays,
    leaf,
    shapes,
)

import tinygrad_init as tg
from tinygrad_init.gradcheck import gradcheck, gradgradcheck

SETTINGS = settings(max_examples=25, deadline=None)
FEW = settings(max_examples=10, deadline=None)


def check(fn, *arrays_, reference=None, gradgrad=False):
    """Forward against ``reference`` (numpy), then gradcheck (and gradgradcheck)."""
    inputs = tuple(leaf(a) for a in arrays_)
    if reference is not None:
        out = fn(*inputs)
        expected = reference(*arrays_)
        assert out.shape == np.shape(expected)
        assert out.dtype == np.float64
        np.testing.assert_allclose(out.detach().numpy(), expected, rtol=1e-12, atol=1e-12)
    assert gradcheck(fn, inputs)
    if gradgrad:
        assert gradgradcheck(fn, inputs)


# ----------------------------------------------------------------------------------------
# Elementwise unary ops

UNARY = [
    # name, tinygrad fn, numpy reference, domain
    ("neg", lambda x: -x, np.negative, "any"),
    ("exp", lambda x: x.exp(), np.exp, "exp"),
    ("log", lambda x: x.log(), np.log, "positive"),
    ("sqrt", lambda x: x.sqrt(), np.sqrt, "positive"),
    ("abs", lambda x: x.abs(), np.abs, "away_from_zero"),
    ("sin", lambda x: x.sin(), np.sin, "any"),
    ("cos", lambda x: x.cos(), np.cos, "any"),
    ("tanh", lambda x: x.tanh(), np.tanh, "any"),
    ("sigmoid", lambda x: x.sigmoid(), lambda a: 1 / (1 + np.exp(-a)), "any"),
    ("relu", lambda x: x.relu(), lambda a: np.maximum(a, 0), "away_from_zero"),
    ("clone", lambda x: x.clone(), np.copy, "any"),
    ("square", lambda x: x.square(), np.square, "any"),
    ("pow_scalar", lambda x: x**3, lambda a: a**3, "any"),
    ("pow_fraction", lambda x: x**1.5, lambda a: a**1.5, "positive"),
    ("rpow", lambda x: 2.0**x, lambda a: 2.0**a, "any"),
    ("rsub", lambda x: 1.0 - x, lambda a: 1.0 - a, "any"),
    ("rdiv", lambda x: 1.0 / x, lambda a: 1.0 / a, "nonzero"),
    ("scalar_mul_add", lambda x: x * 3.0 + 0.5, lambda a: a * 3.0 + 0.5, "any"),
    ("scalar_div", lambda x: x / 4.0, lambda a: a / 4.0, "any"),
]


@pytest.mark.parametrize("name,fn,reference,domain", UNARY, ids=[u[0] for u in UNARY])
@SETTINGS
@given(data=st.data())
def test_unary(name, fn, reference, domain, data):
    a = data.draw(shapes().flatmap(lambda s: arrays(s, domain)))
    check(fn, a, reference=reference)


@SETTINGS
@given(
    shapes().flatmap(lambda s: arrays(s, "any")),
    st.sampled_from([(-0.5, 0.5), (None, 0.3), (-0.3, None)]),
)
def test_clamp(a, bounds):
    lo, hi = bounds
    # keep values away from the bounds, where clamp has a kink
    for b in (lo, hi):
        if b is not None:
            a = np.where(np.abs(a - b) < 0.05, a + 0.1, a)
    check(lambda x: x.clamp(lo, hi), a, reference=lambda x: np.clip(x, lo, hi))


# ----------------------------------------------------------------------------------------
# Binary ops with broadcasting

BINARY = [
    ("add", lambda x, y: x + y, np.add, "any", "any"),
    ("sub", lambda x, y: x - y, np.subtract, "any", "any"),
    ("mul", lambda x, y: x * y, np.multiply, "any", "any"),
    ("div", lambda x, y: x / y, np.divide, "any", "nonzero"),
    ("pow", lambda x, y: x**y, np.power, "positive", "any"),
    ("method_forms", lambda x, y: x.add(y).mul(y).sub(x).div(y), None, "any", "nonzero"),
]


@pytest.mark.parametrize("name,fn,reference,da,db", BINARY, ids=[b[0] for b in BINARY])
@SETTINGS
@given(data=st.data())
def test_binary_broadcasting(name, fn, reference, da, db, data):
    sa, sb = data.draw(broadcast_pairs())
    a, b = data.draw(arrays(sa, da)), data.draw(arrays(sb, db))
    check(fn, a, b, reference=reference)


@pytest.mark.parametrize(
    "op,reference", [(tg.maximum, np.maximum), (tg.minimum, np.minimum)], ids=["maximum", "minimum"]
)
@SETTINGS
@given(data=st.data(), swap=st.booleans())
def test_maximum_minimum_without_ties(op, reference, data, swap):
    sa, sb = data.draw(broadcast_pairs())
    a, b = data.draw(grid_arrays(sa, odd=swap)), data.draw(grid_arrays(sb, odd=not swap))
    check(op, a, b, reference=reference)


@SETTINGS
@given(data=st.data())
def test_where_broadcasting(data):
    sa, sb = data.draw(broadcast_pairs())
    shape = np.broadcast_shapes(sa, sb)
    cond = data.draw(
        st.lists(
            st.booleans(),
            min_size=int(np.prod(shape, dtype=int)),
            max_size=int(np.prod(shape, dtype=int)),
        )
    )
    cond = np.array(cond, dtype=bool).reshape(shape)
    a, b = data.draw(arrays(sa)), data.draw(arrays(sb))
    c = tg.tensor(cond)
    check(lambda x, y: tg.where(c, x, y), a, b, reference=lambda x, y: np.where(cond, x, y))


# ----------------------------------------------------------------------------------------
# Reductions


@st.composite
def reduction_case(draw, min_dims=1, distinct=False):
    shape = draw(shapes(min_dims=min_dims))
    a = draw(distinct_arrays(shape) if distinct else arrays(shape))
    dim = draw(st.none() | dims(len(shape)) | st.just(tuple(range(len(shape)))))
    return a, dim, draw(st.booleans())


def _axis(dim, ndim):
    if dim is None:
        return None
    return tuple(d % ndim for d in dim) if isinstance(dim, tuple) else dim % ndim


@SETTINGS
@given(reduction_case(min_dims=0))
def test_sum(case):
    a, dim, keepdim = case
    if a.ndim == 0:
        dim = None
    check(
        lambda x: x.sum(dim, keepdim),
        a,
        reference=lambda x: np.sum(x, axis=_axis(dim, x.ndim), keepdims=keepdim),
    )


@SETTINGS
@given(reduction_case())
def test_mean(case):
    a, dim, keepdim = case
    check(
        lambda x: x.mean(dim, keepdim),
        a,
        reference=lambda x: np.mean(x, axis=_axis(dim, x.ndim), keepdims=keepdim),
    )


def _count(a, dim):
    axis = _axis(dim, a.ndim)
    axes = range(a.ndim) if axis is None else (axis if isinstance(axis, tuple) else (axis,))
    return int(np.prod([a.shape[d] for d in axes]))


@pytest.mark.parametrize("unbiased", [True, False])
@SETTINGS
@given(reduction_case(distinct=True))
def test_var_std(unbiased, case):
    a, dim, keepdim = case
    if _count(a, dim) < 2:
        dim = None
        if a.size < 2:
            a = np.array([0.3, -0.4, 1.1])
    ddof = int(unbiased)
    axis = _axis(dim, a.ndim)
    check(
        lambda x: x.var(dim, unbiased, keepdim),
        a,
        reference=lambda x: np.var(x, axis=axis, ddof=ddof, keepdims=keepdim),
    )
    check(
        lambda x: x.std(dim, unbiased, keepdim),
        a,
        reference=lambda x: np.std(x, axis=axis, ddof=ddof, keepdims=keepdim),
    )


@SETTINGS
@given(reduction_case())
def test_logsumexp(case):
    a, dim, keepdim = case

    def reference(x):
        axis = _axis(dim, x.ndim)
        return np.log(np.sum(np.exp(x), axis=axis, keepdims=keepdim))

    check(lambda x: x.logsumexp(dim, keepdim), a, reference=reference)


@pytest.mark.parametrize("which", ["max", "min"])
@SETTINGS
@given(shapes(min_dims=0).flatmap(distinct_arrays))
def test_full_max_min(which, a):
    check(lambda x: getattr(x, which)(), a, reference=getattr(np, which))


@pytest.mark.parametrize("which", ["max", "min"])
@SETTINGS
@given(data=st.data(), keepdim=st.booleans())
def test_max_min_along_dim(which, data, keepdim):
    a = data.draw(shapes(min_dims=1).flatmap(distinct_arrays))
    dim = data.draw(dims(a.ndim))
    result = getattr(leaf(a), which)(dim, keepdim)
    pick = np.argmax if which == "max" else np.argmin
    np.testing.assert_array_equal(
        result.indices.detach().numpy(), pick(a, axis=dim, keepdims=keepdim)
    )
    assert result.indices.requires_grad is False
    check(
        lambda x: getattr(x, which)(dim, keepdim).values,
        a,
        reference=lambda x: getattr(np, which)(x, axis=dim, keepdims=keepdim),
    )


@pytest.mark.parametrize("which", ["softmax", "log_softmax"])
@SETTINGS
@given(data=st.data())
def test_softmax_log_softmax(which, data):
    a = data.draw(shapes(min_dims=1).flatmap(arrays))
    dim = data.draw(dims(a.ndim))

    def reference(x):
        e = np.exp(x - x.max(axis=dim, keepdims=True))
        s = e / e.sum(axis=dim, keepdims=True)
        return s if which == "softmax" else np.log(s)

    check(lambda x: getattr(x, which)(dim), a, reference=reference)


# ----------------------------------------------------------------------------------------
# matmul

MATMUL_SHAPES = {
    "1d@1d": lambda n, k, m, b: ((k,), (k,)),
    "1d@2d": lambda n, k, m, b: ((k,), (k, m)),
    "2d@1d": lambda n, k, m, b: ((n, k), (k,)),
    "2d@2d": lambda n, k, m, b: ((n, k), (k, m)),
    "batched": lambda n, k, m, b: ((b, n, k), (b, k, m)),
    "broadcast_batch": lambda n, k, m, b: ((b, 1, n, k), (2, k, m)),
    "batched@1d": lambda n, k, m, b: ((b, n, k), (k,)),
    "1d@batched": lambda n, k, m, b: ((k,), (b, k, m)),
    "2d@batched": lambda n, k, m, b: ((n, k), (b, k, m)),
}


@pytest.mark.parametrize("case", list(MATMUL_SHAPES))
@SETTINGS
@given(data=st.data(), sizes=st.tuples(*[st.integers(1, 3)] * 4))
def test_matmul(case, data, sizes):
    sa, sb = MATMUL_SHAPES[case](*sizes)
    a, b = data.draw(arrays(sa)), data.draw(arrays(sb))
    check(lambda x, y: x @ y, a, b, reference=np.matmul)
    check(tg.matmul, a, b)


# ----------------------------------------------------------------------------------------
# Shape ops


@SETTINGS
@given(data=st.data())
def test_reshape_view_flatten(data):
    a = data.draw(shapes(min_dims=0).flatmap(arrays))
    target = data.draw(st.sampled_from([(-1,), a.shape[::-1], (1,) + a.shape, (a.size, 1)]))
    check(lambda x: x.reshape(target) * 1.0, a, reference=lambda x: x.reshape(target))
    check(lambda x: x.view(*target) * 1.0, a, reference=lambda x: x.reshape(target))
    if a.ndim:
        start = data.draw(st.integers(0, a.ndim - 1))
        end = data.draw(st.integers(start, a.ndim - 1))
        shape = a.shape[:start] + (int(np.prod(a.shape[start : end + 1])),) + a.shape[end + 1 :]
        check(lambda x: x.flatten(start, end) * 1.0, a, reference=lambda x: x.reshape(shape))


@SETTINGS
@given(data=st.data())
def test_transpose_permute_T(data):
    a = data.draw(shapes(min_dims=1).flatmap(arrays))
    d0, d1 = data.draw(dims(a.ndim)), data.draw(dims(a.ndim))
    perm = data.draw(st.permutations(range(a.ndim)))
    check(lambda x: x.transpose(d0, d1), a, reference=lambda x: np.swapaxes(x, d0, d1))
    check(lambda x: x.permute(*perm), a, reference=lambda x: np.transpose(x, perm))
    check(lambda x: x.T, a, reference=lambda x: x.T)


@SETTINGS
@given(data=st.data())
def test_expand(data):
    shape = data.draw(shapes(min_dims=1))
    a = data.draw(arrays(shape))
    target = tuple(data.draw(st.integers(1, 3)) if n == 1 else n for n in shape)
    lead = data.draw(st.sampled_from([(), (2,)]))
    target = lead + target
    check(lambda x: x.expand(*target), a, reference=lambda x: np.broadcast_to(x, target))
    keep = (-1,) * (a.ndim + len(lead)) if not lead else lead + (-1,) * a.ndim
    check(lambda x: x.expand(keep), a, reference=lambda x: np.broadcast_to(x, lead + x.shape))


@SETTINGS
@given(data=st.data())
def test_squeeze_unsqueeze(data):
    a = data.draw(shapes(min_dims=1).flatmap(arrays))
    d = data.draw(dims(a.ndim))
    u = data.draw(st.integers(-a.ndim - 1, a.ndim))
    check(lambda x: x.squeeze() * 1.0, a, reference=np.squeeze)
    squeezed = np.squeeze(a, d) if a.shape[d] == 1 else a
    check(lambda x: x.squeeze(d) * 1.0, a, reference=lambda x: x.reshape(squeezed.shape))
    check(lambda x: x.unsqueeze(u), a, reference=lambda x: np.expand_dims(x, u))


# ----------------------------------------------------------------------------------------
# Indexing


@st.composite
def slices(draw, n):
    start = draw(st.none() | st.integers(-n, n - 1))
    stop = draw(st.none() | st.integers(-n, n))
    step = draw(st.none() | st.integers(1, 2))
    return slice(start, stop, step)


@SETTINGS
@given(data=st.data())
def test_index_slices(data):
    a = data.draw(shapes(min_dims=1).flatmap(arrays))
    index = tuple(data.draw(slices(n)) for n in a.shape)
    if a[index].size == 0:
        index = (slice(None),) * a.ndim
    check(lambda x: x[index], a, reference=lambda x: x[index])
    first = data.draw(st.integers(-a.shape[0], a.shape[0] - 1))
    check(lambda x: x[first], a, reference=lambda x: x[first])
    check(lambda x: x[..., None], a, reference=lambda x: x[..., None])


@SETTINGS
@given(data=st.data())
def test_index_integer_arrays_with_repeats(data):
    a = data.draw(shapes(min_dims=1).flatmap(arrays))
    n = a.shape[0]
    idx = np.array(data.draw(st.lists(st.integers(-n, n - 1), min_size=1, max_size=5)))
    check(lambda x: x[idx], a, reference=lambda x: x[idx])
    check(lambda x: x[tg.tensor(idx)], a, reference=lambda x: x[idx])
    if a.ndim >= 2:
        jdx = np.array(
            data.draw(
                st.lists(st.integers(0, a.shape[1] - 1), min_size=len(idx), max_size=len(idx))
            )
        )
        check(lambda x: x[idx, jdx], a, reference=lambda x: x[idx, jdx])
        check(lambda x: x[idx, 1:], a, reference=lambda x: x[idx, 1:])


@SETTINGS
@given(data=st.data())
def test_index_boolean_mask(data):
    a = data.draw(shapes(min_dims=1).flatmap(arrays))
    flat = data.draw(st.lists(st.booleans(), min_size=a.size, max_size=a.size))
    mask = np.array(flat, dtype=bool).reshape(a.shape)
    mask.reshape(-1)[0] = True
    check(lambda x: x[mask], a, reference=lambda x: x[mask])
    check(lambda x: x[tg.tensor(mask)], a, reference=lambda x: x[mask])
    rows = mask.reshape(a.shape[0], -1)[:, 0]
    check(lambda x: x[rows], a, reference=lambda x: x[rows])


def test_repeated_integer_indices_accumulate():
    x = leaf([1.0, 2.0, 3.0])
    x[np.array([0, 0, 2, 0])].sum().backward()
    np.testing.assert_array_equal(x.grad.detach().numpy(), [3.0, 0.0, 1.0])


# ----------------------------------------------------------------------------------------
# cat, stack


@SETTINGS
@given(data=st.data(), count=st.integers(1, 3))
def test_cat(data, count):
    shape = data.draw(shapes(min_dims=1))
    axis = data.draw(dims(len(shape)))
    parts = []
    for _ in range(count):
        s = list(shape)
        s[axis] = data.draw(st.integers(1, 3))
        parts.append(data.draw(arrays(tuple(s))))
    check(
        lambda *xs: tg.cat(list(xs), axis), *parts, reference=lambda *xs: np.concatenate(xs, axis)
    )


@SETTINGS
@given(data=st.data(), count=st.integers(1, 3))
def test_stack(data, count):
    shape = data.draw(shapes(min_dims=0))
    axis = data.draw(st.integers(-len(shape) - 1, len(shape)))
    parts = [data.draw(arrays(shape)) for _ in range(count)]
    check(lambda *xs: tg.stack(list(xs), axis), *parts, reference=lambda *xs: np.stack(xs, axis))


# ----------------------------------------------------------------------------------------
# dtype conversion


def test_to_dtype_gradient_and_values():
    x = tg.tensor(np.array([0.5, -1.25, 2.0]), requires_grad=True)
    y = x.to(np.float32)
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y.detach().numpy(), x.detach().numpy().astype(np.float32))
    # float32 in the middle: a larger step keeps finite differences meaningful
    assert gradcheck(lambda x: x.to(np.float32).to(np.float64) * 3.0, x, eps=1e-3, atol=1e-4)
    g = tg.tensor(np.array([1.0, 2.0, 3.0], dtype=np.float32))
    y.backward(g)
    assert x.grad.dtype == np.float64
    np.testing.assert_array_equal(x.grad.detach().numpy(), [1.0, 2.0, 3.0])
    assert x.double() is x


# ----------------------------------------------------------------------------------------
# Second derivatives

GRADGRAD = [
    ("tanh", lambda x: x.tanh(), "any"),
    ("sigmoid", lambda x: x.sigmoid(), "any"),
    ("exp", lambda x: x.exp(), "exp"),
    ("log", lambda x: x.log(), "positive"),
    ("sqrt", lambda x: x.sqrt(), "positive"),
    ("sin", lambda x: x.sin(), "any"),
    ("cos", lambda x: x.cos(), "any"),
    ("pow_scalar", lambda x: x**3, "any"),
    ("rpow", lambda x: 1.5**x, "any"),
    ("rdiv", lambda x: 1.0 / x, "nonzero"),
    ("softmax", lambda x: x.softmax(-1), "any"),
    ("log_softmax", lambda x: x.log_softmax(0), "any"),
    ("logsumexp", lambda x: x.logsumexp(-1), "any"),
    ("var", lambda x: x.var(), "any"),
    ("relu_times_x", lambda x: x.relu() * x, "away_from_zero"),
    ("abs_times_x", lambda x: x.abs() * x, "away_from_zero"),
    ("mean_square", lambda x: (x * x).mean(0), "any"),
    ("index_square", lambda x: x[np.array([0, 0, 1])] ** 2, "any"),
    ("transpose_mul", lambda x: x.T * x.T, "any"),
]


@pytest.mark.parametrize("name,fn,domain", GRADGRAD, ids=[g[0] for g in GRADGRAD])
@FEW
@given(data=st.data())
def test_second_derivatives_unary(name, fn, domain, data):
    shape = data.draw(shapes(min_dims=2, max_dims=2, min_side=2))
    a = data.draw(arrays(shape, domain))
    assert gradgradcheck(fn, (leaf(a),))


GRADGRAD_BINARY = [
    ("pow", lambda x, y: x**y, "positive", "away_from_zero"),  # exponent 0: special point
    ("mul", lambda x, y: x * y, "any", "any"),
    ("div", lambda x, y: x / y, "any", "nonzero"),
    ("maximum", lambda x, y: tg.maximum(x, y) * x, "grid_even", "grid_odd"),
]


@pytest.mark.parametrize("name,fn,da,db", GRADGRAD_BINARY, ids=[g[0] for g in GRADGRAD_BINARY])
@FEW
@given(data=st.data())
def test_second_derivatives_binary(name, fn, da, db, data):
    sa, sb = data.draw(broadcast_pairs(max_dims=2))

    def draw(shape, domain):
        if domain.startswith("grid"):
            return data.draw(grid_arrays(shape, odd=domain == "grid_odd"))
        return data.draw(arrays(shape, domain))

    assert gradgradcheck(fn, (leaf(draw(sa, da)), leaf(draw(sb, db))))


@pytest.mark.parametrize("case", ["2d@2d", "1d@2d", "batched", "broadcast_batch"])
@FEW
@given(data=st.data(), sizes=st.tuples(*[st.integers(1, 3)] * 4))
def test_second_derivatives_matmul(case, data, sizes):
    sa, sb = MATMUL_SHAPES[case](*sizes)
    a, b = data.draw(arrays(sa)), data.draw(arrays(sb))
    assert gradgradcheck(lambda x, y: (x @ y).tanh(), (leaf(a), leaf(b)))


def test_second_derivative_of_max_along_dim_and_where():
    a = leaf([[0.3, -1.2, 2.0], [1.5, 0.1, -0.7]])
    assert gradgradcheck(lambda x: x.max(1).values ** 2, a)
    assert gradgradcheck(lambda x: x.max() * x, a)
    cond = tg.tensor([[True, False, True], [False, False, True]])
    assert gradgradcheck(lambda x: tg.where(cond, x * x, x.exp()), a)


# ----------------------------------------------------------------------------------------
# Kinks and ties: the decisions written down in ops.py


def grad_of(fn, values):
    x = leaf(values)
    fn(x).backward()
    return x.grad.detach().numpy()


def test_full_max_min_ties_split_evenly():
    np.testing.assert_array_equal(
        grad_of(lambda x: x.max(), [1.0, 3.0, 3.0, 2.0]), [0.0, 0.5, 0.5, 0.0]
    )
    np.testing.assert_array_equal(
        grad_of(lambda x: x.min(), [[1.0, 4.0], [1.0, 1.0]]), np.array([[1.0, 0.0], [1.0, 1.0]]) / 3
    )


def test_max_min_along_dim_ties_go_to_the_selected_index():
    x = [[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]]
    np.testing.assert_array_equal(
        grad_of(lambda x: x.max(1).values.sum(), x), [[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]
    )
    np.testing.assert_array_equal(
        grad_of(lambda x: x.min(0).values.sum(), [[1.0, 0.0], [1.0, 0.0]]), [[1.0, 1.0], [0.0, 0.0]]
    )
    result = leaf(x).max(1)
    np.testing.assert_array_equal(result.indices.detach().numpy(), [1, 0])


def test_maximum_minimum_ties_share_half_each():
    for op in (tg.maximum, tg.minimum):
        a, b = leaf([1.0, 2.0, 5.0]), leaf([1.0, 3.0, 4.0])
        op(a, b).sum().backward()
        if op is tg.maximum:
            np.testing.assert_array_equal(a.grad.detach().numpy(), [0.5, 0.0, 1.0])
            np.testing.assert_array_equal(b.grad.detach().numpy(), [0.5, 1.0, 0.0])
        else:
            np.testing.assert_array_equal(a.grad.detach().numpy(), [0.5, 1.0, 0.0])
            np.testing.assert_array_equal(b.grad.detach().numpy(), [0.5, 0.0, 1.0])


def test_gradients_at_kinks():
    np.testing.assert_array_equal(
        grad_of(lambda x: x.relu().sum(), [-1.0, 0.0, 2.0]), [0.0, 0.0, 1.0]
    )
    np.testing.assert_array_equal(
        grad_of(lambda x: x.abs().sum(), [-1.0, 0.0, 2.0]), [-1.0, 0.0, 1.0]
    )
    # clamp passes the gradient on the closed interval [min, max]
    np.testing.assert_array_equal(
        grad_of(lambda x: x.clamp(-1.0, 1.0).sum(), [-2.0, -1.0, 0.0, 1.0, 2.0]),
        [0.0, 1.0, 1.0, 1.0, 0.0],
    )


@pytest.mark.filterwarnings("ignore:divide by zero encountered")  # sqrt's rule at 0
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_relu_gradient_is_a_select_bit_for_bit(dtype):
    """relu's numpy rule (g's bits times the mask) gives np.where's bits: g passes where the
    input is > 0 or NaN (as PyTorch), +0 elsewhere, even for an infinite or NaN g."""
    from tinygrad_init import ops

    special = [np.inf, -np.inf, np.nan, -0.0, 0.0, 1.5, -2.5, 7.0]
    a = np.array([-1.0, 0.0, np.nan, 2.0, -0.0, 3.0, -4.0, np.nan] * 3, dtype=dtype)
    g = np.array(special * 3, dtype=dtype)
    got = ops._relu_grad(ops.NUMPY, g, np.maximum(a, 0), a)
    want = np.where(a <= 0, 0, g)
    assert got.dtype == dtype and got.tobytes() == want.tobytes()
    t = g[::2]  # a strided gradient
    assert (
        ops._relu_grad(ops.NUMPY, t, np.maximum(a[::2], 0), a[::2]).tobytes()
        == np.where(a[::2] <= 0, 0, t).tobytes()
    )
    # relu(x).sqrt() at 0: an infinite gradient arrives where relu's input is 0 -> 0
    np.testing.assert_array_equal(grad_of(lambda x: x.relu().sqrt().sum(), [0.0, 4.0]), [0.0, 0.25])


# ----------------------------------------------------------------------------------------
# dtypes and comparisons


@pytest.mark.parametrize(
    "fn",
    [
        lambda x: x + 2.0,
        lambda x: 2.0 + x,
        lambda x: x - 1.5,
        lambda x: 1.5 - x,
        lambda x: x * 3.0,
        lambda x: 3.0 * x,
        lambda x: x / 2.0,
        lambda x: 2.0 / x,
        lambda x: x**2.0,
        lambda x: x**2,
        lambda x: 2.0**x,
        lambda x: x.clamp(0.5, 1.5),
        lambda x: tg.maximum(x, x * 0.5),
    ],
    ids=[
        "add",
        "radd",
        "sub",
        "rsub",
        "mul",
        "rmul",
        "div",
        "rdiv",
        "pow",
        "pow_int",
        "rpow",
        "clamp",
        "maximum",
    ],
)
def test_python_scalars_keep_float32(fn):
    x = tg.tensor([0.5, 1.0, 2.0], requires_grad=True)
    assert x.dtype == np.float32
    y = fn(x)
    assert y.dtype == np.float32
    y.sum().backward()
    assert x.grad.dtype == np.float32


@pytest.mark.parametrize("op", ["__lt__", "__le__", "__gt__", "__ge__", "__eq__", "__ne__"])
def test_comparisons_have_no_gradient(op):
    x = tg.tensor(np.array([0.5, 1.0, 2.0]), requires_grad=True)
    for other in (1.0, tg.tensor(np.array([1.0, 1.0, 3.0]), requires_grad=True)):
        result = getattr(x, op)(other)
        assert result.dtype == np.bool_
        assert result.requires_grad is False and result.grad_fn is None
        expected = getattr(x.detach().numpy(), op)(
            other.detach().numpy() if isinstance(other, tg.Tensor) else other
        )
        np.testing.assert_array_equal(result.detach().numpy(), expected)
