"""GroupNorm, TransformerEncoderLayer, TransformerEncoder and make_transformer: values and
gradients vs PyTorch on the same weights, finite differences in float64, errors."""

import numpy as np
import pytest

import tinygrad_init as tg
import tinygrad_init.nn.functional as F
from tinygrad_init import init, models, nn
from tinygrad_init.gradcheck import gradcheck, gradgradcheck


def _np(t):
    return t.detach().numpy()


def _copy_to_torch(torch, ours, theirs):
    assert list(ours.state_dict()) == list(theirs.state_dict())
    theirs.load_state_dict(
        {k: torch.from_numpy(np.array(v.detach().numpy())) for k, v in ours.state_dict().items()}
    )


def _compare(torch, ours, theirs, x, call=None, kwargs=None, tkwargs=None):
    """Forward and backward of both on the same input; asserts and returns max |error|."""
    call = call or (lambda m, x, **kw: m(x, **kw))
    xo, xt = tg.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    yo, yt = call(ours, xo, **(kwargs or {})), call(theirs, xt, **(tkwargs or kwargs or {}))
    np.testing.assert_allclose(_np(yo), yt.detach().numpy(), rtol=1e-10, atol=1e-12)
    g = np.random.default_rng(11).standard_normal(yo.shape)
    yo.backward(tg.tensor(g))
    yt.backward(torch.tensor(g))
    np.testing.assert_allclose(_np(xo.grad), xt.grad.numpy(), rtol=1e-8, atol=1e-11)
    for (name, p), (_, q) in zip(ours.named_parameters(), theirs.named_parameters()):
        np.testing.assert_allclose(_np(p.grad), q.grad.numpy(), rtol=1e-8, atol=1e-11, err_msg=name)
    return float(np.abs(_np(yo) - yt.detach().numpy()).max())


# ----------------------------------------------------------------------------------------
# GroupNorm


@pytest.mark.parametrize("groups,shape", [(2, (3, 4, 5)), (1, (2, 6, 2, 2)), (6, (2, 6))])
def test_group_norm_matches_torch(groups, shape):
    torch = pytest.importorskip("torch")
    ours = nn.GroupNorm(groups, shape[1]).double()
    theirs = torch.nn.GroupNorm(groups, shape[1]).double()
    rng = np.random.default_rng(0)
    ours.weight.detach().numpy()[...] = rng.standard_normal(shape[1])
    ours.bias.detach().numpy()[...] = rng.standard_normal(shape[1])
    _copy_to_torch(torch, ours, theirs)
    _compare(torch, ours, theirs, rng.standard_normal(shape) * 3 + 1)
    assert repr(ours) == repr(theirs)


def test_group_norm_gradients_and_errors():
    gn = nn.GroupNorm(2, 4).double()
    x = tg.tensor(np.random.default_rng(1).standard_normal((2, 4, 3)), requires_grad=True)
    assert gradcheck(lambda x, w, b: gn(x), (x, gn.weight, gn.bias))
    assert gradgradcheck(lambda x: gn(x), (x,))
    with pytest.raises(ValueError, match="num_channels must be divisible by num_groups"):
        nn.GroupNorm(3, 4)
    with pytest.raises(ValueError, match=r"input with 4 channels, of shape \(N, 4, \*\)"):
        gn(tg.zeros(2, 3, 3))
    with pytest.raises(ValueError, match="divisible by num_groups"):
        F.group_norm(tg.zeros(2, 5), 2)


# ----------------------------------------------------------------------------------------
# TransformerEncoderLayer / TransformerEncoder

LAYER_CASES = {
    "post_ln_relu": dict(d_model=8, nhead=2, dim_feedforward=16, dropout=0.0),
    "pre_ln_gelu_batch_first": dict(
        d_model=8, nhead=4, dim_feedforward=12, dropout=0.0, activation="gelu",
        batch_first=True, norm_first=True,
    ),
    "no_bias": dict(d_model=4, nhead=1, dim_feedforward=8, dropout=0.0, bias=False),
}  # fmt: skip


@pytest.mark.parametrize("case", list(LAYER_CASES))
def test_encoder_layer_matches_torch(case):
    torch = pytest.importorskip("torch")
    cfg = LAYER_CASES[case]
    ours = nn.TransformerEncoderLayer(**cfg).double()
    theirs = torch.nn.TransformerEncoderLayer(**cfg).double()
    _copy_to_torch(torch, ours, theirs)
    x = np.random.default_rng(2).standard_normal((3, 5, cfg["d_model"]))
    _compare(torch, ours, theirs, x)


def test_encoder_layer_masks_match_torch():
    torch = pytest.importorskip("torch")
    cfg = LAYER_CASES["pre_ln_gelu_batch_first"]
    ours = nn.TransformerEncoderLayer(**cfg).double()
    theirs = torch.nn.TransformerEncoderLayer(**cfg).double()
    _copy_to_torch(torch, ours, theirs)
    causal = ~np.tri(5, 5, dtype=bool)
    kpm = np.zeros((3, 5), bool)
    kpm[1, 3:] = True
    kw = dict(src_mask=causal, src_key_padding_mask=kpm, is_causal=True)
    tkw = dict(
        src_mask=torch.tensor(causal), src_key_padding_mask=torch.tensor(kpm), is_causal=True
    )
    x = np.random.default_rng(3).standard_normal((3, 5, 8))
    _compare(torch, ours, theirs, x, kwargs=kw, tkwargs=tkw)


