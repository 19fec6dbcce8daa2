"""PyTorch's semantics that training code relies on: in-place ops and version counters,
dtype promotion, masks and special points in gradients, indexing, gradient aliasing.

Each test asserts the expected behaviour directly (so it holds without torch) and, where
torch is installed, that torch 2.13 behaves the same.
"""

import numpy as np
import pytest

import tinygrad_init as tg
import tinygrad_init.nn.functional as F
from tinygrad_init import nn, optim
from tinygrad_init.testing import assert_gradients_close

try:
    import torch
except ImportError:  # the comparisons are skipped; the direct assertions still run
    torch = None


def _grad_of(fn, values, dtype=np.float32):
    """Gradient of fn(x).sum() at ``values`` in tinygrad_init and (or None) torch."""
    x = tg.tensor(np.asarray(values, dtype=dtype), requires_grad=True)
    fn(x).sum().backward()
    ours = x.grad.numpy()
    if torch is None:
        return ours, None
    t = torch.tensor(np.asarray(values, dtype=dtype), requires_grad=True)
    fn(t).sum().backward()
    return ours, t.grad.numpy()


# ----------------------------------------------------------------------------------------
# in-place ops, leaves and version counters


def test_inplace_on_leaf_requiring_grad_raises_as_torch():
    msg = "a leaf Variable that requires grad is being used in an in-place operation"
    x = tg.ones(3, requires_grad=True)
    for op in (
        lambda t: t.add_(1),
        lambda t: t.mul_(2),
        lambda t: t.zero_(),
        lambda t: t.fill_(1.0),
        lambda t: t.copy_(tg.zeros(3)),
        lambda t: t.normal_(),
        lambda t: t.uniform_(0, 1),
        lambda t: t.clamp_(0, 1),
        lambda t: t.__iadd__(1),
    ):
        with pytest.raises(RuntimeError, match=msg):
            op(x)
    assert x.tolist() == [1.0, 1.0, 1.0] and x._version == 0
    if torch is not None:
        with pytest.raises(RuntimeError, match=msg):
            torch.ones(3, requires_grad=True).add_(1)


def test_manual_sgd_updates_parameters_in_place():
    p = tg.tensor([1.0, 2.0], requires_grad=True)
    (p * p).sum().backward()
    same = p
    with tg.no_grad():
        p -= 0.1 * p.grad
    assert p is same and p.is_leaf and p.requires_grad
    np.testing.assert_allclose(p.detach().numpy(), [0.8, 1.6], rtol=1e-6)
    p.data += -0.1 * p.grad  # through .data: not seen by the version counter
    np.testing.assert_allclose(p.detach().numpy(), [0.6, 1.2], rtol=1e-6)
    assert p._version == 1
    if torch is not None:
        t = torch.tensor([1.0, 2.0], requires_grad=True)
        (t * t).sum().backward()
        with torch.no_grad():
            t -= 0.1 * t.grad
        t.data += -0.1 * t.grad
        np.testing.assert_allclose(t.detach().numpy(), p.detach().numpy(), rtol=1e-6)
        assert t._version == p._version


def test_versions_shared_by_views_and_detach_not_by_data():
    x = tg.zeros(2, 3)
    x.reshape(6).add_(1)
    x[0].mul_(3)
    x.T.add_(1)
    x.detach().add_(1)
    x.data.add_(1)
    np.testing.assert_array_equal(x.numpy(), [[6, 6, 6], [4, 4, 4]])
    assert x._version == 4
    if torch is not None:
        t = torch.zeros(2, 3)
        t.reshape(6).add_(1)
        t[0].mul_(3)
        t.T.add_(1)
        t.detach().add_(1)
        t.data.add_(1)
        np.testing.assert_array_equal(t.numpy(), x.numpy())
        assert t._version == x._version


