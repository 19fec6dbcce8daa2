"""The drawing model of a gradient-flow diagram: what to draw, before any DOT.

:func:`build_flow` reads a :class:`~tinygrad_init.diagnostics.structure.Structure` and the
records of one step and returns a :class:`FlowDiagram` of plain :class:`DrawNode`,
:class:`DrawEdge` and :class:`Cluster` values; :mod:`tinygrad_init.viz.flow` renders it.
Keeping the two apart (as Chainer's ``build_computational_graph`` and ``_to_dot`` do) lets
tests read the model and lets each half stay small.

- the **spine** (the residual stream, or the whole chain) is one column of nodes joined
  by ``stream`` edges; a block's branch nodes form a cluster beside it, joined by
  ``branch`` edges; the edge from a block's input straight into its merge is a ``skip``
  edge;
- a run of identical consecutive blocks becomes one ``collapsed`` node ("Block x 20")
  when the diagram would pass ``max_boxes`` boxes (or always / never, by ``collapse``);
  it carries its members' records, the worst of them sets its colour (a ``zero-init``
  member, whose gradient is exactly zero by design, is never the worst).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..diagnostics import ZERO_INIT
from ..diagnostics.status import SEVERITY

__all__ = ["DrawNode", "DrawEdge", "Cluster", "FlowDiagram", "build_flow", "worst", "ratio_of"]

MAX_BOXES = 60


@dataclass
class DrawNode:
    """One box: a node of the structure (``records`` has one entry) or a collapsed run."""

    id: str
    kind: str  # layer, norm, merge, module, attention, collapsed
    records: list
    on_spine: bool = False
    count: int = 1  # blocks in a collapsed run

    @property
    def record(self):
        """The record that sets the colour: the node's own, or the worst member's."""
        return worst(self.records)


@dataclass
class DrawEdge:
    src: str
    dst: str
    kind: str  # stream, branch, skip


@dataclass
class Cluster:
    """A block's branch, drawn beside the stream."""

    name: str
    nodes: list = field(default_factory=list)


@dataclass
class FlowDiagram:
    nodes: list
    edges: list
    clusters: list
    collapsed: bool = False
    residual: bool = False  # the structure has blocks (drawn as a DAG, not in rows)

    @property
    def is_chain(self):
        return not self.residual

    def node(self, node_id):
        return next(n for n in self.nodes if n.id == node_id)


def ratio_of(r):
    """The ratio a record is coloured by: its gradient ratio, else its weight gradient's."""
    if r.status == "nan":
        return math.nan
    return r.weight_grad_ratio if r.grad_ratio is None else r.grad_ratio


def severity(ratio):
    """How far a gradient ratio is from 1 on the log scale, ``|log10(ratio)|``: NaN ranks
    first, then 0 (a gradient that vanished entirely), None (no gradient) last."""
    if ratio is None:
        return -1.0
    if math.isnan(ratio):
        return math.inf
    return 1e9 if ratio <= 0 else abs(math.log10(ratio))


def _severity(r):
    if r.status == "nan":
        return math.inf
    if r.status == ZERO_INIT:
        return -0.5  # below any measured ratio: zero by design, not a fault
    return severity(ratio_of(r))


def worst(records):
    """The record farthest from a ratio of 1 on the log scale (NaN first, zero-init last
    but for records without a ratio); among equals, the one with the most severe status
    (a forward explosion where no record has a gradient ratio)."""
    return max(records, key=lambda r: (_severity(r), -_status_rank(r.status)))


def _status_rank(status):
    return SEVERITY.index(status) if status in SEVERITY else len(SEVERITY)


def build_flow(structure, recs, *, collapse=None, max_boxes=MAX_BOXES):
    """The drawing model of ``recs`` (one step) laid out on ``structure``.

    ``collapse``: None collapses runs of identical blocks only when the diagram would
    have more than ``max_boxes`` boxes, True always, False never.
    """
    if collapse not in (None, True, False):
        raise ValueError(f"gradient_flow: collapse must be None, True or False, got {collapse!r}")
    by_key = {r.name: r for r in recs}
    pos = {r.name: i for i, r in enumerate(recs)}  # node ids L0, L1, ... in record order
    if structure is None or any(k not in by_key for k in structure.order):
        return _chain(recs)
    runs = _runs_to_collapse(structure, len(recs), collapse, max_boxes)
    nodes, edges, clusters, alias = [], [], [], {}
    for i, unit in enumerate(structure.units):
        run = runs.get(i)
        if run is not None:
            keys = [k for u in structure.units[i : i + run] for k in u.keys]
            node_id = f"B{pos[unit.keys[0]]}"
            nodes.append(DrawNode(node_id, "collapsed", [by_key[k] for k in keys], True, run))
            for k in keys:
                alias[k] = node_id
            continue
        if any(k in alias for k in unit.keys):
            continue  # inside a collapsed run
        cluster = Cluster(unit.block.name) if unit.block else None
        for k in unit.keys:
            n = structure.nodes[k]
            node_id = f"L{pos[k]}"
            alias[k] = node_id
            nodes.append(DrawNode(node_id, n.kind, [by_key[k]], n.on_spine))
            if cluster is not None and not n.on_spine:
                cluster.nodes.append(node_id)
        if cluster is not None and cluster.nodes:
            clusters.append(cluster)
    seen = set()
    for k in structure.order:
        n = structure.nodes[k]
        for p in n.preds:
            src = alias.get(p, "input" if p == "input" else None)
            dst = alias[k]
            if src is None or src == dst or (src, dst) in seen:
                continue
            seen.add((src, dst))
            from_spine = p == "input" or structure.nodes[p].on_spine
            if "B" in (src[0], dst[0]):
                kind = "stream"  # into or out of a collapsed run: the stream
            elif not (from_spine and n.on_spine):
                kind = "branch"
            elif n.kind == "merge" and not dst.startswith("B"):
                kind = "skip"  # the block's input straight into its merge
            else:
                kind = "stream"
            edges.append(DrawEdge(src, dst, kind))
    return FlowDiagram(nodes, edges, clusters, bool(runs), bool(structure.blocks))


def _chain(recs):
    nodes = [DrawNode(f"L{i}", r.kind, [r], True) for i, r in enumerate(recs)]
    edges = [DrawEdge(a.id, b.id, "stream") for a, b in zip(nodes, nodes[1:])]
    if nodes:
        edges.insert(0, DrawEdge("input", nodes[0].id, "stream"))
    return FlowDiagram(nodes, edges, [])


def _runs_to_collapse(structure, boxes, collapse, max_boxes):
    """``{first unit index: count}`` for the runs of two or more identical blocks."""
    if collapse is False or (collapse is None and boxes <= max_boxes):
        return {}
    return {
        i: count
        for i, count in structure.repeats()
        if count >= 2 and structure.units[i].block is not None
    }
