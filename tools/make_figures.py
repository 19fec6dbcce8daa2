"""Regenerate every picture of the README and docs/ into docs/images/.

    python tools/make_figures.py              # all figures, including the report screenshot
    python tools/make_figures.py --no-report  # skip the study and its screenshot

Needs the graphviz 'dot' program and matplotlib (the ``plots`` extra).  The screenshot of
the HTML report (``report.png``) runs the full ``tinygrad-init demo`` (about a minute or
two on 2 cores), then takes a picture of the report with headless Chromium; without a
``chromium`` (or ``chromium-browser``) program it prints a note and leaves the old
screenshot in place.

Every figure is deterministic (fixed seeds); only the SVG source of an op graph changes
from run to run, in node ids taken from Python object ids.  Also prints how long the big
diagrams take to render (op graph of a 100-layer MLP, flow diagram of a 50-layer MLP).
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

import tinygrad_init as tg  # noqa: E402
import tinygrad_init.nn.functional as F  # noqa: E402
from tinygrad_init import init, models, nn, viz  # noqa: E402
from tinygrad_init.diagnostics import Monitor  # noqa: E402

OUT = os.path.join(ROOT, "docs", "images")


def normal_4_over_fan(t, generator=None):
    """N(0, 4 / fan_in): twice He's variance, so ReLU gradients grow by sqrt(2) per layer."""
    return init.normal_(t, 0.0, math.sqrt(4.0 / t.shape[1]), generator=generator)


def flow(name, depth, act, init_, label, formats=("svg", "png")):
    m = models.make_mlp(depth, 32, act, init_, generator=0)
    x, y = models.synthetic_batch(m, generator=1)
    start = time.perf_counter()
    dot = viz.gradient_flow(
        m, x, y, title=f"Gradient flow: {depth}-layer MLP, width 32, {act}, init {label}"
    )
    for fmt in formats:
        viz.render(dot, os.path.join(OUT, f"{name}.{fmt}"))
    return time.perf_counter() - start


class Block(nn.Module):
    """x + fc2(relu(fc1(x))), He weights and zero biases; ``zero``: fc2's weight is 0."""

    def __init__(self, width, gen, zero=False):
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
    """``depth`` blocks of width 64, a final LayerNorm and a 10-way head."""

    def __init__(self, depth, zero=False, width=64):
        super().__init__()
        gen = np.random.default_rng(0)
        self.blocks = nn.ModuleList([Block(width, gen, zero) for _ in range(depth)])
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, 10)

    def forward(self, x):
        for b in self.blocks:
            x = b(x)
        return self.head(self.norm(x))


def classification_flow(name, build, title, **kw):
    """The flow diagram of ``build()`` on 128 N(0, 1) points of 64 features, 10 classes
    (the default-initialised head and norm layers draw from ``tg.manual_seed(0)``)."""
    tg.manual_seed(0)
    model = build()
    g = np.random.default_rng(1)
    x = tg.tensor(g.standard_normal((128, 64)).astype(np.float32))
    y = tg.tensor(g.integers(0, 10, 128))
    dot = viz.gradient_flow(model, x, y, loss_fn=F.cross_entropy, title=title, **kw)
    viz.render(dot, os.path.join(OUT, f"{name}.png"))


# The screenshot: the top of the report (findings, the init x activation matrix), cropped
# where the training curves begin.
SHOT_WIDTH, SHOT_HEIGHT, SHOT_CROP = 1280, 2600, 2250


