"""Tests for tinygrad_init.init: sample statistics against each scheme's formula,
exact structural properties (orthogonal, dirac, eye, sparse), reproducibility, errors."""

import copy
import math
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import tinygrad_init as tg
from tinygrad_init import init
from tinygrad_init.autograd import is_grad_enabled
from tinygrad_init.tensor import Tensor, default_generator

SEED = 1234
BIG = (1000, 1000)


def empty(*shape, dtype=np.float64):
    return Tensor(np.zeros(shape, dtype=dtype))


def rng(seed=SEED):
    return np.random.default_rng(seed)


def values(t):
    return np.asarray(t.detach().numpy(), dtype=np.float64)


def phi(x):
    return 0.0 if math.isinf(x) else math.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


def Phi(x):
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def truncated_moments(mean, std, a, b):
    """Mean and standard deviation of N(mean, std^2) conditioned on [a, b]."""
    al, be = (a - mean) / std, (b - mean) / std
    if al >= 0:  # upper tail: difference of upper-tail probabilities, no cancellation
        z = 0.5 * (math.erfc(al / math.sqrt(2)) - math.erfc(be / math.sqrt(2)))
    elif be <= 0:
        z = 0.5 * (math.erfc(-be / math.sqrt(2)) - math.erfc(-al / math.sqrt(2)))
    else:
        z = Phi(be) - Phi(al)
    t1 = (phi(al) - phi(be)) / z
    al_phi = 0.0 if math.isinf(al) else al * phi(al)
    be_phi = 0.0 if math.isinf(be) else be * phi(be)
    var = 1.0 + (al_phi - be_phi) / z - t1 * t1
    return mean + std * t1, std * math.sqrt(var)


def assert_stats(x, mean, std, rel_std=0.01):
    """Sample mean within 5 standard errors, sample std within rel_std."""
    assert abs(x.mean() - mean) < 5 * std / math.sqrt(x.size) + 1e-12, (x.mean(), mean)
    assert abs(x.std() / std - 1) < rel_std, (x.std(), std)


# ------------------------------------------------------------------------- calculate_gain


@pytest.mark.parametrize(
    "name, expected",
    [
        ("linear", 1.0),
        ("conv1d", 1.0),
        ("conv2d", 1.0),
        ("conv3d", 1.0),
        ("conv_transpose1d", 1.0),
        ("conv_transpose2d", 1.0),
        ("conv_transpose3d", 1.0),
        ("sigmoid", 1.0),
        ("tanh", 5.0 / 3.0),
        ("relu", math.sqrt(2.0)),
        ("leaky_relu", math.sqrt(2.0 / (1 + 0.01**2))),
        ("selu", 0.75),
    ],
)
def test_gain_table(name, expected):
    assert init.calculate_gain(name) == pytest.approx(expected, rel=1e-15)


def test_gain_leaky_relu_param():
    assert init.calculate_gain("leaky_relu", 0.2) == pytest.approx(math.sqrt(2 / 1.04))
    assert init.calculate_gain("leaky_relu", 1) == pytest.approx(1.0)


@pytest.mark.parametrize("param", [True, "0.1", [0.1]])
def test_gain_leaky_relu_bad_param(param):
    with pytest.raises(ValueError, match="negative_slope .* not a valid number"):
        init.calculate_gain("leaky_relu", param)


def test_gain_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="unsupported nonlinearity 'gelu'.*linear, conv1d.*selu"):
        init.calculate_gain("gelu")


def test_gain_bad_type():
    with pytest.raises(TypeError, match="name or a callable"):
        init.calculate_gain(3)


def test_gain_empirical_tanh():
    # 1 / sqrt(E[tanh(z)^2]), z ~ N(0, 1); reference from an independent 1-D integration.
    z = np.linspace(-12, 12, 400001)
    second = np.trapezoid(np.tanh(z) ** 2 * np.exp(-z * z / 2), z) / math.sqrt(2 * math.pi)
    assert init.calculate_gain(np.tanh) == pytest.approx(1 / math.sqrt(second), abs=1e-6)
    assert init.calculate_gain(np.tanh) == pytest.approx(1.59254, abs=1e-5)


def test_gain_empirical_relu_and_leaky_are_exact():
    # Gauss-Hermite nodes are symmetric and the rule is exact for z^2, so the kink at 0
    # costs nothing: E[relu(z)^2] = 1/2 and E[leaky(z)^2] = (1 + a^2) / 2 to rounding.
    assert init.calculate_gain(lambda x: np.maximum(x, 0)) == pytest.approx(math.sqrt(2), 1e-12)
    leaky = init.calculate_gain(lambda x: np.where(x > 0, x, 0.2 * x))
    assert leaky == pytest.approx(init.calculate_gain("leaky_relu", 0.2), rel=1e-12)


