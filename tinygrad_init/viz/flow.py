"""Layer-level gradient-flow diagrams: the network's module DAG, one node per layer.

    dot = tg.viz.gradient_flow(model, x, y)          # runs one forward/backward itself
    dot = tg.viz.gradient_flow(monitor)              # or: what a Monitor recorded
    dot.render("flow", format="svg")

Each node is one layer of :class:`tinygrad_init.diagnostics.Monitor` (a Linear or Conv2d
with the activation that follows it) and shows the gradient reaching its output
(``grad``: L2 norm and the ratio to the reference's RMS: the end of the residual stream,
or the output layer in a plain chain), its weight gradient's norm (``dW``), its
activation mean and std and the saturated or dead fraction.  The fill is the gradient
ratio on the shared colour scale, so vanishing shows as blue spreading from the input,
exploding as red; a gradient that is exactly zero by design (``zero-init``) is pale grey
with a dotted border; the title states the verdict.

The layout follows the structure the Monitor recorded (``Structure``, built by
:mod:`tinygrad_init.viz.flowmodel` before any DOT is written).  A plain chain runs left
to right in rows of ``per_row``, input at the top left.  A residual network is drawn as
its DAG: the stream as a vertical spine, each block's branch in a cluster beside it, a
skip edge from the block's input into its merge (a circle), normalization layers with a
double border.  A run of identical blocks becomes one box ("Block x 40") when the diagram
would pass about 60 boxes (``collapse=False`` expands it); the box takes the fill of its
worst member and is labelled with the range of its members' ratios.
"""

from __future__ import annotations

import dataclasses
import html
import math

import graphviz
import numpy as np
from threadpoolctl import threadpool_limits

from ..diagnostics import ZERO_INIT, Monitor, Verdict, _as_thresholds
from ..tensor import Tensor
from .colors import fmt, legend_html, node_style, ratio_span, zero_init_style
from .flowmodel import build_flow, ratio_of

__all__ = ["gradient_flow"]


def _loss(output, target, loss_fn):
    if loss_fn is not None:
        return loss_fn(output, target)
    if target is None:
        rng = np.random.default_rng(0)
        target = Tensor(rng.standard_normal(output.shape).astype(output.dtype))
    diff = output - target
    return (diff * diff).mean()


def _run_once(model, inputs, target, loss_fn, thresholds):
    """One forward/backward under a Monitor; every ``.grad`` is restored afterwards.

    The pass runs with one BLAS thread, as the study does: its matrices are small
    (batch x width), and a multi-threaded BLAS on cores that other processes share spends
    up to ~30x longer per product synchronising its threads (a 100-block residual MLP took
    0.4 to 4 s instead of 0.1 s on 2 busy cores).
    """
    params = list(model.parameters())
    saved = [p.grad for p in params]
    for p in params:
        p.grad = None
    try:
        with (
            threadpool_limits(limits=1, user_api="blas"),
            Monitor(model, thresholds=thresholds) as mon,
        ):
            args = inputs if isinstance(inputs, tuple) else (inputs,)
            loss = _loss(model(*args), target, loss_fn)
            if not isinstance(loss, Tensor) or loss._array.size != 1:
                raise ValueError("gradient_flow: the loss must be a scalar Tensor")
            loss.backward()
            mon.step()
    finally:
        for p, g in zip(params, saved):
            p.grad = g
    return mon


def _pct(x):
    return f"{x:.0%}" if x is not None else None


def _label(r, number):
    layer = r.layer.replace("->", "\u2192")
    name = layer if r.name.isdigit() else f"{r.name}: {layer}"
    rows = [
        f'<TR><TD ALIGN="LEFT"><B>{number}</B>  <FONT POINT-SIZE="9">'
        f"{html.escape(name)}</FONT></TD></TR>"
    ]
    act = r.activation
    extra = []
    if r.saturated is not None:
        extra.append(f"sat {_pct(r.saturated)}")
    if r.dead is not None:
        extra.append(f"dead {_pct(r.dead)}")
    if act:
        rows.append(
            f'<TR><TD ALIGN="LEFT"><FONT POINT-SIZE="9">{html.escape(act)}'
            f"{'  ' + ', '.join(extra) if extra else ''}</FONT></TD></TR>"
        )
    ratio = r.grad_ratio
    rtext = "" if ratio is None else f"  (x{fmt(ratio, 0)})"
    if r.status == ZERO_INIT:
        rtext = "  zero-init"
    rows.append(
        f'<TR><TD ALIGN="LEFT"><FONT POINT-SIZE="10"><B>grad {fmt(r.grad_norm)}'
        f"</B>{rtext}</FONT></TD></TR>"
    )
    if r.weight_grad_norm is not None:
        rows.append(
            f'<TR><TD ALIGN="LEFT"><FONT POINT-SIZE="9">dW {fmt(r.weight_grad_norm)}'
            f"</FONT></TD></TR>"
        )
    if r.act_mean is not None:
        rows.append(
            f'<TR><TD ALIGN="LEFT"><FONT POINT-SIZE="9">act {r.act_mean:+.3g} '
            f"&#177; {r.act_std:.3g}</FONT></TD></TR>"
        )
    return (
        '<<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="0" CELLPADDING="1">'
        + "".join(rows)
        + "</TABLE>>"
    )