def test_modifying_a_saved_tensor_raises_at_backward_naming_the_op():
    p = tg.ones(3, requires_grad=True)
    loss = (p * p).sum()
    with tg.no_grad():
        p.sub_(1)
    with pytest.raises(RuntimeError, match=r"modified by an inplace operation.*'mul'"):
        loss.backward()
    x = tg.ones(3, requires_grad=True)
    y = x.exp()
    y.add_(1)  # exp's rule reads its output
    with pytest.raises(RuntimeError, match=r"output of op .exp.*version 1; expected version 0"):
        y.sum().backward()
    if torch is not None:
        t = torch.ones(3, requires_grad=True)
        u = t.exp()
        u.add_(1)
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            u.sum().backward()


def test_relu_saves_its_output_as_torch():
    """relu's rule reads its output, not its input: writing the output in place raises at
    backward, writing the input does not (PyTorch's ReluBackward saves the result)."""
    for lib in (tg, torch) if torch is not None else (tg,):
        x = lib.tensor([1.0, -2.0], requires_grad=True)
        h = x * 1
        y = h.relu()
        h.add_(1)
        y.sum().backward()
        assert x.grad.tolist() == [1.0, 0.0]
        y = x.relu()
        y.add_(1)
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            y.sum().backward()


def test_inplace_not_read_by_a_rule_is_fine_and_rebases_history():
    x = tg.tensor([1.0, 2.0, 3.0], requires_grad=True)
    y = x * 2  # mul by a constant saves nothing of x
    y.add_(1)
    y.mul_(tg.tensor([1.0, 2.0, 3.0]))  # rebased: y = (2x + 1) * c
    assert y.grad_fn.name() == "MulBackward"
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 4.0, 6.0])
    a = tg.tensor([1.0, 2.0], requires_grad=True)
    b = a * 2
    b.mul_(a)  # the rule for a reads b's old value: kept by a recorded clone
    b.sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), [4.0, 8.0])
    if torch is not None:
        t = torch.tensor([1.0, 2.0], requires_grad=True)
        u = t * 2
        u.mul_(t)
        u.sum().backward()
        np.testing.assert_allclose(t.grad.numpy(), a.grad.numpy())


def test_inplace_gradients_match_finite_differences():
    def fn(x, w):
        y = x * 1.0
        y.div_(w)
        y.clamp_(-2.0, 2.0)
        y.sub_(w, alpha=0.5)
        z = tg.zeros(3, dtype=np.float64)
        z.copy_(y)
        return z.pow_(2).sum()

    x = tg.tensor([0.3, -0.8, 1.1], dtype=np.float64, requires_grad=True)
    w = tg.tensor([1.5, 0.7, 2.0], dtype=np.float64, requires_grad=True)
    assert_gradients_close(fn, [x, w])


def test_inplace_dtype_and_shape_rules():
    with pytest.raises(TypeError, match="float32 can't be cast to the desired output type int64"):
        tg.ones(2, dtype=np.int64).add_(1.5)
    with pytest.raises(ValueError, match=r"output with shape \[2\] doesn't match"):
        tg.ones(2).add_(tg.ones(1, 2))
    x = tg.ones(2)
    x += tg.ones(2, dtype=np.float64)
    assert x.dtype == np.float32
    with pytest.raises(RuntimeError, match="fill_ only supports 0-dimension"):
        tg.ones(2).fill_(tg.ones(2))
    if torch is not None:
        with pytest.raises(RuntimeError, match="can't be cast"):
            torch.ones(2, dtype=torch.int64).add_(1.5)


def test_inplace_on_a_view_of_a_recorded_tensor_raises_clearly():
    y = tg.ones(3, requires_grad=True) * 1
    with pytest.raises(RuntimeError, match="in-place op on a view .* is not supported"):
        y[0].add_(1)


