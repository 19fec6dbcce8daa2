"""Gradient clipping: returned norms, in-place scaling, inf norm, non-finite handling."""

import importlib
import math

import numpy as np
import pytest

from tinygrad_init.tensor import Tensor

utils = importlib.import_module("tinygrad_init.nn.utils")
clip_grad_norm_ = utils.clip_grad_norm_
clip_grad_value_ = utils.clip_grad_value_

G1 = np.array([[3.0, -4.0], [0.0, 1.0]], dtype=np.float32)
G2 = np.array([2.0, -2.0, 1.0], dtype=np.float32)


def with_grads(*grads):
    ps = []
    for g in grads:
        p = Tensor(np.zeros_like(g), requires_grad=True)
        p.grad = Tensor(g.copy())
        ps.append(p)
    return ps


def total_2norm(*grads):
    return math.sqrt(sum(float((g.astype(np.float64) ** 2).sum()) for g in grads))


def test_returns_total_norm_and_scales_grads_to_max_norm():
    ps = with_grads(G1, G2)
    total = total_2norm(G1, G2)  # sqrt(26 + 9) = sqrt(35)
    norm = clip_grad_norm_(ps, max_norm=1.0)
    assert isinstance(norm, Tensor) and norm.ndim == 0 and norm.dtype == np.float32
    assert norm.item() == pytest.approx(total, rel=1e-6)
    coef = 1.0 / (total + 1e-6)
    np.testing.assert_allclose(ps[0].grad.detach().numpy(), G1 * coef, rtol=1e-6)
    np.testing.assert_allclose(ps[1].grad.detach().numpy(), G2 * coef, rtol=1e-6)
    assert total_2norm(ps[0].grad.detach().numpy(), ps[1].grad.detach().numpy()) == pytest.approx(
        1.0, rel=1e-5
    )


def test_grads_below_max_norm_are_left_alone():
    ps = with_grads(G1, G2)
    buffers = [p.grad.detach().numpy() for p in ps]
    norm = clip_grad_norm_(ps, max_norm=100.0)
    assert norm.item() == pytest.approx(total_2norm(G1, G2), rel=1e-6)
    assert all(p.grad.detach().numpy() is b for p, b in zip(ps, buffers))
    np.testing.assert_array_equal(ps[0].grad.detach().numpy(), G1)


def test_scaling_is_in_place():
    ps = with_grads(G1)
    buf = ps[0].grad.detach().numpy()
    clip_grad_norm_(ps, 0.5)
    assert ps[0].grad.detach().numpy() is buf
    assert np.linalg.norm(buf) == pytest.approx(0.5, rel=1e-5)


def test_inf_norm_is_the_largest_absolute_entry():
    ps = with_grads(G1, G2)
    norm = clip_grad_norm_(ps, max_norm=2.0, norm_type=math.inf)
    assert norm.item() == 4.0
    np.testing.assert_allclose(ps[0].grad.detach().numpy(), G1 * 2.0 / (4.0 + 1e-6), rtol=1e-6)
    assert np.abs(ps[0].grad.detach().numpy()).max() == pytest.approx(2.0, rel=1e-5)
    ps = with_grads(G1)
    assert clip_grad_norm_(ps, 10.0, norm_type="inf").item() == 4.0


def test_one_norm_and_three_norm():
    assert clip_grad_norm_(with_grads(G1, G2), 100.0, norm_type=1).item() == 13.0
    want = (np.abs(np.concatenate([G1.ravel(), G2])).astype(np.float64) ** 3).sum() ** (1 / 3)
    got = clip_grad_norm_(with_grads(G1, G2), 100.0, norm_type=3.0).item()
    assert got == pytest.approx(want, rel=1e-6)


def test_single_tensor_generator_and_missing_grads():
    (p,) = with_grads(G2)
    assert clip_grad_norm_(p, 100.0).item() == pytest.approx(3.0)
    q = Tensor(np.ones(3, dtype=np.float32), requires_grad=True)  # grad None: skipped
    ps = with_grads(G1)
    norm = clip_grad_norm_((x for x in [q, *ps]), 1.0)
    assert norm.item() == pytest.approx(math.sqrt(26), rel=1e-6)
    assert q.grad is None
    assert clip_grad_norm_([q], 1.0).item() == 0.0