def gradient_flow(
    model,
    inputs=None,
    target=None,
    loss_fn=None,
    *,
    step=None,
    thresholds=None,
    per_row=None,
    title=None,
    legend=True,
    collapse=None,
):
    """One node per layer in forward order, coloured by the gradient reaching it.

    ``model``: an ``nn.Module`` (then ``inputs`` is required: one forward and backward
    pass is run with ``loss_fn(output, target)``, by default the mean squared error
    against ``target`` or against a fixed N(0, 1) target; parameters' ``.grad`` are left
    as they were), or a :class:`~tinygrad_init.diagnostics.Monitor` whose recorded
    ``step`` (default the last) is drawn.
    ``thresholds``: where vanishing/exploding start (see :class:`Thresholds`).
    ``per_row``: a plain chain's layers per row (default: all of them up to 8, otherwise
    rows of equal length of at most 8 ... 10, ``ceil(n / ceil(n / 8))``, so 12 layers make
    two rows of 6).  A residual network is drawn as its DAG: the stream as a column, each
    block's branch beside it, a skip edge into each merge.
    ``collapse``: None draws each run of identical blocks as one box when the diagram
    would pass about 60 boxes; True always, False never.
    Returns a ``graphviz.Digraph``.
    """
    if isinstance(model, Monitor):
        mon = model
        thresholds = _as_thresholds(thresholds) if thresholds is not None else mon.thresholds
        recs = mon._last_step(step)
        layers = mon.last_structure
    else:
        if not callable(getattr(model, "named_modules", None)):
            raise TypeError(
                f"gradient_flow: expected an nn.Module or a Monitor, got {type(model).__name__}"
            )
        if inputs is None:
            raise ValueError(
                "gradient_flow: pass the inputs to run the model on (for "
                "example x, y = tinygrad_init.models.synthetic_batch(model))"
            )
        thresholds = _as_thresholds(thresholds)
        mon = _run_once(model, inputs, target, loss_fn, thresholds)
        recs = mon._last_step(None)
        layers = mon.last_structure
    if thresholds != mon.thresholds:
        recs = [
            dataclasses.replace(r, backward_status=thresholds.classify(r.grad_ratio)) for r in recs
        ]
    if not recs:
        raise ValueError("gradient_flow: the model has no layers that ran")
    if per_row is not None and (not isinstance(per_row, int) or per_row < 1):
        raise ValueError(f"gradient_flow: per_row must be a positive int, got {per_row!r}")
    verdict = Verdict.from_records(recs, thresholds, layers)
    diagram = build_flow(layers, recs, collapse=collapse)
    return _to_dot(diagram, verdict, thresholds, title=title, per_row=per_row, legend=legend)


_GRAPH = {
    "rankdir": "TB",
    "fontname": "Helvetica",
    "nodesep": "0.18",
    "ranksep": "0.35",
    "labelloc": "t",
    "fontsize": "15",
    "newrank": "true",
}
_NODE = {"shape": "box", "fontname": "Helvetica", "fontsize": "10", "margin": "0.06,0.03"}
_EDGE = {
    "stream": {"color": "#555555", "penwidth": "1.6", "weight": "10"},
    "skip": {"color": "#555555", "penwidth": "1.6", "weight": "10", "xlabel": "skip"},
    "branch": {"color": "#888888"},
}


def _to_dot(diagram, verdict, thresholds, *, title=None, per_row=None, legend=True):
    """Render a :class:`FlowDiagram` as a ``graphviz.Digraph``."""
    dot = graphviz.Digraph(
        "gradient_flow",
        graph_attr=_GRAPH,
        node_attr=_NODE,
        edge_attr={
            "color": "#555555",
            "arrowsize": "0.6",
            "fontname": "Helvetica",
            "fontsize": "9",
            "fontcolor": "#757575",
        },
    )
    where = (
        "input at the top left, output at the bottom right; each box is a layer"
        if diagram.is_chain
        else "input at the top; the residual stream runs straight down through the + merges, "
        "each block's branch beside it"
    )
    dot.attr(label=_title(verdict, title, where))
    if diagram.is_chain:
        last_row = _chain_rows(dot, diagram, thresholds, per_row)
    else:
        last_row = _dag(dot, diagram, thresholds)
    if legend:
        dot.node(
            "legend",
            legend_html(
                thresholds,
                "the output layer's gradient RMS"
                if diagram.is_chain
                else "the gradient RMS at the end of the residual stream",
                zero_init=any(r.status == ZERO_INIT for n in diagram.nodes for r in n.records),
            ),
            shape="plaintext",
            margin="0",
        )
        dot.edge(last_row, "legend", style="invis")
    return dot


def _title(verdict, title, where):
    head = html.escape(title) + "<BR/>" if title else ""
    colour_word = {"vanishing": "#08519c", "exploding": "#a50f15", "nan": "#ff00ff"}.get(
        verdict.status, "#238b45"
    )
    return (
        f'<{head}<FONT COLOR="{colour_word}"><B>'
        f'{html.escape(verdict.headline)}</B></FONT><BR/><FONT POINT-SIZE="11">'
        f"{where}</FONT>>"
    )


