"""Residual blocks, residual-era inits (zero-init, 1/sqrt(L), GPT-2, Fixup, ReZero,
delta-orthogonal) and the make_resnet builder: formulas, stream variance, gradients."""

import math

import numpy as np
import pytest

import tinygrad_init as tg
from tinygrad_init import init, models, nn
from tinygrad_init.gradcheck import gradcheck, gradgradcheck


def _np(t):
    return t.detach().numpy()


def _stream_variance_ratio(model, depth, batch=256, seed=1):
    """Var(stream after the last block) / Var(stream after the stem)."""
    x = tg.tensor(np.random.default_rng(seed).standard_normal((batch, 32)).astype(np.float32))
    with tg.no_grad():
        h = model[0](x)
        v0 = h.numpy().var()
        for block in list(model)[1 : depth + 1]:
            h = block(h)
    return float(h.numpy().var() / v0)


def test_residual_scale_table():
    assert init.residual_scale("none", 50) == 1.0
    assert init.residual_scale("zero", 50) == 0.0
    assert init.residual_scale("sqrt_depth", 16) == 0.25
    assert init.residual_scale("gpt2", 8) == 0.25
    assert math.isclose(init.residual_scale("fixup", 16, 3), 16 ** (-1 / 4))
    with pytest.raises(ValueError, match="rule must be one of 'none', 'zero'"):
        init.residual_scale("big", 3)
    with pytest.raises(ValueError, match="needs branch_layers >= 2"):
        init.residual_scale("fixup", 3, 1)
    with pytest.raises(ValueError, match="n_layers must be a positive integer"):
        init.residual_scale("gpt2", 0)


@pytest.mark.parametrize(
    "scale,expected,rtol",
    [
        ("none", 2.0**20, 0.25),  # each He branch doubles the variance
        ("zero", 1.0, 1e-6),
        ("rezero", 1.0, 1e-6),
        ("fixup", 1.0, 1e-6),
        ("sqrt_depth", (1 + 1 / 20) ** 20, 0.1),  # about e
        ("gpt2", (1 + 1 / 40) ** 20, 0.1),  # about e^(1/2)
        (0.5, 1.25**20, 0.15),
    ],
)
def test_make_resnet_stream_variance_follows_theory(scale, expected, rtol):
    model = models.make_resnet(depth=20, width=256, branch_scale=scale)
    assert math.isclose(_stream_variance_ratio(model, 20), expected, rel_tol=rtol)


def test_make_resnet_structure_and_names():
    model = models.make_resnet(depth=2, width=8, norm="batch", in_features=5, out_features=3)
    names = [n for n, _ in model.named_parameters()]
    assert names[:2] == ["0.weight", "0.bias"]
    assert "1.branch.0.weight" in names and "1.branch.2.weight" in names  # BatchNorm1d
    assert "1.branch.5.weight" in names and names[-1] == "3.bias"
    assert model(tg.randn(4, 5)).shape == (4, 3)
    conv = models.make_resnet(depth=2, width=4, kind="conv", image_size=6, in_channels=2)
    assert conv(tg.randn(2, 2, 6, 6)).shape == (2, 10)
    same = models.make_resnet(depth=3, generator=7)
    again = models.make_resnet(depth=3, generator=7)
    for (n, p), (_, q) in zip(same.named_parameters(), again.named_parameters()):
        np.testing.assert_array_equal(_np(p), _np(q), err_msg=n)


def test_make_resnet_branch_init_by_name():
    model = models.make_resnet(depth=1, width=400, init="zeros", branch_init="xavier_uniform")
    assert np.all(_np(model[0].weight) == 0) and np.all(_np(model[2].weight) == 0)
    w = _np(model[1].branch[1].weight)
    assert np.isclose(w.var(), 1 / 400, rtol=0.05)


def test_make_resnet_errors():
    with pytest.raises(ValueError, match="branch_scale must be a number or one of 'none'"):
        models.make_resnet(branch_scale="half")
    with pytest.raises(ValueError, match="norm must be None, 'batch' or 'layer'"):
        models.make_resnet(norm="group")
    with pytest.raises(ValueError, match="kind must be 'mlp' or 'conv'"):
        models.make_resnet(kind="rnn")
    with pytest.raises(ValueError, match="norm='layer' is for kind='mlp'"):
        models.make_resnet(kind="conv", norm="layer")
    with pytest.raises(ValueError, match="unknown initializer"):
        models.make_resnet(branch_init="nope")


