"""tinygrad_init.functional: activations, layers and losses against their formulas,
central finite differences (float64), PyTorch's semantics (optional comparison when torch
is installed) and error messages."""

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygrad_init as tg
from tinygrad_init import functional as F
from tinygrad_init.gradcheck import gradcheck, gradgradcheck


def t64(a, grad=True):
    return tg.tensor(np.asarray(a, dtype=np.float64), requires_grad=grad)


def away_from_zero(rng, shape, gap=0.1):
    """Standard normal values moved at least ``gap`` away from the kink at 0."""
    a = rng.standard_normal(shape)
    return np.where(np.abs(a) < gap, np.sign(a + 1e-12) * gap + a, a)


seeds = st.integers(0, 2**32 - 1)
small_shapes = st.lists(st.integers(1, 4), min_size=1, max_size=3).map(tuple)

# ----------------------------------------------------------------------------------------
# activations: values against the formula, gradients against finite differences

_SQRT2 = math.sqrt(2.0)
ACTIVATIONS = {
    "relu": (F.relu, lambda x: np.maximum(x, 0)),
    "leaky_relu": (lambda x: F.leaky_relu(x, 0.2), lambda x: np.where(x > 0, x, 0.2 * x)),
    "sigmoid": (F.sigmoid, lambda x: 1 / (1 + np.exp(-x))),
    "tanh": (F.tanh, np.tanh),
    "gelu": (F.gelu, lambda x: x * 0.5 * (1 + np.vectorize(math.erf)(x / _SQRT2))),
    "gelu_tanh": (
        lambda x: F.gelu(x, approximate="tanh"),
        lambda x: 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3))),
    ),
    "erf": (F.erf, np.vectorize(math.erf)),
    "silu": (F.silu, lambda x: x / (1 + np.exp(-x))),
    "elu": (lambda x: F.elu(x, alpha=0.7), lambda x: np.where(x > 0, x, 0.7 * np.expm1(x))),
    "selu": (
        F.selu,
        lambda x: 1.0507009873554805 * np.where(x > 0, x, 1.6732632423543772 * np.expm1(x)),
    ),
    "softplus": (F.softplus, lambda x: np.log1p(np.exp(x))),
    "softplus_beta": (
        lambda x: F.softplus(x, beta=2.0, threshold=3.0),
        lambda x: np.where(2 * x > 3, x, np.log1p(np.exp(2 * x)) / 2),
    ),
}


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
@settings(max_examples=15, deadline=None)
@given(shape=small_shapes, seed=seeds)
def test_activation_values_and_gradients(name, shape, seed):
    fn, ref = ACTIVATIONS[name]
    x = away_from_zero(np.random.default_rng(seed), shape) * 2
    if name == "softplus_beta":  # stay off the threshold switch at 2x = 3
        x = np.where(np.abs(2 * x - 3) < 0.1, x + 0.2, x)
    np.testing.assert_allclose(fn(t64(x, False)).detach().numpy(), ref(x), rtol=1e-12, atol=1e-14)
    assert gradcheck(fn, (t64(x),))


@pytest.mark.parametrize("name", ["gelu", "erf", "softplus", "sigmoid", "silu"])
def test_smooth_activations_have_second_derivatives(name):
    fn, _ = ACTIVATIONS[name]
    x = t64(np.random.default_rng(0).standard_normal((3, 2)))
    assert gradgradcheck(fn, (x,))


def test_erf_is_accurate_over_the_whole_line():
    xs = np.concatenate([np.linspace(-7, 7, 20001), [0.0, 1e-300, 40.0, -40.0]])
    got = F.erf(t64(xs, False)).detach().numpy()
    ref = np.array([math.erf(v) for v in xs])
    np.testing.assert_allclose(got, ref, rtol=0, atol=3e-15)
    assert F.erf(tg.tensor([np.inf, -np.inf])).tolist() == [1.0, -1.0]
    assert F.erf(tg.tensor([1.0])).dtype == np.float32


