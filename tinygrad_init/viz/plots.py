"""matplotlib plots of what a :class:`~tinygrad_init.diagnostics.Monitor` recorded.

Needs matplotlib (a dependency of the package, imported on use: the engine itself needs only
numpy).  Each function takes an optional ``ax`` and returns the Axes (or Figure).

- :func:`plot_gradient_norms`: gradient norm per layer on a log scale, with the
  vanishing/exploding bands.
- :func:`plot_activation_histograms`: one histogram per layer, overlaid, in the style of
  Glorot & Bengio (2010), figure 6.
- :func:`plot_gradient_heatmap`: layers x steps heat map of the gradient ratio (log scale).
"""

from __future__ import annotations

import numpy as np

from .colors import fill_color

__all__ = ["plot_gradient_norms", "plot_activation_histograms", "plot_gradient_heatmap"]


def _plt():
    try:
        import matplotlib

        if matplotlib.get_backend().lower() not in (
            "agg",
            "module://matplotlib_inline.backend_inline",
        ):
            import os

            if not os.environ.get("DISPLAY"):
                matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError(
            "tinygrad_init.viz.plots needs matplotlib: pip install matplotlib"
        ) from None
    return plt


def _records(monitor, step=None):
    return monitor._last_step(step)


def plot_gradient_norms(monitor, step=None, ax=None, weights=True):
    """Gradient RMS at each layer's output (and of its weight) on a log axis, step ``step``.

    The shaded bands are the vanishing and exploding zones relative to the last layer.
    """
    plt = _plt()
    recs = _records(monitor, step)
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 4))
    idx = np.arange(1, len(recs) + 1)
    g = np.array([r.grad_rms if r.grad_rms is not None else np.nan for r in recs])
    ratio = [r.grad_ratio for r in recs]
    colors = [fill_color(x, monitor.thresholds) for x in ratio]
    ax.plot(idx, g, color="#555555", lw=1, zorder=1)
    ax.scatter(
        idx,
        g,
        c=colors,
        edgecolors="#333333",
        s=40,
        zorder=2,
        label="gradient at the layer's output (rms)",
    )
    if weights:
        w = np.array([r.weight_grad_rms if r.weight_grad_rms is not None else np.nan for r in recs])
        ax.plot(idx, w, "s--", color="#9e9e9e", ms=3, lw=1, label="weight gradient (rms)")
    ref = next((r.grad_rms for r in reversed(recs) if r.grad_rms is not None), None)
    if ref:
        t = monitor.thresholds
        ax.axhspan(
            ref * 1e-30,
            ref * t.vanishing,
            color="#c6dbef",
            alpha=0.5,
            lw=0,
            label=f"vanishing (< {t.vanishing:g} x last layer)",
        )
        ax.axhspan(
            ref * t.exploding,
            ref * 1e30,
            color="#fcbba1",
            alpha=0.5,
            lw=0,
            label=f"exploding (> {t.exploding:g} x last layer)",
        )
    ax.set_yscale("log")
    finite = np.concatenate(
        [g[np.isfinite(g) & (g > 0)]] + ([w[np.isfinite(w) & (w > 0)]] if weights else [])
    )
    if finite.size:
        ax.set_ylim(finite.min() / 10, finite.max() * 10)
    ax.set_xlabel("layer (input -> output)")
    ax.set_ylabel("gradient rms")
    ax.set_title(f"Gradient per layer, step {recs[0].step}")
    ax.legend(fontsize=8, loc="best")
    ax.grid(True, which="major", alpha=0.3)
    return ax


