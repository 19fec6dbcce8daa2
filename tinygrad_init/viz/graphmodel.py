"""The drawing model of an op graph: what to draw, before any DOT.

:func:`build_graph` reads a recorded graph, the gradients that reached its tensors and,
with a :class:`~tinygrad_init.diagnostics.ownership.ModuleTrace`, the module that made
each tensor; it returns an :class:`OpDiagram` of plain :class:`OpNode`, :class:`OpEdge`
and :class:`OpCluster` values, which :mod:`tinygrad_init.viz.graph` renders (the split of
Chainer's ``build_computational_graph`` and ``_to_dot``).

- every tensor is a node: an ``op``, a ``param`` or an ``input``.  Its ``ratio`` is its
  gradient's RMS over the reference's (the model output, or for parameters the parameter
  nearest the output); ops after the reference (the loss) are marked ``loss``;
- each module with two or more tensors is a cluster, nested as the modules are; a module
  with one op is drawn inline as ``name: op``;
- a run of identical consecutive residual blocks, as the structural model
  (:class:`~tinygrad_init.diagnostics.structure.Structure`) finds them, becomes one
  ``run`` node, "Block x 40", when the graph has more than about 60 nodes (or always /
  never, by ``collapse``: the rule of the layer-level diagram).  It stands for every op
  and parameter computed after the run's input on the way to its last merge, takes the
  ratio of its worst op (farthest from 1 on the log scale, NaN first) and lists the range
  of its ops' ratios.  Edges into and out of the run are kept;
- above ``max_nodes`` nodes, modules become one ``module`` node each, innermost first.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np

from ..autograd import grad as _grad
from ..autograd import record_gradients
from ..diagnostics.status import norm, ratio, rms
from ..diagnostics.structure import Structure
from ..graphwalk import walk
from ..tensor import Tensor
from .colors import fmt
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
    loss: bool = False  # after the reference: drawn neutral
    measured: bool = True  # has (or requires) a gradient; False: drawn plain grey
    count: int = 1


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
    """The gradient of every tensor and the two references ratios are taken against."""

    grads: dict  # id -> _Grad, None without a gradient
    params: set  # ids of parameter-like leaves (compared with ``pref``)
    ref: Tensor | None
    pref: Tensor | None
    after_ref: set  # ids of the ops between the reference and the output

    def ratio(self, t):
        entry = self.grads.get(id(t))
        ref = self.pref if id(t) in self.params else self.ref
        base = self.grads.get(id(ref)) if ref is not None else None
        if entry is None or base is None:
            return None
        return ratio(entry.rms, base.rms) if entry.finite else math.nan


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
    runs = _block_runs(output, tensors, edges, modules, collapse, max_boxes)
    node_id, collapsed = _place(tensors, owner, runs, max_nodes)
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
    return OpDiagram(nodes, _edges(edges, node_id), top)


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
# Runs of identical blocks


def _block_runs(output, tensors, edges, modules, collapse, max_boxes):
    """The runs of identical blocks to draw as one node each (none without a trace)."""
    if modules is None or collapse is False or (collapse is None and len(tensors) <= max_boxes):
        return []
    by_id = {id(t): t for t in tensors}
    root = by_id.get(id(modules.outputs.get("")), output)  # the model's output if traced
    structure = Structure.from_trace(modules, [root])
    runs = []
    for i, count in sorted(_runs_to_collapse(structure, len(tensors), collapse, max_boxes).items()):
        units = structure.units[i : i + count]
        before = set()
        if i > 0:
            before = _ancestors(by_id[_output_id(structure, structure.units[i - 1])], edges)
        run = _Run(f"r{len(runs)}", [u.name for u in units], [], {})
        for u in units:
            claimed = _claim(by_id[_output_id(structure, u)], before, modules.params)
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


def _place(tensors, owner, runs, max_nodes):
    """``(node id per tensor id, [(module, node id)] of the collapsed modules)``."""
    node_id = {id(t): run.id for run in runs for t in run.members}
    rest = [t for t in tensors if id(t) not in node_id]
    collapsed = sorted(_choose_collapsed(rest, owner, max_nodes - len(runs)))
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
    return OpNode(node_id, "module", head, lines, math.nan if bad else m.ratio(out))


def _run_node(run, m):
    """A run of identical blocks: the worst op's ratio, the range of its ops' ratios."""
    ops = [t for t in run.members if t._node is not None]
    n = len(run.blocks)
    ratios = [m.ratio(t) for t in ops]
    worst = max(range(len(ops)), key=lambda k: severity(ratios[k]))
    finite = [r for r in ratios if r is not None and math.isfinite(r)]
    span = f"grad x{fmt(min(finite), 0)} .. x{fmt(max(finite), 0)}" if finite else "no gradient"
    lines = [
        f"blocks {run.blocks[0]} .. {run.blocks[-1]}",
        f"each: {len(ops) // n} ops, {(len(run.members) - len(ops)) // n} params",
        span,
    ]
    if ratios[worst] is not None:
        lines.append(f"worst: {ops[worst]._node.op.name} in {run.block_of[id(ops[worst])]}")
    return OpNode(run.id, "run", f"Block x {n}", lines, ratios[worst], count=n)


def _edges(edges, node_id):
    """One edge per pair of distinct nodes (edges inside a collapsed node vanish)."""
    seen, out = set(), []
    for a, b in edges:
        na, nb = node_id[id(a)], node_id[id(b)]
        if na != nb and (na, nb) not in seen:
            seen.add((na, nb))
            out.append(OpEdge(na, nb, side=a._node is None))
    return out