def test_kinks_follow_pytorch():
    x = t64([0.0, 0.0, 0.0])
    (F.relu(x) + F.leaky_relu(x, 0.1) + F.elu(x, alpha=2.0)).sum().backward()
    # relu'(0) = 0, leaky_relu'(0) = slope, elu'(0) = alpha (PyTorch's choices)
    np.testing.assert_allclose(x.grad.detach().numpy(), [0 + 0.1 + 2.0] * 3)


def test_activations_do_not_overflow_at_extremes():
    x = t64([-1000.0, -50.0, 50.0, 1000.0])
    for fn in (F.softplus, F.elu, F.selu, F.silu, F.gelu, F.sigmoid):
        y = fn(x)
        y.sum().backward()
        assert (
            np.isfinite(y.detach().numpy()).all() and np.isfinite(x.grad.detach().numpy()).all()
        ), fn.__name__
        x.grad = None
    np.testing.assert_allclose(
        F.softplus(x).detach().numpy(), [0.0, math.log1p(math.exp(-50)), 50, 1000]
    )


def test_gelu_rejects_unknown_approximation():
    with pytest.raises(ValueError, match="gelu: approximate must be 'none' or 'tanh', got 'fast'"):
        F.gelu(tg.zeros(2), approximate="fast")


@pytest.mark.parametrize("fn", [F.softmax, F.log_softmax])
def test_softmax_family(fn):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 4)) * 3
    e = np.exp(x - x.max(1, keepdims=True))
    p = e / e.sum(1, keepdims=True)
    expected = p if fn is F.softmax else np.log(p)
    np.testing.assert_allclose(fn(t64(x, False), dim=1).detach().numpy(), expected, rtol=1e-12)
    assert gradcheck(lambda t: fn(t, dim=0), (t64(x),))
    with pytest.warns(UserWarning, match="implicit dimension choice"):
        np.testing.assert_allclose(fn(t64(x, False)).detach().numpy(), expected, rtol=1e-12)


# ----------------------------------------------------------------------------------------
# dropout, linear, embedding


def test_dropout_is_inverted_and_reproducible():
    x = tg.ones(200, 500)
    gen = np.random.default_rng(0)
    y = F.dropout(x, p=0.3, generator=gen)
    kept = y.detach().numpy() != 0
    assert abs(kept.mean() - 0.7) < 0.01
    np.testing.assert_allclose(y.detach().numpy()[kept], 1 / 0.7, rtol=1e-6)
    y2 = F.dropout(x, p=0.3, generator=np.random.default_rng(0))
    np.testing.assert_array_equal(y.detach().numpy(), y2.detach().numpy())
    assert y.dtype == np.float32


def test_dropout_gradient_uses_the_same_mask():
    x = t64(np.ones((10, 10)))
    y = F.dropout(x, p=0.5, generator=np.random.default_rng(3))
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.detach().numpy(), y.detach().numpy())


def test_dropout_edge_cases_and_validation():
    x = tg.ones(3, 3)
    assert F.dropout(x, p=0.5, training=False) is x
    assert F.dropout(x, p=0.0) is x
    np.testing.assert_array_equal(F.dropout(x, p=1.0).detach().numpy(), np.zeros((3, 3)))
    for p in (-0.1, 1.5, "0.5"):
        with pytest.raises(
            ValueError, match="dropout: probability has to be between 0 and 1, but got"
        ):
            F.dropout(x, p=p)


def test_linear_values_gradients_and_errors():
    rng = np.random.default_rng(2)
    x, w, b = rng.standard_normal((2, 3, 4)), rng.standard_normal((5, 4)), rng.standard_normal(5)
    np.testing.assert_allclose(
        F.linear(t64(x, False), t64(w, False), t64(b, False)).detach().numpy(),
        x @ w.T + b,
        rtol=1e-12,
    )
    assert gradcheck(F.linear, (t64(x), t64(w), t64(b)))
    assert gradcheck(lambda x, w: F.linear(x, w), (t64(x[0]), t64(w)))
    for xs in (x[0], x[0, 0]):  # a batch (each rule's 2-D path), one sample (1-D)
        assert gradcheck(F.linear, (t64(xs), t64(w), t64(b)))
        assert gradgradcheck(F.linear, (t64(xs), t64(w), t64(b)))
    with pytest.raises(
        ValueError,
        match=r"linear: expected input with last dim 4 \(weight "
        r"\(5, 4\)\), got input of shape \(2, 3\)",
    ):
        F.linear(tg.zeros(2, 3), tg.zeros(5, 4))
    with pytest.raises(ValueError, match=r"linear: expected bias of shape \(5,\), got \(4,\)"):
        F.linear(tg.zeros(2, 4), tg.zeros(5, 4), tg.zeros(4))


