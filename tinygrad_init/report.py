"""The self-contained HTML report of an initialization study (one file, images embedded).

    study = tinygrad_init.study.run_study()
    write_report(study, "init-report.html")

Sections: the findings with their evidence; a matrix of initialization x activation
coloured by the gradient-flow verdict; the full results table; loss curves; and, for every
run, the layer-level gradient-flow diagram at up to four recorded training steps (a slider
picks one) and the activation histograms at initialization.  Diagrams are inline SVG from
graphviz, plots PNG from matplotlib (the ``plots`` extra), both embedded, and the controls
inline JavaScript, so the file opens offline; without JavaScript each control's first state
is shown.
"""

from __future__ import annotations

import base64
import html
import io
import os
import re
from concurrent.futures import Future, ThreadPoolExecutor

from . import viz
from ._io import atomic_write
from .diagnostics import EXPLODING, HEALTHY, NONFINITE, VANISHING, format_number
from .study import ACTIVATIONS, SCHEMES
from .viz.colors import node_style

__all__ = ["render_report", "write_report", "results_table"]

_STATUS_TEXT = {
    HEALTHY: "healthy",
    VANISHING: "vanishing",
    EXPLODING: "exploding",
    NONFINITE: "NaN / Inf",
}

_CSS = """
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; max-width: 1180px;
       margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.7em; margin-bottom: .2em; } h2 { margin-top: 2em; border-bottom: 1px
solid #ddd; padding-bottom: .2em; } .muted { color: #666; font-size: .92em; }
table { border-collapse: collapse; margin: 1em 0; font-size: .9em; }
th, td { border: 1px solid #ddd; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
.finding { border-left: 5px solid #2e7d32; background: #f6fbf6; padding: .6em 1em;
           margin: .8em 0; } .finding.fails { border-color: #c62828; background: #fdf4f4; }
.finding h3 { margin: 0 0 .3em 0; font-size: 1.05em; } .evidence { font-family: ui-monospace,
monospace; font-size: .85em; color: #333; margin: .4em 0 0 0; padding-left: 0;
list-style: none; } .evidence li.fails { color: #c62828; font-weight: 600; }
.matrix td { text-align: center; min-width: 9em; } .badge { font-weight: 600; }
details { border: 1px solid #ddd; border-radius: 4px; margin: .5em 0; padding: .3em .8em; }
summary { cursor: pointer; font-weight: 600; } .run svg { max-width: 100%; height: auto; }
pre { white-space: pre-wrap; overflow-wrap: anywhere; }
.run img { max-width: 100%; } .pair { display: flex; flex-wrap: wrap; gap: 1em;
align-items: flex-start; } .pair > div { flex: 1 1 480px; }
.control { display: flex; align-items: center; gap: .6em; margin: .4em 0; }
.control output { font-variant-numeric: tabular-nums; min-width: 6em; }
.phase-plot { position: relative; display: inline-block; max-width: 100%; }
.phase-plot img { display: block; max-width: 100%; } .readout { display: block; }
.marker { position: absolute; width: 12px; height: 12px; border: 3px solid #000;
          border-radius: 50%; transform: translate(-50%, -50%); pointer-events: none;
          box-shadow: 0 0 0 2px #fff; }
"""


def _e(text):
    return html.escape(str(text))


def _fmt(x, spec=".3g"):
    """Numbers in the report: three significant digits unless told otherwise."""
    return format_number(x, spec)