def test_encoder_with_norm_matches_torch_and_copies_the_layer():
    torch = pytest.importorskip("torch")
    cfg = dict(d_model=8, nhead=2, dim_feedforward=16, dropout=0.0, norm_first=True)
    ours = nn.TransformerEncoder(nn.TransformerEncoderLayer(**cfg), 3, norm=nn.LayerNorm(8))
    ours = ours.double()
    theirs = torch.nn.TransformerEncoder(
        torch.nn.TransformerEncoderLayer(**cfg), 3, norm=torch.nn.LayerNorm(8),
        enable_nested_tensor=False,
    ).double()  # fmt: skip
    np.testing.assert_array_equal(
        _np(ours.layers[0].linear1.weight), _np(ours.layers[2].linear1.weight)
    )
    rng = np.random.default_rng(4)
    for p in ours.parameters():  # distinct weights, so that a mix-up of layers shows
        p.detach().numpy()[...] += 0.1 * rng.standard_normal(p.shape)
    _copy_to_torch(torch, ours, theirs)
    _compare(torch, ours, theirs, rng.standard_normal((4, 2, 8)))


def test_encoder_layer_gradients_first_and_second_order():
    tg.manual_seed(0)
    layer = nn.TransformerEncoderLayer(4, 2, 6, dropout=0.0, batch_first=True).double()
    x = tg.tensor(np.random.default_rng(5).standard_normal((2, 3, 4)), requires_grad=True)
    params = list(layer.parameters())
    assert gradcheck(lambda x, *ps: layer(x), (x, *params))
    assert gradgradcheck(lambda x: layer(x), (x,))


def test_encoder_layer_dropout_and_errors():
    layer = nn.TransformerEncoderLayer(4, 2, 8, dropout=0.5, generator=np.random.default_rng(0))
    x = tg.randn(3, 2, 4)
    layer.eval()
    np.testing.assert_array_equal(_np(layer(x)), _np(layer(x)))
    layer.train()
    assert not np.allclose(_np(layer(x)), _np(layer(x)))
    with pytest.raises(RuntimeError, match="activation should be relu/gelu, not tanh"):
        nn.TransformerEncoderLayer(4, 2, activation="tanh")
    with pytest.raises(ValueError, match="embed_dim must be divisible by num_heads"):
        nn.TransformerEncoderLayer(6, 4)
    with pytest.raises(RuntimeError, match="Need attn_mask if specifying the is_causal hint"):
        nn.TransformerEncoder(layer, 2)(x, is_causal=True)


# ----------------------------------------------------------------------------------------
# make_transformer


def test_make_transformer_shapes_names_and_residual_scaling():
    model = models.make_transformer(depth=2, d_model=8, heads=2, vocab_size=5, generator=0)
    tokens = tg.tensor(np.array([[0, 1, 2, 3], [4, 3, 2, 1]]))
    assert model(tokens).shape == (2, 4, 5)
    names = [n for n, _ in model.named_parameters()]
    assert "encoder.layers.1.self_attn.in_proj_weight" in names and "encoder.norm.weight" in names
    a, b = model.encoder.layers[0].linear1.weight, model.encoder.layers[1].linear1.weight
    assert not np.allclose(_np(a), _np(b))  # drawn independently
    scaled = models.make_transformer(
        depth=2, d_model=8, heads=2, residual_scale="gpt2", generator=0
    )
    plain = models.make_transformer(depth=2, d_model=8, heads=2, generator=0)
    for i in range(2):
        for get in (lambda m: m.self_attn.out_proj.weight, lambda m: m.linear2.weight):
            np.testing.assert_allclose(
                _np(get(scaled.encoder.layers[i])), _np(get(plain.encoder.layers[i])) / 2, rtol=1e-6
            )


def test_make_transformer_init_by_name_and_causal_mask():
    model = models.make_transformer(depth=1, d_model=8, heads=2, init="zeros", causal=True)
    assert all(np.all(_np(p) == 0) for n, p in model.named_parameters() if p.ndim >= 2)
    model = models.make_transformer(depth=2, d_model=8, heads=2, causal=True, generator=1)
    tokens = np.array([[0, 1, 2, 3]])
    changed = tokens.copy()
    changed[0, 3] = 5
    a, b = _np(model(tg.tensor(tokens))), _np(model(tg.tensor(changed)))
    np.testing.assert_allclose(a[0, :3], b[0, :3], rtol=1e-6)  # the past cannot see the future
    assert not np.allclose(a[0, 3], b[0, 3])
    with pytest.raises(ValueError, match="residual_scale must be a number or one of 'none'"):
        models.make_transformer(residual_scale="fixup")
    with pytest.raises(ValueError, match=r"d_model \(6\) must be divisible by heads \(4\)"):
        models.make_transformer(d_model=6, heads=4)


def test_zero_init_residual_makes_a_pre_ln_transformer_the_identity_on_its_stream():
    model = models.make_transformer(depth=3, d_model=8, heads=2, residual_scale="zero")
    x = tg.randn(2, 4, 8)
    enc = model.encoder
    with tg.no_grad():
        h = x
        for layer in enc.layers:
            h = layer(h)
    np.testing.assert_allclose(_np(h), _np(x), atol=1e-6)
    init.scale_residual_branches_(model, "none")  # factor 1 changes nothing
    np.testing.assert_array_equal(_np(enc.layers[0].linear2.weight), 0)


def test_readme_section_on_attention_and_residual_networks_runs():
    import pathlib
    import re

    readme = pathlib.Path(__file__).resolve().parent.parent / "README.md"
    text = readme.read_text()
    start = text.index("### Attention, transformers and residual networks")
    section = text[start : text.index("\n### ", start + 1)]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert blocks
    for code in blocks:
        exec(compile(code, "README.md", "exec"), {})
