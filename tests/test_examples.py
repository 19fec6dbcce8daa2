"""Every example runs (in its short mode) and prints what it promises, so none can rot."""

import os
import re
import subprocess
import sys

import pytest

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "examples")


def run(name):
    proc = subprocess.run(
        [sys.executable, os.path.join(EXAMPLES, name), "--quick"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OPENBLAS_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def numbers(pattern, text):
    """Every number the groups of ``pattern`` capture, in order."""
    found = re.findall(pattern, text)
    return [float(v) for match in found for v in (match if isinstance(match, tuple) else (match,))]


def test_every_example_is_tested():
    tested = {n for n in dir(sys.modules[__name__]) if n.startswith("test_0")}
    scripts = sorted(f for f in os.listdir(EXAMPLES) if f.endswith(".py"))
    assert len(scripts) == len(tested) == 8


def test_01_quickstart():
    out = run("01_quickstart.py")
    fd, ad = numbers(r"dy/dx\[0,1\]: (-?[\d.]+)\s+autograd: (-?[\d.]+)", out)
    assert fd == pytest.approx(ad, rel=1e-3)
    first, exact1, second, exact2 = numbers(r"= (-?[\d.]+) \(exact (-?[\d.]+)\)", out)
    assert first == pytest.approx(exact1, abs=1e-6) and second == pytest.approx(exact2, abs=1e-6)
    assert "recorded under no_grad? False" in out


def test_02_mlp_training():
    losses = numbers(r"loss ([\d.]+)", run("02_mlp_training.py"))
    assert losses[-1] < 0.5 * losses[0]


def test_03_cnn_training():
    out = run("03_cnn_training.py")
    losses = numbers(r"loss ([\d.]+)", out)
    accuracy = numbers(r"accuracy ([\d.]+)%", out)
    assert losses[-1] < losses[0] and accuracy[-1] > 75


def test_04_zero_init_symmetry():
    out = run("04_zero_init_symmetry.py")
    assert re.search(r"zeros: .*distinct units in layer 2: 1 of 32", out)
    assert re.search(r"xavier_uniform: .*distinct units in layer 2: 32 of 32", out)


def test_05_vanishing_exploding():
    out = run("05_vanishing_exploding.py")
    assert re.search(r"small N\(0, 0.01\^2\), tanh: .* -> vanishing", out)
    assert re.search(r"large N\(0, 1\), tanh: .* -> exploding", out)
    assert re.search(r"He N\(0, 2/64\), relu: .* -> healthy", out)
    assert re.search(r"no clipping: loss [\d.]+ -> nan", out)
    clipped = numbers(r"clip_grad_norm_\(1.0\): loss ([\d.]+) -> ([\d.]+)", out)
    assert clipped[1] < clipped[0]


def test_06_xavier_vs_he():
    out = run("06_xavier_vs_he.py")
    x_first, x_last = numbers(r"xavier_normal: loss ([\d.]+) -> ([\d.]+)", out)
    h_first, h_last = numbers(r"kaiming_normal: loss ([\d.]+) -> ([\d.]+)", out)
    assert x_last > 0.95 * x_first  # Xavier stalls at 30 ReLU layers
    assert h_last < 0.8 * h_first  # He trains
    (x_acc,) = numbers(r"xavier_normal: .*accuracy (\d+)%", out)
    (h_acc,) = numbers(r"kaiming_normal: .*accuracy (\d+)%", out)
    assert h_acc >= x_acc + 20  # and its accuracy, taken on the same weights, shows it


def test_07_custom_function_gradcheck():
    out = run("07_custom_function_gradcheck.py")
    assert "Softsign passes gradcheck: True" in out
    assert "BrokenSoftsign passes gradcheck: False" in out
    assert re.search(r"'BrokenSoftsign'.*disagrees", out)
    assert "07_custom_function_gradcheck.py:" in out  # where the op was created


def test_08_lsuv():
    rows = re.findall(r"^\s*\d+\s+([\d.]+)\s+([\d.]+)$", run("08_lsuv.py"), re.M)
    assert len(rows) == 10
    assert all(abs(float(after) - 1) < 0.1 for _, after in rows)
