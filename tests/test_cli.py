"""The tinygrad-init console script, end to end, errors included."""

import os
import re
import subprocess
import sys
import textwrap

import numpy as np
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


RESIDUAL_MODEL = """
import numpy as np
import tinygrad_init as tg
from tinygrad_init import init, nn


class Block(nn.Module):
    def __init__(self, width, gen, zero):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width)
        for fc in (self.fc1, self.fc2):
            init.kaiming_normal_(fc.weight, generator=gen)
            init.zeros_(fc.bias)
        if zero:
            init.zeros_(self.fc2.weight)

    def forward(self, x):
        return x + self.fc2(self.act(self.fc1(x)))


class ResMLP(nn.Module):
    def __init__(self, zero=False, depth=20, width=64):
        super().__init__()
        gen = np.random.default_rng(0)
        self.blocks = nn.ModuleList([Block(width, gen, zero) for _ in range(depth)])
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, 10)

    def forward(self, x):
        for b in self.blocks:
            x = b(x)
        return self.head(self.norm(x))


def _batch():
    g = np.random.default_rng(1)
    x = tg.tensor(g.standard_normal((128, 64)).astype(np.float32))
    return x, tg.tensor(g.integers(0, 10, 128))


def make_model():
    return ResMLP(), _batch()


def zero_init():
    return ResMLP(zero=True), _batch()
"""


def _remedies(stdout):
    return [line for line in stdout.splitlines() if line.startswith("Remedy:")]


