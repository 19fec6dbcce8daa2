"""The structural model and the verdicts on residual, normalized and attention networks,
and the fault-injection suite: each pathology named with its layer, healthy twins healthy."""

import math

import numpy as np
import pytest
from nets import ResMLP

import tinygrad_init as tg
import tinygrad_init.nn.functional as F
from tinygrad_init import init, models, nn
from tinygrad_init.diagnostics import Monitor


def _batch(n=128, d=64, seed=1):
    g = np.random.default_rng(seed)
    x = tg.tensor(g.standard_normal((n, d)).astype(np.float32))
    return x, tg.tensor(g.integers(0, 10, n))


def _monitor(model, x, y, loss=F.cross_entropy):
    with Monitor(model) as mon:
        loss(model(x), y).backward()
        mon.step()
    return mon


def test_structure_of_a_residual_net_is_the_stream_with_branches():
    mon = _monitor(ResMLP(depth=5), *_batch())
    s = mon.last_structure
    assert s.spine == [f"blocks.{i}.+" for i in range(5)] + ["norm", "head"]
    assert [b.name for b in s.blocks] == [f"blocks.{i}" for i in range(5)]
    assert s.blocks[0].branch == ["blocks.0.fc1", "blocks.0.fc2"]
    assert s.nodes["blocks.0.fc1"].activation is not None  # the ReLU that consumes fc1
    assert s.nodes["blocks.0.fc2"].activation is None  # fc2 feeds the merge, not a ReLU
    assert s.repeats()[0] == (0, 5)  # five identical blocks
    assert [r.index for r in mon.records] == list(range(1, len(mon.records) + 1))


@pytest.mark.parametrize("norm", [True, False])
def test_he_residual_stack_explodes_with_residual_causes_and_remedies(norm):
    mon = _monitor(ResMLP(norm=norm), *_batch())
    v = mon.verdict()
    assert v.status == "exploding" and v.forward_status == "exploding"
    assert v.backward_status == "exploding"
    merges = [r for r in mon.records if r.kind == "merge"]
    growth = merges[-1].act_std / merges[0].act_std
    assert 1e4 < growth < 1e5  # std about 1.7 -> 3e4 over 20 blocks
    assert 1e4 < merges[0].grad_rms / merges[-1].grad_rms < 1e6
    assert "residual stream" in v.causes[0] and f"{merges[-1].act_std:.2g}" in v.causes[0]
    assert any("zero-initialise the last layer" in r for r in v.remedies)
    assert not any("xavier" in r or "kaiming" in r for r in v.remedies)
    assert not v.vanishing  # the final LayerNorm does not turn it into vanishing


def test_a_stream_too_large_for_float32_says_no_gradient_reaches_it_and_why():
    # 100 He blocks: the stream's std reaches about 1e23, its square overflows float32 in
    # the final LayerNorm, which then passes exactly zero gradient back to the stream.
    with np.errstate(over="ignore", invalid="ignore"):
        mon = _monitor(ResMLP(depth=100, width=16), *_batch(n=32, d=16))
    v = mon.verdict()
    assert v.status == "exploding" and v.forward_status == "exploding"
    merges = [r for r in mon.records if r.kind == "merge"]
    assert all(m.grad_rms == 0 for m in merges) and merges[-1].act_std ** 2 > float(
        np.finfo(np.float32).max
    )
    cause = v.causes[0]
    assert (
        "no gradient reaches the stream: it is exactly 0 from blocks.99 back to blocks.0" in cause
    )
    assert f"its variance, {merges[-1].act_std ** 2:.2g}" in cause and "float32" in cause
    assert "by -" not in cause and "x- per block" not in cause