def test_embedding_picks_rows_and_skips_padding_gradient():
    w = t64(np.arange(12.0).reshape(4, 3))
    idx = tg.tensor(np.array([[0, 2], [2, 3]]))
    out = F.embedding(idx, w, padding_idx=3)
    np.testing.assert_array_equal(out.detach().numpy(), w.detach().numpy()[[[0, 2], [2, 3]]])
    out.sum().backward()
    np.testing.assert_array_equal(w.grad.detach().numpy()[:, 0], [1, 0, 2, 0])
    assert gradcheck(lambda w: F.embedding(np.array([1, 1, 0]), w), (t64(np.ones((2, 2))),))
    with pytest.raises(
        IndexError,
        match=r"embedding: index 4 is out of range for weight of "
        r"shape \(4, 3\)",
    ):
        F.embedding(np.array([4]), w)
    with pytest.raises(TypeError, match="embedding: indices must be integers"):
        F.embedding(np.array([0.5]), w)


# ----------------------------------------------------------------------------------------
# normalisation


def test_batch_norm_training_normalises_and_updates_running_stats():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((6, 3, 4, 5)) * 2 + 1
    rm, rv = tg.zeros(3, dtype=np.float64), tg.ones(3, dtype=np.float64)
    w, b = rng.standard_normal(3), rng.standard_normal(3)
    y = F.batch_norm(
        t64(x, False), rm, rv, t64(w, False), t64(b, False), training=True, momentum=0.2, eps=1e-5
    )
    mean = x.mean(axis=(0, 2, 3))
    var = x.var(axis=(0, 2, 3))
    expected = (x - mean[:, None, None]) / np.sqrt(var[:, None, None] + 1e-5) * w[
        :, None, None
    ] + b[:, None, None]
    np.testing.assert_allclose(y.detach().numpy(), expected, rtol=1e-10, atol=1e-12)
    n = x.size // 3
    np.testing.assert_allclose(rm.detach().numpy(), 0.2 * mean, rtol=1e-12)
    np.testing.assert_allclose(rv.detach().numpy(), 0.8 + 0.2 * var * n / (n - 1), rtol=1e-12)


def test_batch_norm_eval_uses_running_stats_and_gradients_check():
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 3))
    rm, rv = rng.standard_normal(3), rng.random(3) + 0.5
    y = F.batch_norm(t64(x, False), rm, rv, training=False)
    np.testing.assert_allclose(y.detach().numpy(), (x - rm) / np.sqrt(rv + 1e-5), rtol=1e-12)
    w, b = t64(rng.standard_normal(3)), t64(rng.standard_normal(3))
    assert gradcheck(
        lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True), (t64(x), w, b)
    )
    assert gradcheck(lambda x, w, b: F.batch_norm(x, rm, rv, w, b), (t64(x), w, b))


def test_batch_norm_errors_leave_running_stats_untouched():
    rm, rv = tg.zeros(3), tg.ones(3)
    with pytest.raises(
        ValueError,
        match=r"batch_norm: expected weight of shape \(3,\) for "
        r"input of shape \(4, 3\), got \(2,\)",
    ):
        F.batch_norm(tg.randn(4, 3), rm, rv, tg.ones(2), training=True)
    assert rm.detach().numpy().tolist() == [0, 0, 0] and rv.detach().numpy().tolist() == [1, 1, 1]
    with pytest.raises(
        ValueError, match="batch_norm: expected more than 1 value per channel when training"
    ):
        F.batch_norm(tg.randn(1, 3), rm, rv, training=True)
    with pytest.raises(
        ValueError,
        match="batch_norm: running_mean and running_var are required when training=False",
    ):
        F.batch_norm(tg.randn(4, 3), None, None)