def _png(fig, tight=True):
    """A matplotlib figure as an <img> with the PNG embedded; ``tight=False`` keeps the
    figure's own frame, so that figure fractions are fractions of the image."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=80, bbox_inches="tight" if tight else None)
    import matplotlib.pyplot as plt

    plt.close(fig)
    data = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img alt="plot" src="data:image/png;base64,{data}">'


def _svg(dot):
    """A graphviz diagram as inline SVG (without the XML prologue)."""
    svg = dot.pipe(format="svg").decode("utf-8")
    return svg[svg.index("<svg") :]


def _cell_style(result):
    style = node_style(result.grad_ratio)
    return f'style="background:{style["fillcolor"]};color:{style["fontcolor"]}"'


def _status(result):
    return _STATUS_TEXT.get(result.status, result.status)


def results_table(study):
    """The results as plain text: one row per run (what the terminal shows)."""
    header = [
        "activation",
        "init",
        "clip",
        "layers",
        "loss start",
        "loss end",
        "accuracy",
        "grad first/last",
        "verdict at init",
        "sat/dead",
        "units",
    ]
    rows = []
    for r in study.results:
        satdead = (
            f"sat {r.saturated:.0%}"
            if r.saturated is not None
            else f"dead {r.dead:.0%}"
            if r.dead is not None
            else "-"
        )
        rows.append(
            [
                r.activation,
                r.scheme.key,
                _fmt(r.clip, "g") if r.clip else "-",
                str(r.depth),
                _fmt(r.first_loss),
                _fmt(r.final_loss),
                f"{r.accuracy:.0%}",
                _fmt(r.grad_ratio, ".1e"),
                _status(r),
                satdead,
                f"{min(r.distinct_units)}-{max(r.distinct_units)}",
            ]
        )
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    lines = [
        "  ".join(h.ljust(w) for h, w in zip(header, widths)),
        "  ".join("-" * w for w in widths),
    ]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
    return "\n".join(lines)


def _findings_html(study):
    parts = []
    for f in study.findings:
        mark = "✔ reproduced" if f.holds else "✘ not reproduced in this run"
        checks = "".join(
            f'<li class="{"holds" if c.holds else "fails"}">{"✔" if c.holds else "✘"} '
            f"{_e(c.statement)}</li>"
            for c in f.checks
        )
        parts.append(
            f'<div class="finding{"" if f.holds else " fails"}"><h3>{_e(f.title)} '
            f'<span class="muted">— {mark}</span></h3><div>{_e(f.explanation)}</div>'
            f'<ul class="evidence">{checks}</ul></div>'
        )
    return "\n".join(parts)


def _matrix_html(study):
    cfg = study.config
    head = "".join(f"<th>{_e(a)}</th>" for a in ACTIVATIONS)
    rows = []
    for s in SCHEMES:
        cells = []
        for a in ACTIVATIONS:
            r = study.get(a, s.key)
            cells.append(
                f'<td {_cell_style(r)}><span class="badge">{_e(_status(r))}</span>'
                f"<br>loss {_fmt(r.first_loss)} → {_fmt(r.final_loss)}"
                f"<br>accuracy {r.accuracy:.0%}</td>"
            )
        rows.append(
            f"<tr><th>{_e(s.title)}<br><span class='muted'>{_e(s.formula)}</span>"
            f"</th>{''.join(cells)}</tr>"
        )
    return (
        f"<table class='matrix'><tr><th>init \\ activation ({cfg.depth} layers)</th>"
        f"{head}</tr>{''.join(rows)}</table>"
    )


def _reading(study):
    """A short plain-language paragraph per activation, derived from the numbers."""
    paragraphs = []
    for a in ACTIVATIONS:
        runs = [study.get(a, s.key) for s in SCHEMES]
        by = {
            status: [r.scheme.title for r in runs if r.status == status]
            for status in (HEALTHY, VANISHING, EXPLODING, NONFINITE)
        }
        trained = [r for r in runs if not r.diverged]
        best = min(trained, key=lambda r: r.final_loss) if trained else None
        text = [f"<b>{_e(a)}</b>:"]
        if by[HEALTHY]:
            text.append(f"gradients stayed healthy with {_e(', '.join(by[HEALTHY]))};")
        if by[VANISHING]:
            text.append(f"they vanished toward the input with {_e(', '.join(by[VANISHING]))};")
        if by[EXPLODING] or by[NONFINITE]:
            text.append(f"they exploded with {_e(', '.join(by[EXPLODING] + by[NONFINITE]))};")
        if best is not None:
            text.append(
                f"the lowest final loss came from {_e(best.scheme.title)} "
                f"({_fmt(best.final_loss)}, accuracy {best.accuracy:.0%})."
            )
        if not by[HEALTHY]:
            text.append("No scheme kept this activation healthy at this depth.")
        paragraphs.append("<p>" + " ".join(text) + "</p>")
    return "\n".join(paragraphs)


def _table_html(study):
    header = [
        "activation",
        "init",
        "drawn from",
        "clip",
        "layers",
        "loss start → end",
        "accuracy",
        "gradient first / last layer",
        "verdict at init",
        "saturated / dead",
        "distinct units",
        "time",
    ]
    rows = []
    for r in study.results:
        satdead = (
            f"{r.saturated:.0%} saturated"
            if r.saturated is not None
            else f"{r.dead:.0%} dead"
            if r.dead is not None
            else "–"
        )
        units = (
            f"{min(r.distinct_units)}"
            if min(r.distinct_units) == max(r.distinct_units)
            else f"{min(r.distinct_units)}–{max(r.distinct_units)}"
        )
        rows.append(
            f"<tr><td>{_e(r.activation)}</td><td>{_e(r.scheme.title)}</td>"
            f"<td>{_e(r.scheme.formula)}</td><td>{_fmt(r.clip, 'g') if r.clip else '–'}</td>"
            f"<td class='num'>{r.depth}</td><td class='num'>{_fmt(r.first_loss)} → "
            f"{_fmt(r.final_loss)}</td><td class='num'>{r.accuracy:.0%}</td>"
            f"<td class='num' {_cell_style(r)}>{_fmt(r.grad_ratio, '.1e')}</td>"
            f"<td>{_e(_status(r))}</td><td>{_e(satdead)}</td>"
            f"<td class='num'>{units} / {study.config.width}</td>"
            f"<td class='num'>{r.seconds:.1f} s</td></tr>"
        )
    return (
        "<table><tr>"
        + "".join(f"<th>{_e(h)}</th>" for h in header)
        + "</tr>"
        + "".join(rows)
        + "</table>"
    )


def _scheme_colors():
    """One colour per initialization, the same in every plot of the report."""
    import matplotlib.pyplot as plt

    cmap = plt.get_cmap("tab10")
    return {s.key: cmap(k) for k, s in enumerate(SCHEMES)}


def _loss_curves(study):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = _scheme_colors()
    fig, axes = plt.subplots(1, len(ACTIVATIONS), figsize=(15, 4.6))
    for ax, a in zip(axes, ACTIVATIONS):
        for s in SCHEMES:
            losses = study.get(a, s.key).losses
            ax.plot(range(len(losses)), losses, color=colors[s.key], lw=1.4, label=s.title)
        clipped = study.get(a, "large", clip=study.config.clip)
        ax.plot(
            range(len(clipped.losses)),
            clipped.losses,
            color=colors["large"],
            lw=1.2,
            ls="--",
            label=f"large random + clip {study.config.clip:g}",
        )
        ax.set_yscale("log")
        ax.set_title(f"{a}, {study.config.depth} layers")
        ax.set_xlabel("SGD step")
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("training loss (cross-entropy, log scale)")
    # Below the panels, never over a curve.
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=5, fontsize=9, frameon=False)
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    deep = [study.get("relu", k, depth=study.config.deep_depth) for k in ("xavier", "he")]
    fig2, ax = plt.subplots(figsize=(6, 3.5))
    for r in deep:
        ax.plot(
            range(len(r.losses)), r.losses, color=colors[r.scheme.key], lw=1.6, label=r.scheme.title
        )
    ax.set_title(f"ReLU, {study.config.deep_depth} layers, lr {study.config.deep_lr:g}")
    ax.set_xlabel("SGD step")
    ax.set_ylabel("training loss")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    return _png(fig), _png(fig2)


# Runs whose diagrams are shown open: one per finding.
_OPEN = {
    ("sigmoid", "small", None),
    ("tanh", "xavier", None),
    ("relu", "he", None),
    ("relu", "large", None),
    ("relu", "zeros", None),
}


# Diagrams per run behind the training-step slider: at most this many recorded steps (each
# diagram of a 20-layer run is about 40 kB of SVG; four per run keep the report near 6 MB).
_FLOW_FRAMES = 4


def _frame_steps(steps, most=_FLOW_FRAMES):
    """At most ``most`` of the recorded ``steps`` (sorted), evenly spaced, the first (the
    initialization) and the last always among them."""
    if len(steps) <= most:
        return list(steps)
    return [steps[round(k * (len(steps) - 1) / (most - 1))] for k in range(most)]


def _run_html(result, pool):
    """A run's part of the report, as pieces to join: strings, and the futures of its
    gradient-flow SVGs, drawn by ``dot`` in ``pool``'s threads while this thread goes on
    (with matplotlib, which must stay in one thread)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .viz import plots

    steps = _frame_steps(sorted({r.step for r in result.monitor.records}))
    frames = []
    for k, step in enumerate(steps):
        title = f"{result.label}: " + (
            "at initialization" if step == 0 else f"after {step} SGD steps"
        )
        flow = viz.gradient_flow(result.monitor, step=step, title=title, legend=False)
        hidden = " hidden" if k else ""  # without JavaScript: the first one only
        frames += [f'<div class="frame" data-step="{step}"{hidden}>', pool.submit(_svg, flow)]
        frames.append("</div>")
    fig, ax = plt.subplots(figsize=(7, 3.2))
    plots.plot_activation_histograms(result.monitor, ax=ax, samples=result.initial_samples)
    ax.set_title("activations per layer at initialization")
    opened = " open" if (result.activation, result.scheme.key, result.clip) in _OPEN else ""
    return [
        f'<details class="run"{opened}><summary>{_e(result.label)} — '
        f"{_e(_status(result))}, "
        f'final loss {_fmt(result.final_loss)}</summary><div class="steps">',
        *frames,
        f'</div><div class="pair"><div>{_png(fig)}</div>'
        f'<div><pre class="muted">{_e(result.verdict)}</pre></div></div></details>',
    ]