def plot_activation_histograms(monitor, ax=None, bins=60, layers=None, samples=None):
    """Histograms of each layer's output activations, overlaid and coloured from the first
    layer (dark) to the last (light), as Glorot & Bengio (2010) plot them.

    ``samples`` maps layer names to activation samples; by default ``monitor.samples``,
    the last recorded step (keep a copy of it after an earlier step to plot that one).
    Needs ``Monitor(sample_size > 0)``."""
    plt = _plt()
    samples = monitor.samples if samples is None else samples
    if not samples:
        raise RuntimeError(
            "plot_activation_histograms: no activation samples: create the "
            "Monitor with sample_size > 0 and record a step"
        )
    names = [n for n in monitor.layers if n in samples]
    if layers is not None:
        names = [n for n in names if n in set(layers)]
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 4))
    cmap = plt.get_cmap("viridis")
    allv = np.concatenate([samples[n] for n in names])
    allv = allv[np.isfinite(allv)]
    lo, hi = np.percentile(allv, [0.5, 99.5]) if allv.size else (-1, 1)
    if hi - lo < 1e-12:  # every unit gives the same value (e.g. zero weights)
        lo, hi = lo - 0.5, hi + 0.5
    edges = np.linspace(lo, hi, bins + 1)
    for k, n in enumerate(names):
        v = samples[n][np.isfinite(samples[n])]
        counts, _ = np.histogram(v, edges)
        if not counts.sum():  # overflowed, or entirely outside the common range
            continue
        hist = counts / (counts.sum() * np.diff(edges))
        centers = (edges[:-1] + edges[1:]) / 2
        ax.plot(
            centers,
            hist,
            color=cmap(k / max(len(names) - 1, 1)),
            lw=1.2,
            label=f"layer {monitor.layers.index(n) + 1}",
        )
    ax.set_xlabel("activation value")
    ax.set_ylabel("density")
    ax.set_title("Activation histograms per layer")
    if len(names) <= 12:
        ax.legend(fontsize=7, ncol=2)
    else:
        sm = plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(1, len(names)))
        ax.figure.colorbar(sm, ax=ax, label="layer")
    return ax


def _rgb(hex_color):
    return tuple(int(hex_color[i : i + 2], 16) / 255 for i in (1, 3, 5))


def plot_gradient_heatmap(monitor, ax=None, key="grad_ratio"):
    """Layers x steps heat map of ``key`` (default the gradient ratio to the last layer): how
    the gradient flow evolves during training.  Each cell has the colour the diagrams give the
    same ratio (:func:`~tinygrad_init.viz.colors.fill_color`, the monitor's thresholds), so
    blue, green and red mean the same here as there."""
    plt = _plt()
    from matplotlib.colors import ListedColormap, LogNorm
    from matplotlib.ticker import MaxNLocator

    recs = monitor.records
    if not recs:
        raise RuntimeError("plot_gradient_heatmap: nothing recorded yet")
    t = monitor.thresholds
    steps = sorted({r.step for r in recs})
    layers = sorted({r.index for r in recs})
    image = np.ones((len(layers), len(steps), 3))  # white: no gradient reached the layer
    for r in recs:
        image[layers.index(r.index), steps.index(r.step)] = _rgb(fill_color(getattr(r, key), t))
    if ax is None:
        _, ax = plt.subplots(figsize=(8, 4))
    ax.imshow(
        image,
        aspect="auto",
        origin="lower",
        interpolation="nearest",
        extent=(steps[0] - 0.5, steps[-1] + 0.5, 0.5, len(layers) + 0.5),
    )
    # The colour bar is the same scale, sampled over 4 decades beyond each threshold.
    lo, hi = t.vanishing * 1e-4, t.exploding * 1e4
    ratios = np.geomspace(lo, hi, 256)
    scale = ListedColormap([_rgb(fill_color(float(v), t)) for v in ratios])
    bar = plt.cm.ScalarMappable(cmap=scale, norm=LogNorm(lo, hi))
    ax.figure.colorbar(bar, ax=ax, label=key.replace("_", " ") + " (black: NaN/Inf)")
    ax.set_xlabel("step")
    ax.set_ylabel("layer (input at the bottom)")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(f"{key.replace('_', ' ')} over training")
    return ax
