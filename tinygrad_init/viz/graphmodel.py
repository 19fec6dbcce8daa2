"""The drawing model of an op graph: what to draw, before any DOT.

:func:`build_graph` reads a recorded graph, the gradients that reached its tensors and,
with a :class:`~tinygrad_init.diagnostics.ownership.ModuleTrace`, the module that made
each tensor; it returns an :class:`OpDiagram` of plain :class:`OpNode`, :class:`OpEdge`
and :class:`OpCluster` values, which :mod:`tinygrad_init.viz.graph` renders (the split of
Chainer's ``build_computational_graph`` and ``_to_dot``).

- every tensor is a node: an ``op``, a ``param`` or an ``input``.  Its ``ratio`` is its
  gradient's RMS over the reference's, by the rule of the layer-level diagram
  (:func:`~tinygrad_init.diagnostics.rules.stream_reference`): with a trace of a residual
  network, the ops up to the end of the residual stream (its last merge: the stem, the
  stream, the branches) against the stream's end, so a final normalization layer cannot
  turn an explosion into "vanishing"; the ops after it (the head) and every op of a plain
  chain against the model output.  Parameters up to the stream's end against the weight
  (two or more dims) or the one-dimensional parameter nearest the stream's end, as they
  are; the others against the parameter nearest the output.  A norm layer after the
  stream's end is one ``module`` node coloured by its output, as the layer-level diagram
  draws it.  Ops after the model output (the loss) are marked ``loss``;
- an op or parameter whose gradient is exactly zero in a module that exactly-zero
  weights downstream cut off from the output (the structure's ``zero_below``, the
  verdict's rule: a zero-initialised last layer or gate, a zero classifier) is ``zero``:
  drawn in the ``zero-init`` style, never as vanishing;
- each module with two or more tensors is a cluster, nested as the modules are; a module
  with one op is drawn inline as ``name: op``;
- a run of identical consecutive residual blocks, as the structural model
  (:class:`~tinygrad_init.diagnostics.structure.Structure`) finds them, becomes one
  ``run`` node, "Block x 40", when the graph has more than about 60 nodes (or always /
  never, by ``collapse``: the rule of the layer-level diagram).  It stands for every op
  and parameter computed after the run's input on the way to its last merge, takes the
  ratio of its worst op (farthest from 1 on the log scale, NaN first; a zero-init op is
  never the worst) and lists the range of its other ops' ratios.  Edges into and out of
  the run are kept;
- above ``max_nodes`` nodes, modules become one ``module`` node each, innermost first.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np

from ..autograd import grad as _grad
from ..autograd import record_gradients
from ..diagnostics.rules import stream_reference
from ..diagnostics.status import norm, ratio, rms
from ..diagnostics.structure import Structure
from ..graphwalk import walk
from ..tensor import Tensor
from .colors import fmt, ratio_span
from .flowmodel import MAX_BOXES, _runs_to_collapse, severity

__all__ = ["OpNode", "OpEdge", "OpCluster", "OpDiagram", "build_graph", "METRICS"]


METRICS = {
    "norm": ("||g||", norm),
    "rms": ("rms(g)", rms),
    "mean_abs": ("mean|g|", lambda g: float(np.mean(np.abs(g))) if g.size else 0.0),
    "max_abs": ("max|g|", lambda g: float(np.max(np.abs(g))) if g.size else 0.0),
}


@dataclass
class OpNode:
    """One box: a tensor (``op``, ``param``, ``input``), a collapsed module (``module``)
    or a collapsed run of identical blocks (``run``, ``count`` blocks)."""

    id: str
    kind: str
    head: str  # the first line, in bold
    lines: list  # the other lines, plain text
    ratio: float | None = None  # gradient RMS over the reference's; NaN when not finite
    loss: bool = False  # after the model output: drawn neutral
    measured: bool = True  # has (or requires) a gradient; False: drawn plain grey
    count: int = 1
    zero: bool = False  # zero-init: exactly zero gradient behind exactly-zero weights
    zeros: int = 0  # a run: how many of its ops are zero-init


@dataclass
class OpEdge:
    """Input to user; ``side``: from a leaf, joining the activation path from the side."""

    src: str
    dst: str
    side: bool = False


@dataclass
class OpCluster:
    """The nodes of one module (``name``; None: outside every module) and its children."""

    name: str | None
    kind: str = ""
    nodes: list = field(default_factory=list)
    clusters: list = field(default_factory=list)


@dataclass
class OpDiagram:
    nodes: list
    edges: list
    top: OpCluster
    stream: bool = False  # the ops up to the stream's end are measured against it

    @property
    def runs(self):
        return [n for n in self.nodes if n.kind == "run"]


@dataclass
class _Grad:
    value: float  # the chosen metric
    rms: float
    finite: bool  # the gradient and the tensor's own values are finite


@dataclass
class _Measured:
    """The gradient of every tensor and the references ratios are taken against."""

    grads: dict  # id -> _Grad, None without a gradient
    params: set  # ids of parameter-like leaves (compared with ``pref``)
    ref: Tensor | None
    pref: Tensor | None
    after_ref: set  # ids of the ops between the reference and the output
    stream: Tensor | None = None  # the end of the residual stream, the body's reference
    body: set = field(default_factory=set)  # ids of the tensors up to ``stream``
    body_prefs: dict = field(default_factory=dict)  # weight? -> the body's parameter refs
    cut_off: set = field(default_factory=set)  # ids of the tensors of zero_below's nodes

    def ratio(self, t):
        entry = self.grads.get(id(t))
        in_body = id(t) in self.body
        if id(t) in self.params:
            ref = self.body_prefs.get(t.ndim >= 2, self.pref) if in_body else self.pref
        else:
            ref = self.stream if in_body else self.ref
        base = self.grads.get(id(ref)) if ref is not None else None
        if entry is None or base is None:
            return None
        return ratio(entry.rms, base.rms) if entry.finite else math.nan

    def zero(self, t):
        """Whether ``t``'s gradient is zero-init, by the verdict's rule: exactly zero, in
        a node that exactly-zero weights downstream cut off from the output."""
        entry = self.grads.get(id(t))
        return entry is not None and entry.rms == 0 and id(t) in self.cut_off


@dataclass
class _Run:
    """A collapsed run: its node id, block names and the tensors it stands for."""

    id: str
    blocks: list
    members: list
    block_of: dict  # id(tensor) -> block name


def build_graph(
    output,
    grads=None,
    *,
    names=None,
    modules=None,
    metric="norm",
    reference=None,
    max_nodes=300,
    collapse=None,
    max_boxes=MAX_BOXES,
):
    """The :class:`OpDiagram` of the graph below ``output`` (arguments as ``draw_graph``;
    ``names``: parameter id -> name)."""
    tensors, edges = walk([output], caller="draw_graph")
    if grads is None:
        grads = _run_backward(output, tensors)
    names = names or {}
    label, measure = METRICS[metric]
    rec = None if grads is False else grads
    m = _measure(output, tensors, edges, rec, names, measure, reference, modules)
    owner = {}
    if modules is not None:
        owner = {id(t): modules.owner(t) for t in tensors if modules.owner(t) is not None}
    structure, units = _units(output, tensors, modules)
    if structure is not None:
        m.cut_off = _cut_off(structure, tensors, modules)
    boxed = set()
    if reference is None:
        boxed = _stream(m, structure, tensors, edges, owner)
    runs = _block_runs(structure, units, len(tensors), collapse, max_boxes)
    node_id, collapsed = _place(tensors, owner, runs, max_nodes, boxed)
    inline = _inline(tensors, owner, node_id)
    nodes = [
        _tensor_node(t, m, names, inline, label) for t in tensors if node_id[id(t)] == f"t{id(t)}"
    ]
    members = {}
    for t in tensors:
        members.setdefault(node_id[id(t)], []).append(t)
    nodes += [_module_node(mid, name, members[mid], m, modules, label) for name, mid in collapsed]
    nodes += [_run_node(run, m) for run in runs]
    top = _clusters(tensors, owner, node_id, collapsed, runs, modules)
    return OpDiagram(nodes, _edges(edges, node_id), top, m.stream is not None)


# ----------------------------------------------------------------------------------------
# Gradients and references


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


def _grad_of(t, rec, measure):
    g = rec.grad(t) if rec is not None else None
    if g is None:
        return None
    finite = bool(np.isfinite(g).all())
    if np.issubdtype(t._array.dtype, np.floating):
        finite = finite and bool(np.isfinite(t._array).all())  # NaN values count too
    return _Grad(measure(g), rms(g), finite)


def _measure(output, tensors, edges, rec, names, measure, reference, modules):
    grads = {id(t): _grad_of(t, rec, measure) for t in tensors}
    params = {id(t) for t in tensors if t._node is None and (t.requires_grad or id(t) in names)}
    dist = _distances(output, edges)
    ref = reference
    if ref is None and modules is not None:
        ref = modules.outputs.get("")
    if ref is None or id(ref) not in grads:
        ops = [t for t in tensors if t._node is not None and t._array.size > 1 and grads[id(t)]]
        ref = min(ops, key=lambda t: dist.get(id(t), 0), default=None)
    weights = sorted(
        (t for t in tensors if id(t) in params and grads[id(t)]), key=lambda t: dist.get(id(t), 0)
    )
    pref = next((t for t in weights if t.ndim >= 2), weights[0] if weights else None)
    return _Measured(grads, params, ref, pref, _after(ref, tensors, edges, dist))


def _after(ref, tensors, edges, dist):
    """Ops between the reference and the output (the loss): reductions rescale gradients."""
    if ref is None:
        return set()
    upstream = _ancestors(ref, edges)
    return {
        id(t)
        for t in tensors
        if t._node is not None
        and id(t) not in upstream
        and dist.get(id(t), 0) < dist.get(id(ref), 0)
    }


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


# ----------------------------------------------------------------------------------------
# The structure: the stream, its blocks and runs of identical blocks


def _units(output, tensors, modules):
    """``(structure, [(output tensor, tensors)] per unit of the spine)``: each unit's ops
    and parameters are those on the way to its output that no earlier unit holds.
    ``(None, [])`` without a trace or when the drawn graph does not hold the spine."""
    if modules is None:
        return None, []
    by_id = {id(t): t for t in tensors}
    root = by_id.get(id(modules.outputs.get("")), output)  # the model's output if traced
    structure = Structure.from_trace(modules, [root])
    outs = [by_id.get(_output_id(structure, u)) for u in structure.units]
    if any(t is None for t in outs):
        return None, []
    taken = set()
    return structure, [(t, _claim(t, taken, modules.params)) for t in outs]


def _cut_off(structure, tensors, modules):
    """ids of the tensors of the nodes no gradient can reach because weights downstream
    are exactly zero (:meth:`~tinygrad_init.diagnostics.structure.Structure.zero_below`):
    the ops made by those nodes' modules, their parameters and merges."""
    keys = structure.zero_below()
    names, merges = set(), set()
    for k in keys:
        for p in structure.nodes[k].probes:
            if p.kind == "merge":
                merges.add(p.tensor_id)
            else:
                names.add(p.owner)
    cut = set()
    for t in tensors:
        pname = modules.params.get(id(t))
        name = pname.rpartition(".")[0] if pname is not None else modules.owner(t)
        if id(t) in merges or (name in names and (t._node is not None or pname is not None)):
            cut.add(id(t))
    return cut


