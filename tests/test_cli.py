"""The tinygrad-init console script, end to end, errors included."""

import os
import re
import subprocess
import sys
import textwrap

import pytest

SCRIPT = os.path.join(os.path.dirname(sys.executable), "tinygrad-init")


def run(*args, cwd=None, env=None):
    cmd = (
        [SCRIPT, *args]
        if os.path.exists(SCRIPT)
        else [sys.executable, "-m", "tinygrad_init.cli", *args]
    )
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=env, timeout=120)


def _error_line(proc):
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_the_console_script_is_installed():
    assert os.path.exists(SCRIPT)


def test_flow_sigmoid_normal_shows_vanishing(tmp_path):
    out = tmp_path / "flow.svg"
    proc = run(
        "flow", "--depth", "30", "--activation", "sigmoid", "--init", "normal", "-o", str(out)
    )
    assert proc.returncode == 0, proc.stderr
    svg = out.read_text()
    assert "<svg" in svg and "gradients vanish toward the input" in svg
    assert svg.count('class="node vanishing"') >= 5


def test_flow_dot_output_carries_the_classes(tmp_path):
    out = tmp_path / "flow.dot"
    proc = run(
        "flow", "--depth", "12", "--activation", "relu", "--init", "kaiming_normal", "-o", str(out)
    )
    assert proc.returncode == 0, proc.stderr
    classes = re.findall(r"\bL\d+ \[.*?\bclass=(\w+)", out.read_text())
    assert classes == ["healthy"] * 12


def test_graph_png_and_pdf(tmp_path):
    for ext, magic in ((".png", b"\x89PNG"), (".pdf", b"%PDF")):
        out = tmp_path / f"graph{ext}"
        proc = run(
            "graph",
            "--depth",
            "3",
            "--width",
            "8",
            "--activation",
            "tanh",
            "--init",
            "xavier_normal",
            "-o",
            str(out),
        )
        assert proc.returncode == 0, proc.stderr
        assert out.read_bytes().startswith(magic)


def test_conv_spec(tmp_path):
    out = tmp_path / "g.dot"
    proc = run("flow", "--layer", "conv", "--depth", "3", "--width", "4", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "Conv2d" in out.read_text()


def test_stats_prints_table_verdict_and_csv(tmp_path):
    csv_path = tmp_path / "s.csv"
    proc = run(
        "stats",
        "--depth",
        "30",
        "--activation",
        "sigmoid",
        "--init",
        "normal",
        "--steps",
        "2",
        "--csv",
        str(csv_path),
    )
    assert proc.returncode == 0, proc.stderr
    assert "act std (meas/theory)" in proc.stdout
    assert "Gradients vanish toward the input" in proc.stdout
    assert "Remedy:" in proc.stdout
    assert len(csv_path.read_text().splitlines()) == 1 + 2 * 30


def test_model_from_a_file(tmp_path):
    (tmp_path / "m.py").write_text(
        textwrap.dedent("""
        import numpy as np
        import tinygrad_init as tg
        from tinygrad_init import nn

        def make_model():
            return nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 2))

        def with_batch():
            x = tg.tensor(np.ones((4, 5), dtype=np.float32))
            y = tg.tensor(np.array([0, 1, 1, 0]))
            return make_model(), (x, y)

        def broken():
            raise ValueError("no luck")

        def not_a_module():
            return 42
    """)
    )
    out = tmp_path / "f.dot"
    proc = run("flow", "m.py", "-o", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert out.read_text().count("Linear(") == 2
    proc = run("stats", "m.py:with_batch", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    line = _error_line(run("flow", "m.py:broken", cwd=tmp_path))
    assert "m.py:broken() failed: ValueError: no luck" in line
    line = _error_line(run("flow", "m.py:not_a_module", cwd=tmp_path))
    assert "returned int" in line and "Module" in line
    line = _error_line(run("flow", "m.py:missing", cwd=tmp_path))
    assert "has no function 'missing'" in line


@pytest.mark.parametrize(
    "args,message",
    [
        (["flow", "--bogus"], "unrecognized arguments: --bogus"),
        (["flow", "nothere.py:make_model"], "model file not found: nothere.py"),
        (["flow", "--activation", "swishy"], "unknown activation 'swishy'"),
        (["flow", "--init", "nope"], "unknown initializer 'nope'"),
        (["flow", "--depth", "0"], "expected a positive integer"),
        (["flow", "-o", "out.jpeg"], "cannot tell the output format"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        ([], "choose a command"),
    ],
)
def test_errors_are_one_line_with_exit_code_2(tmp_path, args, message):
    assert message in _error_line(run(*args, cwd=tmp_path))


def test_without_dot_it_writes_the_source_and_says_how_to_install(tmp_path):
    env = dict(os.environ, PATH=str(tmp_path / "empty"))
    proc = run("flow", "--depth", "3", "-o", str(tmp_path / "f.svg"), env=env)
    assert proc.returncode == 0
    assert (tmp_path / "f.dot").read_text().startswith("digraph")
    assert not (tmp_path / "f.svg").exists()
    assert "install graphviz" in proc.stderr.lower()


def test_python_dash_m():
    proc = subprocess.run(
        [sys.executable, "-m", "tinygrad_init.cli", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0 and "flow" in proc.stdout and "stats" in proc.stdout


@pytest.mark.parametrize(
    "argv,names,expected",
    [
        (["--arch", "resnet", "--depth", "3", "--branch-scale", "gpt2"], "1.branch.1", "ResNet"),
        (
            ["--arch", "resnet", "--layer", "conv", "--norm", "batch", "--width", "4"],
            "1.branch.0",
            "conv ResNet",
        ),
        (
            ["--arch", "transformer", "--depth", "2", "--width", "8", "--post-ln"],
            "encoder",
            "post-LN",
        ),
    ],
)
def test_arch_options_reach_the_builders(argv, names, expected):
    from tinygrad_init import cli

    args = cli.build_parser().parse_args(["stats", *argv])
    model, x, _, desc = cli.load_model(args)
    assert expected in desc and any(n.startswith(names) for n, _ in model.named_modules())
    assert model(x).shape[0] == args.batch


def test_arch_errors_are_usage_errors():
    from tinygrad_init import cli

    args = cli.build_parser().parse_args(["stats", "--arch", "resnet", "--branch-scale", "big"])
    with pytest.raises(cli.UsageError, match="branch_scale must be a number or one of"):
        cli.load_model(args)