def test_gain_empirical_shifted_relu_converges():
    # A kink away from the nodes' symmetry: E[relu(z - 1)^2] = 2 (1 - Phi(1)) - phi(1).
    exact = 2 * (1 - Phi(1.0)) - phi(1.0)
    gain = init.calculate_gain(lambda x: np.maximum(x - 1, 0))
    assert gain == pytest.approx(1 / math.sqrt(exact), rel=1e-4)


def test_gain_empirical_identity_and_linear():
    assert init.calculate_gain(lambda x: x) == pytest.approx(1.0, abs=1e-12)
    assert init.calculate_gain(lambda x: 3 * x) == pytest.approx(1 / 3, abs=1e-12)


def test_gain_empirical_tensor_function():
    def tensor_only(t):
        if not isinstance(t, Tensor):
            raise TypeError("Tensor expected")
        return Tensor(np.tanh(t.detach().numpy()))

    assert init.calculate_gain(tensor_only) == pytest.approx(init.calculate_gain(np.tanh), 1e-6)
    # A function that returns a Tensor for a numpy input is unwrapped.
    wrapped = init.calculate_gain(lambda x: Tensor(np.asarray(np.tanh(x))))
    assert wrapped == pytest.approx(init.calculate_gain(np.tanh), 1e-6)


def test_gain_empirical_tensor_methods():
    # ndarray has no .tanh(), so the activation is called with a Tensor.
    assert init.calculate_gain(lambda t: t.tanh()) == pytest.approx(1.5925374, abs=1e-6)
    assert init.calculate_gain(lambda t: t.relu()) == pytest.approx(math.sqrt(2), rel=1e-6)


def test_gain_empirical_errors():
    with pytest.raises(ValueError, match=r"E\[f\(z\)\^2\].*finite positive"):
        init.calculate_gain(lambda x: np.zeros_like(x))
    with pytest.raises(ValueError, match="must be elementwise"):
        init.calculate_gain(lambda x: np.sum(x))

    def broken(x):
        raise RuntimeError("boom")

    with pytest.raises(TypeError, match="failed on a numpy array .* and on a Tensor"):
        init.calculate_gain(broken)


# ------------------------------------------------------------------------- fans


@pytest.mark.parametrize(
    "shape, fans",
    [
        ((16, 8), (8, 16)),
        ((4, 2, 5), (10, 20)),
        ((32, 16, 3, 3), (144, 288)),
        ((8, 4, 3, 5), (60, 120)),
        ((2, 3, 4, 5, 6), (360, 240)),
    ],
)
def test_fans_of_linear_and_conv_shapes(shape, fans):
    assert init._calculate_fan_in_and_fan_out(shape) == fans
    assert init._calculate_fan_in_and_fan_out(empty(*shape)) == fans


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(1, 7), min_size=2, max_size=5))
def test_fans_formula(shape):
    fan_in, fan_out = init._calculate_fan_in_and_fan_out(tuple(shape))
    receptive = int(np.prod(shape[2:]))
    assert (fan_in, fan_out) == (shape[1] * receptive, shape[0] * receptive)


@pytest.mark.parametrize("shape", [(5,), ()])
def test_fans_need_two_dims(shape):
    with pytest.raises(
        ValueError, match=rf"fewer than 2 dimensions, got shape {re.escape(str(shape))}"
    ):
        init._calculate_fan_in_and_fan_out(shape)


def test_fan_based_init_of_a_vector_names_the_shape():
    with pytest.raises(ValueError, match=r"fewer than 2 dimensions, got shape \(7,\)"):
        init.xavier_uniform_(empty(7))


# ------------------------------------------------------------------------- basic fills


def test_uniform_stats_and_bounds():
    t = init.uniform_(empty(*BIG), -0.5, 1.5, generator=rng())
    x = values(t)
    assert x.min() >= -0.5 and x.max() <= 1.5
    assert x.min() < -0.499 and x.max() > 1.499
    assert_stats(x, 0.5, 2.0 / math.sqrt(12))


def test_uniform_default_is_unit_interval():
    x = values(init.uniform_(empty(*BIG), generator=rng()))
    assert x.min() >= 0.0 and x.max() <= 1.0
    assert_stats(x, 0.5, 1 / math.sqrt(12))


