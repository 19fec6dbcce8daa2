"""scaled_dot_product_attention and MultiheadAttention: values and gradients vs PyTorch on
the same weights, finite differences (first and second order) in float64, masks, errors."""

import numpy as np
import pytest

import tinygrad_init as tg
import tinygrad_init.nn.functional as F
from tinygrad_init import nn
from tinygrad_init.gradcheck import gradcheck, gradgradcheck


def rand(*shape, seed=0, requires_grad=False):
    data = np.random.default_rng(seed).standard_normal(shape)
    return tg.tensor(data, requires_grad=requires_grad)


def _np(t):
    return t.detach().numpy()


def _torch_state(torch, ours, theirs):
    theirs.load_state_dict(
        {k: torch.from_numpy(np.array(v.detach().numpy())) for k, v in ours.state_dict().items()}
    )


# ----------------------------------------------------------------------------------------
# scaled_dot_product_attention


def _sdpa_masks():
    rng = np.random.default_rng(3)
    bool_mask = rng.random((3, 5)) > 0.3
    bool_mask[1] = False  # a query that may attend to nothing
    return {
        "none": {},
        "bool": {"attn_mask": bool_mask},
        "float": {"attn_mask": rng.standard_normal((2, 1, 3, 5))},
        "causal": {"is_causal": True},
        "scale": {"scale": 0.3},
    }


@pytest.mark.parametrize("case", list(_sdpa_masks()))
def test_sdpa_matches_torch(case):
    torch = pytest.importorskip("torch")
    kwargs = _sdpa_masks()[case]
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal(s) for s in ((2, 2, 3, 4), (2, 2, 5, 4), (2, 2, 5, 6)))
    ours = [tg.tensor(a, requires_grad=True) for a in (q, k, v)]
    theirs = [torch.tensor(a, requires_grad=True) for a in (q, k, v)]
    tkw = {n: torch.tensor(m) if isinstance(m, np.ndarray) else m for n, m in kwargs.items()}
    yo = F.scaled_dot_product_attention(*ours, **kwargs)
    yt = torch.nn.functional.scaled_dot_product_attention(*theirs, **tkw)
    np.testing.assert_allclose(_np(yo), yt.detach().numpy(), rtol=1e-10, atol=1e-12)
    g = rng.standard_normal(yo.shape)
    yo.backward(tg.tensor(g))
    yt.backward(torch.tensor(g))
    for a, b in zip(ours, theirs):
        np.testing.assert_allclose(_np(a.grad), b.grad.numpy(), rtol=1e-8, atol=1e-12)


def test_sdpa_gqa_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    q, k, v = (rng.standard_normal(s) for s in ((1, 4, 3, 2), (1, 2, 3, 2), (1, 2, 3, 2)))
    yo = F.scaled_dot_product_attention(*(tg.tensor(a) for a in (q, k, v)), enable_gqa=True)
    yt = torch.nn.functional.scaled_dot_product_attention(
        *(torch.tensor(a) for a in (q, k, v)), enable_gqa=True
    )
    np.testing.assert_allclose(_np(yo), yt.numpy(), rtol=1e-10)


def test_sdpa_fully_masked_row_is_zero_with_zero_gradient():
    q, k, v = rand(2, 3, seed=1, requires_grad=True), rand(4, 3, seed=2), rand(4, 3, seed=3)
    mask = np.ones((2, 4), bool)
    mask[0] = False
    y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    assert np.all(_np(y)[0] == 0) and np.all(np.isfinite(_np(y)))
    y.sum().backward()
    assert np.all(_np(q.grad)[0] == 0) and np.any(_np(q.grad)[1] != 0)


def test_sdpa_gradients_first_and_second_order():
    q, k, v = (rand(2, 3, 4, seed=s, requires_grad=True) for s in (4, 5, 6))
    mask = np.tri(3, 3, dtype=bool)
    fn = lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # noqa: E731
    assert gradcheck(fn, (q, k, v))
    assert gradgradcheck(fn, (q, k, v))
    causal = lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True)  # noqa: E731
    np.testing.assert_allclose(_np(fn(q, k, v)), _np(causal(q, k, v)))


