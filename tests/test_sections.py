"""The architecture and theory sections of the study: mean-field theory against known
values, each section's measurements on small settings, and each finding's checks on
constructed numbers (it holds on the right numbers and fails on wrong ones)."""

import html
import math

import numpy as np
import pytest

from tinygrad_init import cli, meanfield, sections
from tinygrad_init.report import render_report
from tinygrad_init.report_sections import _findings

# ----------------------------------------------------------------------------------------
# mean-field theory


def test_mean_field_fixed_point_and_chi():
    # sigma_b^2 = 0: q* = 0 below sigma_w^2 = 1, where chi_1 = sigma_w^2 exactly
    assert meanfield.q_star(0.8, 0.0) < 1e-6
    assert math.isclose(meanfield.chi_1(0.8, 0.0), 0.8, rel_tol=1e-4)
    q = meanfield.q_star(2.0, 0.1)  # the fixed-point equation holds
    z, w = np.polynomial.hermite_e.hermegauss(200)
    rhs = 2.0 * np.sum(w * np.tanh(np.sqrt(q) * z) ** 2) / math.sqrt(2 * math.pi) + 0.1
    assert math.isclose(q, rhs, rel_tol=1e-9)
    crit = meanfield.critical_sigma_w2(0.05)
    assert math.isclose(meanfield.chi_1(crit, 0.05), 1.0, abs_tol=1e-8)
    assert 1.7 < crit < 1.8  # Schoenholz et al. 2017, Fig. 1
    assert meanfield.depth_scale(1.3, 0.05) == pytest.approx(-1 / math.log(0.8801635), 1e-5)
    grid = meanfield.phase_diagram([1.0, 3.0], [0.0, 0.2])
    assert grid.shape == (2, 2) and grid[0, 0] < 1 < grid[0, 1]
    with pytest.raises(ValueError, match="no edge of chaos"):
        meanfield.critical_sigma_w2(0.05, lo=2.0, hi=3.0)


# ----------------------------------------------------------------------------------------
# measurements on small settings, and their findings


def test_residual_measurement_and_findings():
    m = sections.measure_residual(depths=(8,), width=64, train_depth=8, steps=5)
    v = m["variance"]
    assert v["zero"][8]["measured"][-1] == pytest.approx(1.0, abs=1e-6)
    assert v["he"][8]["theory"][-1] == 2.0**8
    assert [len(f.checks) for f in sections.residual_findings(m)] == [1, 4, 1, 6]


def test_batchnorm_measurement_runs():
    m = sections.measure_batchnorm(depths=(6,), width=64, batch=64)
    assert len(m["plain"][6]) == 6 and len(m["residual"][6]) == 6


def test_transformer_measurement_runs_and_reverse_task():
    x, y = sections.reverse_task(3, 5, 4, np.random.default_rng(0))
    np.testing.assert_array_equal(y.numpy(), x.numpy()[:, ::-1])
    m = sections.measure_transformer(depth=2, d_model=8, heads=2, steps=2)
    assert set(m["grads"]) == set(sections.TRANSFORMER_RUNS)
    assert all(len(g) == 2 for g in m["grads"].values())


def test_chaos_measurement_agrees_with_theory_and_findings_check_it():
    m = sections.measure_chaos(width=200, depth=20, grid=(4, 3))
    assert np.array(m["chi_1"]).shape == (3, 4)
    for p in m["points"].values():
        assert abs(p["measured"] / p["predicted"] - 1) < 0.06
    assert sections.chaos_findings(m, tolerance=0.06)[0].holds


def test_jacobian_is_the_framework_jacobian():
    # depth 1: J = diag(tanh'(z)) W with W = gain * orthogonal, so the singular values are
    # gain * tanh'(z_i): at most the gain, and close to it since q* is small
    gain = math.sqrt(meanfield.critical_sigma_w2(sections.ISOMETRY_SIGMA_B2))
    s = sections.jacobian_singular_values(6, 1, "orthogonal", seed=3)
    assert s.shape == (6,) and np.all(s <= gain + 1e-12) and np.all(s > 0.9 * gain)
    relu = sections.jacobian_singular_values(6, 1, "orthogonal", "relu", seed=3)
    assert np.all(np.isclose(relu, 0, atol=1e-12) | np.isclose(relu, math.sqrt(2)))