def test_zero_initialised_branches_are_healthy_and_said_so():
    mon = _monitor(ResMLP(zero=True), *_batch())
    v = mon.verdict()
    assert v.status == "healthy"
    assert v.headline == (
        "gradients and activations are healthy; 20 nodes get no gradient at step 0, by design "
        "(zero-init)"
    )
    assert set(v.zero_init) == {f"blocks.{i}.fc1" for i in range(20)}
    fc2 = [r for r in mon.records if r.name.endswith("fc2")]
    assert all(r.weight_zero and r.weight_grad_norm > 0 for r in fc2)
    lo, hi = min(r.weight_grad_norm for r in fc2), max(r.weight_grad_norm for r in fc2)
    assert v.causes == [
        "20 nodes get exactly zero gradient at step 0 (blocks.0.fc1, blocks.1.fc1, ... 18 "
        "more), by design and not from vanishing: the weights downstream of them, in "
        "blocks.0.fc2, blocks.1.fc2, ... 18 more, are exactly zero (a zero-initialised "
        "output, the Fixup/SkipInit/ReZero recipe) and pass no gradient back. Those weights "
        f"get a gradient themselves (|dW| {lo:.2g} to {hi:.2g}), so they are non-zero after "
        "the first step, and the nodes before them receive gradient from the second step on"
    ]
    fc1 = next(r for r in mon.records if r.name == "blocks.3.fc1")
    assert fc1.grad_rms == 0 and fc1.zero_below == "blocks.3.fc2"
    assert fc1.note == (
        "no gradient at step 0: the weights of blocks.3.fc2, downstream, are exactly zero "
        "(a zero-initialised output); it receives gradient once they are not"
    )


def test_a_zero_classifier_cuts_the_whole_net_off_and_says_which_weights_wait():
    """Fixup zeroes each branch's last layer and the classifier: at step 0 only the
    classifier's weight gets a gradient; nothing before it is vanishing."""
    m = models.make_resnet(4, 16, branch_scale="fixup", generator=0)
    x, y = models.synthetic_batch(m, generator=1)
    mon = _monitor(m, x, y, loss=models.mse)
    v = mon.verdict()
    assert v.status == "healthy" and not v.vanishing
    by = {r.name: r for r in mon.records}
    head = by["5"]
    assert head.weight_zero and head.weight_grad_norm > 0
    assert by["0"].zero_below == "5" and by["2.+"].zero_below == "5"  # the stream: the head
    assert by["2.branch.1"].zero_below == "2.branch.3"  # a branch: its own last layer
    assert len(v.zero_init) == sum(r.grad_rms == 0 for r in mon.records) == 21
    assert v.causes == [
        "21 nodes get exactly zero gradient at step 0 (0, 1.branch.0, ... 19 more), by design "
        "and not from vanishing: the weights downstream of them, in 1.branch.3, 2.branch.3, "
        "... 3 more, are exactly zero (a zero-initialised output, the Fixup/SkipInit/ReZero "
        f"recipe) and pass no gradient back. Of those, 5 gets a gradient itself (|dW| "
        f"{head.weight_grad_norm:.2g}), so it is non-zero after the first step, and the nodes "
        "before it receive gradient from the second step on; 1.branch.3, 2.branch.3, "
        "3.branch.3, 4.branch.3 get no gradient at step 0 either (more zero weights lie "
        "downstream of them), so the nodes before those wait a step more"
    ]


def test_a_chain_with_a_zero_initialised_output_layer_is_healthy_and_said_so():
    m = models.make_mlp(4, 16, generator=0)
    init.zeros_(m[6].weight)
    x, y = models.synthetic_batch(m, generator=1)
    mon = _monitor(m, x, y, loss=models.mse)
    v = mon.verdict()
    out = mon.records[-1]
    assert v.status == "healthy" and out.name == "6" and out.output_zero
    assert out.act_ratio is None  # its output is 0 by design: not "activations vanish"
    assert v.causes == [
        "3 nodes get exactly zero gradient at step 0 (0, 2, 4), by design and not from "
        "vanishing: the weights downstream of them, in 6, are exactly zero (a "
        "zero-initialised output, the Fixup/SkipInit/ReZero recipe) and pass no gradient "
        f"back. That weight gets a gradient itself (|dW| {out.weight_grad_norm:.2g}), so it "
        "is non-zero after the first step, and the nodes before it receive gradient from the "
        "second step on"
    ]


def test_branches_scaled_by_one_over_sqrt_depth_are_healthy():
    mon = _monitor(ResMLP(scale=1 / math.sqrt(20)), *_batch())
    assert mon.verdict().status == "healthy"


def _bn_mlp(depth, width=128):
    """``depth`` x (He Linear, BatchNorm1d, ReLU), then a He Linear head to 10 classes."""
    return models.make_mlp(depth + 1, width, in_features=width, generator=0, norm="batch")


