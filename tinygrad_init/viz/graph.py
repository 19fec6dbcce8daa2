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
(``metric``).  The colour is the gradient's RMS relative to a reference (the model's
output, or for parameters the parameter nearest the output), on the scale of
:mod:`tinygrad_init.viz.colors`.
"""

from __future__ import annotations

import html
import math

import graphviz
import numpy as np

from ..autograd import grad as _grad
from ..autograd import record_gradients
from ..diagnostics.ownership import ModuleTrace, trace_modules
from ..diagnostics.status import norm, rms
from ..graphwalk import walk
from ..tensor import Tensor
from .colors import Thresholds, fmt, legend_html, node_style

__all__ = ["draw_graph", "trace_modules", "ModuleTrace", "METRICS"]


METRICS = {
    "norm": ("||g||", norm),
    "rms": ("rms(g)", rms),
    "mean_abs": ("mean|g|", lambda g: float(np.mean(np.abs(g))) if g.size else 0.0),
    "max_abs": ("max|g|", lambda g: float(np.max(np.abs(g))) if g.size else 0.0),
}


# ----------------------------------------------------------------------------------------
# The graph


def _run_backward(output, tensors):
    """Gradients reaching every tensor, without touching any ``.grad``."""
    if not output.requires_grad:
        return None
    leaves = [t for t in tensors if t._node is None and t.requires_grad]
    gradient = None if output._array.size == 1 else Tensor(np.ones_like(output._array))
    rec = record_gradients()
    with rec:
        if leaves:
            _grad(output, leaves, grad_outputs=gradient, retain_graph=True, allow_unused=True)
        else:
            _grad(output, [output], grad_outputs=gradient, retain_graph=True)
    return rec


def _shape(t):
    return "(" + ", ".join(str(n) for n in t.shape) + ")"


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
    ``reference``: the tensor whose gradient RMS is 1 on the scale (default: the traced
    model's output, else the non-scalar tensor nearest to ``output``); parameters are
    compared with the parameter nearest the output.
    ``max_nodes``: above this many nodes, modules collapse into one summary node each,
    innermost first.
    """
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
    thresholds = (
        thresholds
        if isinstance(thresholds, Thresholds)
        else Thresholds(*thresholds)
        if thresholds is not None
        else Thresholds()
    )
    tensors, edges = walk([output], caller="draw_graph")
    if grads is None:
        grads = _run_backward(output, tensors)
    elif grads is False:
        grads = None
    elif not isinstance(grads, record_gradients):
        raise TypeError(
            "draw_graph: grads must be a tg.autograd.record_gradients recorder, "
            f"None or False, got {type(grads).__name__}"
        )

    names = {}
    if modules is not None:
        for p in modules.model.parameters():
            names[id(p)] = modules.params.get(id(p))
    if params is not None:
        items = params.items() if isinstance(params, dict) else params
        for name, p in items:
            names[id(p)] = name
    label, measure = METRICS[metric]

    # gradient numbers per tensor
    info = {}
    for t in tensors:
        g = grads.grad(t) if grads is not None else None
        finite = bool(np.isfinite(g).all()) if g is not None else True
        if np.issubdtype(t._array.dtype, np.floating):
            finite = finite and bool(np.isfinite(t._array).all())  # NaN values count too
        info[id(t)] = None if g is None else (measure(g), rms(g), finite)
    is_param = {id(t): t._node is None and (t.requires_grad or id(t) in names) for t in tensors}

    # references: the model output (or nearest non-scalar op) and the nearest parameter
    dist = _distances(output, edges)
    ref_t = reference
    if ref_t is None and modules is not None:
        ref_t = modules.outputs.get("")
    if ref_t is None or id(ref_t) not in info:
        ops_ = sorted(
            (t for t in tensors if t._node is not None and t._array.size > 1 and info.get(id(t))),
            key=lambda t: dist.get(id(t), 0),
        )
        ref_t = ops_[0] if ops_ else None
    weights = sorted(
        (t for t in tensors if is_param[id(t)] and info.get(id(t))),
        key=lambda t: dist.get(id(t), 0),
    )
    pref_t = next((t for t in weights if t.ndim >= 2), weights[0] if weights else None)

    # ops after the reference (the loss) are drawn neutral: reductions rescale gradients
    after_ref = set()
    if ref_t is not None:
        upstream = _ancestors(ref_t, edges)
        after_ref = {
            id(t)
            for t in tensors
            if t._node is not None
            and id(t) not in upstream
            and dist.get(id(t), 0) < dist.get(id(ref_t), 0)
        }

    def ratio(t):
        entry = info.get(id(t))
        ref = pref_t if is_param[id(t)] else ref_t
        if entry is None or ref is None or info.get(id(ref)) is None:
            return None
        if not entry[2]:
            return float("nan")
        base = info[id(ref)][1]
        if base == 0:
            return None if entry[1] == 0 else float("inf")
        return entry[1] / base

    # which cluster each tensor lives in
    owner = {}
    if modules is not None:
        for t in tensors:
            o = modules.owner(t)
            if o is not None:
                owner[id(t)] = o
    collapsed = _choose_collapsed(tensors, owner, max_nodes) if modules is not None else set()
    module_ids = {name: f"m{k}" for k, name in enumerate(sorted(collapsed))}
    collapsed_of = {v: k for k, v in module_ids.items()}

    def node_of(t):
        o = owner.get(id(t))
        if o is None:
            return f"t{id(t)}"
        for c in _prefixes(o):
            if c in collapsed:
                return module_ids[c]
        return f"t{id(t)}"

    dot = graphviz.Digraph(
        "gradient_graph",
        graph_attr={
            "rankdir": rankdir,
            "fontname": "Helvetica",
            "nodesep": "0.25",
            "ranksep": "0.3",
            "labelloc": "t",
            "fontsize": "16",
        },
        node_attr={
            "shape": "box",
            "fontname": "Helvetica",
            "fontsize": "10",
            "margin": "0.08,0.03",
            "height": "0.3",
        },
        edge_attr={"color": "#6b6b6b", "arrowsize": "0.6"},
    )
    if title:
        dot.attr(label=html.escape(title))

    # nodes, grouped by cluster
    members = {}
    summary = {}
    sizes = {}
    for t in tensors:
        if owner.get(id(t)) is not None:
            sizes[owner[id(t)]] = sizes.get(owner[id(t)], 0) + 1
    inline = {}
    for t in tensors:
        o = owner.get(id(t))
        if o and sizes[o] == 1 and t._node is not None and node_of(t) == f"t{id(t)}":
            inline[id(t)] = o
            parent = _parent_cluster(o, list(sizes), modules)
            owner[id(t)] = parent if parent in sizes else None
    for t in tensors:
        nid = node_of(t)
        o = owner.get(id(t))
        if nid in collapsed_of:
            summary.setdefault(collapsed_of[nid], []).append(t)
            continue
        members.setdefault(o, []).append((nid, t))

    def tensor_node(t):
        entry = info.get(id(t))
        r = ratio(t)
        if id(t) in inline:
            head = f"{inline[id(t)]}: {t._node.op.name}"
        elif t._node is not None:
            head = t._node.op.name
        elif id(t) in names:
            head = names[id(t)]
        elif t.name:
            head = t.name
        else:
            head = "param" if t.requires_grad else "input"
        lines = [f"<B>{html.escape(str(head))}</B>", _shape(t)]
        if entry is not None:
            lines.append(f"{html.escape(label)} {fmt(entry[0])}")
        if id(t) in after_ref and r is not None and math.isfinite(r):
            attrs = {
                "style": "filled,rounded",
                "fillcolor": "#f7f7f7",
                "color": "#9e9e9e",
                "fontcolor": "#333333",
            }
        elif entry is not None or t.requires_grad:
            attrs = node_style(r, thresholds)
        else:
            attrs = {
                "style": "filled",
                "fillcolor": "#eeeeee",
                "color": "#bdbdbd",
                "fontcolor": "#555555",
            }
        if t._node is None:
            attrs = dict(
                attrs,
                shape="box",
                style=attrs.get("style", "").replace(",rounded", "").replace("rounded", "")
                or "solid",
            )
        else:
            attrs = dict(attrs, shape="box")
        return "<" + "<BR/>".join(lines) + ">", attrs

    def emit(graph, nid, t):
        lab, attrs = tensor_node(t)
        status = "loss" if id(t) in after_ref else thresholds.classify(ratio(t))
        graph.node(nid, lab, **attrs, **{"class": status})

    def summary_node(graph, name, ts):
        out = modules.outputs.get(name)
        anchor = (
            out
            if out is not None and id(out) in info
            else next((t for t in reversed(ts) if t._node is not None), ts[-1])
        )
        entry = info.get(id(anchor))
        kind = modules.kinds.get(name, "module")
        n_ops = sum(t._node is not None for t in ts)
        n_par = sum(t._node is None for t in ts)
        lines = [
            f"<B>{html.escape(name or 'model')}: {html.escape(kind)}</B>",
            f"{n_ops} op{'s' * (n_ops != 1)}, {n_par} param{'s' * (n_par != 1)}, "
            f"out {_shape(anchor)}",
        ]
        if entry is not None:
            lines.append(f"{html.escape(label)} {fmt(entry[0])}")
        bad = any(info.get(id(t)) and not info[id(t)][2] for t in ts)
        r = float("nan") if bad else ratio(anchor)
        attrs = node_style(r, thresholds)
        graph.node(
            module_ids[name],
            "<" + "<BR/>".join(lines) + ">",
            shape="box3d",
            **{k: v for k, v in attrs.items() if k != "shape"},
            **{"class": thresholds.classify(r)},
        )

    # nested clusters
    position = {id(t): k for k, t in enumerate(tensors)}
    first = {}
    for name, ts in list(summary.items()) + [
        (o, [t for _, t in v]) for o, v in members.items() if o is not None
    ]:
        ops_in = [position[id(t)] for t in ts if t._node is not None]
        first[name] = min(ops_in or [position[id(t)] for t in ts])
    cluster_names = sorted(first, key=lambda n: (n.count("."), first[n]))
    children = {}
    for name in cluster_names:
        parent = _parent_cluster(name, cluster_names, modules)
        children.setdefault(parent, []).append(name)

    def fill_cluster(graph, name):
        """Emit the ops of module ``name`` (None: outside every module) and its children."""
        for nid, t in members.get(name, []):
            emit(graph, nid, t)
        for child in children.get(name, []):
            if child in summary:
                summary_node(graph, child, summary[child])
                continue
            label = child or "model"  # the root module has the empty name
            with graph.subgraph(name=f"cluster_{label}") as sub:
                sub.attr(
                    label=f"{label}: {modules.kinds.get(child, '')}",
                    style="rounded",
                    color="#9e9e9e",
                    fontsize="10",
                    fontcolor="#424242",
                )
                fill_cluster(sub, child)

    fill_cluster(dot, None)

    seen = set()
    for a, b in edges:
        na, nb = node_of(a), node_of(b)
        if na == nb or (na, nb) in seen:
            continue
        seen.add((na, nb))
        # the activation path is kept straight; parameters join it from the side
        dot.edge(na, nb, weight="1" if a._node is None else "8")

    if legend:
        ref_text = "the output's gradient RMS (parameters: the last parameter's)"
        if reference is not None:
            ref_text = "the reference tensor's gradient RMS"
        with dot.subgraph(name="cluster_legend") as leg:
            leg.attr(label="", style="invis")
            leg.node("legend", legend_html(thresholds, ref_text), shape="plaintext", margin="0")
    return dot