def _stream(m, structure, tensors, edges, owner):
    """Measure along the residual stream, as the layer-level diagram does: set on ``m``
    the body's reference (the stream's end, :func:`stream_reference`) and the body (the
    tensors up to it) and the parameters the body's parameters are compared with (the
    weight and the one-dimensional parameter nearest the stream's end with a gradient: a
    bias's gradient does not carry its layer's input scale, a weight's does).  Returns
    the norm layers after the stream's end, to be drawn as one box each coloured by their
    output, as the layer-level diagram draws them (their inner ops carry the stream's
    scale on one side and the output's on the other, so no one reference reads them)."""
    end = stream_reference(structure)
    if end is None:
        return set()
    by_id = {id(t): t for t in tensors}
    stream = by_id[structure.nodes[end].probes[-1].tensor_id]
    if m.grads.get(id(stream)) is None:
        return set()
    m.stream, m.body = stream, _ancestors(stream, edges)
    dist = _distances(stream, edges)
    params = [
        t
        for t in tensors
        if id(t) in m.params and id(t) in m.body and m.grads[id(t)] and m.grads[id(t)].rms > 0
    ]  # a zero-init parameter (behind a zero gate) is no reference
    for t in sorted(params, key=lambda t: dist[id(t)], reverse=True):
        m.body_prefs[t.ndim >= 2] = t  # the nearest is written last
    after = structure.spine[structure.spine.index(end) + 1 :]
    sizes = {}
    for name in owner.values():
        sizes[name] = sizes.get(name, 0) + 1
    norms = {structure.nodes[k].head.owner for k in after if structure.nodes[k].kind == "norm"}
    return {n for n in norms if sizes.get(n, 0) > 1}