def test_deep_batchnorm_mlp_explodes_with_the_mean_field_explanation():
    x, y = _batch(d=128)
    v = _monitor(_bn_mlp(50), x, y).verdict()
    assert v.status == "exploding" and v.ratio > 1e2
    assert "BatchNorm" in v.causes[0] and "Yang et al. 2019" in v.causes[0]
    per = float(v.causes[0].split("x", 1)[1].split(" ")[0])
    assert 1.1 < per < 1.3  # about 1.2x per layer
    assert _monitor(_bn_mlp(4), x, y).verdict().status == "healthy"


class Attention(nn.Module):
    def __init__(self, d=64, scaled=True):
        super().__init__()
        g = np.random.default_rng(0)
        self.q, self.k, self.v = (nn.Linear(d, d) for _ in range(3))
        for fc in (self.q, self.k, self.v):
            init.xavier_normal_(fc.weight, generator=g)
        self.scale = 1 / math.sqrt(d) if scaled else 1.0

    def forward(self, x):
        logits = (self.q(x) @ self.k(x).transpose(-2, -1)) * self.scale
        return x + logits.softmax(-1) @ self.v(x)


def test_unscaled_attention_is_saturated_with_its_entropy_and_scaled_is_healthy():
    g = np.random.default_rng(1)
    x = tg.tensor(g.standard_normal((4, 16, 64)).astype(np.float32))
    y = tg.tensor(g.standard_normal((4, 16, 64)).astype(np.float32))
    bad = _monitor(Attention(scaled=False), x, y, models.mse)
    v = bad.verdict()
    att = [r for r in bad.records if r.kind == "attention"]
    assert len(att) == 1 and att[0].entropy < 0.25
    assert v.status == "vanishing" and att[0].name in v.vanishing
    assert "saturated attention" in v.causes[0] and f"{att[0].entropy:.0%}" in v.causes[0]
    good = _monitor(Attention(scaled=True), x, y, models.mse)
    assert good.verdict().status == "healthy"


# ---------------------------------------------------------------------------------------
# Fault injection on a healthy 12-layer He/ReLU MLP


def _healthy(depth=12, act="relu", init_="kaiming_normal"):
    m = models.make_mlp(depth, 32, act, init_, generator=0)
    return m, *models.synthetic_batch(m, generator=1)


def _mse_monitor(m, x, y):
    return _monitor(m, x, y, models.mse)


def test_healthy_counterparts_stay_healthy():
    for act, init_ in (("relu", "kaiming_normal"), ("tanh", "xavier_normal")):
        assert _mse_monitor(*_healthy(act=act, init_=init_)).verdict().status == "healthy"


def test_one_layer_scaled_by_ten_is_named():
    m, x, y = _healthy()
    m[10].weight.data *= 10
    v = _mse_monitor(m, x, y).verdict()
    assert v.status == "exploding" and "10" in v.exploding
    assert v.causes[0].startswith("10 (Linear(32->32)) has weights 9.")
    assert "x its peers'" in v.causes[0] and "multiplies the activations by" in v.causes[0]


def test_dead_relu_layer_is_named():
    m, x, y = _healthy()
    m[8].bias.data[:] = -100.0
    v = _mse_monitor(m, x, y).verdict()
    assert v.status == "vanishing"
    assert "dead units: 100% of the ReLU units of 8" in v.causes[0]
    assert "-100" in v.causes[0]


def test_one_saturated_tanh_layer_is_named():
    m, x, y = _healthy(act="tanh", init_="xavier_normal")
    m[6].weight.data *= 20
    mon = _mse_monitor(m, x, y)
    v = mon.verdict()
    assert v.status == "vanishing" and "6" in v.vanishing
    assert any("saturation" in c and "of 6" in c for c in v.causes)


def test_nan_producing_op_is_named():
    class Log(nn.Module):
        def forward(self, x):
            return x.log()  # NaN for the negative entries

    m, x, y = _healthy(depth=4)
    m = nn.Sequential(*list(m)[:3], Log(), *list(m)[3:])
    with np.errstate(invalid="ignore"):
        v = _mse_monitor(m, x, y).verdict()
    assert v.status == "nan"
    first = "NaN/Inf first appears in the forward output of 2 (Linear(32->32)+Log+ReLU)"
    assert first in v.causes[0]