def test_normal_stats():
    x = values(init.normal_(empty(*BIG), mean=2.0, std=0.3, generator=rng()))
    assert_stats(x, 2.0, 0.3)


def test_small_normal_stats():
    x = values(init.small_normal_(empty(*BIG), generator=rng()))
    assert_stats(x, 0.0, 0.01)


def test_truncation_constant_is_std_of_the_cut_normal():
    assert truncated_moments(0.0, 1.0, -2.0, 2.0)[1] == pytest.approx(
        init._TRUNC_STD_CORRECTION, abs=1e-15
    )


def test_trunc_normal_defaults_match_formula():
    x = values(init.trunc_normal_(empty(*BIG), generator=rng()))
    assert x.min() >= -2.0 and x.max() <= 2.0
    assert_stats(x, 0.0, 0.87962566103423978)


@pytest.mark.parametrize(
    "mean, std, a, b",
    [
        (1.0, 2.0, -1.0, 4.0),
        (0.0, 1.0, 3.0, 4.0),  # a far-tail interval
        (0.0, 1.0, -4.0, -3.0),
        (0.0, 1.0, 5.0, math.inf),
        (0.0, 1.0, -0.1, 0.1),  # narrow around the mean
        (10.0, 0.5, -math.inf, 9.0),
        (0.0, 1.0, 8.0, 8.5),
    ],
)
def test_trunc_normal_moments(mean, std, a, b):
    x = values(init.trunc_normal_(empty(400, 1000), mean, std, a, b, generator=rng()))
    assert x.min() >= a and x.max() <= b
    m, s = truncated_moments(mean, std, a, b)
    assert_stats(x, m, s)


@settings(max_examples=60, deadline=None)
@given(
    mean=st.floats(-5, 5),
    std=st.floats(0.01, 5),
    lo=st.floats(-6, 6),
    width=st.floats(0.001, 10),
    dtype=st.sampled_from([np.float32, np.float64]),
)
def test_trunc_normal_respects_bounds(mean, std, lo, width, dtype):
    a, b = mean + lo * std, mean + (lo + width) * std
    t = init.trunc_normal_(empty(300, dtype=dtype), mean, std, a, b, generator=rng())
    x = t.detach().numpy()
    assert np.all(x >= np.asarray(a, dtype=x.dtype)) and np.all(x <= np.asarray(b, dtype=x.dtype))


def test_trunc_normal_zero_std_is_clipped_mean():
    assert np.all(init.trunc_normal_(empty(3, 4), 5.0, 0.0, -1.0, 2.0).detach().numpy() == 2.0)


def test_constant_ones_zeros():
    t = empty(3, 4)
    assert np.all(init.constant_(t, 0.25).detach().numpy() == 0.25)
    assert np.all(init.ones_(t).detach().numpy() == 1.0)
    assert np.all(init.zeros_(t).detach().numpy() == 0.0)
    ints = Tensor(np.full((2, 2), 7, dtype=np.int64))
    assert (
        np.all(init.zeros_(ints).detach().numpy() == 0) and ints.detach().numpy().dtype == np.int64
    )


def test_eye_rectangular():
    assert np.array_equal(init.eye_(empty(3, 5)).detach().numpy(), np.eye(3, 5))
    assert np.array_equal(init.eye_(empty(4, 2)).detach().numpy(), np.eye(4, 2))


def test_eye_needs_2d():
    with pytest.raises(ValueError, match=r"eye_: only 2-D tensors .* shape \(2, 2, 2\)"):
        init.eye_(empty(2, 2, 2))


# ------------------------------------------------------------------------- variance scaling

SHAPE = (1000, 500)  # fan_in 500, fan_out 1000, fan_avg 750
FANS = {"fan_in": 500, "fan_out": 1000, "fan_avg": 750}


@pytest.mark.parametrize("mode", ["fan_in", "fan_out", "fan_avg"])
@pytest.mark.parametrize(
    "distribution", ["truncated_normal", "normal", "untruncated_normal", "uniform"]
)
def test_variance_scaling_variance(mode, distribution):
    scale = 3.0
    t = init.variance_scaling_(empty(*SHAPE), scale, mode, distribution, generator=rng())
    x = values(t)
    std = math.sqrt(scale / FANS[mode])
    assert_stats(x, 0.0, std)
    if distribution == "uniform":
        limit = math.sqrt(3) * std
        assert np.abs(x).max() <= limit and np.abs(x).max() > 0.999 * limit
    elif distribution == "truncated_normal":
        cut = 2 * std / 0.87962566103423978
        assert np.abs(x).max() <= cut and np.abs(x).max() > 0.999 * cut
    else:  # untruncated: 5e5 normal draws reach beyond 4 standard deviations
        assert np.abs(x).max() > 4 * std