def test_sdpa_dropout_keeps_expectation_and_is_seeded():
    q, k, v = rand(1, 4, 3, seed=7), rand(1, 6, 3, seed=8), rand(1, 6, 3, seed=9)
    tg.manual_seed(0)
    a = F.scaled_dot_product_attention(q, k, v, dropout_p=0.5)
    tg.manual_seed(0)
    b = F.scaled_dot_product_attention(q, k, v, dropout_p=0.5)
    plain = F.scaled_dot_product_attention(q, k, v)
    np.testing.assert_array_equal(_np(a), _np(b))
    assert not np.allclose(_np(a), _np(plain))


def test_sdpa_errors():
    q = rand(3, 4)
    with pytest.raises(RuntimeError, match="Explicit attn_mask should not be set"):
        F.scaled_dot_product_attention(q, q, q, attn_mask=np.ones((3, 3), bool), is_causal=True)
    with pytest.raises(ValueError, match=r"expected query \(\.\.\., L, E\), key"):
        F.scaled_dot_product_attention(q, rand(3, 5), q)
    with pytest.raises(ValueError, match="does not broadcast to the attention scores"):
        F.scaled_dot_product_attention(q, q, q, attn_mask=np.ones((2, 3), bool))
    with pytest.raises(TypeError, match="mask must be bool or floating point"):
        F.scaled_dot_product_attention(q, q, q, attn_mask=np.ones((3, 3), np.int64))
    with pytest.raises(ValueError, match="dropout_p must be between 0 and 1"):
        F.scaled_dot_product_attention(q, q, q, dropout_p=1.5)


# ----------------------------------------------------------------------------------------
# MultiheadAttention

MHA_CASES = {
    "self": (dict(embed_dim=6, num_heads=2), {}),
    "batch_first_kpm": (
        dict(embed_dim=6, num_heads=3, batch_first=True),
        {"key_padding_mask": np.array([[False] * 4 + [True], [False] * 5])},
    ),
    "bool_mask_per_head": (
        dict(embed_dim=4, num_heads=2),
        {"attn_mask": np.random.default_rng(2).random((4, 3, 5)) > 0.8},
    ),
    "float_mask_heads": (
        dict(embed_dim=4, num_heads=2),
        {
            "attn_mask": np.random.default_rng(2).standard_normal((3, 5)),
            "average_attn_weights": False,
        },
    ),
    "causal_no_bias": (
        dict(embed_dim=4, num_heads=1, bias=False),
        {"attn_mask": ~np.tri(3, 5, dtype=bool), "is_causal": True, "need_weights": False},
    ),
    "kdim_vdim": (dict(embed_dim=4, num_heads=2, kdim=3, vdim=5), {}),
}


def _mha_inputs(cfg, rng, batched=True):
    e, kd, vd = cfg["embed_dim"], cfg.get("kdim") or cfg["embed_dim"], cfg.get("vdim")
    vd = vd or e
    lead = (2, 3) if cfg.get("batch_first") else (3, 2)
    klead = (2, 5) if cfg.get("batch_first") else (5, 2)
    if not batched:
        lead, klead = (3,), (5,)
    return (
        rng.standard_normal(lead + (e,)),
        rng.standard_normal(klead + (kd,)),
        (rng.standard_normal(klead + (vd,))),
    )


@pytest.mark.parametrize("case", list(MHA_CASES))
def test_mha_matches_torch(case):
    torch = pytest.importorskip("torch")
    cfg, kwargs = MHA_CASES[case]
    ours = nn.MultiheadAttention(**cfg).double()
    theirs = torch.nn.MultiheadAttention(**cfg).double()
    assert list(ours.state_dict()) == list(theirs.state_dict())
    _torch_state(torch, ours, theirs)
    rng = np.random.default_rng(5)
    arrays = _mha_inputs(cfg, rng)
    xo = [tg.tensor(a, requires_grad=True) for a in arrays]
    xt = [torch.tensor(a, requires_grad=True) for a in arrays]
    tkw = {n: torch.tensor(m) if isinstance(m, np.ndarray) else m for n, m in kwargs.items()}
    yo, wo = ours(*xo, **kwargs)
    yt, wt = theirs(*xt, **tkw)
    np.testing.assert_allclose(_np(yo), yt.detach().numpy(), rtol=1e-10, atol=1e-12)
    if kwargs.get("need_weights", True):
        np.testing.assert_allclose(_np(wo), wt.detach().numpy(), rtol=1e-10, atol=1e-12)
    else:
        assert wo is None and wt is None
    g = rng.standard_normal(yo.shape)
    yo.backward(tg.tensor(g))
    yt.backward(torch.tensor(g))
    for a, b in zip(xo, xt):
        np.testing.assert_allclose(_np(a.grad), b.grad.numpy(), rtol=1e-8, atol=1e-12)
    for (name, p), (_, r) in zip(ours.named_parameters(), theirs.named_parameters()):
        np.testing.assert_allclose(_np(p.grad), r.grad.numpy(), rtol=1e-8, atol=1e-12, err_msg=name)