def test_layer_norm_values_gradients_and_errors():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 3, 4))
    w, b = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    y = F.layer_norm(t64(x, False), (3, 4), t64(w, False), t64(b, False), eps=1e-5)
    m = x.mean(axis=(1, 2), keepdims=True)
    v = x.var(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(y.detach().numpy(), (x - m) / np.sqrt(v + 1e-5) * w + b, rtol=1e-10)
    assert gradcheck(lambda x, w, b: F.layer_norm(x, 4, w, b), (t64(x), t64(w[0]), t64(b[0])))
    with pytest.raises(
        ValueError,
        match=r"layer_norm: normalized_shape \(5,\) does not match "
        r"the last dims of input of shape \(2, 3, 4\)",
    ):
        F.layer_norm(t64(x, False), 5)


# ----------------------------------------------------------------------------------------
# losses


def test_reduction_is_validated_by_every_loss():
    x, t = tg.zeros(2, 3), tg.zeros(2, 3)
    y = tg.tensor(np.array([0, 1]))
    calls = [
        (F.mse_loss, t),
        (F.l1_loss, t),
        (F.huber_loss, t),
        (F.smooth_l1_loss, t),
        (F.binary_cross_entropy, t),
        (F.binary_cross_entropy_with_logits, t),
        (F.cross_entropy, y),
        (F.nll_loss, y),
    ]
    for fn, target in calls:
        with pytest.raises(
            ValueError,
            match=f"{fn.__name__}: reduction must be one of 'mean', 'sum', 'none', got 'avg'",
        ):
            fn(x, target, reduction="avg")


REGRESSION = {
    "mse_loss": (F.mse_loss, lambda d: d * d),
    "l1_loss": (F.l1_loss, np.abs),
    "huber_loss": (
        lambda x, t, reduction: F.huber_loss(x, t, reduction, delta=0.7),
        lambda d: np.where(np.abs(d) < 0.7, 0.5 * d * d, 0.7 * (np.abs(d) - 0.35)),
    ),
    "smooth_l1_loss": (
        lambda x, t, reduction: F.smooth_l1_loss(x, t, reduction, beta=0.7),
        lambda d: np.where(np.abs(d) < 0.7, 0.5 * d * d / 0.7, np.abs(d) - 0.35),
    ),
}


@pytest.mark.parametrize("name", sorted(REGRESSION))
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@settings(max_examples=10, deadline=None)
@given(shape=small_shapes, seed=seeds)
def test_regression_losses(name, reduction, shape, seed):
    fn, elementwise = REGRESSION[name]
    rng = np.random.default_rng(seed)
    x, t = rng.standard_normal(shape), rng.standard_normal(shape)
    d = x - t
    # keep away from the kinks at |d| = 0 and |d| = 0.7
    d = np.where(np.abs(d) < 0.05, d + 0.1, d)
    d = np.where(np.abs(np.abs(d) - 0.7) < 0.05, d * 1.2, d)
    x = t + d
    expected = {"mean": np.mean, "sum": np.sum, "none": lambda a: a}[reduction](elementwise(d))
    np.testing.assert_allclose(
        fn(t64(x, False), t64(t, False), reduction=reduction).detach().numpy(),
        expected,
        rtol=1e-12,
        atol=1e-14,
    )
    assert gradcheck(lambda x, t: fn(x, t, reduction=reduction), (t64(x), t64(t)))


def test_regression_loss_shape_mismatch_warns_or_raises():
    with pytest.warns(
        UserWarning,
        match=r"mse_loss: using a target size \(1, 3\) that is "
        r"different to the input size \(2, 3\)",
    ) as caught:
        F.mse_loss(tg.zeros(2, 3), tg.zeros(1, 3))
    assert caught[0].filename == __file__  # the caller's line, as PyTorch's warning
    with pytest.raises(
        ValueError,
        match=r"l1_loss: target of shape \(4,\) does not broadcast "
        r"with input of shape \(2, 3\)",
    ):
        F.l1_loss(tg.zeros(2, 3), tg.zeros(4))


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_mse_loss_broadcast_gradients_match_finite_differences(reduction):
    rng = np.random.default_rng(12)
    x, t = t64(rng.standard_normal((2, 1, 3))), t64(rng.standard_normal((4, 1)))
    with pytest.warns(UserWarning, match="mse_loss: using a target size"):
        assert F.mse_loss(x, t, reduction).shape == ((2, 4, 3) if reduction == "none" else ())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert gradcheck(lambda x, t: F.mse_loss(x, t, reduction), (x, t))
        assert gradgradcheck(lambda x, t: F.mse_loss(x, t, reduction), (x, t))


def test_mse_loss_dtypes_and_empty_input():
    x32 = tg.tensor(np.ones(3, np.float32), requires_grad=True)
    with pytest.warns(UserWarning, match="mse_loss: using a target size"):
        loss = F.mse_loss(x32, tg.tensor(np.float64(0.5)))  # broadcast first: float64 wins
    assert loss.dtype == np.float64 and loss.item() == 0.25
    loss.backward()
    assert x32.grad.dtype == np.float32
    np.testing.assert_array_equal(x32.grad.numpy(), np.full(3, 1 / 3, np.float32))
    assert F.mse_loss(x32, tg.tensor([1, 2, 3])).dtype == np.float32
    for reduction in ("mean", "sum", "none"):
        with pytest.raises(TypeError, match="mse_loss: not implemented for dtype int64"):
            F.mse_loss(tg.tensor([1, 2]), tg.tensor([0, 1]), reduction=reduction)
    empty = tg.zeros(0, requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 0 / 0 without numpy's RuntimeWarning
        loss = F.mse_loss(empty, tg.zeros(0))
        assert math.isnan(loss.item())
        loss.backward()
    assert empty.grad.shape == (0,)
    assert F.mse_loss(empty, tg.zeros(0), reduction="sum").item() == 0.0


def _ce_reference(x, y, weight=None, ignore_index=-100, ls=0.0, reduction="mean"):
    n, c = x.shape
    logp = (
        x
        - np.log(np.exp(x - x.max(1, keepdims=True)).sum(1, keepdims=True))
        - x.max(1, keepdims=True)
    )
    w = np.ones(c) if weight is None else weight
    losses, denom = np.zeros(n), 0.0
    for i in range(n):
        if y[i] == ignore_index:
            continue
        losses[i] = -(1 - ls) * w[y[i]] * logp[i, y[i]] - ls / c * (w * logp[i]).sum()
        denom += w[y[i]]
    if reduction == "none":
        return losses
    return losses.sum() if reduction == "sum" else losses.sum() / denom


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@settings(max_examples=15, deadline=None)
@given(
    n=st.integers(1, 5),
    c=st.integers(2, 5),
    seed=seeds,
    weighted=st.booleans(),
    ls=st.sampled_from([0.0, 0.1, 0.5]),
    ignore=st.booleans(),
)
def test_cross_entropy_matches_reference_and_finite_differences(
    reduction, n, c, seed, weighted, ls, ignore
):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, c)) * 2
    y = rng.integers(0, c, n)
    if ignore:
        y[0] = -100
        if n == 1 and reduction == "mean":
            y[0] = 0  # all ignored gives 0/0, as in PyTorch
    weight = rng.random(c) + 0.5 if weighted else None
    kwargs = dict(weight=weight, reduction=reduction, label_smoothing=ls)
    out = F.cross_entropy(t64(x, False), y, **kwargs)
    np.testing.assert_allclose(
        out.detach().numpy(),
        _ce_reference(x, y, weight, -100, ls, reduction),
        rtol=1e-10,
        atol=1e-12,
    )
    assert gradcheck(lambda x: F.cross_entropy(x, y, **kwargs), (t64(x),))