def _block_runs(structure, units, n_tensors, collapse, max_boxes):
    """The runs of identical blocks to draw as one node each (none without a trace)."""
    if structure is None:
        return []
    runs = []
    for i, count in sorted(_runs_to_collapse(structure, n_tensors, collapse, max_boxes).items()):
        run = _Run(f"r{len(runs)}", [u.name for u in structure.units[i : i + count]], [], {})
        for u, (_, claimed) in zip(structure.units[i : i + count], units[i : i + count]):
            run.members += claimed
            run.block_of.update((id(t), u.name) for t in claimed)
        runs.append(run)
    return runs


def _output_id(structure, unit):
    """The tensor a unit of the spine hands on: its last node's measured output."""
    return structure.nodes[unit.keys[-1]].probes[-1].tensor_id


def _claim(out, taken, params):
    """The ops and parameters on the way to ``out`` that ``taken`` (ids) does not hold;
    they are added to it.  Other leaves (the model's inputs) stay outside."""
    found, stack = [], [out]
    while stack:
        t = stack.pop()
        if id(t) in taken or (t._node is None and id(t) not in params):
            continue
        taken.add(id(t))
        found.append(t)
        if t._node is not None:
            stack += [a for a in t._node.inputs if isinstance(a, Tensor)]
    return found