@pytest.mark.parametrize("bad", [np.inf, np.nan])
def test_nonfinite_norm_raises_when_asked_and_leaves_grads(bad):
    g = G1.copy()
    g[0, 0] = bad
    ps = with_grads(g, G2)
    with pytest.raises(
        RuntimeError,
        match=r"The total norm of order 2.0 for gradients from "
        r"`parameters` is non-finite, so it cannot be "
        r"clipped.*error_if_nonfinite=False",
    ):
        clip_grad_norm_(ps, 1.0, error_if_nonfinite=True)
    np.testing.assert_array_equal(ps[1].grad.detach().numpy(), G2)


def test_nonfinite_norm_without_error_is_returned_and_spreads_as_in_pytorch():
    g = G1.copy()
    g[0, 0] = np.nan
    ps = with_grads(g, G2)
    norm = clip_grad_norm_(ps, 1.0)
    assert math.isnan(norm.item())
    assert np.isnan(ps[1].grad.detach().numpy()).all()


def test_clip_grad_value():
    ps = with_grads(G1, G2)
    q = Tensor(np.ones(2, dtype=np.float32), requires_grad=True)
    buf = ps[0].grad.detach().numpy()
    assert clip_grad_value_([*ps, q], clip_value=1.5) is None
    assert ps[0].grad.detach().numpy() is buf
    np.testing.assert_array_equal(buf, np.clip(G1, -1.5, 1.5))
    np.testing.assert_array_equal(ps[1].grad.detach().numpy(), [1.5, -1.5, 1.0])
    assert q.grad is None and ps[0].grad.dtype == np.float32
    (p,) = with_grads(G2)
    clip_grad_value_(p, 0.5)
    np.testing.assert_array_equal(p.grad.detach().numpy(), [0.5, -0.5, 0.5])


def test_read_only_grad_buffers_are_replaced_not_written():
    p = Tensor(np.zeros((2, 2), dtype=np.float32), requires_grad=True)
    p.grad = Tensor(np.zeros((2, 2), dtype=np.float32))
    p.grad._array = np.broadcast_to(np.float32(3.0), (2, 2))  # a read-only buffer
    clip_grad_value_(p, 1.0)
    np.testing.assert_array_equal(p.grad.detach().numpy(), np.ones((2, 2)))
    p.grad._array = np.broadcast_to(np.float32(3.0), (2, 2))
    clip_grad_norm_(p, 1.0)
    assert np.linalg.norm(p.grad.detach().numpy()) == pytest.approx(1.0, rel=1e-5)


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf, 0.5])
@pytest.mark.parametrize("max_norm", [0.1, 1e3])
def test_matches_pytorch(norm_type, max_norm):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    grads = [rng.standard_normal(s).astype(np.float32) for s in [(3, 4), (5,), ()]]
    ps = with_grads(*grads)
    tps = []
    for g in grads:
        t = torch.zeros(g.shape, requires_grad=True)
        t.grad = torch.tensor(g)
        tps.append(t)
    norm = clip_grad_norm_(ps, max_norm, norm_type)
    tnorm = torch.nn.utils.clip_grad_norm_(tps, max_norm, norm_type)
    assert norm.item() == pytest.approx(tnorm.item(), rel=1e-6)
    for p, t in zip(ps, tps):
        np.testing.assert_allclose(p.grad.detach().numpy(), t.grad.numpy(), rtol=1e-5, atol=0)
    clip_grad_value_(ps, 0.2)
    torch.nn.utils.clip_grad_value_(tps, 0.2)
    for p, t in zip(ps, tps):
        np.testing.assert_allclose(p.grad.detach().numpy(), t.grad.numpy(), rtol=1e-5, atol=0)
        assert np.abs(p.grad.detach().numpy()).max() <= np.float32(0.2)
