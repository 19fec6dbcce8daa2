"""Semantics of the engine: accumulation, freeing, hooks, grad mode, tg.grad, Function."""

import gc
import threading
import weakref

import numpy as np
import pytest

import tinygrad_init as tg
from tinygrad_init.autograd import Function


def test_leaf_grad_accumulates_across_backward_calls():
    x = tg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    (x * x).sum().backward()
    (x * 3).sum().backward()
    np.testing.assert_allclose(x.grad.detach().numpy(), 2 * x.detach().numpy() + 3)


def test_accumulation_does_not_alias_between_leaves():
    a = tg.tensor([1.0, 2.0], requires_grad=True)
    b = tg.tensor([3.0, 4.0], requires_grad=True)
    (a + b).sum().backward()
    a.grad.numpy()[...] *= 10  # an in-place change to one gradient must not reach the other
    np.testing.assert_array_equal(b.grad.detach().numpy(), [1.0, 1.0])


def test_non_leaf_grad_only_with_retain_grad():
    x = tg.tensor([1.0, -2.0], requires_grad=True)
    h = x * 2
    kept = x * 3
    kept.retain_grad()
    (h.sum() + kept.sum()).backward()
    assert h.grad is None
    np.testing.assert_array_equal(kept.grad.detach().numpy(), [1.0, 1.0])
    assert h.is_leaf is False and x.is_leaf is True


def test_second_backward_through_freed_graph_names_the_op():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    y = (x.exp() * 2).sum()
    y.backward()
    with pytest.raises(
        RuntimeError,
        match=r"backward through the graph a second time.*"
        r"'sum'.*retain_graph=True",
    ):
        y.backward()


def test_retain_graph_allows_second_backward():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.detach().numpy(), 4 * x.detach().numpy())


def test_graph_releases_intermediate_arrays_after_backward():
    x = tg.randn(100, 100, requires_grad=True)
    h = x.tanh()
    probe = weakref.ref(h)
    y = (h * 2).sum()
    del h
    gc.collect()
    assert probe() is not None  # kept alive by the graph until backward
    y.backward()
    gc.collect()
    assert probe() is None
    assert y.grad_fn.inputs is None


def test_long_chain_backpropagates_without_recursion():
    x = tg.tensor(1.5, requires_grad=True)
    y = x
    for _ in range(100_000):
        y = y * 1.0
    y.backward()
    assert x.grad.item() == 1.0


def test_hook_can_replace_gradient_and_be_removed():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    seen = []
    handle = x.register_hook(lambda g: seen.append(g.detach().numpy().copy()) or g * 10)
    (x * 2).sum().backward()
    np.testing.assert_array_equal(seen[0], [2.0, 2.0])
    np.testing.assert_array_equal(x.grad.detach().numpy(), [20.0, 20.0])
    handle.remove()
    x.grad = None
    (x * 2).sum().backward()
    np.testing.assert_array_equal(x.grad.detach().numpy(), [2.0, 2.0])


def test_hook_on_intermediate_changes_upstream_gradient():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    h = x * 3
    h.register_hook(lambda g: g * 0)
    (h * h).sum().backward()
    np.testing.assert_array_equal(x.grad.detach().numpy(), [0.0, 0.0])


def test_hook_needs_requires_grad():
    with pytest.raises(RuntimeError, match="doesn't require gradient"):
        tg.tensor([1.0]).register_hook(lambda g: g)


def test_no_grad_records_nothing():
    x = tg.tensor([1.0], requires_grad=True)
    with tg.no_grad():
        y = x * 2
    assert y.grad_fn is None and not y.requires_grad
    assert tg.is_grad_enabled()


def test_no_grad_as_decorator_and_enable_grad_inside():
    x = tg.tensor([1.0], requires_grad=True)

    @tg.no_grad()
    def f():
        with tg.enable_grad():
            inner = x * 2
        return x * 2, inner

    outer, inner = f()
    assert outer.grad_fn is None
    assert inner.grad_fn is not None


def test_set_grad_enabled_restores_on_exit():
    with tg.set_grad_enabled(False):
        assert not tg.is_grad_enabled()
    assert tg.is_grad_enabled()


def test_grad_mode_is_thread_local():
    x = tg.tensor([1.0], requires_grad=True)
    results = {}
    inside = threading.Event()
    release = threading.Event()

    def worker():
        results["worker_sees"] = tg.is_grad_enabled()
        results["worker_records"] = (x * 2).grad_fn is not None
        inside.set()
        release.wait(5)

    with tg.no_grad():
        thread = threading.Thread(target=worker)
        thread.start()
        inside.wait(5)
        results["main_records"] = (x * 2).grad_fn is not None
        release.set()
        thread.join()
    assert results == {"worker_sees": True, "worker_records": True, "main_records": False}


def test_integer_tensors_cannot_require_grad():
    with pytest.raises(TypeError, match="floating point.*int64"):
        tg.tensor([1, 2], requires_grad=True)
    with pytest.raises(RuntimeError):  # PyTorch raises RuntimeError: both work
        tg.arange(3).requires_grad_()


