"""func.jacrev's batched backward: equal to the loop of single backwards (to 1e-12, float64)
over every primitive that claims ``batched``, and to torch.func.jacrev."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinygrad_init as tg
from tinygrad_init import func
from tinygrad_init.autograd import functional as AF

UNARY = {
    "exp": lambda a: a.exp(),
    "log": lambda a: a.log(),
    "sin": lambda a: a.sin(),
    "cos": lambda a: a.cos(),
    "tanh": lambda a: a.tanh(),
    "sigmoid": lambda a: a.sigmoid(),
    "neg": lambda a: -a,
    "clone": lambda a: a.clone(),
}
BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "matmul": lambda a, b: a @ b,
}
SHAPE = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=3)
MATMUL_SHAPES = st.sampled_from(
    [((3,), (3,)), ((2, 3), (3,)), ((3,), (3, 2)), ((2, 3), (3, 4)), ((2, 2, 3), (3, 2)),
     ((3,), (2, 3, 2)), ((1, 2, 3), (2, 3, 1))]
)  # fmt: skip


def _array(seed, shape):
    """float64 values in [0.5, 1.5] (log and div stay away from 0)."""
    return np.random.default_rng(seed).uniform(0.5, 1.5, shape)


class _Counting:
    """Within it, ``sizes`` lists the batch of each batched backward (func's run_backward;
    the loop goes through autograd.grad instead)."""

    def __enter__(self):
        self.sizes, self.real = [], func.run_backward

        def counted(*args, **kwargs):
            self.sizes.append(kwargs["batch"])
            return self.real(*args, **kwargs)

        func.run_backward = counted
        return self

    def __exit__(self, *exc):
        func.run_backward = self.real


def _loop(f, xs):
    return AF.jacobian(f, xs, vectorize=False)


def _assert_equal(batched, looped):
    batched = batched if isinstance(batched, tuple) else (batched,)
    looped = looped if isinstance(looped, tuple) else (looped,)
    assert len(batched) == len(looped)
    for b, lp in zip(batched, looped):
        assert b.shape == lp.shape
        np.testing.assert_allclose(b.numpy(), lp.numpy(), rtol=0, atol=1e-12)


@settings(max_examples=10, deadline=None)
@given(name=st.sampled_from(sorted(UNARY)), shape=SHAPE, seed=st.integers(0, 2**16))
def test_unary_batched_equals_loop(name, shape, seed):
    x = tg.tensor(_array(seed, shape))
    with _Counting() as counting:
        batched = func.jacrev(UNARY[name])(x)
    assert counting.sizes == [x.numel()]
    _assert_equal(batched, _loop(UNARY[name], x))


@settings(max_examples=15, deadline=None)
@given(
    name=st.sampled_from(sorted(BINARY)),
    shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=3, max_side=3),
    matmul_shapes=MATMUL_SHAPES,
    seed=st.integers(0, 2**16),
)
def test_binary_batched_equals_loop_with_broadcasting(name, shapes, matmul_shapes, seed):
    pair = matmul_shapes if name == "matmul" else shapes.input_shapes
    xs = (tg.tensor(_array(seed, pair[0])), tg.tensor(_array(seed + 1, pair[1])))
    with _Counting() as counting:
        batched = func.jacrev(BINARY[name], (0, 1))(*xs)
    assert len(counting.sizes) == 1
    _assert_equal(batched, _loop(BINARY[name], xs))


def test_mlp_batched_chunked_equals_loop_and_torch():
    r = np.random.default_rng(3)
    w1, b, w2 = r.standard_normal((5, 4)), r.standard_normal(5), r.standard_normal((3, 5))
    x = tg.tensor(r.standard_normal(4))

    def f(x):
        return (tg.tensor(w2) @ (tg.tensor(w1) @ x + tg.tensor(b)).tanh()).sigmoid() * 2

    with _Counting() as counting:
        chunked = func.jacrev(f, chunk_size=2)(x)
        whole = func.jacrev(f)(x)
        vectorized = AF.jacobian(f, x, vectorize=True)
    assert counting.sizes == [2, 1, 3, 3]
    looped = _loop(f, x)
    for jac in (chunked, whole, vectorized):
        _assert_equal(jac, looped)
    torch = pytest.importorskip("torch")
    tw1, tb, tw2 = torch.tensor(w1), torch.tensor(b), torch.tensor(w2)
    ft = lambda x: (tw2 @ (tw1 @ x + tb).tanh()).sigmoid() * 2  # noqa: E731
    theirs = torch.func.jacrev(ft)(torch.tensor(x.numpy()))
    np.testing.assert_allclose(whole.numpy(), theirs.numpy(), rtol=0, atol=1e-12)


def test_an_op_without_a_batched_rule_falls_back_to_the_loop():
    x = tg.tensor(_array(5, (2, 3)))

    def f(x):
        return x.sin().sum(1) * x[:, 0].exp()  # sum and getitem: no batched rules

    with _Counting() as counting:
        jac = func.jacrev(f)(x)
    assert counting.sizes == []
    _assert_equal(jac, func.jacfwd(f)(x))
    h = func.hessian(lambda x: (x.tanh() * x).sum())(x)  # jacrev inside jacfwd: recorded
    np.testing.assert_allclose(h.numpy(), h.numpy().transpose(2, 3, 0, 1), atol=1e-12)