# ----------------------------------------------------------------------------------------
# Placement: which node stands for each tensor, and which cluster holds each node


def _place(tensors, owner, runs, max_nodes, boxed=()):
    """``(node id per tensor id, [(module, node id)] of the collapsed modules)``; the
    modules ``boxed`` are collapsed unless a module around them is."""
    node_id = {id(t): run.id for run in runs for t in run.members}
    rest = [t for t in tensors if id(t) not in node_id]
    chosen = _choose_collapsed(rest, owner, max_nodes - len(runs))
    for name in boxed:
        if not any(p in chosen for p in _prefixes(name)):
            chosen = {c for c in chosen if not c.startswith(name + ".")} | {name}
    collapsed = sorted(chosen)
    module_ids = {name: f"m{k}" for k, name in enumerate(collapsed)}
    for t in rest:
        outer = next((c for c in _prefixes(owner.get(id(t))) if c in module_ids), None)
        node_id[id(t)] = module_ids[outer] if outer is not None else f"t{id(t)}"
    return node_id, list(module_ids.items())


def _inline(tensors, owner, node_id):
    """``{id: module}`` for the ops of modules with a single tensor, drawn as
    ``module: op`` in the enclosing cluster (``owner`` is moved there)."""
    sizes = {}
    for t in tensors:
        if id(t) in owner and node_id[id(t)] == f"t{id(t)}":
            sizes[owner[id(t)]] = sizes.get(owner[id(t)], 0) + 1
    inline = {}
    for t in tensors:
        o = owner.get(id(t))
        drawn = node_id[id(t)] == f"t{id(t)}"
        if drawn and o is not None and sizes.get(o) == 1 and t._node is not None:
            inline[id(t)] = o
            parent = _parent_cluster(o, sizes)
            if parent in sizes:
                owner[id(t)] = parent
            else:
                del owner[id(t)]
    return inline


def _clusters(tensors, owner, node_id, collapsed, runs, modules):
    """The tree of clusters: each node in the innermost module cluster that holds it;
    siblings in the order of their first op."""
    groups = {}
    for t in tensors:
        if node_id[id(t)] == f"t{id(t)}":
            groups.setdefault(owner.get(id(t)), []).append(node_id[id(t)])
    known = set(groups)
    for name, mid in collapsed:
        groups.setdefault(_parent_cluster(name, known), []).append(mid)
    for run in runs:
        holder = _common_module([owner.get(id(t)) for t in run.members])
        groups.setdefault(holder, []).append(run.id)
    start = _first_positions(tensors, node_id)
    first = {name: min(start[nid] for nid in nids) for name, nids in groups.items()}
    kinds = modules.kinds if modules is not None else {}
    names = sorted((n for n in groups if n is not None), key=lambda n: (n.count("."), first[n]))
    clusters = {n: OpCluster(n, kinds.get(n, ""), groups[n]) for n in names}
    top = OpCluster(None, "", groups.get(None, []))
    for n in names:
        parent = _parent_cluster(n, clusters)
        (clusters[parent] if parent is not None else top).clusters.append(clusters[n])
    return top


def _first_positions(tensors, node_id):
    """Per node, ``(0, position of its first op)`` in the walk, or ``(1, position of its
    first tensor)`` when it has no op: clusters are ordered by their first op."""
    ops, any_ = {}, {}
    for k, t in enumerate(tensors):
        nid = node_id[id(t)]
        any_.setdefault(nid, (1, k))
        if t._node is not None:
            ops.setdefault(nid, (0, k))
    return {nid: ops.get(nid, k) for nid, k in any_.items()}


def _common_module(names):
    """The innermost module enclosing every name (None if a tensor has no module)."""
    if any(n is None for n in names):
        return None
    parts = os.path.commonprefix([n.split(".") if n else [] for n in names])
    return ".".join(parts)