def test_fill_copy_random_fills():
    x = tg.zeros(1000, dtype=np.float64)
    x.normal_(2.0, 0.5, generator=np.random.default_rng(0))
    assert abs(x.numpy().mean() - 2.0) < 0.05 and abs(x.numpy().std() - 0.5) < 0.05
    x.uniform_(**{"from": -1.0, "to": 3.0}, generator=np.random.default_rng(1))
    assert x.numpy().min() >= -1.0 and x.numpy().max() < 3.0
    x.fill_(tg.tensor(7.0)).zero_()
    assert x._version == 4 and not x.numpy().any()
    y = tg.zeros(2, 3, dtype=np.int64).copy_(tg.tensor([1.7, 2.2, 3.9]))
    assert y.tolist() == [[1, 2, 3], [1, 2, 3]]


def test_init_and_optimizers_write_parameters_in_place():
    lin = nn.Linear(3, 2)
    w, before = lin.weight._array, lin.weight._version
    nn.init.kaiming_uniform_(lin.weight)
    inited = lin.weight._version
    assert lin.weight._array is w and inited > before
    opt = optim.SGD(lin.parameters(), lr=0.1, momentum=0.9)
    loss = lin(tg.ones(4, 3, requires_grad=True)).sum()  # the input's rule reads the weight
    loss.backward(retain_graph=True)
    opt.step()
    assert lin.weight._array is w and lin.weight._version == inited + 1
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()  # the step changed a weight that the graph saved


def test_optimizer_refuses_a_wrong_shaped_grad():
    p = tg.ones(3, requires_grad=True)
    p.grad = tg.ones(1)
    for opt in (optim.SGD([p], lr=0.1), optim.Adam([p]), optim.RMSprop([p])):
        with pytest.raises(RuntimeError, match=r"\.grad of a parameter has shape \(1,\)"):
            opt.step()
    assert p.tolist() == [1.0, 1.0, 1.0]