def test_zero_init_residual_zeroes_the_last_norm_gain_when_one_ends_the_branch():
    block = nn.Residual(nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.Linear(4, 4), nn.LayerNorm(4)))
    model = nn.Sequential(nn.Linear(3, 4), block)
    init.zero_init_residual_(model)
    assert np.all(_np(block.branch[3].weight) == 0) and np.any(_np(block.branch[2].weight) != 0)
    x = tg.randn(5, 4)
    np.testing.assert_allclose(_np(block(x)), _np(x))
    with pytest.raises(ValueError, match="the model has no residual blocks"):
        init.zero_init_residual_(nn.Linear(2, 2))


def test_scale_residual_branches_gpt2_and_normal_init():
    model = models.make_resnet(depth=8, width=16, branch_scale="none", generator=0)
    before = _np(model[3].branch[3].weight).copy()
    init.scale_residual_branches_(model, "gpt2")
    np.testing.assert_allclose(_np(model[3].branch[3].weight), before / 4, rtol=1e-6)
    w = tg.zeros(512, 512)
    init.gpt2_residual_normal_(w, n_layers=12, generator=np.random.default_rng(0))
    assert math.isclose(_np(w).std(), 0.02 / math.sqrt(24), rel_tol=0.01)
    with pytest.raises(ValueError, match="use fixup_"):
        init.scale_residual_branches_(model, "fixup")


def test_fixup_scales_branches_and_zeroes_last_layers_and_classifier():
    base = models.make_resnet(depth=16, width=32, generator=3)
    copy = models.make_resnet(depth=16, width=32, generator=3)
    init.fixup_(copy)
    for b0, b1 in zip(list(base)[1:17], list(copy)[1:17]):
        np.testing.assert_allclose(
            _np(b1.branch[1].weight), _np(b0.branch[1].weight) * 16 ** (-0.5), rtol=1e-6
        )
        assert np.all(_np(b1.branch[3].weight) == 0)
    assert np.all(_np(copy[17].weight) == 0) and np.all(_np(copy[17].bias) == 0)
    gated = models.make_resnet(depth=2, branch_scale="fixup")
    assert float(_np(gated[1].branch[4].alpha)) == 1.0


def test_residual_gate_rezero_and_gradients():
    gate = nn.ResidualGate()
    assert repr(gate) == "ResidualGate(alpha=0)" and float(_np(gate.alpha)) == 0.0
    block = nn.Residual(nn.Sequential(nn.Linear(3, 3), nn.Tanh(), nn.ResidualGate(0.5))).double()
    x = tg.tensor(np.random.default_rng(0).standard_normal((4, 3)), requires_grad=True)
    params = list(block.parameters())
    assert gradcheck(lambda x, *ps: block(x), (x, *params))
    assert gradgradcheck(lambda x, *ps: block(x), (x, *params))
    gate.alpha.detach().numpy()[...] = 3.0
    gate.reset_parameters()
    assert float(_np(gate.alpha)) == 0.0
    with pytest.raises(TypeError, match="branch must be a Module"):
        nn.Residual(lambda x: x)


def test_delta_orthogonal_is_orthogonal_at_the_centre_and_zero_elsewhere():
    w = tg.zeros(8, 5, 3, 3)
    init.delta_orthogonal_(w, gain=2.0, generator=np.random.default_rng(0))
    data = _np(w)
    centre = data[:, :, 1, 1]
    np.testing.assert_allclose(centre.T @ centre, 4 * np.eye(5), atol=1e-6)
    data[:, :, 1, 1] = 0
    assert np.all(data == 0)
    # a conv with it preserves the norm of each pixel's channel vector
    conv = nn.Conv2d(4, 4, 3, padding=1, bias=False).double()
    init.delta_orthogonal_(conv.weight)
    x = tg.tensor(np.random.default_rng(1).standard_normal((2, 4, 5, 5)))
    np.testing.assert_allclose(
        np.linalg.norm(_np(conv(x)), axis=1), np.linalg.norm(_np(x), axis=1), rtol=1e-10
    )
    with pytest.raises(ValueError, match=r"in_channels \(5\) must be <= out_channels \(4\)"):
        init.delta_orthogonal_(tg.zeros(4, 5, 3))
    with pytest.raises(ValueError, match="only 3-, 4- and 5-D tensors"):
        init.delta_orthogonal_(tg.zeros(4, 4))
    assert init.get_initializer("delta_orthogonal") is init.delta_orthogonal_