def test_stats_on_a_residual_model_file(tmp_path):
    """He branches and a final LayerNorm: the stream explodes (not "vanishing"), with the
    residual cause and remedies; zero-initialised last branch layers: healthy, said so."""
    (tmp_path / "res.py").write_text(RESIDUAL_MODEL)
    proc = run("stats", "res.py", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "The residual stream explodes over 20 blocks" in out
    assert "Gradients vanish" not in out and "VANISHING" not in out
    cause = next(line for line in out.splitlines() if line.startswith("Cause:"))
    assert "the residual stream grows block by block" in cause and "per block" in cause
    remedies = _remedies(out)
    assert any("zero-initialise the last layer of each branch" in r for r in remedies)
    assert any("1/sqrt(number of blocks)" in r for r in remedies)
    assert not any("xavier" in r or "kaiming" in r for r in remedies)

    proc = run("stats", "res.py:zero_init", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert (
        "Gradients and activations are healthy; 20 nodes get no gradient at step 0, by "
        "design (zero-init)." in out
    )
    assert (
        "20 nodes get exactly zero gradient at step 0 (blocks.0.fc1, blocks.1.fc1, ... 18 "
        "more), by design and not from vanishing: the weights downstream of them, in "
        "blocks.0.fc2, blocks.1.fc2, ... 18 more, are exactly zero (a zero-initialised output"
    ) in out
    assert "so they are non-zero after the first step, and the nodes before them" in out
    assert out.count("zero-init\n") == 20  # every blocks.i.fc1, in the table's status column
    assert "Gradients vanish" not in out
    assert _remedies(out) == []


def test_theory_follows_the_residual_stream(tmp_path):
    """The stream's predicted std starts from the measured input (Var = 1 + Var(branch)),
    so a zero-initialised branch leaves the prediction at the input's std, not at 0."""
    (tmp_path / "res.py").write_text(RESIDUAL_MODEL)
    for factory, first_merge in (("make_model", 3**0.5), ("zero_init", 1.0)):
        proc = run("stats", f"res.py:{factory}", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        row = next(line for line in proc.stdout.splitlines() if "blocks.0.+" in line).split()
        measured, theory = float(row[5]), float(row[7])
        assert theory == pytest.approx(first_merge, rel=0.01)
        assert measured == pytest.approx(theory, rel=0.1)


def test_flow_on_a_residual_model_file(tmp_path):
    (tmp_path / "res.py").write_text(RESIDUAL_MODEL)
    proc = run("flow", "res.py", "-o", "he.dot", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    dot = (tmp_path / "he.dot").read_text()
    assert "the residual stream explodes over 20 blocks" in dot
    assert "<B>Block x 20</B>" in dot and "blocks.0 .. blocks.19" in dot
    assert re.search(r"B0 \[.*class=exploding", dot)
    assert "end of the residual stream" in dot  # the legend names the reference
    assert "class=vanishing" not in dot

    proc = run("flow", "res.py:zero_init", "-o", "zero.dot", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    dot = (tmp_path / "zero.dot").read_text()
    assert "healthy; 20 nodes get no gradient at step 0, by design (zero-init)" in dot
    # the collapsed run is coloured by its measured members, not by the zero-init ones
    assert re.search(r"B0 \[.*class=healthy", dot)
    assert "worst: blocks.0.fc2 (healthy)" in dot
    assert "20 zero-init (gradient after step 1)" in dot
    assert "zero-init</FONT>" in dot  # the legend's swatch


def test_zero_init_layers_are_drawn_as_zero_init_not_vanishing():
    from tinygrad_init import models, viz

    model = models.make_resnet(depth=3, width=16, branch_scale="zero", generator=0)
    x, y = models.synthetic_batch(model, batch=16, generator=np.random.default_rng(0))
    dot = viz.gradient_flow(model, x, y, collapse=False).source
    zero_nodes = re.findall(r"\n\s*(L\d+) \[label=.*? class=\"zero-init\"", dot)
    assert len(zero_nodes) == 6  # each branch's ReLU and Linear before its zero last layer
    assert "class=vanishing" not in dot
    assert dot.count('style="filled,dotted,rounded"') == 6


@pytest.mark.parametrize(
    "scale,headline",
    [
        ("none", "The residual stream explodes over 20 blocks"),
        ("zero", "Gradients and activations are healthy; 40 nodes get no gradient at step 0"),
        ("sqrt_depth", "Gradients and activations are healthy in every layer."),
    ],
)
def test_arch_resnet_depth_20_builds_one_without_a_file(scale, headline):
    proc = run("stats", "--arch", "resnet", "--depth", "20", "--branch-scale", scale)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"20-block ResNet, width 32, branch scale {scale}\n")
    assert headline in proc.stdout
    assert "20.+" in proc.stdout  # the last block's merge is in the table


def test_flow_arch_resnet_depth_20(tmp_path):
    out = tmp_path / "r.dot"
    proc = run("flow", "--arch", "resnet", "--depth", "20", "-o", str(out))
    assert proc.returncode == 0, proc.stderr
    dot = out.read_text()
    assert "the residual stream explodes over 20 blocks" in dot
    assert "<B>Block x 20</B>" in dot and "blocks 1 .. 20" in dot
    assert "worst: 1.branch.0 (exploding)" in dot


BLAS_PROBE_MODEL = """
import json
import threadpoolctl
from tinygrad_init import nn


class Probe(nn.Module):
    def forward(self, x):
        seen = sorted({i["num_threads"] for i in threadpoolctl.threadpool_info()
                       if i["user_api"] == "blas"})
        with open(__file__ + ".threads", "a") as f:
            f.write(json.dumps(seen) + "\\n")
        return x


def make_model():
    return nn.Sequential(nn.Linear(32, 8), Probe(), nn.ReLU(), nn.Linear(8, 10))
"""


def test_stats_records_its_steps_with_one_blas_thread(tmp_path, capsys):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    if not any(i["user_api"] == "blas" for i in threadpoolctl.threadpool_info()):
        pytest.skip("no BLAS library that threadpoolctl can see")
    from tinygrad_init import cli

    path = tmp_path / "probe.py"
    path.write_text(BLAS_PROBE_MODEL)
    with threadpoolctl.threadpool_limits(limits=2, user_api="blas"):
        assert cli.main(["stats", str(path), "--steps", "2"]) == 0
    assert "step 1:" in capsys.readouterr().out
    assert (tmp_path / "probe.py.threads").read_text().split() == ["[1]", "[1]"]