def report_screenshot():
    """Run the demo into a temporary folder and screenshot its report into report.png."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        print(
            "chromium not found: skipping the report screenshot (docs/images/report.png "
            "left as it was; install Debian's chromium package to regenerate it)"
        )
        return
    from tinygrad_init import cli

    with tempfile.TemporaryDirectory() as tmp:
        html = os.path.join(tmp, "init-report.html")
        code = cli.main(["demo", "--out", html])
        if code != 0:
            raise SystemExit(f"tinygrad-init demo failed with exit code {code}")
        raw = os.path.join(tmp, "shot.png")
        subprocess.run(
            [
                browser,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--hide-scrollbars",
                f"--window-size={SHOT_WIDTH},{SHOT_HEIGHT}",
                f"--screenshot={raw}",
                "file://" + html,
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=120,
        )
        from PIL import Image

        with Image.open(raw) as im:
            shot = im.convert("RGB").crop((0, 0, SHOT_WIDTH, min(SHOT_CROP, im.height)))
            # An adaptive palette keeps the file small; the report has few distinct colours.
            shot = shot.quantize(colors=128, method=Image.Quantize.MEDIANCUT)
            shot.save(os.path.join(OUT, "report.png"), optimize=True)
    print(f"report screenshot: {os.path.join(OUT, 'report.png')}")


def main(argv=None):
    parser = argparse.ArgumentParser(description="Regenerate the README's figures.")
    parser.add_argument(
        "--no-report", action="store_true", help="skip the study run and the report screenshot"
    )
    args = parser.parse_args(argv)
    os.makedirs(OUT, exist_ok=True)
    flow("flow_sigmoid_normal", 30, "sigmoid", "normal", "normal (N(0, 1))")
    flow("flow_relu_exploding", 30, "relu", normal_4_over_fan, "N(0, 4/fan_in)")
    flow("flow_relu_he", 30, "relu", "kaiming_normal", "kaiming_normal (He)")
    t50 = flow(
        "flow_relu_he_50", 50, "relu", "kaiming_normal", "kaiming_normal (He)", formats=("svg",)
    )

    classification_flow(
        "flow_residual_he",
        lambda: ResMLP(20),
        "Gradient flow: 20 residual blocks x + fc2(relu(fc1(x))), He, final LayerNorm",
    )
    classification_flow(
        "flow_residual_zero",
        lambda: ResMLP(4, zero=True),
        "Gradient flow: 4 residual blocks, He, fc2 zero-initialised, final LayerNorm",
        collapse=False,
    )
    classification_flow(
        "flow_batchnorm",
        lambda: models.make_mlp(41, 64, in_features=64, generator=0, norm="batch"),
        "Gradient flow: 40 x (Linear, BatchNorm1d, ReLU), He, width 64",
    )

    m = models.make_mlp(6, 16, "tanh", "normal", generator=0)
    x, y = models.synthetic_batch(m, batch=32, generator=1)
    with viz.trace_modules(m) as trace:
        loss = models.mse(m(x), y)
    viz.render(
        viz.draw_graph(
            loss, modules=trace, title="Op graph: 6-layer MLP, tanh, init normal (N(0, 1))"
        ),
        os.path.join(OUT, "graph_tanh.png"),
    )

    m = models.make_mlp(100, 32, "relu", "kaiming_normal", generator=0)
    x, y = models.synthetic_batch(m, generator=1)
    start = time.perf_counter()
    with viz.trace_modules(m) as trace:
        loss = models.mse(m(x), y)
    viz.render(viz.draw_graph(loss, modules=trace), os.path.join(OUT, "graph_mlp100.svg"))
    t100 = time.perf_counter() - start

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from tinygrad_init.viz import plots
    except ImportError:
        print("matplotlib not installed: skipping the plots")
    else:
        fig, axes = plt.subplots(1, 3, figsize=(17, 4.2))
        m = models.make_mlp(20, 32, "tanh", "normal", generator=0)
        x, y = models.synthetic_batch(m, generator=1)
        with Monitor(m) as mon:
            for _ in range(20):
                for p in m.parameters():
                    p.grad = None
                models.mse(m(x), y).backward()
                mon.step()
                for p in m.parameters():
                    p.data -= 1e-3 * p.grad.data
        plots.plot_gradient_norms(mon, ax=axes[0])
        plots.plot_activation_histograms(mon, ax=axes[1])
        plots.plot_gradient_heatmap(mon, ax=axes[2])
        fig.suptitle(
            "20-layer MLP, tanh, init normal (N(0, 1)): saturated units, gradients "
            "exploding toward the input"
        )
        fig.tight_layout()
        fig.savefig(os.path.join(OUT, "plots_tanh_normal.png"), dpi=90)
        plt.close(fig)
    if not args.no_report:
        report_screenshot()
    print(f"op graph, 100-layer MLP (trace, backward, draw, render svg): {t100:.2f} s")
    print(f"flow diagram, 50-layer MLP (forward, backward, draw, render svg): {t50:.2f} s")
    print(f"figures in {OUT}")


if __name__ == "__main__":
    main()
