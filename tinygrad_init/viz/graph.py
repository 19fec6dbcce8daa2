"""Op-level diagrams: every recorded op and parameter, coloured by the gradient it received.

    out = model(x); loss = ((out - y) ** 2).mean()
    dot = tg.viz.draw_graph(loss, params=model.named_parameters())
    dot.render("graph", format="svg")

For one cluster per module, record the forward pass under :func:`trace_modules`::

    with tg.viz.trace_modules(model) as trace:
        loss = ((model(x) - y) ** 2).mean()
    dot = tg.viz.draw_graph(loss, modules=trace)     # parameters are named by the trace

Edges point forward (input to op); gradients flow against them.  Each node shows the op
(or the parameter's name), its output shape and the gradient magnitude that reached it
(``metric``).  The colour is the gradient's RMS relative to a reference, on the scale of
:mod:`tinygrad_init.viz.colors`, taken as the layer-level diagram takes it: the model's
output in a plain chain; with a trace of a residual network, the end of the residual
stream for the ops up to it and the model's output for the ops after it (a final norm,
the head); for parameters, the parameter nearest the output.  A gradient that is exactly
zero because weights downstream are exactly zero (a zero-initialised branch output, a
zero gate, Fixup's zero classifier) is drawn ``zero-init``, not vanishing.

With a trace, a run of identical residual blocks becomes one 3-D box, "Block x 40", when
the graph has more than about 60 nodes (``collapse=False`` expands it): it takes the
colour of its worst op and lists the range of its ops' ratios.  What to draw is decided
by :func:`tinygrad_init.viz.graphmodel.build_graph`; this module writes it as DOT.
"""

from __future__ import annotations

import html
import math

import graphviz

from ..autograd import record_gradients
from ..diagnostics.ownership import ModuleTrace, trace_modules
from ..diagnostics.status import ZERO_INIT, as_thresholds
from ..tensor import Tensor
from .colors import legend_html, node_style, zero_init_style
from .graphmodel import METRICS, build_graph

__all__ = ["draw_graph", "trace_modules", "ModuleTrace", "METRICS"]


def draw_graph(
    output,
    params=None,
    *,
    grads=None,
    modules=None,
    metric="norm",
    thresholds=None,
    reference=None,
    max_nodes=300,
    rankdir="TB",
    legend=True,
    title=None,
    collapse=None,
):
    """The op graph of ``output`` as a ``graphviz.Digraph``, coloured by gradient magnitude.

    ``params``: ``(name, tensor)`` pairs (``model.named_parameters()``) or a dict, to name
    parameter nodes (a tensor's ``.name`` is used otherwise).
    ``grads``: a ``tg.autograd.record_gradients`` recorder from your own
    ``backward(retain_graph=True)``; by default draw_graph runs its own backward pass on
    the (retained) graph with ``tg.grad``, so no ``.grad`` changes.  A non-scalar output
    is backpropagated with a gradient of ones.  ``grads=False`` draws without gradients.
    ``modules``: a :class:`ModuleTrace` from :func:`trace_modules`: one cluster per module.
    ``metric``: the number shown, ``'norm'`` (L2), ``'rms'``, ``'mean_abs'`` or
    ``'max_abs'``.  The colour is always the RMS ratio to the reference, so tensors of
    different sizes compare fairly.
    ``reference``: the tensor whose gradient RMS is 1 on the scale for every op (default:
    with a trace, the end of the residual stream up to it and the model's output after
    it, as in :func:`~tinygrad_init.viz.gradient_flow`; without one, the non-scalar
    tensor nearest to ``output``); parameters are compared with the parameter nearest
    the output.
    ``max_nodes``: above this many nodes, modules collapse into one summary node each,
    innermost first.
    ``collapse`` (with ``modules``): None draws each run of identical residual blocks as
    one box "Block x N" when the graph has more than about 60 nodes; True always, False
    never (as in :func:`~tinygrad_init.viz.gradient_flow`).
    """
    _check(output, modules, metric, rankdir, grads, collapse)
    thresholds = as_thresholds(thresholds)
    diagram = build_graph(
        output,
        grads,
        names=_names(params, modules),
        modules=modules,
        metric=metric,
        reference=reference,
        max_nodes=max_nodes,
        collapse=collapse,
    )
    ref_text = "the output's gradient RMS (parameters: the last parameter's)"
    if diagram.stream:
        ref_text = "the gradient RMS at the end of the residual stream (after it: the output's)"
    if reference is not None:
        ref_text = "the reference tensor's gradient RMS"
    return _to_dot(diagram, thresholds, rankdir, title, ref_text if legend else None)