def test_cross_entropy_backward_is_softmax_minus_onehot_over_n():
    rng = np.random.default_rng(7)
    x = t64(rng.standard_normal((4, 3)))
    y = np.array([0, 2, 1, 2])
    F.cross_entropy(x, y).backward()
    p = np.exp(x.detach().numpy()) / np.exp(x.detach().numpy()).sum(1, keepdims=True)
    np.testing.assert_allclose(x.grad.detach().numpy(), (p - np.eye(3)[y]) / 4, rtol=1e-12)
    assert F.cross_entropy(x, y).grad_fn.op.name == "cross_entropy"
    # logits in Fortran order (a transposed tensor): the same loss and gradient, bit for bit
    z = rng.standard_normal((3, 4)).astype(np.float32)
    a, b = tg.tensor(z.T.copy(), requires_grad=True), tg.tensor(z, requires_grad=True)
    la, lb = F.cross_entropy(a, y), F.cross_entropy(b.T, y)
    la.backward()
    lb.backward()
    assert la.detach().numpy().tobytes() == lb.detach().numpy().tobytes()
    assert a.grad.numpy().tobytes() == b.grad.numpy().T.copy().tobytes()


def test_cross_entropy_second_derivative_and_float32():
    rng = np.random.default_rng(8)
    y = np.array([1, 0, 2])
    assert gradgradcheck(
        lambda x: F.cross_entropy(x, y, label_smoothing=0.1), (t64(rng.standard_normal((3, 3))),)
    )
    x32 = tg.tensor(rng.standard_normal((3, 3)).astype(np.float32), requires_grad=True)
    loss = F.cross_entropy(x32, y)
    loss.backward()
    assert loss.dtype == np.float32 and x32.grad.dtype == np.float32