def test_backward_on_non_scalar_needs_gradient():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match=r"only for scalar outputs.*\(2,\)"):
        (x * 2).backward()
    (x * 2).backward(tg.tensor([1.0, 0.5]))
    np.testing.assert_array_equal(x.grad.detach().numpy(), [2.0, 1.0])


def test_backward_on_tensor_without_grad_fn():
    with pytest.raises(RuntimeError, match="does not require grad"):
        tg.tensor(1.0).backward()


def test_shape_mismatch_names_op_and_shapes():
    a = tg.zeros(2, 3)
    b = tg.zeros(4)
    with pytest.raises(ValueError, match=r"add.*\(2, 3\), \(4,\)"):
        a + b
    with pytest.raises(RuntimeError, match=r"matmul.*\(2, 3\), \(4,\)"):
        a @ b


def test_python_scalars_keep_float32():
    x = tg.tensor([1.0, 2.0])
    assert x.dtype == np.float32
    for y in (x * 2.5, 2.5 * x, x + 1, x / 3.0, x**2.0, 1.0 - x, x.mean(), x.std()):
        assert y.dtype == np.float32


def test_grad_with_grad_outputs_and_no_accumulation():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    y = x * x
    (g,) = tg.grad(y, x, grad_outputs=tg.tensor([1.0, 10.0]))
    np.testing.assert_array_equal(g.detach().numpy(), [2.0, 40.0])
    assert x.grad is None


