"""The torch-style functions and methods: gradients against finite differences (float64),
values against torch 2.13 where it is installed, and the errors they raise."""

import numpy as np
import pytest

import tinygrad_init as tg
from tinygrad_init.utils.data import DataLoader, TensorDataset, default_collate

RNG = np.random.default_rng(0)


def _x(*shape, lo=-1.0, hi=1.0):
    return RNG.uniform(lo, hi, shape)


# name -> (function of tinygrad_init tensors, the same with torch, input arrays)
DIFFERENTIABLE = {
    "log1p": (lambda m, x: m.log1p(x), [_x(3, 4, lo=0.1)]),
    "expm1": (lambda m, x: m.expm1(x), [_x(3, 4)]),
    "atan": (lambda m, x: m.atan(x), [_x(5)]),
    "asin": (lambda m, x: m.asin(x), [_x(5, lo=-0.9, hi=0.9)]),
    "acos": (lambda m, x: m.acos(x), [_x(5, lo=-0.9, hi=0.9)]),
    "tan": (lambda m, x: m.tan(x), [_x(5)]),
    "sinh": (lambda m, x: m.sinh(x), [_x(5)]),
    "cosh": (lambda m, x: m.cosh(x), [_x(5)]),
    "log2": (lambda m, x: m.log2(x), [_x(5, lo=0.5, hi=2)]),
    "rsqrt": (lambda m, x: m.rsqrt(x), [_x(5, lo=0.5, hi=2)]),
    "erf": (lambda m, x: m.erf(x), [_x(5)]),
    "prod": (lambda m, x: m.prod(x, 1), [_x(3, 4)]),
    "prod_zero": (lambda m, x: m.prod(x), [np.array([0.0, 2.0, 3.0, 0.5])]),
    "cumsum": (lambda m, x: m.cumsum(x, dim=1), [_x(3, 4)]),
    "norm": (lambda m, x: m.norm(x), [_x(3, 4)]),
    "norm_p3_dim": (lambda m, x: m.norm(x, p=3, dim=1, keepdim=True), [_x(3, 4)]),
    "norm_p1": (lambda m, x: m.norm(x, p=1, dim=0), [_x(3, 4)]),
    "norm_inf": (lambda m, x: m.norm(x, p=float("inf"), dim=1), [_x(3, 4)]),
    "amax": (lambda m, x: m.amax(x, dim=(0, 2)), [_x(2, 3, 4)]),
    "mm": (lambda m, a, b: m.mm(a, b), [_x(2, 3), _x(3, 4)]),
    "bmm": (lambda m, a, b: m.bmm(a, b), [_x(2, 2, 3), _x(2, 3, 4)]),
    "mv": (lambda m, a, b: m.mv(a, b), [_x(2, 3), _x(3)]),
    "dot": (lambda m, a, b: m.dot(a, b), [_x(3), _x(3)]),
    "outer": (lambda m, a, b: m.outer(a, b), [_x(3), _x(4)]),
    "addmm": (lambda m, c, a, b: m.addmm(c, a, b, beta=0.5, alpha=2), [_x(4), _x(2, 3), _x(3, 4)]),
    "einsum_matmul": (lambda m, a, b: m.einsum("ij,jk->ik", a, b), [_x(2, 3), _x(3, 4)]),
    "einsum_batch": (lambda m, a, b: m.einsum("bij,bkj->bik", a, b), [_x(2, 2, 3), _x(2, 4, 3)]),
    "einsum_attn": (
        lambda m, q, k: m.einsum("bhqd,bhkd->bhqk", q, k),
        [_x(2, 2, 3, 4), _x(2, 2, 5, 4)],
    ),
    "einsum_ellipsis": (lambda m, a, b: m.einsum("...ij,...jk", a, b), [_x(2, 2, 3), _x(2, 3, 2)]),
    "einsum_sum": (lambda m, a: m.einsum("ij->j", a), [_x(3, 4)]),
    "einsum_three": (
        lambda m, a, b, c: m.einsum("i,ij,j->", a, b, c),
        [_x(3), _x(3, 4), _x(4)],
    ),
    "einsum_outer": (lambda m, a, b: m.einsum("i,j->ij", a, b), [_x(3), _x(2)]),
    "t": (lambda m, a: m.t(a), [_x(2, 3)]),
    "tril": (lambda m, a: m.tril(a, -1), [_x(3, 4)]),
    "triu": (lambda m, a: m.triu(a, 1), [_x(3, 4)]),
    "diag_1d": (lambda m, a: m.diag(a, 1), [_x(3)]),
    "diag_2d": (lambda m, a: m.diag(a), [_x(3, 4)]),
    "gather": (lambda m, a: m.gather(a, 1, m.tensor([[0, 0], [2, 1], [1, 3]])), [_x(3, 4)]),
    "index_select": (lambda m, a: m.index_select(a, 0, m.tensor([2, 0, 2])), [_x(3, 4)]),
    "masked_fill": (lambda m, a: m.masked_fill(a, a > 0, 0.5), [_x(3, 4)]),
    "flip": (lambda m, a: m.flip(a, [0, 1]), [_x(3, 4)]),
    "roll": (lambda m, a: m.roll(a, 1, 1), [_x(3, 4)]),
    "chunk": (lambda m, a: m.chunk(a, 3, 1)[1], [_x(3, 5)]),
    "split": (lambda m, a: m.split(a, [1, 2], 0)[1], [_x(3, 4)]),
    "unbind": (lambda m, a: m.unbind(a, 1)[2], [_x(3, 4)]),
    "sort": (lambda m, a: m.sort(a, 1, descending=True).values, [_x(3, 4)]),
    "topk": (lambda m, a: m.topk(a, 2, dim=0).values, [_x(3, 4)]),
    "repeat": (lambda m, a: a.repeat(2, 1, 3), [_x(3, 4)]),
    "tile": (lambda m, a: m.tile(a, (2,)), [_x(3, 4)]),
    "narrow": (lambda m, a: m.narrow(a, 1, 1, 2), [_x(3, 4)]),
    "lerp": (lambda m, a, b: m.lerp(a, b, 0.3), [_x(3), _x(3)]),
    "add_alpha": (lambda m, a, b: m.add(a, b, alpha=2), [_x(3), _x(3)]),
    "max_other": (lambda m, a, b: m.max(a, b), [_x(3), _x(3)]),
    "view_as": (lambda m, a, b: a.view_as(b) * b, [_x(2, 6), _x(3, 4)]),
}