def test_cross_entropy_spatial_unbatched_and_probability_targets():
    rng = np.random.default_rng(9)
    x = rng.standard_normal((2, 3, 4, 5))
    y = rng.integers(0, 3, (2, 4, 5))
    flat_x = x.transpose(0, 2, 3, 1).reshape(-1, 3)
    out = F.cross_entropy(t64(x, False), y, reduction="none")
    assert out.shape == (2, 4, 5)
    np.testing.assert_allclose(
        out.detach().numpy().ravel(), _ce_reference(flat_x, y.ravel(), reduction="none"), rtol=1e-10
    )
    assert gradcheck(lambda x: F.cross_entropy(x, y), (t64(x),))
    single = F.cross_entropy(t64(x[0, :, 0, 0], False), np.array(y[0, 0, 0]))
    np.testing.assert_allclose(single.detach().numpy(), _ce_reference(flat_x[:1], y.ravel()[:1]))
    probs = rng.random((4, 3))
    probs /= probs.sum(1, keepdims=True)
    logits = rng.standard_normal((4, 3))
    logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    np.testing.assert_allclose(
        F.cross_entropy(t64(logits, False), probs).detach().numpy(),
        -(probs * logp).sum(1).mean(),
        rtol=1e-12,
    )
    assert gradcheck(
        lambda x, p: F.cross_entropy(x, p, label_smoothing=0.2), (t64(logits), t64(probs))
    )


def test_cross_entropy_errors():
    x = tg.zeros(2, 3)
    with pytest.raises(IndexError, match="cross_entropy: target 3 is out of bounds for 3 classes"):
        F.cross_entropy(x, np.array([0, 3]))
    with pytest.raises(
        ValueError,
        match=r"cross_entropy: expected target of shape \(2,\) for "
        r"input of shape \(2, 3\), got \(3,\)",
    ):
        F.cross_entropy(x, np.array([0, 1, 2]))
    with pytest.raises(ValueError, match=r"cross_entropy: expected weight of shape \(3,\)"):
        F.cross_entropy(x, np.array([0, 1]), weight=np.ones(2))
    with pytest.raises(ValueError, match="cross_entropy: label_smoothing must be between"):
        F.cross_entropy(x, np.array([0, 1]), label_smoothing=1.5)


def test_nll_loss_matches_cross_entropy_on_log_softmax():
    rng = np.random.default_rng(10)
    x = rng.standard_normal((5, 4))
    y = np.array([0, 3, -100, 1, 1])
    w = rng.random(4) + 0.5
    for reduction in ("mean", "sum", "none"):
        a = F.nll_loss(F.log_softmax(t64(x, False), 1), y, weight=w, reduction=reduction)
        b = F.cross_entropy(t64(x, False), y, weight=w, reduction=reduction)
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-12)
    assert gradcheck(lambda lp: F.nll_loss(lp, y, weight=w), (t64(x),))