def _ancestors(t, edges):
    """ids of ``t`` and every tensor it was computed from."""
    inputs = {}
    for a, b in edges:
        inputs.setdefault(id(b), []).append(a)
    seen, stack = {id(t)}, [t]
    while stack:
        for a in inputs.get(id(stack.pop()), ()):
            if id(a) not in seen:
                seen.add(id(a))
                stack.append(a)
    return seen


def _distances(output, edges):
    """Number of ops between each tensor and ``output`` (breadth-first, against the edges)."""
    users = {}
    for a, b in edges:
        users.setdefault(id(b), []).append(a)
    dist = {id(output): 0}
    frontier = [output]
    while frontier:
        nxt = []
        for t in frontier:
            for a in users.get(id(t), ()):
                if id(a) not in dist:
                    dist[id(a)] = dist[id(t)] + 1
                    nxt.append(a)
        frontier = nxt
    return dist


def _prefixes(name):
    """'a.b.c' -> 'a', 'a.b', 'a.b.c' (outermost first); '' -> ''."""
    if name == "":
        return [""]
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def _parent_cluster(name, cluster_names, modules):
    """Nearest enclosing module that is itself a cluster (None: top level)."""
    if name == "":
        return None
    known = set(cluster_names)
    parts = name.split(".")
    for i in range(len(parts) - 1, 0, -1):
        cand = ".".join(parts[:i])
        if cand in known:
            return cand
    return "" if "" in known else None


def _choose_collapsed(tensors, owner, max_nodes):
    """Module names to draw as one node each, innermost first, until within the budget."""
    if len(tensors) <= max_nodes:
        return set()
    counts = {}
    for t in tensors:
        o = owner.get(id(t))
        if o is None:
            continue
        for p in _prefixes(o):
            counts[p] = counts.get(p, 0) + 1
    collapsed = set()
    total = len(tensors)
    depths = sorted({n.count(".") + 1 for n in counts if n}, reverse=True)
    for depth in depths:
        level = [n for n in counts if n and n.count(".") + 1 == depth and counts[n] > 1]
        for n in level:
            if any(p in collapsed for p in _prefixes(n)[:-1]):
                continue
            inner = [c for c in collapsed if c.startswith(n + ".")]
            saved = counts[n] - 1 - sum(counts[c] - 1 for c in inner)
            collapsed -= set(inner)
            collapsed.add(n)
            total -= saved
        if total <= max_nodes:
            break
    return collapsed