@pytest.mark.parametrize("name", sorted(DIFFERENTIABLE))
def test_gradient_matches_finite_differences(name):
    fn, arrays = DIFFERENTIABLE[name]
    inputs = [tg.tensor(a, dtype=tg.float64, requires_grad=True) for a in arrays]
    assert tg.gradcheck(lambda *xs: fn(tg, *xs), inputs)


@pytest.mark.parametrize("name", sorted(DIFFERENTIABLE))
def test_values_and_gradients_match_torch(name):
    torch = pytest.importorskip("torch")
    fn, arrays = DIFFERENTIABLE[name]
    ours = [tg.tensor(a, dtype=tg.float64, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, dtype=torch.float64, requires_grad=True) for a in arrays]
    out, ref = fn(tg, *ours), fn(torch, *theirs)
    np.testing.assert_allclose(out.detach().numpy(), ref.detach().numpy(), atol=1e-12)
    weights = RNG.standard_normal(ref.shape)
    (out * tg.tensor(weights)).sum().backward()
    (ref * torch.tensor(weights)).sum().backward()
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(a.grad.numpy(), b.grad.numpy(), atol=1e-12)


def test_einsum_is_twice_differentiable():
    a = tg.tensor(_x(2, 3), dtype=tg.float64, requires_grad=True)
    b = tg.tensor(_x(3, 2), dtype=tg.float64, requires_grad=True)
    assert tg.gradgradcheck(lambda a, b: tg.einsum("ij,jk->ik", a, b).tanh(), [a, b])


def test_norm_gradient_at_zero_is_zero():
    x = tg.zeros(3, dtype=tg.float64, requires_grad=True)
    tg.norm(x).backward()
    assert x.grad.tolist() == [0.0, 0.0, 0.0]


