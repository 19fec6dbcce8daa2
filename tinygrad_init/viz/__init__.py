"""Pictures of gradient flow: op-level graphs, layer-level flow diagrams and plots.

- :func:`draw_graph`: every op and parameter of a graph, coloured by the gradient that
  reached it, one cluster per module (with :func:`trace_modules`); a run of identical
  residual blocks becomes one box, "Block x N".
- :func:`gradient_flow`: one node per layer, in forward order, with gradient norms,
  activation statistics and saturated/dead fractions; the picture for deep networks.
- :mod:`tinygrad_init.viz.plots` (needs matplotlib, the ``plots`` extra): gradient norm
  per layer, activation histograms, a layers x steps heat map.

Both diagrams are ``graphviz.Digraph`` objects: ``.render("flow", format="svg")``, or
displayed inline in Jupyter.  Colours follow :mod:`tinygrad_init.viz.colors`.
"""

from .colors import Thresholds, classify, fill_color, legend_html, node_style
from .flow import gradient_flow
from .graph import METRICS, ModuleTrace, draw_graph, trace_modules

__all__ = [
    "draw_graph",
    "trace_modules",
    "ModuleTrace",
    "gradient_flow",
    "Thresholds",
    "classify",
    "fill_color",
    "node_style",
    "legend_html",
    "METRICS",
    "render",
]


def render(dot, path):
    """Write ``dot`` to ``path``; the format comes from the extension (.svg .png .pdf .dot).

    Returns the path written.  ``.dot``/``.gv`` write the source without needing the
    graphviz programs; other formats raise ``graphviz.ExecutableNotFound`` without them.
    """
    from .files import render as _render

    return _render(dot, path)