def test_grad_allow_unused():
    x = tg.tensor([1.0], requires_grad=True)
    unused = tg.tensor([1.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="not to have been used.*allow_unused=True"):
        tg.grad((x * 2).sum(), [x, unused])
    gx, gu = tg.grad((x * 2).sum(), [x, unused], allow_unused=True)
    assert gu is None and gx.item() == 2.0


def test_grad_of_intermediate_tensor():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    h = x * 3
    y = (h * h).sum()
    (gh,) = tg.grad(y, h)
    np.testing.assert_allclose(gh.detach().numpy(), 2 * h.detach().numpy())


@pytest.mark.parametrize(
    "fn, second",
    [
        (lambda x: x.tanh(), lambda x: -2 * np.tanh(x) * (1 - np.tanh(x) ** 2)),
        (lambda x: x.sigmoid(), lambda x: (s := 1 / (1 + np.exp(-x))) * (1 - s) * (1 - 2 * s)),
        (lambda x: x.exp(), np.exp),
        (lambda x: x.log(), lambda x: -1 / x**2),
        (lambda x: x**3, lambda x: 6 * x),
    ],
)
def test_second_derivative_via_grad_of_grad(fn, second):
    x = tg.tensor([0.3, 0.7, 1.4], dtype=np.float64, requires_grad=True)
    (g,) = tg.grad(fn(x).sum(), x, create_graph=True)
    (gg,) = tg.grad(g.sum(), x)
    np.testing.assert_allclose(gg.detach().numpy(), second(x.detach().numpy()), rtol=1e-10)


def test_second_derivative_of_matmul_and_softmax():
    rng = np.random.default_rng(0)
    a = tg.tensor(rng.standard_normal((3, 4)), requires_grad=True)
    b = tg.tensor(rng.standard_normal((4, 2)), requires_grad=True)
    (ga,) = tg.grad(((a @ b) ** 2).sum(), a, create_graph=True)
    (gb,) = tg.grad(ga.sum(), b)
    # ga = 2 (a b) b^T; its sum as a function of b, by central differences
    eps = 1e-6
    numeric = np.zeros_like(b.detach().numpy())
    for idx in np.ndindex(*b.shape):
        for sign in (1, -1):
            bb = b.detach().numpy().copy()
            bb[idx] += sign * eps
            numeric[idx] += sign * (2 * (a.detach().numpy() @ bb) @ bb.T).sum() / (2 * eps)
    np.testing.assert_allclose(gb.detach().numpy(), numeric, rtol=1e-6)

    x = tg.tensor(rng.standard_normal(5), requires_grad=True)
    w = rng.standard_normal(5)
    (g,) = tg.grad((x.softmax(0) * w).sum(), x, create_graph=True)
    (gg,) = tg.grad((g * g).sum(), x)

    def first(v):
        s = np.exp(v - v.max())
        s /= s.sum()
        return s * (w - (s * w).sum())

    numeric = np.array(
        [
            (
                (first(x.detach().numpy() + eps * e) ** 2).sum()
                - (first(x.detach().numpy() - eps * e) ** 2).sum()
            )
            / (2 * eps)
            for e in np.eye(5)
        ]
    )
    np.testing.assert_allclose(gg.detach().numpy(), numeric, rtol=1e-5)


def test_custom_function_with_ctx():
    class Cube(Function):
        @staticmethod
        def forward(ctx, x, scale):
            ctx.save_for_backward(x)
            ctx.scale = scale
            return x**3 * scale

        @staticmethod
        def backward(ctx, grad_out):
            (x,) = ctx.saved_tensors
            return grad_out * 3 * x**2 * ctx.scale, None

    x = tg.tensor([1.0, 2.0], requires_grad=True)
    y = Cube.apply(x, 2.0)
    assert y.grad_fn.name() == "CubeBackward"
    y.sum().backward()
    np.testing.assert_allclose(x.grad.detach().numpy(), 6 * x.detach().numpy() ** 2)


def test_custom_function_needs_input_grad_and_wrong_gradient_count():
    seen = {}

    class Bad(Function):
        @staticmethod
        def forward(ctx, a, b):
            seen["needs"] = ctx.needs_input_grad
            return a * b

        @staticmethod
        def backward(ctx, g):
            return g

    a = tg.tensor([1.0], requires_grad=True)
    y = Bad.apply(a, tg.tensor([2.0]))
    assert seen["needs"] == (True, False)
    with pytest.raises(RuntimeError, match="incorrect number of gradients.*expected 2, got 1"):
        y.sum().backward()


def test_custom_function_supports_double_backward():
    class Square(Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return 2 * x * g

    x = tg.tensor([3.0], dtype=np.float64, requires_grad=True)
    (g,) = tg.grad(Square.apply(x).sum(), x, create_graph=True)
    (gg,) = tg.grad(g.sum(), x)
    assert gg.item() == 2.0


def test_anomaly_mode_names_forward_op_and_site():
    x = tg.tensor([-1.0, 1.0], requires_grad=True)
    with tg.autograd.detect_anomaly(), np.errstate(invalid="ignore"):
        with pytest.raises(RuntimeError, match=r"op 'log' produced nan.*test_autograd\.py:\d+"):
            x.log()


def test_anomaly_mode_names_backward_op():
    x = tg.tensor([0.0, 1.0], requires_grad=True)
    with tg.autograd.detect_anomaly(), np.errstate(divide="ignore"):
        y = x.sqrt()  # finite forward, infinite gradient at 0
        with pytest.raises(RuntimeError, match=r"'SqrtBackward' produced inf.*test_autograd"):
            y.sum().backward()


def test_record_gradients_leaves_results_unchanged():
    rng = np.random.default_rng(1)
    w = rng.standard_normal((4, 3)).astype(np.float32)

    def run(record):
        x = tg.tensor(w, requires_grad=True)
        h = x.tanh()
        loss = (h @ tg.ones(3)).sum()
        if record:
            with tg.autograd.record_gradients() as rec:
                loss.backward()
            np.testing.assert_allclose(rec.grad(h), np.ones((4, 3)))
        else:
            loss.backward()
        return x.grad.detach().numpy()

    np.testing.assert_array_equal(run(True), run(False))


def test_max_semantics_ties():
    x = tg.tensor([1.0, 3.0, 3.0], requires_grad=True)
    x.max().backward()
    np.testing.assert_array_equal(x.grad.detach().numpy(), [0.0, 0.5, 0.5])
    y = tg.tensor([[1.0, 3.0, 3.0]], requires_grad=True)
    values, indices = y.max(dim=1)
    values.sum().backward()
    assert indices.tolist() == [1]
    np.testing.assert_array_equal(y.grad.detach().numpy(), [[0.0, 1.0, 0.0]])
    a = tg.tensor([2.0], requires_grad=True)
    b = tg.tensor([2.0], requires_grad=True)
    tg.maximum(a, b).sum().backward()
    assert a.grad.item() == 0.5 and b.grad.item() == 0.5


def test_repeated_integer_indices_accumulate():
    x = tg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    x[[0, 0, 2]].sum().backward()
    np.testing.assert_array_equal(x.grad.detach().numpy(), [2.0, 0.0, 1.0])


def test_comparisons_carry_no_gradient():
    x = tg.tensor([1.0, 2.0], requires_grad=True)
    mask = x > 1.5
    assert mask.dtype == np.bool_ and not mask.requires_grad


def test_dim_out_of_range_error():
    with pytest.raises(IndexError, match=r"sum: Dimension out of range.*\[-2, 1\].*got 2"):
        tg.zeros(2, 3).sum(dim=2)


def test_same_seed_same_numbers():
    tg.manual_seed(7)
    a = tg.randn(5)
    tg.manual_seed(7)
    b = tg.randn(5)
    np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())


def test_setitem_writes_data_and_refuses_recorded_tensors():
    x = tg.zeros(2, 3)
    x[0, 1:] = 5.0
    x[tg.tensor([1])] = tg.tensor([[1.0, 2.0, 3.0]])
    np.testing.assert_array_equal(x.detach().numpy(), [[0, 5, 5], [1, 2, 3]])
    w = tg.zeros(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="leaf Variable that requires grad is being used"):
        w[0] = 1.0
    with tg.no_grad():
        w[0] = 1.0
    assert w.detach().numpy().tolist() == [1.0, 0.0, 0.0]
    with pytest.raises(RuntimeError, match="not recorded when the tensor or the value"):
        (w * 2)[1] = 0.0


def test_dtype_names_follow_pytorch():
    assert tg.zeros(2, dtype=tg.float64).dtype == tg.float64
    assert tg.arange(3).dtype == tg.int64 and tg.tensor([1.0]).dtype == tg.float32
    assert (tg.ones(2) > 0).dtype == tg.bool