def _prefixes(name):
    """'a.b.c' -> 'a', 'a.b', 'a.b.c' (outermost first); '' -> ''; None -> nothing."""
    if name is None:
        return []
    if name == "":
        return [""]
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def _parent_cluster(name, cluster_names):
    """Nearest enclosing module that is itself a cluster (None: top level)."""
    if name == "":
        return None
    parts = name.split(".")
    for i in range(len(parts) - 1, 0, -1):
        cand = ".".join(parts[:i])
        if cand in cluster_names:
            return cand
    return "" if "" in cluster_names else None


def _choose_collapsed(tensors, owner, max_nodes):
    """Module names to draw as one node each, innermost first, until within the budget."""
    if len(tensors) <= max_nodes:
        return set()
    counts = {}
    for t in tensors:
        for p in _prefixes(owner.get(id(t))):
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


# ----------------------------------------------------------------------------------------
# Nodes and edges


def _shape(t):
    return "(" + ", ".join(str(n) for n in t.shape) + ")"


def _head(t, names, inline):
    if id(t) in inline:
        return f"{inline[id(t)]}: {t._node.op.name}"
    if t._node is not None:
        return t._node.op.name
    if id(t) in names:
        return str(names[id(t)])
    if t.name:
        return str(t.name)
    return "param" if t.requires_grad else "input"


def _tensor_node(t, m, names, inline, label):
    entry = m.grads[id(t)]
    lines = [_shape(t)] + ([f"{label} {fmt(entry.value)}"] if entry is not None else [])
    kind = "op" if t._node is not None else "param" if id(t) in m.params else "input"
    return OpNode(
        f"t{id(t)}",
        kind,
        _head(t, names, inline),
        lines,
        m.ratio(t),
        loss=id(t) in m.after_ref,
        measured=entry is not None or t.requires_grad,
        zero=m.zero(t),
    )


def _module_node(node_id, name, ts, m, modules, label):
    """A collapsed module: its op and parameter counts, coloured by its output."""
    out = modules.outputs.get(name)
    if out is None or id(out) not in m.grads:
        out = next((t for t in reversed(ts) if t._node is not None), ts[-1])
    n_ops = sum(t._node is not None for t in ts)
    n_par = len(ts) - n_ops
    lines = [
        f"{n_ops} op{'s' * (n_ops != 1)}, {n_par} param{'s' * (n_par != 1)}, out {_shape(out)}"
    ]
    entry = m.grads.get(id(out))
    if entry is not None:
        lines.append(f"{label} {fmt(entry.value)}")
    bad = any(g is not None and not g.finite for g in (m.grads[id(t)] for t in ts))
    head = f"{name or 'model'}: {modules.kinds.get(name, 'module')}"
    zero = not bad and m.zero(out)
    return OpNode(node_id, "module", head, lines, math.nan if bad else m.ratio(out), zero=zero)


def _run_node(run, m):
    """A run of identical blocks: the worst op's ratio and the range of the ratios, both
    over the ops that are not zero-init (zero by design is no fault); it is drawn
    zero-init only when every op is."""
    ops = [t for t in run.members if t._node is not None]
    n = len(run.blocks)
    measured = [t for t in ops if not m.zero(t)] or ops
    ratios = [m.ratio(t) for t in measured]
    worst = max(range(len(measured)), key=lambda k: severity(ratios[k]))
    finite = [r for r in ratios if r is not None and math.isfinite(r)]
    all_zero = all(getattr(m.grads.get(id(t)), "rms", None) == 0 for t in measured)
    span = ratio_span(finite, bool(measured) and all_zero)
    lines = [
        f"blocks {run.blocks[0]} .. {run.blocks[-1]}",
        f"each: {len(ops) // n} ops, {(len(run.members) - len(ops)) // n} params",
        span,
    ]
    if ratios[worst] is not None:
        op = measured[worst]
        lines.append(f"worst: {op._node.op.name} in {run.block_of[id(op)]}")
    zeros = sum(m.zero(t) for t in ops)
    if zeros:
        lines.append(f"{zeros} ops zero-init (gradient after step 1)")
    return OpNode(
        run.id,
        "run",
        f"Block x {n}",
        lines,
        ratios[worst],
        count=n,
        zero=zeros == len(ops),
        zeros=zeros,
    )


def _edges(edges, node_id):
    """One edge per pair of distinct nodes (edges inside a collapsed node vanish)."""
    seen, out = set(), []
    for a, b in edges:
        na, nb = node_id[id(a)], node_id[id(b)]
        if na != nb and (na, nb) not in seen:
            seen.add((na, nb))
            out.append(OpEdge(na, nb, side=a._node is None))
    return out