def test_einsum_rejects_repeated_subscripts():
    with pytest.raises(ValueError, match="repeated subscripts in operand 0"):
        tg.einsum("ii->", tg.ones(2, 2))


def test_mm_shape_error_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(2x3 and 2x3\)"):
        tg.mm(tg.ones(2, 3), tg.ones(2, 3))


def test_functions_need_a_tensor():
    with pytest.raises(TypeError, match="argument 'input' must be Tensor, not float"):
        tg.sin(1.0)


def test_comparisons_sort_and_topk_match_numpy():
    x = tg.tensor([[3.0, 1.0, 3.0], [0.0, 2.0, -1.0]])
    assert tg.eq(x, 3.0).tolist() == [[True, False, True], [False, False, False]]
    values, indices = tg.sort(x, descending=True)
    assert indices.tolist() == [[0, 2, 1], [1, 0, 2]]
    assert tg.topk(x, 1).indices.tolist() == [[0], [1]]
    assert tg.allclose(x, x + 1e-9) and not tg.allclose(x, x + 1)
    assert tg.argsort(x, dim=0).tolist() == [[1, 0, 1], [0, 1, 0]]


def test_multinomial_samples_follow_the_probabilities():
    g = tg.Generator().manual_seed(0)
    p = tg.tensor([0.1, 0.0, 0.6, 0.3])
    draws = tg.multinomial(p, 20000, replacement=True, generator=g).numpy()
    freq = np.bincount(draws, minlength=4) / draws.size
    np.testing.assert_allclose(freq, [0.1, 0.0, 0.6, 0.3], atol=0.015)
    once = tg.multinomial(p, 3, generator=g).tolist()
    assert sorted(once) == [0, 2, 3]
    with pytest.raises(RuntimeError, match="without replacement"):
        tg.multinomial(p, 5)
    with pytest.raises(RuntimeError, match="sum of probabilities <= 0"):
        tg.multinomial(tg.zeros(3), 1)


def test_generator_manual_seed_repeats_the_stream_everywhere():
    a = tg.randn(4, generator=tg.Generator().manual_seed(7))
    b = tg.randn(4, generator=tg.Generator().manual_seed(7))
    assert a.tolist() == b.tolist()
    w = tg.empty(3, 3)
    tg.nn.init.kaiming_normal_(w, generator=tg.Generator().manual_seed(1))
    perm = tg.randperm(5, generator=tg.Generator().manual_seed(1))
    assert sorted(perm.tolist()) == [0, 1, 2, 3, 4]
    assert tg.Generator().manual_seed(3).initial_seed() == 3


def test_dtype_aliases_are_pytorchs():
    assert tg.float is tg.float32 and tg.double is tg.float64 and tg.long is tg.int64
    assert tg.ones(2, dtype=tg.long).dtype == tg.int64
    x = tg.ones(2)
    assert x.int().dtype == tg.int32 and x.bool().dtype == tg.bool and x.half().dtype == tg.half
    assert x.type_as(tg.zeros(1, dtype=tg.double)).dtype == tg.double
    assert x.new_zeros(2, 3).shape == (2, 3) and x.new_tensor([1, 2]).dtype == tg.float32


def test_from_numpy_shares_memory_and_as_tensor_copies_lists():
    a = np.zeros(3)
    t = tg.from_numpy(a)
    a[0] = 5
    assert t.dtype == tg.float64 and t[0].item() == 5
    assert tg.as_tensor(a) is not None and tg.as_tensor(a).numpy() is a
    assert tg.as_tensor([1.0, 2.0]).dtype == tg.float32


def test_devices_cpu_works_others_raise_clearly():
    x = tg.ones(2, device="cpu")
    assert x.device == tg.device("cpu") and x.device == "cpu" and x.cpu() is x
    assert x.to("cpu") is x and x.to(tg.device("cpu"), tg.float64).dtype == tg.float64
    assert not tg.cuda.is_available() and not tg.backends.mps.is_available()
    assert tg.accelerator.current_accelerator() is None
    with pytest.raises(RuntimeError, match="device 'cuda' is not available"):
        tg.zeros(2, device="cuda")
    with pytest.raises(RuntimeError, match="device 'cuda:0' is not available"):
        x.to("cuda:0")
    with pytest.raises(RuntimeError, match="'mps' is not available"):
        tg.device("mps")
    with pytest.raises(RuntimeError, match="not available"):
        x.cuda()
    assert tg.nn.Linear(2, 2).to(tg.device("cpu")).weight.dtype == tg.float32