def test_variance_scaling_conv_shape_uses_receptive_field():
    x = values(init.variance_scaling_(empty(128, 64, 5, 5), 2.0, "fan_in", "normal", rng()))
    assert_stats(x, 0.0, math.sqrt(2.0 / (64 * 25)))


def _check(x, std, kind):
    assert_stats(x, 0.0, std)
    if kind == "uniform":
        assert np.abs(x).max() <= math.sqrt(3) * std
    elif kind == "truncated":
        assert np.abs(x).max() <= 2 * std / 0.87962566103423978
    else:
        assert np.abs(x).max() > 4 * std


@pytest.mark.parametrize(
    "fn, kwargs, std, kind",
    [
        (init.xavier_uniform_, {"gain": 2.0}, 2.0 * math.sqrt(2 / 1500), "uniform"),
        (init.xavier_normal_, {"gain": 0.5}, 0.5 * math.sqrt(2 / 1500), "normal"),
        (init.glorot_uniform_, {}, math.sqrt(2 / 1500), "uniform"),
        (init.glorot_normal_, {}, math.sqrt(2 / 1500), "truncated"),
        (init.kaiming_uniform_, {}, math.sqrt(2 / 500), "uniform"),
        (init.kaiming_normal_, {}, math.sqrt(2 / 500), "normal"),
        (
            init.kaiming_normal_,
            {"mode": "fan_out", "nonlinearity": "relu"},
            math.sqrt(2 / 1000),
            "normal",
        ),
        (
            init.kaiming_uniform_,
            {"a": 0.2, "nonlinearity": "leaky_relu"},
            math.sqrt(2 / 1.04 / 500),
            "uniform",
        ),
        (init.kaiming_normal_, {"nonlinearity": "tanh"}, 5 / 3 / math.sqrt(500), "normal"),
        (init.he_uniform_, {}, math.sqrt(2 / 500), "uniform"),
        (init.he_normal_, {}, math.sqrt(2 / 500), "truncated"),
        (init.lecun_uniform_, {}, math.sqrt(1 / 500), "uniform"),
        (init.lecun_normal_, {}, math.sqrt(1 / 500), "truncated"),
        (init.default_uniform_, {}, math.sqrt(1 / 3 / 500), "uniform"),
    ],
    ids=lambda v: getattr(v, "__name__", None),
)
def test_presets_match_their_formula(fn, kwargs, std, kind):
    _check(values(fn(empty(*SHAPE), generator=rng(), **kwargs)), std, kind)


def test_kaiming_sqrt5_is_pytorch_default():
    # PyTorch's Linear default, kaiming_uniform_(a=sqrt(5)), is U(-1/sqrt(fan_in), ...).
    a = init.kaiming_uniform_(empty(*SHAPE), a=math.sqrt(5), generator=rng()).detach().numpy()
    b = init.default_uniform_(empty(*SHAPE), generator=rng()).detach().numpy()
    np.testing.assert_allclose(a, b, rtol=1e-12)
    assert np.abs(b).max() <= 1 / math.sqrt(500)


def test_kaiming_accepts_callable_nonlinearity():
    x = values(init.kaiming_normal_(empty(*SHAPE), nonlinearity=np.tanh, generator=rng()))
    assert_stats(x, 0.0, init.calculate_gain(np.tanh) / math.sqrt(500))


def test_default_uniform_bias_with_given_fan_in():
    x = values(init.default_uniform_(empty(100000), fan_in=64, generator=rng()))
    assert np.abs(x).max() <= 1 / 8 and np.abs(x).max() > 0.999 / 8
    with pytest.raises(ValueError, match="fan_in must be a positive integer"):
        init.default_uniform_(empty(3), fan_in=0)


@pytest.mark.parametrize(
    "fn, kwargs, scale, mode, distribution",
    [
        (init.xavier_uniform_, {"gain": 1.5}, 2.25, "fan_avg", "uniform"),
        (init.xavier_normal_, {"gain": 1.5}, 2.25, "fan_avg", "normal"),
        (init.kaiming_uniform_, {"mode": "fan_out"}, 2.0, "fan_out", "uniform"),
        (init.kaiming_normal_, {"nonlinearity": "selu"}, 0.5625, "fan_in", "normal"),
        (init.glorot_normal_, {}, 1.0, "fan_avg", "truncated_normal"),
        (init.he_normal_, {}, 2.0, "fan_in", "truncated_normal"),
        (init.lecun_uniform_, {}, 1.0, "fan_in", "uniform"),
    ],
)
def test_presets_are_variance_scaling(fn, kwargs, scale, mode, distribution):
    a = fn(empty(16, 8, 3, 3), generator=rng(), **kwargs).detach().numpy()
    b = (
        init.variance_scaling_(empty(16, 8, 3, 3), scale, mode, distribution, rng())
        .detach()
        .numpy()
    )
    np.testing.assert_allclose(a, b, rtol=1e-12)


