"""The architecture and theory sections of the study: mean-field theory against known
values, each section's measurements on small settings, and each finding's check on
constructed numbers (it holds on the right numbers and fails on wrong ones)."""

import math

import numpy as np
import pytest

from tinygrad_init import cli, meanfield, sections
from tinygrad_init.report import render_report

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
    assert len(sections.residual_findings(m)) == 4
    bad = {**m, "variance": {**v, "zero": {8: {**v["zero"][8], "measured": [1.0] * 8 + [3.0]}}}}
    assert not sections.residual_findings(bad)[1].holds


def _growth(factor, n):
    return [factor ** (n - 1 - i) for i in range(n)]  # input first, growing toward it


def test_batchnorm_findings_on_constructed_numbers():
    good = {
        "plain": {10: _growth(1.21, 10), 30: _growth(1.21, 30)},
        "residual": {10: _growth(1.05, 10), 30: _growth(1.03, 30)},
    }
    assert [f.holds for f in sections.batchnorm_findings(good)] == [True, True]
    bad = {"plain": {10: _growth(1.5, 10)}, "residual": {10: _growth(1.4, 10)}}
    assert [f.holds for f in sections.batchnorm_findings(bad)] == [False, False]
    m = sections.measure_batchnorm(depths=(6,), width=64, batch=64)
    assert len(m["plain"][6]) == 6 and len(m["residual"][6]) == 6


def test_transformer_findings_on_constructed_numbers():
    losses = {
        "pre-LN": [2.2, 0.01],
        "pre-LN + GPT-2 scaling": [2.2, 0.02],
        "post-LN": [2.2, 2.07],
        "post-LN + warm-up": [2.2, 0.5, 2.0],
    }
    m = {
        "entropy": {"scaled": 0.87, "unscaled": 0.15},
        "losses": losses,
        "vocab": 8,
        "depth": 8,
        "lr": 0.03,
        "head_dim": 64,
    }
    assert [f.holds for f in sections.transformer_findings(m)] == [True, True, True]
    m["entropy"]["unscaled"] = 0.8
    m["losses"] = {**losses, "post-LN": [2.2, 0.05]}
    assert [f.holds for f in sections.transformer_findings(m)] == [False, False, False]


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
    wrong = {**m, "points": {**m["points"]}}
    wrong["points"]["chaotic"] = {**m["points"]["chaotic"], "measured": 0.9}
    assert not sections.chaos_findings(wrong)[0].holds


def test_jacobian_is_the_framework_jacobian():
    # depth 1: J = diag(tanh'(z)) W with W = gain * orthogonal, so the singular values are
    # gain * tanh'(z_i): at most the gain, and close to it since q* is small
    gain = math.sqrt(meanfield.critical_sigma_w2(sections.ISOMETRY_SIGMA_B2))
    s = sections.jacobian_singular_values(6, 1, "orthogonal", seed=3)
    assert s.shape == (6,) and np.all(s <= gain + 1e-12) and np.all(s > 0.9 * gain)
    relu = sections.jacobian_singular_values(6, 1, "orthogonal", "relu", seed=3)
    assert np.all(np.isclose(relu, 0, atol=1e-12) | np.isclose(relu, math.sqrt(2)))


def test_isometry_findings_on_constructed_numbers():
    tight = np.log10(np.linspace(0.9, 1.1, 50)).tolist()
    wide = np.linspace(-8, 1, 50).tolist()
    m = {
        "width": 50,
        "tanh": {"orthogonal": {16: tight}, "gaussian": {16: wide}},
        "relu": {"orthogonal": {16: wide}},
    }
    assert [f.holds for f in sections.isometry_findings(m)] == [True, True]
    m["tanh"]["orthogonal"] = {16: wide}
    m["relu"]["orthogonal"] = {16: tight}
    assert [f.holds for f in sections.isometry_findings(m)] == [False, False]


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
