"""HTML for the study's architecture and theory sections (:mod:`tinygrad_init.sections`):
for each section its findings, its plots (PNG, embedded) and a table of its numbers.

Plots: stream variance per block on a log scale beside theory (residual), gradient norm
per layer on a log scale (BatchNorm), per-layer gradient norms at init and loss curves
(transformers), the chi_1 phase diagram with the critical line and the measured points,
and sigma_w^2 / sigma_b^2 sliders that read chi_1 and the depth scale off it (edge of
chaos), histograms of the Jacobian's singular values (dynamical isometry).
"""

from __future__ import annotations

import json
import math

import numpy as np

from .report import _e, _png
from .sections import CHAOS_SIGMA_B2, trained

__all__ = ["sections_html"]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _findings(findings):
    parts = []
    for f in findings:
        mark = "✔ reproduced" if f.holds else "✘ not reproduced in this run"
        parts.append(
            f'<div class="finding{"" if f.holds else " fails"}"><h3>{_e(f.title)} '
            f'<span class="muted">— {mark}</span></h3><div>{_e(f.explanation)}</div>'
            f'<div class="evidence">{_e(f.evidence)}</div></div>'
        )
    return "\n".join(parts)


def _residual(m):
    plt = _plt()
    variance = m["variance"]
    depths = list(next(iter(variance.values())))
    fig, axes = plt.subplots(1, len(depths), figsize=(5 * len(depths), 3.8), squeeze=False)
    cmap = plt.get_cmap("tab10")
    for ax, depth in zip(axes[0], depths):
        for k, (scheme, by_depth) in enumerate(variance.items()):
            v = by_depth[depth]
            blocks = range(len(v["measured"]))
            ax.plot(blocks, v["measured"], color=cmap(k), lw=1.6, label=scheme)
            ax.plot(blocks, v["theory"], color=cmap(k), lw=1, ls=":")
        ax.set_yscale("log")
        ax.set_title(f"{depth} blocks (dotted: theory)")
        ax.set_xlabel("block")
        ax.grid(True, alpha=0.3)
    axes[0][0].set_ylabel("Var(stream) / Var(after stem)")
    axes[0][-1].legend(fontsize=8)
    fig2, ax = plt.subplots(figsize=(6, 3.5))
    for k, (scheme, losses) in enumerate(m["training"].items()):
        finite = [v for v in losses if math.isfinite(v)]
        ax.plot(range(len(finite)), finite, color=cmap(k), lw=1.4, label=scheme)
    ax.set_yscale("log")
    ax.set_title(f"training at {m['train_depth']} blocks (SGD, spirals)")
    ax.set_xlabel("SGD step")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return _residual_matrix(m) + _png(fig) + _png(fig2)


def _residual_matrix(m):
    """The residual counterpart of the init x activation matrix: branch scheme x depth,
    each cell the stream's variance growth (measured, theory), and whether it trained."""
    variance, training = m["variance"], m["training"]
    depths = list(next(iter(variance.values())))
    head = "".join(f"<th>{d} blocks</th>" for d in depths)
    rows = []
    for scheme, by_depth in variance.items():
        cells = "".join(
            f"<td class='num'>{by_depth[d]['measured'][-1]:.3g} "
            f"<span class='muted'>({by_depth[d]['theory'][-1]:.3g})</span></td>"
            for d in depths
        )
        ok = "yes" if trained(training[scheme]) else "no"
        rows.append(f"<tr><th>{_e(scheme)}</th>{cells}<td>{ok}</td></tr>")
    return (
        "<table class='matrix'><tr><th>branch scheme</th>"
        f"{head}<th>trains at {m['train_depth']} blocks</th></tr>{''.join(rows)}</table>"
        "<p class='muted'>Cells: Var(stream after the last block) / Var(after the stem), "
        "theory in brackets.</p>"
    )


def _batchnorm(m):
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
    for ax, key, title in (
        (axes[0], "plain", "BN-ReLU MLP: weight gradient norm per layer"),
        (axes[1], "residual", "BatchNorm ResNet: per block"),
    ):
        for depth, norms in m[key].items():
            ax.plot(range(len(norms)), norms, lw=1.6, label=f"{depth}")
        ax.set_yscale("log")
        ax.set_title(title)
        ax.set_xlabel("layer (input first)")
        ax.grid(True, alpha=0.3)
        ax.legend(title="depth", fontsize=8)
    return _png(fig)


def _transformer(m):
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
    for name, g in m["grads"].items():
        axes[0].plot(range(len(g)), g, marker="o", lw=1.4, label=name)
    axes[0].set_title("gradient norm per encoder layer at init")
    axes[0].set_xlabel("layer (input first)")
    axes[0].grid(True, alpha=0.3)
    axes[0].legend(fontsize=8)
    for name, losses in m["losses"].items():
        axes[1].plot(range(len(losses)), losses, lw=1.4, label=name)
    axes[1].axhline(math.log(m["vocab"]), color="#888", ls=":", lw=1)
    axes[1].set_yscale("log")
    axes[1].set_title(f"reverse task, Adam lr {m['lr']:g}, no warm-up unless said")
    axes[1].set_xlabel("step")
    axes[1].grid(True, alpha=0.3)
    axes[1].legend(fontsize=8)
    return _png(fig)