def _check(output, modules, metric, rankdir, grads, collapse):
    if not isinstance(output, Tensor):
        raise TypeError(f"draw_graph: output must be a Tensor, got {type(output).__name__}")
    if metric not in METRICS:
        raise ValueError(f"draw_graph: unknown metric {metric!r}; choose from {', '.join(METRICS)}")
    if modules is not None and not isinstance(modules, ModuleTrace):
        raise TypeError(
            "draw_graph: modules must be a ModuleTrace from "
            "tg.viz.trace_modules(model) (wrap the forward pass in it)"
        )
    if rankdir not in ("TB", "LR", "BT", "RL"):
        raise ValueError(f"draw_graph: rankdir must be TB, LR, BT or RL, got {rankdir!r}")
    if grads is not None and grads is not False and not isinstance(grads, record_gradients):
        raise TypeError(
            "draw_graph: grads must be a tg.autograd.record_gradients recorder, "
            f"None or False, got {type(grads).__name__}"
        )
    if collapse not in (None, True, False):
        raise ValueError(f"draw_graph: collapse must be None, True or False, got {collapse!r}")


def _names(params, modules):
    """Parameter id -> the name drawn: the trace's qualified names, then ``params``."""
    names = {}
    if modules is not None:
        for p in modules.model.parameters():
            names[id(p)] = modules.params.get(id(p))
    if params is not None:
        for name, p in params.items() if isinstance(params, dict) else params:
            names[id(p)] = name
    return names


_GRAPH = {
    "fontname": "Helvetica",
    "nodesep": "0.25",
    "ranksep": "0.3",
    "labelloc": "t",
    "fontsize": "16",
}
_NODE = {
    "shape": "box",
    "fontname": "Helvetica",
    "fontsize": "10",
    "margin": "0.08,0.03",
    "height": "0.3",
}
_LOSS = {
    "style": "filled,rounded",
    "fillcolor": "#f7f7f7",
    "color": "#9e9e9e",
    "fontcolor": "#333333",
}
_PLAIN = {"style": "filled", "fillcolor": "#eeeeee", "color": "#bdbdbd", "fontcolor": "#555555"}
_CLUSTER = {"style": "rounded", "color": "#9e9e9e", "fontsize": "10", "fontcolor": "#424242"}


def _to_dot(diagram, thresholds, rankdir="TB", title=None, legend=None):
    """Render an :class:`~tinygrad_init.viz.graphmodel.OpDiagram`; ``legend``: the text
    naming the reference, None for no legend."""
    dot = graphviz.Digraph(
        "gradient_graph",
        graph_attr=dict(_GRAPH, rankdir=rankdir),
        node_attr=_NODE,
        edge_attr={"color": "#6b6b6b", "arrowsize": "0.6"},
    )
    if title:
        dot.attr(label=html.escape(title))
    by_id = {n.id: n for n in diagram.nodes}
    _fill(dot, diagram.top, by_id, thresholds)
    for e in diagram.edges:
        # the activation path is kept straight; parameters join it from the side
        dot.edge(e.src, e.dst, weight="1" if e.side else "8")
    if legend is not None:
        with dot.subgraph(name="cluster_legend") as leg:
            leg.attr(label="", style="invis")
            zero = any(n.zero or n.zeros for n in diagram.nodes)
            label = legend_html(thresholds, legend, zero_init=zero)
            leg.node("legend", label, shape="plaintext", margin="0")
    return dot


def _fill(graph, cluster, by_id, thresholds):
    """Emit a cluster's nodes, then its child clusters."""
    for nid in cluster.nodes:
        _node(graph, by_id[nid], thresholds)
    for child in cluster.clusters:
        label = child.name or "model"  # the root module has the empty name
        with graph.subgraph(name=f"cluster_{label}") as sub:
            sub.attr(label=f"{label}: {child.kind}", **_CLUSTER)
            _fill(sub, child, by_id, thresholds)


def _node(graph, node, thresholds):
    rows = [f"<B>{html.escape(node.head)}</B>"] + [html.escape(x) for x in node.lines]
    status = "loss" if node.loss else ZERO_INIT if node.zero else thresholds.classify(node.ratio)
    graph.node(
        node.id, "<" + "<BR/>".join(rows) + ">", **_style(node, thresholds), **{"class": status}
    )


def _style(node, thresholds):
    """Fill and shape: the colour scale, neutral after the loss, grey without a gradient,
    the zero-init style for a gradient that is zero by design; leaves square, ops rounded,
    collapsed modules and runs 3-D."""
    r = node.ratio
    if node.kind in ("module", "run"):
        attrs = zero_init_style() if node.zero else node_style(r, thresholds)
        return dict(attrs, shape="box3d")
    if node.loss and r is not None and math.isfinite(r):
        attrs = _LOSS
    elif node.zero:
        attrs = zero_init_style()
    elif node.measured:
        attrs = node_style(r, thresholds)
    else:
        attrs = _PLAIN
    if node.kind != "op":
        style = attrs.get("style", "").replace(",rounded", "").replace("rounded", "")
        return dict(attrs, shape="box", style=style or "solid")
    return dict(attrs, shape="box")