def test_next_functions_walk_the_graph():
    a = tg.ones(2, requires_grad=True)
    y = (a * 2).sum()
    ((mul, _),) = y.grad_fn.next_functions
    assert mul.name() == "MulBackward"
    (acc, _), (none, _) = mul.next_functions
    assert acc.variable is a and none is None and acc.next_functions == ()


class SortWithIndex(tg.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        order = np.argsort(x.detach().numpy())
        ctx.order = order
        idx = tg.tensor(order)
        ctx.mark_non_differentiable(idx)
        return x[order], idx, x.sum() * 2

    @staticmethod
    def backward(ctx, g_values, g_idx, g_total):
        assert g_idx.tolist() == [0, 0, 0]
        g = tg.zeros(len(ctx.order), dtype=g_values.dtype)
        with tg.no_grad():
            g[ctx.order] = g_values
        return g + 2 * g_total


def test_function_with_several_outputs():
    x = tg.tensor([3.0, 1.0, 2.0], dtype=tg.float64, requires_grad=True)
    values, idx, total = SortWithIndex.apply(x)
    assert idx.tolist() == [1, 2, 0] and not idx.requires_grad
    assert values.grad_fn.name() == "SortWithIndexBackward"
    (values * tg.tensor([1.0, 10.0, 100.0], dtype=tg.float64)).sum().backward()
    assert x.grad.tolist() == [100.0, 1.0, 10.0]
    assert tg.gradcheck(lambda x: SortWithIndex.apply(x)[0] * 3 + SortWithIndex.apply(x)[2], [x])


def test_once_differentiable_backward_records_nothing():
    class Cube(tg.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x**3

        @staticmethod
        @tg.autograd.once_differentiable
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            assert not tg.is_grad_enabled()
            return g * 3 * x**2

    x = tg.tensor([2.0], requires_grad=True)
    (gx,) = tg.grad(Cube.apply(x), x, create_graph=True)
    assert gx.tolist() == [12.0] and not gx.requires_grad


def test_dataloader_batches_shuffles_and_drops_last():
    ds = TensorDataset(tg.arange(10).float(), tg.arange(10))
    loader = DataLoader(ds, batch_size=4, shuffle=True, generator=tg.Generator().manual_seed(0))
    seen = [y.tolist() for _, y in loader]
    assert [len(b) for b in seen] == [4, 4, 2] and sorted(sum(seen, [])) == list(range(10))
    again = [
        y.tolist()
        for _, y in DataLoader(
            ds, batch_size=4, shuffle=True, generator=tg.Generator().manual_seed(0)
        )
    ]
    assert again == seen
    assert len(DataLoader(ds, batch_size=4, drop_last=True)) == 2
    assert [len(y) for _, y in DataLoader(ds, batch_size=4, drop_last=True)] == [4, 4]
    with pytest.raises(ValueError, match="num_workers=2 is not supported"):
        DataLoader(ds, num_workers=2)


def test_default_collate_of_tuples_dicts_and_numbers():
    batch = [{"x": tg.ones(2), "y": 1, "w": 0.5}, {"x": tg.zeros(2), "y": 2, "w": 1.5}]
    out = default_collate(batch)
    assert out["x"].shape == (2, 2) and out["y"].dtype == tg.int64
    assert out["w"].dtype == tg.float64
    pairs = default_collate([(np.ones(3), 0), (np.zeros(3), 1)])
    assert pairs[0].shape == (2, 3) and pairs[1].tolist() == [0, 1]


def test_randint_takes_high_and_size_alone():
    draws = tg.randint(3, (200,), generator=tg.Generator().manual_seed(0))
    assert draws.shape == (200,) and draws.dtype == tg.int64
    assert set(draws.tolist()) == {0, 1, 2}