def test_binary_cross_entropy_values_gradients_and_clamp():
    rng = np.random.default_rng(11)
    p = rng.random((3, 4)) * 0.9 + 0.05
    t = rng.random((3, 4))
    w = rng.random((3, 4))
    expected = -(w * (t * np.log(p) + (1 - t) * np.log(1 - p)))
    np.testing.assert_allclose(
        F.binary_cross_entropy(t64(p, False), t64(t, False), w, reduction="none").detach().numpy(),
        expected,
        rtol=1e-12,
    )
    assert gradcheck(lambda p, t: F.binary_cross_entropy(p, t, w), (t64(p), t64(t)))
    edge = F.binary_cross_entropy(t64([0.0, 1.0]), t64([1.0, 0.0]), reduction="none")
    np.testing.assert_allclose(edge.detach().numpy(), [100.0, 100.0])
    with pytest.raises(
        ValueError, match="binary_cross_entropy: all elements of input should be between 0 and 1"
    ):
        F.binary_cross_entropy(t64([1.5], False), t64([1.0], False))


def test_binary_cross_entropy_with_logits_is_stable_and_correct():
    rng = np.random.default_rng(12)
    x = rng.standard_normal((3, 4)) * 3
    t = rng.random((3, 4))
    pw = rng.random(4) + 0.5
    s = 1 / (1 + np.exp(-x))
    expected = -(pw * t * np.log(s) + (1 - t) * np.log(1 - s))
    out = F.binary_cross_entropy_with_logits(
        t64(x, False), t64(t, False), reduction="none", pos_weight=pw
    )
    np.testing.assert_allclose(out.detach().numpy(), expected, rtol=1e-10)
    assert gradcheck(
        lambda x, t: F.binary_cross_entropy_with_logits(x, t, pos_weight=pw), (t64(x), t64(t))
    )
    big = t64([-1000.0, 0.0, 1000.0])
    loss = F.binary_cross_entropy_with_logits(big, t64([1.0, 1.0, 0.0], False), reduction="none")
    np.testing.assert_allclose(loss.detach().numpy(), [1000.0, math.log(2), 1000.0])
    loss.sum().backward()
    np.testing.assert_allclose(big.grad.detach().numpy(), [-1.0, -0.5, 1.0])


def test_public_surface():
    for name in F.__all__:
        assert callable(getattr(F, name)), name
    assert {"conv2d", "max_pool2d", "cross_entropy", "gelu", "batch_norm"} <= set(F.__all__)


# ----------------------------------------------------------------------------------------
# optional comparison with PyTorch