def render_report(
    study, command="tinygrad-init demo", sections=(), progress=None, sections_rendered=None
):
    """The report as one HTML string; ``study`` may be None when only ``sections`` (of
    :mod:`tinygrad_init.sections`) were run.  ``progress(done, total, label)``, when given,
    is told as each part is drawn.  ``sections_rendered``: the HTML that
    ``report_sections.sections_html(sections)`` gave, where it was drawn already (the
    demo draws it in the process that measured the sections)."""
    from .report_sections import sections_html

    total = 1 if study is None else len(study.results) + 2

    def tell(done, label):
        if progress is not None:
            progress(done, total, label)

    tell(0, "report: the sections")
    extra = sections_html(sections) if sections_rendered is None else sections_rendered
    if study is None:
        tell(total, "report: done")
        return _page(
            "<h1>How should the weights of a deep network be initialized?</h1>\n"
            f"<p class='muted'>Reproduce with <code>{_e(command)}</code>.</p>\n{extra}"
        )
    cfg = study.config
    tell(1, "report: training curves")
    curves, deep = _loss_curves(study)
    legend = viz.legend_html()
    drawn = []
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        for k, r in enumerate(study.results):
            tell(2 + k, f"report: gradient flow of run {k + 1}/{len(study.results)}")
            drawn.append(_run_html(r, pool))
        runs = "\n".join(
            "".join(p.result() if isinstance(p, Future) else p for p in pieces) for pieces in drawn
        )
    legend_svg = _svg(_legend_digraph(legend))
    body = f"""
<h1>How should the weights of a deep network be initialized?</h1>
<p class="muted">{cfg.depth}-layer MLPs of width {cfg.width} on {cfg.samples} points of
<i>{_e(cfg.data)}</i>, {cfg.steps} full-batch SGD steps (lr {cfg.lr:g}; {cfg.deep_lr:g} for the
{cfg.deep_depth}-layer runs; momentum {cfg.momentum:g}), biases starting at 0, seed
{cfg.seed}; final loss and accuracy measured on the same final weights; {len(study.results)} runs in
{study.seconds:.0f} s. Reproduce with <code>{_e(command)}</code>: the same seed gives the
same numbers.</p>

<h2>What the runs show</h2>
{_findings_html(study)}

<h2>Which initialization suits which activation</h2>
<p>Each cell is one training run, coloured by the gradient-flow verdict at initialization:
the RMS of the gradient reaching the first layer divided by the last layer's, on a log scale
from vanishing (blue) through healthy (green) to exploding (red).</p>
{_matrix_html(study)}
{_reading(study)}

<h2>Training curves</h2>
{curves}
{deep}

<h2>All runs</h2>
{_table_html(study)}
<p class="muted"><b>gradient first / last layer</b>: RMS of the gradient at the first
layer's output over the last layer's, at initialization; below 1e-2 is vanishing, above
1e2 exploding. <b>saturated</b>: sigmoid/tanh outputs within 0.01 of an asymptote;
<b>dead</b>: ReLU units that output 0 for every sample. <b>distinct units</b>: how many
different rows each hidden weight matrix has after training (1 means every unit of the
layer is the same unit).</p>

<h2>Gradient flow of every run, from initialization through training</h2>
<p>One box per layer, input at the top left; the colour is the gradient that reached the
layer, relative to the last layer. The slider above each diagram moves through the recorded
training steps (up to {_FLOW_FRAMES}, evenly spaced; the page shows the initialization
without JavaScript). How to read the colours:</p>
{legend_svg}
{runs}
{extra}
"""
    tell(total, "report: done")
    return _page(body)