# ------------------------------------------------------------------------- orthogonal


@pytest.mark.parametrize("shape", [(50, 100), (100, 50), (30, 30), (64, 32, 3, 3), (8, 500)])
@pytest.mark.parametrize("gain", [1.0, 2.5])
def test_orthogonal(shape, gain):
    w = values(init.orthogonal_(empty(*shape), gain=gain, generator=rng()))
    w = w.reshape(shape[0], -1)
    rows, cols = w.shape
    if rows <= cols:
        np.testing.assert_allclose(w @ w.T, gain**2 * np.eye(rows), atol=1e-10)
    else:
        np.testing.assert_allclose(w.T @ w, gain**2 * np.eye(cols), atol=1e-10)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 40), st.integers(1, 40))
def test_orthogonal_any_shape(rows, cols):
    w = values(init.orthogonal_(empty(rows, cols), generator=rng()))
    gram = w @ w.T if rows <= cols else w.T @ w
    np.testing.assert_allclose(gram, np.eye(min(rows, cols)), atol=1e-10)


def test_orthogonal_sign_correction_makes_it_unbiased():
    # Without multiplying Q by sign(diag(R)), LAPACK's Householder QR gives Q[0, 0] < 0
    # nearly always; with it, Q's first column is a uniformly random direction.
    g = rng()
    firsts = np.array(
        [init.orthogonal_(empty(4, 4), generator=g).detach().numpy()[0, 0] for _ in range(2000)]
    )
    assert 0.45 < np.mean(firsts > 0) < 0.55


def test_orthogonal_needs_2d():
    with pytest.raises(ValueError, match=r"2 or more dimensions are supported, got shape \(6,\)"):
        init.orthogonal_(empty(6))


# ------------------------------------------------------------------------- dirac