def test_cross_entropy_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(13)
    x = rng.standard_normal((6, 5))
    y = np.array([0, 4, -100, 2, 2, 1])
    w = rng.random(5) + 0.5
    for kwargs in (
        dict(),
        dict(weight=w),
        dict(label_smoothing=0.2),
        dict(weight=w, label_smoothing=0.3),
        dict(reduction="none", weight=w),
        dict(reduction="sum", label_smoothing=0.1),
    ):
        ours = t64(x)
        theirs = torch.tensor(x, requires_grad=True)
        tk = {k: torch.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
        a = F.cross_entropy(ours, y, **kwargs)
        b = torch.nn.functional.cross_entropy(theirs, torch.tensor(y), **tk)
        np.testing.assert_allclose(
            a.detach().numpy(), b.detach().numpy(), rtol=1e-10, err_msg=str(kwargs)
        )
        a.sum().backward()
        b.sum().backward()
        np.testing.assert_allclose(
            ours.grad.detach().numpy(),
            theirs.grad.numpy(),
            rtol=1e-10,
            atol=1e-14,
            err_msg=str(kwargs),
        )


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize(
    "dtypes,shapes",
    [
        (("float64", "float64"), ((3, 4), (3, 4))),
        (("float32", "float32"), ((3, 4), (1, 4))),
        (("float32", "float64"), ((3, 4), ())),
        (("float64", "float32"), ((4,), (3, 4))),
        (("float32", "int64"), ((3, 4), (3, 4))),
    ],
)
def test_mse_loss_matches_torch(reduction, dtypes, shapes):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(16)
    x = rng.standard_normal(shapes[0]).astype(dtypes[0])
    t = (rng.standard_normal(shapes[1]) * 3).astype(dtypes[1])
    grad = dtypes[1] != "int64"
    ours = [tg.tensor(x, requires_grad=True), tg.tensor(t, requires_grad=grad)]
    theirs = [torch.tensor(x, requires_grad=True), torch.tensor(t, requires_grad=grad)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the broadcast warning, on both sides
        a = F.mse_loss(*ours, reduction=reduction)
        b = torch.nn.functional.mse_loss(*theirs, reduction=reduction)
    assert str(a.dtype) == str(b.dtype).replace("torch.", "")
    rtol = 1e-6 if "float32" in dtypes else 1e-12
    np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=rtol)
    g = rng.standard_normal(b.shape)
    a.backward(tg.tensor(g.astype(str(a.dtype))))
    b.backward(torch.tensor(g, dtype=b.dtype))
    for o, th in zip(ours, theirs):
        if th.grad is None:
            assert o.grad is None
            continue
        assert o.grad.dtype == th.grad.numpy().dtype
        np.testing.assert_allclose(o.grad.numpy(), th.grad.numpy(), rtol=rtol, atol=1e-7)


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_matches_torch(approximate):
    torch = pytest.importorskip("torch")
    x = np.linspace(-6, 6, 101)
    ours, theirs = t64(x), torch.tensor(x, requires_grad=True)
    a = F.gelu(ours, approximate=approximate)
    b = torch.nn.functional.gelu(theirs, approximate=approximate)
    # 1 + erf(x) cancels for negative x: agreement is absolute, to a few ulps of 1
    np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-12, atol=1e-14)
    a.sum().backward()
    b.sum().backward()
    np.testing.assert_allclose(
        ours.grad.detach().numpy(), theirs.grad.numpy(), rtol=1e-12, atol=1e-14
    )


def test_batch_norm_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(14)
    x = rng.standard_normal((4, 3, 5, 5))
    w, b = rng.standard_normal(3), rng.standard_normal(3)
    rm, rv = np.zeros(3), np.ones(3)
    trm, trv = torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)
    ours = [t64(a) for a in (x, w, b)]
    theirs = [torch.tensor(a, requires_grad=True) for a in (x, w, b)]
    a = F.batch_norm(ours[0], rm, rv, ours[1], ours[2], training=True, momentum=0.3)
    t = torch.nn.functional.batch_norm(
        theirs[0], trm, trv, theirs[1], theirs[2], training=True, momentum=0.3
    )
    np.testing.assert_allclose(a.detach().numpy(), t.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(rm, trm.numpy(), rtol=1e-12)
    np.testing.assert_allclose(rv, trv.numpy(), rtol=1e-12)
    g = rng.standard_normal(x.shape)
    a.backward(tg.tensor(g))
    t.backward(torch.tensor(g))
    for o, th in zip(ours, theirs):
        np.testing.assert_allclose(o.grad.detach().numpy(), th.grad.numpy(), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(
    "name",
    [
        "softplus",
        "elu",
        "selu",
        "silu",
        "leaky_relu",
        "binary_cross_entropy_with_logits",
        "huber_loss",
        "smooth_l1_loss",
        "binary_cross_entropy",
    ],
)
def test_misc_functions_match_torch(name):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(15)
    x = rng.standard_normal((3, 4)) * 3
    if name == "binary_cross_entropy":
        x = 1 / (1 + np.exp(-x))
    t = rng.random((3, 4))
    ours, theirs = t64(x), torch.tensor(x, requires_grad=True)
    two = name.endswith("loss") or name.startswith("binary")
    args = (t64(t, False),) if two else ()
    targs = (torch.tensor(t),) if two else ()
    a = getattr(F, name)(ours, *args)
    b = getattr(torch.nn.functional, name)(theirs, *targs)
    np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-10, atol=1e-12)
    a.sum().backward()
    b.sum().backward()
    np.testing.assert_allclose(
        ours.grad.detach().numpy(), theirs.grad.numpy(), rtol=1e-10, atol=1e-12
    )