def test_mha_unbatched_matches_torch():
    torch = pytest.importorskip("torch")
    ours = nn.MultiheadAttention(4, 2).double()
    theirs = torch.nn.MultiheadAttention(4, 2).double()
    _torch_state(torch, ours, theirs)
    q, k, v = _mha_inputs({"embed_dim": 4}, np.random.default_rng(0), batched=False)
    kpm = np.array([False, True, False, False, False])
    yo, wo = ours(tg.tensor(q), tg.tensor(k), tg.tensor(v), key_padding_mask=kpm)
    yt, wt = theirs(*(torch.tensor(a) for a in (q, k, v)), key_padding_mask=torch.tensor(kpm))
    np.testing.assert_allclose(_np(yo), yt.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(_np(wo), wt.detach().numpy(), rtol=1e-10, atol=1e-12)
    assert wo.shape == (3, 5)


def test_mha_default_init_statistics():
    e = 64
    m = nn.MultiheadAttention(e, 4, generator=np.random.default_rng(0))
    w = _np(m.in_proj_weight)
    bound = np.sqrt(6 / (e + 3 * e))  # xavier_uniform_ on the stacked (3E, E) matrix
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.99 * bound
    assert np.isclose(w.var(), bound**2 / 3, rtol=0.05)
    assert np.all(_np(m.in_proj_bias) == 0) and np.all(_np(m.out_proj.bias) == 0)
    assert np.abs(_np(m.out_proj.weight)).max() <= 1 / np.sqrt(e)


def test_mha_gradients_first_and_second_order():
    tg.manual_seed(0)
    m = nn.MultiheadAttention(4, 2, batch_first=True).double()
    x = rand(2, 3, 4, seed=1, requires_grad=True)
    kpm = np.array([[False, False, True], [False, False, False]])
    params = list(m.parameters())

    def fn(x, *ps):
        return m(x, x, x, key_padding_mask=kpm)[0]

    assert gradcheck(fn, (x, *params))
    assert gradgradcheck(lambda x: fn(x), (x,))


def test_mha_dropout_only_in_training():
    m = nn.MultiheadAttention(4, 2, dropout=0.5, generator=np.random.default_rng(0))
    x = rand(3, 2, 4, seed=2).to(np.float32)
    m.eval()
    a, b = m(x, x, x)[0], m(x, x, x)[0]
    np.testing.assert_array_equal(_np(a), _np(b))
    m.train()
    assert not np.allclose(_np(m(x, x, x)[0]), _np(a))


def test_mha_errors():
    with pytest.raises(ValueError, match="embed_dim must be divisible by num_heads"):
        nn.MultiheadAttention(5, 2)
    with pytest.raises(NotImplementedError, match="add_bias_kv and add_zero_attn"):
        nn.MultiheadAttention(4, 2, add_bias_kv=True)
    m = nn.MultiheadAttention(4, 2)
    x = rand(3, 2, 4).to(np.float32)
    with pytest.raises(RuntimeError, match="Need attn_mask if specifying the is_causal hint"):
        m(x, x, x, is_causal=True)
    with pytest.raises(RuntimeError, match=r"the shape of attn_mask is \(2, 2\)"):
        m(x, x, x, attn_mask=np.zeros((2, 2), bool))
    with pytest.raises(RuntimeError, match=r"expected key_padding_mask of shape \(2, 3\)"):
        m(x, x, x, key_padding_mask=np.zeros((3, 2), bool))
    with pytest.raises(ValueError, match="query of shape"):
        m(rand(3, 2, 5).to(np.float32), x, x)