def test_run_sections_and_report_render(tmp_path):
    pytest.importorskip("matplotlib")
    done = sections.run_sections(["chaos", "isometry"], quick=True)
    assert [s.key for s in done] == ["chaos", "isometry"]
    html = render_report(None, "tinygrad-init demo --sections chaos,isometry", done)
    assert "<h2>Edge of chaos</h2>" in html and "<h2>Dynamical isometry</h2>" in html
    assert html.count("data:image/png;base64") == 2 and "reproduced" in html
    with pytest.raises(ValueError, match="unknown sections"):
        sections.run_sections(["nope"])


def test_demo_sections_option(tmp_path, capsys):
    out = tmp_path / "r.html"
    assert cli.main(["demo", "--quick", "--sections", "chaos", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Mean-field theory predicts" in printed and out.exists()
    assert cli.main(["demo", "--sections", "classic,bogus"]) == 2
    assert "unknown section(s) bogus" in capsys.readouterr().err


def test_residual_matrix_in_the_report():
    pytest.importorskip("matplotlib")
    from tinygrad_init.report_sections import sections_html

    m = sections.measure_residual(depths=(4, 8), width=32, train_depth=4, steps=3)
    html = sections_html([sections.Section("residual", "Residual networks", m, [])])
    assert "<th>branch scheme</th><th>4 blocks</th><th>8 blocks</th>" in html
    assert html.count("<tr><th>") == 1 + len(sections.RESIDUAL_SCHEMES)  # header + schemes
    assert "(256)" in html  # He's theory after 8 blocks: 2^8


# ----------------------------------------------------------------------------------------
# each finding on constructed numbers: it holds on numbers that agree with theory, and
# numbers that break one of its claims make it "not reproduced", naming that one check


def failed(f):
    return [c.statement for c in f.checks if not c.holds]


def _only_failure(findings, index, statement):
    """Finding ``index`` alone fails, on exactly the check ``statement``, and the report
    says it is not reproduced with that check in its evidence."""
    assert [f.holds for f in findings] == [i != index for i in range(len(findings))]
    assert failed(findings[index]) == [statement]
    page = _findings([findings[index]])
    assert "not reproduced in this run" in page and html.escape(statement) in page


def _residual_numbers():
    variance = {}
    for scheme in sections.RESIDUAL_SCHEMES:
        variance[scheme] = {}
        for d in (20, 50, 100):
            theory = sections._residual_theory(scheme, d, 2.0).tolist()
            variance[scheme][d] = {"measured": list(theory), "theory": theory}
    training = {s: [1.4, 0.1] for s in sections.RESIDUAL_SCHEMES}
    training["he"] = [1.8e6, math.nan]
    return {"variance": variance, "training": training, "train_depth": 50}


def _set_last(m, scheme, depth, value):
    m["variance"][scheme][depth]["measured"][-1] = value


def test_residual_findings_one_check_per_depth_and_scheme():
    m = _residual_numbers()
    found = sections.residual_findings(m)
    assert [f.holds for f in found] == [True] * 4
    assert [len(f.checks) for f in found] == [3, 12, 3, 6]
    assert found[1].checks[0].statement == (
        "1/sqrt(L), 20 blocks: 2.65 times the stem's variance (needs within 15% of theory "
        "(1 + c^2)^L = 2.65)"
    )
    m["variance"]["he"][50]["measured"] = (1.5 ** np.arange(51)).tolist()
    _only_failure(
        sections.residual_findings(m),
        0,
        "50 blocks: growth per block 1.500 (needs 1.8 to 2.2, theory 2)",
    )


@pytest.mark.parametrize(
    "scheme, depth, value, statement",
    [
        (
            "gpt2",
            100,
            2.0,
            "GPT-2 1/sqrt(2L), 100 blocks: 2 times the stem's variance (needs within 15% of "
            "theory (1 + c^2)^L = 1.65)",
        ),
        (
            "sqrt_depth",
            50,
            2.2,
            "1/sqrt(L), 50 blocks: 2.2 times the stem's variance (needs within 15% of theory "
            "(1 + c^2)^L = 2.69)",
        ),
        ("fixup", 20, 1.001, "Fixup, 20 blocks: 1.001 (needs 1 within 1e-5)"),
        ("zero", 100, 0.5, "zero-init, 100 blocks: 0.5 (needs 1 within 1e-5)"),
    ],
)
def test_residual_scaled_totals_fail_one_by_one(scheme, depth, value, statement):
    m = _residual_numbers()
    _set_last(m, scheme, depth, value)
    _only_failure(sections.residual_findings(m), 1, statement)


def test_residual_batchnorm_and_training_fail_one_by_one():
    m = _residual_numbers()
    _set_last(m, "batchnorm", 50, 52.0)
    _only_failure(
        sections.residual_findings(m),
        2,
        "50 blocks: stream variance ratio 52 after the last block (needs within 25% of "
        "1 + L / v0 = 26)",
    )
    m = _residual_numbers()
    m["training"]["fixup"] = [1.1, 1.0]
    _only_failure(sections.residual_findings(m), 3, "Fixup: 1.1 -> 1 (needs to train)")
    m = _residual_numbers()
    m["training"]["he"] = [1.4, 0.2]
    _only_failure(sections.residual_findings(m), 3, "He: 1.4 -> 0.2 (needs not to train)")


def _growth(factor, n):
    return [factor ** (n - 1 - i) for i in range(n)]  # input first, growing toward it


def _batchnorm_numbers():
    return {
        "plain": {10: _growth(1.21, 10), 30: _growth(1.21, 30)},
        "residual": {10: _growth(1.05, 10), 30: _growth(1.03, 30)},
    }


def test_batchnorm_findings_fail_one_check_at_a_time():
    good = _batchnorm_numbers()
    assert [[c.holds for c in f.checks] for f in sections.batchnorm_findings(good)] == [
        [True, True],
        [True, True, True],
    ]
    m = _batchnorm_numbers()
    m["plain"][10] = _growth(1.3, 10)
    _only_failure(
        sections.batchnorm_findings(m),
        0,
        "10 layers: fitted growth 1.300 per layer toward the input, first/last 10.6 (needs "
        "within 5% of 1.211)",
    )
    m = _batchnorm_numbers()
    m["residual"][10] = _growth(1.12, 10)
    _only_failure(
        sections.batchnorm_findings(m),
        1,
        "BatchNorm ResNet, 10 blocks: 1.120 per block (needs below 1.105, half as far from 1 "
        "as the plain net's 1.210)",
    )
    m = _batchnorm_numbers()  # each block's factor small, but the first gradient too large
    m["residual"][30] = [30.0] + _growth(1.03, 30)[1:]
    _only_failure(
        sections.batchnorm_findings(m),
        1,
        "30 blocks: first/last 30 (needs under a tenth of the plain net's 252)",
    )


def _transformer_numbers():
    return {
        "entropy": {"scaled": 0.87, "unscaled": 0.15},
        "losses": {
            "pre-LN": [2.2, 0.01],
            "pre-LN + GPT-2 scaling": [2.2, 0.02],
            "post-LN": [2.2, 2.07],
            "post-LN + warm-up": [2.2, 0.5, 2.0],
        },
        "vocab": 8,
        "depth": 8,
        "lr": 0.03,
        "head_dim": 64,
    }


@pytest.mark.parametrize(
    "change, index, statement",
    [
        (("entropy", "scaled", 0.6), 0, "with 1/sqrt(d): entropy 0.600 (needs above 0.8)"),
        (("entropy", "unscaled", 0.8), 0, "without: entropy 0.800 (needs below 0.5)"),
        (
            ("losses", "pre-LN + GPT-2 scaling", [2.2, math.nan]),
            1,
            "pre-LN + GPT-2 scaling: 2.2 -> diverged (step 1) (needs to end below 0.1)",
        ),
        (
            ("losses", "post-LN", [2.2, 1.2]),
            1,
            "post-LN: 2.2 -> 1.2 (needs to end above 0.7x chance level log 8 = 2.079)",
        ),
        (
            ("losses", "post-LN + warm-up", [2.2, 1.5, 2.0]),
            2,
            "lowest loss with warm-up 1.5 (final 2; needs below half of post-LN's lowest 2.07)",
        ),
    ],
)
def test_transformer_findings_fail_one_check_at_a_time(change, index, statement):
    m = _transformer_numbers()
    assert [f.holds for f in sections.transformer_findings(m)] == [True, True, True]
    group, key, value = change
    m[group][key] = value
    _only_failure(sections.transformer_findings(m), index, statement)


def _chaos_numbers():
    return {
        "width": 1000,
        "depth": 60,
        "points": {
            "ordered": {"sigma_w2": 1.3, "measured": 0.887, "predicted": 0.880},
            "critical": {"sigma_w2": 1.761, "measured": 1.009, "predicted": 1.0},
            "chaotic": {"sigma_w2": 2.5, "measured": 1.141, "predicted": 1.134},
        },
    }


def test_chaos_findings_fail_one_check_at_a_time():
    m = _chaos_numbers()
    (f,) = sections.chaos_findings(m)
    assert f.holds and len(f.checks) == 5
    m["points"]["critical"]["measured"] = 1.05
    _only_failure(
        sections.chaos_findings(m),
        0,
        "critical sigma_w^2 = 1.761: measured 1.050, predicted 1.000 (needs within 3%)",
    )
    assert sections.chaos_findings(m, tolerance=0.06)[0].holds
    m = _chaos_numbers()  # theory itself on the wrong side of 1: agreement is not enough
    m["points"]["ordered"].update(measured=1.01, predicted=1.0)
    _only_failure(sections.chaos_findings(m), 0, "ordered: measured 1.010 (needs below 1)")


def _isometry_numbers():
    tight = np.log10(np.linspace(0.9, 1.1, 50)).tolist()
    wide = np.linspace(-8, 1, 50).tolist()
    return {
        "width": 50,
        "tanh": {"orthogonal": {16: tight, 64: tight}, "gaussian": {16: wide, 64: wide}},
        "relu": {"orthogonal": {16: wide}},
    }


def test_isometry_findings_fail_one_check_at_a_time():
    m = _isometry_numbers()
    found = sections.isometry_findings(m)
    assert [f.holds for f in found] == [True, True]
    assert [len(f.checks) for f in found] == [6, 1]
    m["tanh"]["orthogonal"][64] = np.log10(np.linspace(0.3, 1.1, 50)).tolist()
    _only_failure(
        sections.isometry_findings(m), 0, "orthogonal, 64 layers: p90/p10 2.68 (needs below 2)"
    )
    m = _isometry_numbers()
    m["tanh"]["orthogonal"][16] = np.log10(np.linspace(2.0, 2.4, 50)).tolist()
    _only_failure(
        sections.isometry_findings(m), 0, "orthogonal, 16 layers: largest 2.4 (needs below 2)"
    )
    m = _isometry_numbers()
    m["tanh"]["gaussian"][64] = np.log10(np.linspace(0.5, 1.5, 50)).tolist()
    _only_failure(
        sections.isometry_findings(m), 0, "Gaussian, 64 layers: p90/p10 2.33 (needs above 10)"
    )
    m = _isometry_numbers()
    m["relu"]["orthogonal"][16] = np.log10(np.linspace(0.5, 1.5, 50)).tolist()
    _only_failure(
        sections.isometry_findings(m),
        1,
        "orthogonal ReLU (He gain), 16 layers: p90/p10 2.33 (needs above 10)",
    )


def test_isometry_spread_below_float64_resolution_is_a_bound():
    # width 50: a float64 SVD resolves singular values down to about max * 50 * eps, 1.1e-14
    # of the largest; a p10 of 1e-18 is rounding noise there, so only a bound is stated
    values = np.concatenate([np.full(10, -18.0), np.linspace(-3, 0, 40)])
    spread, resolved = sections._spread_bound(values, 50)
    assert not resolved
    assert spread == pytest.approx(10 ** np.percentile(values, 90) / (50 * 2.0**-52))
    assert sections._spread_check("x", values, 50).statement == (
        "x: p90/p10 above 3.8e+13 (p10 below float64 resolution) (needs above 10)"
    )
    spread, resolved = sections._spread_bound(np.linspace(-8, 0, 50), 50)
    assert resolved and spread == pytest.approx(10 ** (0.8 * 8))


@pytest.mark.parametrize(
    "measure, kwargs",
    [
        (sections.measure_residual, dict(depths=(4,), width=8, train_depth=4, steps=5)),
        (sections.measure_transformer, dict(depth=2, d_model=8, heads=2, steps=5)),
    ],
)
def test_compiled_and_eager_section_training_give_identical_numbers(measure, kwargs):
    compiled = measure(**kwargs, compile=True)
    eager = measure(**kwargs, compile=False)
    assert repr(compiled) == repr(eager)  # every float, to the last digit repr shows
    curves = compiled["training" if measure is sections.measure_residual else "losses"]
    assert all(len(c) == 5 for c in curves.values())