def conv_same(x, w, groups=1):
    """Direct N-d cross-correlation, stride 1, zero padding k // 2 (odd kernels)."""
    n, _, *spatial = x.shape
    out_ch, in_per_group, *kernel = w.shape
    out_per_group = out_ch // groups
    pad = [(0, 0), (0, 0)] + [(k // 2, k // 2) for k in kernel]
    xp = np.pad(x, pad)
    out = np.zeros((n, out_ch, *spatial))
    for offset in np.ndindex(*kernel):
        window = xp[
            (slice(None), slice(None)) + tuple(slice(o, o + s) for o, s in zip(offset, spatial))
        ]
        for g in range(groups):
            xs = window[:, g * in_per_group : (g + 1) * in_per_group]
            ws = w[(slice(g * out_per_group, (g + 1) * out_per_group), slice(None)) + offset]
            out[:, g * out_per_group : (g + 1) * out_per_group] += np.einsum(
                "oc,nc...->no...", ws, xs
            )
    return out


@pytest.mark.parametrize(
    "wshape, xshape, groups",
    [
        ((4, 4, 3), (2, 4, 11), 1),
        ((6, 6, 3, 3), (2, 6, 7, 9), 1),
        ((5, 5, 5, 3), (1, 5, 8, 6), 1),
        ((3, 3, 3, 3, 3), (2, 3, 5, 4, 6), 1),
        ((4, 2, 3, 3), (2, 4, 6, 6), 2),
        ((6, 2, 1, 5), (1, 6, 4, 7), 3),
    ],
)
def test_dirac_conv_keeps_input(wshape, xshape, groups):
    w = values(init.dirac_(empty(*wshape), groups=groups))
    x = rng().standard_normal(xshape)
    np.testing.assert_array_equal(conv_same(x, w, groups), x)


def test_dirac_more_outputs_than_inputs():
    w = values(init.dirac_(empty(6, 4, 3, 3)))
    x = rng().standard_normal((2, 4, 5, 5))
    y = conv_same(x, w)
    np.testing.assert_array_equal(y[:, :4], x)
    assert np.all(y[:, 4:] == 0)


def test_dirac_errors():
    with pytest.raises(ValueError, match=r"3-, 4- and 5-D .* shape \(4, 4\)"):
        init.dirac_(empty(4, 4))
    with pytest.raises(ValueError, match=r"dim 0 of shape \(6, 2, 3, 3\) \(6\) must be divisible"):
        init.dirac_(empty(6, 2, 3, 3), groups=4)
    with pytest.raises(ValueError, match="groups must be a positive integer"):
        init.dirac_(empty(6, 2, 3, 3), groups=0)


# ------------------------------------------------------------------------- sparse


def test_sparse_zero_count_per_column_and_std():
    t = init.sparse_(empty(1000, 200), sparsity=0.3, std=0.02, generator=rng())
    x = values(t)
    assert np.all((x == 0).sum(axis=0) == 300)
    assert_stats(x[x != 0], 0.0, 0.02)


def test_sparse_rounds_up_like_pytorch():
    x = values(init.sparse_(empty(10, 50), sparsity=0.25, generator=rng()))
    assert np.all((x == 0).sum(axis=0) == 3)  # ceil(0.25 * 10)
    assert not np.array_equal(x[:, 0] == 0, x[:, 1] == 0) or not np.array_equal(
        x[:, 1] == 0, x[:, 2] == 0
    )  # the zeroed rows differ between columns


@pytest.mark.parametrize("sparsity", [1.0, -0.1, 1.5])
def test_sparse_bad_sparsity(sparsity):
    with pytest.raises(ValueError, match=r"sparsity must be in \[0, 1\)"):
        init.sparse_(empty(4, 4), sparsity)


def test_sparse_needs_2d():
    with pytest.raises(ValueError, match=r"sparse_: only 2-D tensors .* shape \(4, 4, 4\)"):
        init.sparse_(empty(4, 4, 4), 0.5)


# ------------------------------------------------------------------------- generic behaviour

RANDOM = [n for n in init.INITIALIZERS if n not in ("zeros", "ones", "eye", "dirac")]


def _shape_for(name):
    return (12, 9) if name in ("eye", "sparse") else (8, 4, 3, 3)


@pytest.mark.parametrize("name", sorted(init.INITIALIZERS))
def test_same_seed_bit_identical_and_in_place(name):
    fn = init.get_initializer(name)
    t1, t2 = empty(*_shape_for(name), dtype=np.float32), empty(*_shape_for(name), dtype=np.float32)
    buffer = t1.detach().numpy()
    out = fn(t1, generator=rng(7))
    fn(t2, generator=rng(7))
    assert out is t1 and t1.detach().numpy() is buffer
    assert t1.detach().numpy().dtype == np.float32
    assert np.array_equal(t1.detach().numpy(), t2.detach().numpy())
    assert np.all(np.isfinite(t1.detach().numpy())) and np.any(t1.detach().numpy() != 0) == (
        name != "zeros"
    )


@pytest.mark.parametrize("name", RANDOM)
def test_different_seeds_differ(name):
    fn = init.get_initializer(name)
    a = fn(empty(*_shape_for(name)), generator=rng(1)).detach().numpy()
    b = fn(empty(*_shape_for(name)), generator=rng(2)).detach().numpy()
    assert not np.array_equal(a, b)


def test_init_is_not_recorded_in_the_graph():
    w = Tensor(np.zeros((4, 3)), requires_grad=True)
    init.kaiming_uniform_(w, generator=rng())
    assert w.is_leaf and w.grad_fn is None and w.requires_grad and np.any(w.detach().numpy() != 0)


def test_manual_seed_makes_default_draws_reproducible():
    tg.manual_seed(3)
    a = init.orthogonal_(empty(5, 7)).detach().numpy().copy()
    tg.manual_seed(3)
    assert np.array_equal(a, init.orthogonal_(empty(5, 7)).detach().numpy())


def test_default_generator_is_used_when_none_given():
    snapshot = copy.deepcopy(default_generator())
    a = init.xavier_uniform_(empty(20, 30)).detach().numpy()
    b = init.xavier_uniform_(empty(20, 30), generator=snapshot).detach().numpy()
    assert np.array_equal(a, b)
    c = init.xavier_uniform_(empty(20, 30)).detach().numpy()  # the default generator moved on
    assert not np.array_equal(a, c)


def test_float64_dtype_preserved():
    t = Tensor(np.zeros((40, 30), dtype=np.float64))
    dtype = t.detach().numpy().dtype
    init.kaiming_normal_(t, generator=rng())
    assert t.detach().numpy().dtype == dtype and np.any(t.detach().numpy() != 0)


@pytest.mark.parametrize(
    "fn", [init.uniform_, init.normal_, init.trunc_normal_, init.xavier_uniform_, init.orthogonal_]
)
def test_integer_tensor_is_type_error(fn):
    with pytest.raises(TypeError, match=r"floating-point tensor, got dtype int64"):
        fn(Tensor(np.zeros((4, 4), dtype=np.int64)))


def test_non_tensor_is_type_error():
    with pytest.raises(TypeError, match="expected a Tensor, got list"):
        init.normal_([[1.0, 2.0]])


def test_bad_generator_is_type_error():
    with pytest.raises(TypeError, match="generator must be a numpy.random.Generator"):
        init.normal_(empty(2, 2), generator=42)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda t: init.normal_(t, std=-1.0), "normal_: std must be non-negative, got -1.0"),
        (lambda t: init.trunc_normal_(t, std=-0.5), "trunc_normal_: std must be non-negative"),
        (lambda t: init.sparse_(t, 0.5, std=-1.0), "sparse_: std must be non-negative"),
        (lambda t: init.uniform_(t, 2.0, 1.0), r"uniform_: a must be <= b, got a=2.0, b=1.0"),
        (lambda t: init.trunc_normal_(t, a=1.0, b=-1.0), "trunc_normal_: a must be <= b"),
        (
            lambda t: init.variance_scaling_(t, mode="fan_sum"),
            "mode must be one of 'fan_in', 'fan_out', 'fan_avg'; got 'fan_sum'",
        ),
        (
            lambda t: init.variance_scaling_(t, distribution="gaussian"),
            "distribution must be one of 'truncated_normal', 'normal', 'untruncated_normal', "
            "'uniform'; got 'gaussian'",
        ),
        (lambda t: init.variance_scaling_(t, scale=-1.0), "scale must be non-negative"),
        (
            lambda t: init.kaiming_uniform_(t, mode="fan_avg"),
            "kaiming_uniform_: mode must be one of 'fan_in', 'fan_out'; got 'fan_avg'",
        ),
        (
            lambda t: init.kaiming_normal_(t, nonlinearity="swish"),
            "unsupported nonlinearity 'swish'",
        ),
        (lambda t: init.xavier_normal_(t, gain=-1.0), "xavier_normal_: gain must be non-negative"),
        (lambda t: init.normal_(t, mean=float("nan")), "mean must be a finite number"),
    ],
)
def test_bad_arguments_raise_and_leave_tensor_unchanged(call, message):
    t = Tensor(np.full((6, 5), 3.0))
    with pytest.raises(ValueError, match=re.escape(message) if "\\" not in message else message):
        call(t)
    assert np.all(t.detach().numpy() == 3.0)