def _box(graph, node, thresholds):
    """One node of the model as a DOT node (label, colour, shape by kind)."""
    r = node.record
    zero = r.status == ZERO_INIT
    attrs = zero_init_style() if zero else dict(node_style(ratio_of(r), thresholds))
    attrs["class"] = r.backward_status
    attrs["tooltip"] = r.status
    if node.kind == "collapsed":
        graph.node(node.id, _collapsed_label(node), shape="box3d", group="stream", **attrs)
        return
    if node.kind == "merge":
        attrs["style"] = attrs["style"].replace(",rounded", "")
        ratio = r.grad_ratio
        label = "+" if ratio is None else f"+\\nx{fmt(ratio, 0)}"
        graph.node(
            node.id,
            label,
            shape="circle",
            width="0.3",
            margin="0",
            fontsize="9",
            group="stream",
            **attrs,
        )
        return
    if node.kind == "norm":
        attrs["peripheries"] = "2"
    if node.on_spine:
        attrs["group"] = "stream"
    graph.node(node.id, _label(r, r.index), **attrs)


def _collapsed_label(node):
    first, last = node.records[0], node.records[-1]
    measured = [r for r in node.records if r.status != ZERO_INIT]
    ratios = [x for x in (ratio_of(r) for r in measured) if x is not None]
    span = ratio_span(ratios, bool(measured) and all(r.grad_rms == 0 for r in measured))
    zeros = len(node.records) - len(measured)
    w = node.record
    rows = [
        f"<B>Block x {node.count}</B>",
        f'<FONT POINT-SIZE="9">blocks {html.escape(first.block or first.name)} .. '
        f"{html.escape(last.block or last.name)}</FONT>",
        f'<FONT POINT-SIZE="9">each: x + branch(x), {len(node.records) // node.count} nodes</FONT>',
        f'<FONT POINT-SIZE="10"><B>{span}</B></FONT>',
        f'<FONT POINT-SIZE="9">worst: {html.escape(w.name)} ({html.escape(w.status)})</FONT>',
    ]
    if zeros:
        rows.append(f'<FONT POINT-SIZE="9">{zeros} zero-init (gradient after step 1)</FONT>')
    return (
        '<<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="0" CELLPADDING="1">'
        + "".join(f'<TR><TD ALIGN="LEFT">{row}</TD></TR>' for row in rows)
        + "</TABLE>>"
    )


def _chain_rows(dot, diagram, thresholds, per_row):
    """A plain chain: left to right in rows of ``per_row``; returns the last row's first id."""
    nodes = diagram.nodes
    n = len(nodes)
    if per_row is None:
        per_row = n if n <= 8 else min(10, math.ceil(n / math.ceil(n / 8)))
    ids = [node.id for node in nodes]
    rows = [list(range(s, min(s + per_row, n))) for s in range(0, n, per_row)]
    for k, row in enumerate(rows):
        with dot.subgraph(name=f"row{k}") as sub:
            sub.attr(rank="same")
            if k == 0:
                sub.node("input", "input", shape="plaintext", fontcolor="#555555")
            for i in row:
                _box(sub, nodes[i], thresholds)
            if k == len(rows) - 1:
                sub.node("loss", "loss", shape="plaintext", fontcolor="#555555")
    dot.edge("input", ids[0])
    for k, row in enumerate(rows):
        for a, b in zip(row, row[1:]):
            dot.edge(ids[a], ids[b])
        if k + 1 < len(rows):
            nxt = rows[k + 1]
            dot.edge(ids[row[-1]], ids[nxt[0]], constraint="false", style="dashed", color="#9e9e9e")
            for a, b in zip(row, nxt):
                dot.edge(ids[a], ids[b], style="invis")
    dot.edge(ids[-1], "loss")
    return ids[rows[-1][0]]


def _dag(dot, diagram, thresholds):
    """The DAG: spine nodes in one column (heavy stream edges), each branch a cluster."""
    in_cluster = {i for c in diagram.clusters for i in c.nodes}
    dot.node("input", "input", shape="plaintext", fontcolor="#555555", group="stream")
    for node in diagram.nodes:
        if node.id not in in_cluster:
            _box(dot, node, thresholds)
    for k, cluster in enumerate(diagram.clusters):
        with dot.subgraph(name=f"cluster_{k}") as sub:
            sub.attr(
                label=f"block {cluster.name}",
                labeljust="r",
                style="rounded,dashed",
                color="#bdbdbd",
                fontsize="10",
                fontcolor="#757575",
            )
            for node_id in cluster.nodes:
                _box(sub, diagram.node(node_id), thresholds)
    for e in diagram.edges:
        dot.edge(e.src, e.dst, **{"class": e.kind}, **_EDGE[e.kind])
    spine = [n.id for n in diagram.nodes if n.on_spine]
    dot.node("loss", "loss", shape="plaintext", fontcolor="#555555", group="stream")
    dot.edge(spine[-1], "loss", **_EDGE["stream"])
    return "loss"