def test_function_saved_tensor_modified_raises():
    class Square(tg.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x * x

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return 2 * x * g

    x = tg.ones(2, requires_grad=True)
    y = Square.apply(x)
    with tg.no_grad():
        x.mul_(3)
    with pytest.raises(RuntimeError, match="saved tensor 0 .* is at version 1; expected version 0"):
        y.sum().backward()


# ----------------------------------------------------------------------------------------
# dtype promotion (PyTorch's table, tensor._result_type)


PROMOTION_CASES = [
    ("f32 * i64 tensor", lambda m, d: m.ones(2) * m.ones(2, dtype=d["int64"]), "float32"),
    ("i64 * float", lambda m, d: m.ones(2, dtype=d["int64"]) * 1.5, "float32"),
    ("i64 / int", lambda m, d: m.ones(2, dtype=d["int64"]) / 2, "float32"),
    (
        "i64 / i64",
        lambda m, d: m.ones(2, dtype=d["int64"]) / m.ones(2, dtype=d["int64"]),
        "float32",
    ),
    ("f32 * 0-d f64", lambda m, d: m.ones(2) * m.tensor(2.0, dtype=d["float64"]), "float32"),
    ("f32 / np.sqrt", lambda m, d: m.ones(2) / np.sqrt(4.0), "float32"),
    ("i64 * np.float64", lambda m, d: m.ones(2, dtype=d["int64"]) * np.float64(2), "float32"),
    ("i32 + 0-d i64", lambda m, d: m.ones(2, dtype=d["int32"]) + m.tensor(1), "int32"),
    (
        "i32 + 0-d f64",
        lambda m, d: m.ones(2, dtype=d["int32"]) + m.tensor(1.0, dtype=d["float64"]),
        "float64",
    ),
    (
        "f16 + i64 tensor",
        lambda m, d: m.ones(2, dtype=d["float16"]) + m.ones(2, dtype=d["int64"]),
        "float16",
    ),
    ("u8 + i8", lambda m, d: m.ones(2, dtype=d["uint8"]) + m.ones(2, dtype=d["int8"]), "int16"),
    ("bool * float", lambda m, d: m.tensor([True, False]) * 1.5, "float32"),
    ("bool + int", lambda m, d: m.tensor([True, False]) + 1, "int64"),
    ("f32 + f64 tensor", lambda m, d: m.ones(2) + m.ones(2, dtype=d["float64"]), "float64"),
    ("exp of int", lambda m, d: m.tensor([1, 2]).exp(), "float32"),
    ("sqrt of bool", lambda m, d: m.tensor([True]).sqrt(), "float32"),
    ("full int", lambda m, d: m.full((2,), 3), "int64"),
    ("full bool", lambda m, d: m.full((2,), True), "bool"),
    ("full float", lambda m, d: m.full((2,), 3.0), "float32"),
    ("where mixed", lambda m, d: m.where(m.tensor([True, False]), m.ones(2), 2), "float32"),
    ("maximum f32 i64", lambda m, d: m.maximum(m.ones(2), m.ones(2, dtype=d["int64"])), "float32"),
    ("int ** int", lambda m, d: m.tensor([2, 3]) ** 2, "int64"),
    ("int ** float", lambda m, d: m.tensor([2, 3]) ** 0.5, "float32"),
]

_TG_DTYPES = {n: np.dtype(n) for n in ("int64", "int32", "int8", "uint8", "float16", "float64")}


@pytest.mark.parametrize("name,fn,expected", PROMOTION_CASES, ids=[c[0] for c in PROMOTION_CASES])
def test_promotion_table(name, fn, expected):
    assert str(fn(tg, _TG_DTYPES).dtype) == expected
    if torch is not None:
        torch_dtypes = {n: getattr(torch, n) for n in _TG_DTYPES}
        assert str(fn(torch, torch_dtypes).dtype) == "torch." + expected


def test_promotion_keeps_gradients_in_each_operands_dtype():
    a = tg.ones(3, requires_grad=True)
    b = tg.tensor(2.0, dtype=np.float64, requires_grad=True)
    (a * b).sum().backward()
    assert a.grad.dtype == np.float32 and b.grad.dtype == np.float64
    assert a.grad.tolist() == [2.0, 2.0, 2.0] and b.grad.item() == 3.0


def test_matmul_needs_one_dtype_as_torch():
    with pytest.raises(TypeError, match="expected m1 and m2 to have the same dtype"):
        tg.ones(2, 2) @ tg.ones(2, 2, dtype=np.float64)
    if torch is not None:
        with pytest.raises(RuntimeError, match="same dtype"):
            torch.ones(2, 2) @ torch.ones(2, 2, dtype=torch.float64)


def test_integer_casts_drop_the_graph():
    x = tg.ones(2, requires_grad=True)
    assert not x.long().requires_grad and not x.long().double().requires_grad
    assert not x.to(np.bool_).requires_grad and x.double().requires_grad
    if torch is not None:
        assert not torch.ones(2, requires_grad=True).long().double().requires_grad


# ----------------------------------------------------------------------------------------
# masks by select, special points


@pytest.mark.parametrize(
    "name,fn,values",
    [
        ("relu then sqrt", lambda x: x.relu().sqrt(), [0.0, -1.0, 2.0]),
        ("clamp then sqrt", lambda x: x.clamp(min=0.0).sqrt(), [0.0, -1.0, 2.0]),
        ("x ** 0 at 0", lambda x: x**0, [0.0, 1.0, -2.0]),
        ("0 ** x, x >= 0", lambda x: (x * 0) ** x.detach(), [0.0, 2.0]),
        ("std of constant", lambda x: x.std(), [2.0, 2.0, 2.0]),
        ("max with NaN", lambda x: x.max(), [1.0, float("nan"), 3.0]),
        ("max along dim", lambda x: x.reshape(2, 2).max(1)[0].sqrt(), [0.0, -1.0, 4.0, 2.0]),
    ],
)
def test_gradient_special_points_match_torch(name, fn, values):
    ours, theirs = _grad_of(fn, values)
    if name == "max with NaN":
        assert ours.tolist() == [0.0, 1.0, 0.0]
    else:
        assert not np.isnan(ours).any()
    if theirs is not None:
        np.testing.assert_array_equal(ours, theirs)


def test_maximum_mask_is_a_select():
    x = tg.tensor([1.0, 0.5, 3.0], requires_grad=True)
    (tg.maximum(x, tg.ones(3)) - 1).sqrt().sum().backward()
    assert np.isfinite(x.grad.numpy()[1]) and x.grad.numpy()[1] == 0.0
    if torch is not None:
        t = torch.tensor([1.0, 0.5, 3.0], requires_grad=True)
        (torch.maximum(t, torch.ones(3)) - 1).sqrt().sum().backward()
        assert t.grad[1].item() == 0.0


def test_special_points_keep_finite_differences_elsewhere():
    x = tg.tensor([0.7, 1.3], dtype=np.float64, requires_grad=True)
    e = tg.tensor([0.0, 2.0], dtype=np.float64, requires_grad=True)
    assert_gradients_close(lambda a, b: (a**b).sum(), [x, e])
    y = tg.tensor([0.3, -0.2, 1.5], dtype=np.float64, requires_grad=True)
    assert_gradients_close(lambda a: a.std(), [y])


def test_cross_entropy_with_every_target_ignored():
    for loss_fn in (F.cross_entropy, lambda x, t: F.nll_loss(x.log_softmax(1), t)):
        x = tg.tensor([[1.0, 2.0, 3.0], [0.5, 0.1, 0.0]], requires_grad=True)
        loss = loss_fn(x, tg.tensor([-100, -100]))
        assert np.isnan(loss.item())
        loss.backward()
        assert x.grad.tolist() == [[0.0] * 3, [0.0] * 3]
    if torch is not None:
        t = torch.tensor([[1.0, 2.0, 3.0], [0.5, 0.1, 0.0]], requires_grad=True)
        tl = torch.nn.functional.cross_entropy(t, torch.tensor([-100, -100]))
        tl.backward()
        assert np.isnan(tl.item()) and not t.grad.any()


# ----------------------------------------------------------------------------------------
# indexing, gradient aliasing, hooks


def test_mixed_int_and_advanced_index_uses_torch_layout():
    x = tg.arange(24).reshape(2, 3, 4)
    cases = [
        lambda t: t[0, :, [0, 1]],
        lambda t: t[:, 0, [0, 1]],
        lambda t: t[[0, 1], :, 0],
        lambda t: t[1, ..., [2, 0]],
        lambda t: t[0, None, :, [1, 3]],
    ]
    assert cases[0](x).shape == (3, 2)
    assert cases[0](x).tolist() == [[0, 1], [4, 5], [8, 9]]
    y = tg.zeros(2, 3, 4)
    y[0, :, [0, 1]] = tg.ones(3, 2)
    assert y.numpy()[0, :, :2].sum() == 6
    if torch is not None:
        t = torch.arange(24).reshape(2, 3, 4)
        for case in cases:
            np.testing.assert_array_equal(case(x).numpy(), case(t).numpy())
    w = tg.randn(2, 3, 4, dtype=np.float64, requires_grad=True)
    assert_gradients_close(lambda a: a[0, :, [0, 1]] * tg.arange(6.0).reshape(3, 2), [w])


def test_hook_logged_gradients_are_not_accumulated_into():
    x = tg.ones(2, requires_grad=True)
    logged = []
    x.register_hook(lambda g: logged.append(g))
    (x * 2).sum().backward()
    (x * 3).sum().backward()
    assert [g.tolist() for g in logged] == [[2.0, 2.0], [3.0, 3.0]]
    assert x.grad.tolist() == [5.0, 5.0]
    y = tg.ones(2, requires_grad=True)
    kept = []

    def replace(g):
        kept.append(g * 1)
        return kept[-1]

    y.register_hook(replace)
    (y * 2).sum().backward()
    (y * 2).sum().backward()
    assert kept[0].tolist() == [2.0, 2.0] and y.grad.tolist() == [4.0, 4.0]


def test_recorded_gradients_are_not_accumulated_into():
    x = tg.ones(2, requires_grad=True)
    with tg.autograd.record_gradients() as rec:
        (x * 2).sum().backward()
    first = rec.grad(x)
    (x * 3).sum().backward()
    assert first.tolist() == [2.0, 2.0] and x.grad.tolist() == [5.0, 5.0]


def test_hooks_changing_shape_or_dtype_raise():
    x = tg.ones(3, requires_grad=True)
    x.register_hook(lambda g: g[:1])
    with pytest.raises(RuntimeError, match="has changed the size of value"):
        (x * 2).sum().backward()
    y = tg.ones(3, requires_grad=True)
    y.register_hook(lambda g: g.double())
    with pytest.raises(RuntimeError, match=r"has changed the type of value \(was float32"):
        (y * 2).sum().backward()


# ----------------------------------------------------------------------------------------
# edge cases of single functions


def test_binary_cross_entropy_rejects_nan_input():
    with pytest.raises(ValueError, match="between 0 and 1"):
        F.binary_cross_entropy(tg.tensor([float("nan"), 0.5]), tg.tensor([1.0, 0.0]))
    if torch is not None:
        with pytest.raises(RuntimeError, match="between 0 and 1"):
            torch.nn.functional.binary_cross_entropy(
                torch.tensor([float("nan"), 0.5]), torch.tensor([1.0, 0.0])
            )


def test_float16_mean_accumulates_in_float32():
    m = tg.ones(70000, dtype=np.float16).mean()
    assert m.dtype == np.float16 and m.item() == 1.0
    with pytest.raises(RuntimeError, match="mean\\(\\): could not infer output dtype"):
        tg.ones(2, dtype=np.int64).mean()
    if torch is not None:
        assert torch.ones(70000, dtype=torch.half).mean().item() == 1.0


def test_conv2d_on_an_empty_batch():
    conv = nn.Conv2d(2, 4, 3, groups=2)
    x = tg.zeros(0, 2, 5, 5, requires_grad=True)
    y = conv(x)
    assert y.shape == (0, 4, 3, 3)
    y.sum().backward()
    assert x.grad.shape == x.shape and not conv.weight.grad.numpy().any()
    if torch is not None:
        assert tuple(torch.nn.Conv2d(2, 4, 3, groups=2)(torch.zeros(0, 2, 5, 5)).shape) == y.shape


def test_embedding_rejects_negative_indices():
    with pytest.raises(IndexError, match="index -1 is out of range"):
        F.embedding(tg.tensor([-1]), tg.ones(3, 2))
    if torch is not None:
        with pytest.raises(IndexError, match="index out of range"):
            torch.nn.functional.embedding(torch.tensor([-1]), torch.ones(3, 2))


def test_dim_checks_on_0d_tensors_and_duplicates():
    s = tg.tensor(2.0)
    assert s.sum(0).item() == 2.0 and s.sum(-1).item() == 2.0
    with pytest.raises(IndexError, match=r"range of \[-1, 0\], but got 1"):
        s.sum(1)
    with pytest.raises(RuntimeError, match="dim 0 appears multiple times"):
        tg.ones(2, 3).sum((0, -2))
    if torch is not None:
        with pytest.raises(IndexError, match=r"range of \[-1, 0\], but got 1"):
            torch.tensor(2.0).sum(1)
        with pytest.raises(RuntimeError, match="dim 0 appears multiple times"):
            torch.ones(2, 3).sum((0, -2))


def test_softmax_and_logsumexp_over_an_empty_dim():
    x = tg.zeros(2, 0)
    assert x.softmax(1).shape == (2, 0)
    assert x.logsumexp(1).tolist() == [float("-inf")] * 2
    if torch is not None:
        assert torch.zeros(2, 0).logsumexp(1).tolist() == x.logsumexp(1).tolist()