def test_zero_element_tensor_is_left_alone():
    t = empty(0, 5)
    assert init.kaiming_uniform_(t) is t and t.detach().numpy().shape == (0, 5)
    assert init.orthogonal_(empty(3, 0)).detach().numpy().shape == (3, 0)


# ------------------------------------------------------------------------- registry

EXPECTED_NAMES = {
    "zeros", "ones", "uniform", "normal", "trunc_normal", "small_normal", "pytorch_default",
    "xavier_uniform", "xavier_normal", "glorot_uniform", "glorot_normal", "kaiming_uniform",
    "kaiming_normal", "he_uniform", "he_normal", "lecun_uniform", "lecun_normal",
    "orthogonal", "eye", "dirac", "delta_orthogonal",
}  # fmt: skip


def test_registry_names():
    assert set(init.INITIALIZERS) == EXPECTED_NAMES
    assert init.get_initializer("xavier_uniform") is init.xavier_uniform_
    assert init.get_initializer("pytorch_default") is init.default_uniform_
    assert init.get_initializer("small_normal") is init.small_normal_


def test_registry_callable_passes_through():
    def my_init(tensor, generator=None):
        return tensor

    assert init.get_initializer(my_init) is my_init


def test_registry_unknown_name_lists_known_names_sorted():
    listing = ", ".join(sorted(EXPECTED_NAMES))
    with pytest.raises(
        ValueError, match=re.escape(f"unknown initializer 'sparse'; known names: {listing}")
    ):
        init.get_initializer("sparse")


def test_registry_bad_type():
    with pytest.raises(TypeError, match="name or a callable, got int"):
        init.get_initializer(3)


def test_public_surface():
    assert set(init.__all__) <= set(dir(init))
    for name in ["calculate_gain", "variance_scaling_", "lsuv_", "get_initializer", "INITIALIZERS"]:
        assert name in init.__all__