def _chaos(m):
    plt = _plt()
    sw, sb = np.array(m["sigma_w2"]), np.array(m["sigma_b2"])
    chi = np.log(np.array(m["chi_1"]))
    fig, ax = plt.subplots(figsize=(7, 4.2))
    limit = np.abs(chi).max()
    mesh = ax.pcolormesh(sw, sb, chi, cmap="coolwarm", vmin=-limit, vmax=limit, shading="auto")
    fig.colorbar(mesh, ax=ax, label="log chi_1 (< 0 ordered, > 0 chaotic)")
    ax.plot(m["critical"], sb, color="k", lw=2, label="edge of chaos, chi_1 = 1")
    offsets = {"ordered": (-75, 10), "critical": (8, -38), "chaotic": (8, 8)}
    for label, p in m["points"].items():
        ax.plot(p["sigma_w2"], 0.05, "o", color="k", ms=7)
        ax.annotate(
            f"{label}\nmeasured {p['measured']:.3f}\npredicted {p['predicted']:.3f}",
            (p["sigma_w2"], 0.05),
            textcoords="offset points",
            xytext=offsets.get(label, (6, 8)),
            fontsize=7,
        )
    ax.set_xlabel("sigma_w^2")
    ax.set_ylabel("sigma_b^2")
    ax.set_title("tanh: mean-field phase diagram")
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.canvas.draw()
    (x0, y0), (x1, y1) = fig.transFigure.inverted().transform(
        ax.transAxes.transform([(0, 0), (1, 1)])
    )
    critical = m["points"]["critical"]["sigma_w2"]
    grid = {
        "sigma_w2": m["sigma_w2"],
        "sigma_b2": m["sigma_b2"],
        "chi_1": [[float(f"{c:.4g}") for c in row] for row in m["chi_1"]],
        "xlim": list(ax.get_xlim()),
        "ylim": list(ax.get_ylim()),
        "box": [x0, y0, x1, y1],  # the axes as fractions of the image, from its bottom left
        "start": [int(np.abs(sw - critical).argmin()), int(np.abs(sb - CHAOS_SIGMA_B2).argmin())],
    }
    return (
        f"<div class='phase' data-grid='{_e(json.dumps(grid))}'>"
        f"<div class='phase-plot'>{_png(fig, tight=False)}</div></div>"
    )


def _isometry(m):
    plt = _plt()
    tanh = m["tanh"]
    depths = list(tanh["orthogonal"])
    fig, axes = plt.subplots(1, len(depths), figsize=(5 * len(depths), 3.5), squeeze=False)
    for ax, depth in zip(axes[0], depths):
        for kind, color in (("orthogonal", "#2e7d32"), ("gaussian", "#c62828")):
            ax.hist(tanh[kind][depth], bins=40, color=color, alpha=0.6, label=kind)
        ax.set_title(f"tanh at criticality, {depth} layers")
        ax.set_xlabel("log10 singular value of the Jacobian")
        ax.legend(fontsize=8)
    return _png(fig)


_PLOTS = {
    "residual": _residual,
    "batchnorm": _batchnorm,
    "transformer": _transformer,
    "chaos": _chaos,
    "isometry": _isometry,
}

_INTROS = {
    "residual": "Residual MLPs (width 64, pre-activation ReLU branches of two He-initialised "
    "layers) at init, under each branch scheme; then each trained (width 32) at one depth.",
    "batchnorm": "Linear-BatchNorm-ReLU stacks with He weights, and the same blocks inside "
    "residual connections, at init: the norm of each layer's weight gradient for a random "
    "projection of the output.",
    "transformer": "Pre-LN and post-LN encoders (make_transformer, width 32, 4 heads) on a "
    "synthetic task generated in the package: output the input sequence reversed.",
    "chaos": "Random tanh networks with W ~ N(0, sigma_w^2 / N) and b ~ N(0, sigma_b^2): the "
    "mean-field prediction of chi_1 over the plane, and real networks at three points.",
    "isometry": "Singular values of the input-output Jacobian, computed with the "
    "framework's reverse mode in one pass (the input repeated as a batch, the identity as "
    "output gradient).",
}


def sections_html(sections):
    """One ``<h2>`` section per measured :class:`~tinygrad_init.sections.Section`."""
    parts = []
    for s in sections:
        parts.append(
            f"<h2>{_e(s.title)}</h2>\n<p class='muted'>{_e(_INTROS[s.key])} "
            f"({s.seconds:.1f} s)</p>\n{_findings(s.findings)}\n{_PLOTS[s.key](s.measurements)}"
        )
    return "\n".join(parts)
