"""Monitor statistics, classification, theory, verdicts and hook hygiene."""

import csv
import math

import numpy as np
import pytest

from tinygrad_init import init, models
from tinygrad_init.diagnostics import Monitor, Thresholds, Verdict, classify


def _normal_4_over_fan(t, generator=None):
    fan_in = t.shape[1]
    return init.normal_(t, 0.0, math.sqrt(4.0 / fan_in), generator=generator)


def _run(model, x, y, steps=1, lr=0.0):
    with Monitor(model) as mon:
        for _ in range(steps):
            for p in model.parameters():
                p.grad = None
            models.mse(model(x), y).backward()
            mon.step()
            for p in model.parameters():
                p.data -= lr * p.grad.data
    return mon


def _model(depth, act, init_, width=32, seed=0):
    m = models.make_mlp(depth, width, act, init_, generator=seed)
    x, y = models.synthetic_batch(m, generator=seed + 1)
    return m, x, y


def _statuses(mon):
    return [r.status for r in mon.records if r.step == mon.steps - 1]


def test_sigmoid_normal_init_vanishes_toward_the_input():
    mon = _run(*_model(30, "sigmoid", "normal"))
    s = _statuses(mon)
    assert s[:6] == ["vanishing"] * 6
    assert "exploding" not in s and s[-1] == "healthy"
    v = mon.verdict()
    assert v.status == "vanishing" and v.ratio < 1e-2
    assert any("saturation" in c for c in v.causes)
    assert any("xavier_normal" in r for r in v.remedies)


def test_relu_with_variance_4_over_fan_in_explodes_toward_the_input():
    mon = _run(*_model(30, "relu", _normal_4_over_fan))
    s = _statuses(mon)
    assert s[:6] == ["exploding"] * 6
    assert "vanishing" not in s
    v = mon.verdict()
    assert v.status == "exploding" and v.ratio > 1e2
    assert any("clip" in r for r in v.remedies)
    assert any("kaiming_normal" in r for r in v.remedies)
    assert 1.2 < v.per_layer < 1.6  # sqrt(2) per layer in theory


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_he_init_with_relu_is_healthy_everywhere(seed):
    mon = _run(*_model(30, "relu", "kaiming_normal", seed=seed))
    assert set(_statuses(mon)) == {"healthy"}
    assert mon.verdict().status == "healthy"


def test_monitoring_changes_no_gradient():
    m, x, y = _model(6, "tanh", "xavier_normal")
    models.mse(m(x), y).backward()
    plain = [p.grad.detach().numpy().copy() for p in m.parameters()]
    for p in m.parameters():
        p.grad = None
    with Monitor(m) as mon:
        out = m(x)
        models.mse(out, y).backward()
        mon.step()
    for p, g in zip(m.parameters(), plain):
        np.testing.assert_array_equal(p.grad.detach().numpy(), g)


def test_close_removes_every_hook():
    m, x, y = _model(4, "relu", "kaiming_normal")
    mon = Monitor(m)
    out = m(x)
    before = len(mon._recorder.probes)
    assert any(mod._forward_hooks for mod in m.modules())
    mon.close()
    assert not any(mod._forward_hooks for mod in m.modules())
    assert not out._hooks  # the tensor hook on the output is gone as well
    models.mse(m(x), y).backward()
    assert len(mon._recorder.probes) == before and not mon._tensor_handles  # nothing more


def test_context_manager_closes():
    m, x, y = _model(3, "relu", "kaiming_normal")
    with Monitor(m):
        m(x)
    assert not any(mod._forward_hooks for mod in m.modules())


def test_records_fields_csv_and_update_ratio(tmp_path):
    m, x, y = _model(4, "relu", "kaiming_normal")
    mon = _run(m, x, y, steps=3, lr=0.1)
    recs = mon.to_records()
    assert len(recs) == 3 * 4 and mon.layers == ["0", "2", "4", "6"]
    first = recs[0]
    for key in (
        "act_mean",
        "act_std",
        "dead",
        "grad_norm",
        "grad_std",
        "weight_grad_norm",
        "weight_norm",
        "update_ratio",
        "theory_act_std",
        "theory_grad_std",
        "status",
    ):
        assert key in first
    assert first["update_ratio"] is None  # nothing to compare with at step 0
    later = [r for r in recs if r["step"] == 1]
    w = m[0].weight
    assert later[0]["update_ratio"] > 0
    assert later[0]["weight_norm"] > 0 and first["fan_in"] == w.shape[1]
    path = tmp_path / "stats.csv"
    mon.to_csv(path)
    with open(path) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 12 and rows[5]["name"] == recs[5]["name"]
    assert float(rows[5]["grad_norm"]) == pytest.approx(recs[5]["grad_norm"])