# ------------------------------------------------------------------------- LSUV
# A minimal stand-in for the Module API (modules(), register_forward_hook, __call__).


class _Handle:
    def __init__(self, hooks, fn):
        self.hooks, self.fn = hooks, fn

    def remove(self):
        self.hooks.remove(self.fn)


class _Module:
    def __init__(self, *children):
        self.children, self.hooks = list(children), []

    def modules(self):
        yield self
        for c in self.children:
            yield from c.modules()

    def register_forward_hook(self, fn):
        self.hooks.append(fn)
        return _Handle(self.hooks, fn)

    def __call__(self, x):
        out = self.forward(x)
        for h in list(self.hooks):
            h(self, (x,), out)
        return out


class _Linear(_Module):
    def __init__(self, n_in, n_out):
        super().__init__()
        self.weight = Tensor(np.zeros((n_out, n_in)))
        self.bias = Tensor(np.zeros(n_out))

    def forward(self, x):
        return Tensor(
            x.detach().numpy() @ self.weight.detach().numpy().T + self.bias.detach().numpy()
        )


class _ReLU(_Module):
    def forward(self, x):
        return Tensor(np.maximum(x.detach().numpy(), 0))


class _Net(_Module):
    """Registers its layers in the reverse of the order it calls them."""

    def __init__(self):
        self.a, self.b, self.c = _Linear(64, 128), _Linear(128, 128), _Linear(128, 32)
        super().__init__(self.c, self.b, self.a, _ReLU())
        self.grad_enabled = []

    def forward(self, x):
        self.grad_enabled.append(is_grad_enabled())
        relu = self.children[3]
        return self.c(relu(self.b(relu(self.a(x)))))


def _layer_variances(net, data):
    outs = {}
    handles = [
        m.register_forward_hook(
            lambda mod, i, o: outs.setdefault(id(mod), np.var(o.detach().numpy()))
        )
        for m in (net.a, net.b, net.c)
    ]
    net(data)
    for h in handles:
        h.remove()
    return [outs[id(m)] for m in (net.a, net.b, net.c)]


def test_lsuv_gives_unit_variance_in_forward_order():
    net = _Net()
    data = Tensor(3.0 * rng().standard_normal((512, 64)))
    assert init.lsuv_(net, data, tol=0.05, generator=rng()) is net
    assert net.grad_enabled and not any(net.grad_enabled)  # every pass ran under no_grad
    for var in _layer_variances(net, data):
        assert abs(var - 1.0) < 0.05
    for m in (net.a, net.b, net.c):  # still orthogonal up to the scale LSUV chose
        w = m.weight.detach().numpy()
        gram = w @ w.T if w.shape[0] <= w.shape[1] else w.T @ w
        np.testing.assert_allclose(gram, gram[0, 0] * np.eye(len(gram)), atol=1e-10)
        assert not m.hooks  # every hook removed


def test_lsuv_warns_when_not_converged():
    # A linear layer reaches unit variance in one rescaling; a large bias (its spread
    # across features counts in var(output)) keeps layer 0 above 1 whatever the scale.
    net = _Net()
    net.a.bias.data[...] = 3.0 * rng(5).standard_normal(128)
    data = Tensor(rng().standard_normal((256, 64)))
    with pytest.warns(UserWarning) as record:
        init.lsuv_(net, data, max_iter=3, generator=rng())
    messages = [str(w.message) for w in record]
    assert len(messages) == 1
    assert re.match(r"lsuv_: layer 0 \(_Linear\) did not reach unit output variance", messages[0])


def test_lsuv_warns_about_unreached_layers():
    net = _Net()
    net.children.append(_Linear(3, 3))
    with pytest.warns(UserWarning, match=r"1 layer\(s\) not reached by model\(data\)"):
        init.lsuv_(net, Tensor(rng().standard_normal((64, 64))), generator=rng())


def test_lsuv_errors():
    data = Tensor(np.ones((2, 2)))
    with pytest.raises(ValueError, match="no layer with a weight of 2 or more dimensions"):
        init.lsuv_(_Module(_ReLU()), data)
    with pytest.raises(ValueError, match="tol must be positive"):
        init.lsuv_(_Net(), data, tol=0.0)
    with pytest.raises(ValueError, match="max_iter must be a positive integer"):
        init.lsuv_(_Net(), data, max_iter=0)
    with pytest.raises(TypeError, match=r"model must be a Module \(with .modules\(\)\)"):
        init.lsuv_(object(), data)