# The page's controls, built by script over markup that reads on its own without it (each
# control's first state is the one shown): a slider over the recorded training steps of
# every gradient-flow diagram (``.steps``: one ``.frame`` per step, the rest hidden), and
# sigma_w^2 / sigma_b^2 sliders over the phase diagram (``.phase``: the grid of chi_1 and
# where the plot's axes lie in its image, as JSON in ``data-grid``) that read chi_1 and the
# depth scale at the chosen point and mark it on the plot.
_SCRIPT = """
document.querySelectorAll('.steps').forEach(function (box) {
  var frames = box.querySelectorAll('.frame');
  if (frames.length < 2) return;
  var input = document.createElement('input');
  input.type = 'range'; input.min = 0; input.max = frames.length - 1; input.value = 0;
  var shown = document.createElement('output');
  function show() {
    frames.forEach(function (f, k) { f.hidden = k !== Number(input.value); });
    shown.textContent = 'step ' + frames[input.value].dataset.step;
  }
  input.addEventListener('input', show);
  var label = document.createElement('label');
  label.className = 'control';
  label.append('training step ', input, shown);
  box.insertBefore(label, frames[0]);
  show();
});
document.querySelectorAll('.phase').forEach(function (box) {
  var g = JSON.parse(box.dataset.grid), plot = box.querySelector('.phase-plot');
  var marker = document.createElement('span'); marker.className = 'marker';
  plot.appendChild(marker);
  var readout = document.createElement('output'); readout.className = 'readout';
  function slider(name, values, start) {
    var input = document.createElement('input'), value = document.createElement('output');
    input.type = 'range'; input.min = 0; input.max = values.length - 1; input.value = start;
    input.name = name; input.addEventListener('input', show);
    var label = document.createElement('label'); label.className = 'control';
    label.append(name + ' ', input, value); box.insertBefore(label, plot);
    return {input: input, value: value};
  }
  function at(v, lim, lo, hi) { return lo + (v - lim[0]) / (lim[1] - lim[0]) * (hi - lo); }
  var w = slider('sigma_w^2', g.sigma_w2, g.start[0]);
  var b = slider('sigma_b^2', g.sigma_b2, g.start[1]);
  box.appendChild(readout);  // below the plot, which stays put as the text changes
  function show() {
    var i = Number(w.input.value), j = Number(b.input.value);
    var x = g.sigma_w2[i], y = g.sigma_b2[j], chi = g.chi_1[j][i], rate = Math.abs(Math.log(chi));
    w.value.textContent = x.toFixed(2); b.value.textContent = y.toFixed(3);
    readout.textContent = 'predicted chi_1 = ' + chi.toPrecision(3) + ': ' + (chi < 1 ?
      'ordered, the squared gradient shrinks' : 'chaotic, the squared gradient grows') +
      ' by a factor e every ' + (rate > 0 ? (1 / rate).toPrecision(3) : 'infinitely many') +
      ' layers (depth scale 1 / |log chi_1|)';
    marker.style.left = 100 * at(x, g.xlim, g.box[0], g.box[2]) + '%';
    marker.style.top = 100 * (1 - at(y, g.ylim, g.box[1], g.box[3])) + '%';
  }
  show();
});
"""


def _page(body):
    return (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>"
        f"Initialization study</title><style>{_CSS}</style></head><body>{body}"
        f"<script>{_SCRIPT}</script></body></html>"
    )


def _legend_digraph(legend):
    import graphviz

    dot = graphviz.Digraph()
    dot.attr("node", shape="plaintext")
    dot.node("legend", legend)
    return dot


def write_report(
    study, path, command="tinygrad-init demo", sections=(), progress=None, sections_rendered=None
):
    """Write the report to ``path`` atomically (a half-written report never appears)."""
    text = render_report(study, command, sections, progress, sections_rendered)
    return atomic_write(path, re.sub(r"[ \t]+\n", "\n", text).encode("utf-8"), "report")