def test_saturation_and_dead_fractions():
    m, x, y = _model(3, "tanh", "normal")
    mon = _run(m, x, y)
    sat = mon.records[0].saturated
    act = m[1](m[0](x)).detach().numpy()
    assert sat == pytest.approx(np.mean(np.abs(act) > 0.99))
    m, x, y = _model(3, "relu", "kaiming_normal")
    with Monitor(m) as mon:
        m[0].bias.data[:5] = -1e3  # five units can never fire
        models.mse(m(x), y).backward()
        mon.step()
    assert mon.records[0].dead >= 5 / 32


def test_theory_matches_measurement_for_wide_layers():
    m, x, y = _model(6, "relu", "kaiming_normal", width=512)
    mon = _run(m, x, y)
    for r in mon.records[:-1]:
        assert r.act_std == pytest.approx(r.theory_act_std, rel=0.25)
        assert r.grad_std == pytest.approx(r.theory_grad_std, rel=0.35)


def test_summary_table_shows_theory_and_status():
    mon = _run(*_model(8, "sigmoid", "normal"))
    text = mon.summary()
    assert "act std (meas/theory)" in text and "grad std (meas/theory)" in text
    assert len(text.splitlines()) == 3 + 8
    assert "Sigmoid" in text


def test_nan_is_its_own_class():
    m, x, y = _model(3, "relu", "kaiming_normal")
    m[2].weight.data[0, 0] = np.nan
    mon = _run(m, x, y)
    assert "nan" in _statuses(mon)
    v = mon.verdict()
    assert v.status == "nan" and any("detect_anomaly" in r for r in v.remedies)


def test_thresholds_and_classify():
    t = Thresholds(0.1, 10)
    assert [t.classify(r) for r in (0.05, 1, 20, None, math.nan, math.inf, 0.0)] == [
        "vanishing",
        "healthy",
        "exploding",
        "none",
        "nan",
        "nan",
        "vanishing",
    ]
    assert classify(5e-3) == "vanishing" and classify(50) == "healthy"
    with pytest.raises(ValueError, match="vanishing < 1 < exploding"):
        Thresholds(2, 10)
    with pytest.raises(ValueError, match="positive finite"):
        Thresholds(-1, 10)


def test_errors_are_clear():
    with pytest.raises(TypeError, match="nn.Module"):
        Monitor(object())
    m, _, _ = _model(2, "relu", "kaiming_normal")
    with pytest.raises(RuntimeError, match="nothing recorded"):
        Monitor(m).summary()


def test_verdict_str_is_readable():
    mon = _run(*_model(30, "sigmoid", "normal"))
    text = str(mon.verdict())
    assert text.startswith("Gradients vanish toward the input")
    assert "Remedy:" in text and "Cause:" in text
    assert isinstance(mon.verdict(), Verdict)


def test_every_records_only_the_chosen_steps_and_matches_full_recording():
    m, x, y = _model(4, "tanh", "xavier_normal")
    seen = []
    with Monitor(m, every=3) as sparse:
        for _ in range(7):
            for p in m.parameters():
                p.grad = None
            models.mse(m(x), y).backward()
            seen.append(len(sparse.step()))
            assert not sparse._tensor_handles
    assert seen == [4, 0, 0, 4, 0, 0, 4]
    assert sorted({r.step for r in sparse.records}) == [0, 3, 6]
    full = _run(m, x, y)
    last_sparse = [r.grad_norm for r in sparse.records if r.step == 6]
    assert last_sparse == pytest.approx([r.grad_norm for r in full.records], rel=1e-6)
    with pytest.raises(ValueError, match="every must be a positive int, got 0"):
        Monitor(m, every=0)
