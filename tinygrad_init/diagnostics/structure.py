"""The structural model of a network: the module-level DAG of the graph it ran.

Built once per recorded forward pass from the probes of
:class:`~tinygrad_init.diagnostics.hooks.Recorder` and the recorded tensor graph (walked
by :func:`tinygrad_init.graphwalk.walk`):

- **nodes**: one per measured point, in execution order (the graph's topological order,
  not registration order): a weighted ``layer`` (Linear, Conv2d, Embedding: a weight of
  two or more dims), a ``norm`` layer, a ``merge`` (``a + b`` in a container's forward:
  the residual stream meeting a branch), ``attention`` weights, any other ``module``.
  A parameter-free module (activation, dropout, pooling, flatten) whose only input is a
  node that feeds nothing else is *attached* to that node: ``Linear -> ReLU`` is one node
  whose activation is the ReLU that actually consumes the Linear's output;
- **edges**: node ``a`` precedes ``b`` when a tensor path runs from ``a``'s output to
  ``b``'s without passing another node;
- the **spine**: the path from the output back to the input that follows, at every node,
  its earliest input; at a merge that is the skip connection, so in a residual network
  the spine is the stream and each block's **branch** (the nodes that rejoin the spine
  at its merge) hangs beside it.  In a plain chain the spine is the chain;
- **blocks**: a spine merge with its branch, named by the modules they share (``blocks.3``);
- **units** and **repeats**: the spine as a sequence of blocks and single nodes, and the
  runs of consecutive units with identical structure (``Block x 20``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from ..graphwalk import walk
from .activations import is_norm, lookup
from .hooks import Probe, is_merge

__all__ = ["Node", "Block", "Unit", "Structure"]


@dataclass
class Node:
    """One node of the module-level DAG; ``probes[0]`` is its head, ``probes[-1]`` the
    point measured as its output (after the attached modules)."""

    key: str
    kind: str
    position: int
    probes: list
    preds: list = field(default_factory=list)
    succs: list = field(default_factory=list)
    on_spine: bool = False
    block: str | None = None

    @property
    def head(self):
        return self.probes[0] if self.probes else None

    @property
    def module(self):
        return self.head.module if self.head else None

    @property
    def attached(self):
        """The modules attached after the head (activation, dropout, ...)."""
        return [p.module for p in self.probes[1:]]

    @property
    def activation(self):
        """The first attached module that is an activation (registry lookup), or None."""
        return next((m for m in self.attached if lookup(m) is not None), None)

    @property
    def weight(self):
        m = self.module
        w = getattr(m, "_parameters", {}).get("weight") if m is not None else None
        return w if w is not None and w.ndim >= 2 else None

    def signature(self):
        """What makes two nodes 'identical' for repeat detection: kinds, classes, shapes."""
        mods = [p.module for p in self.probes if p.module is not None]
        shapes = tuple(
            tuple(p.shape)
            for m in mods[:1]
            for p in getattr(m, "_parameters", {}).values()
            if p is not None
        )
        return (self.kind, tuple(type(m).__name__ for m in mods), shapes)


@dataclass
class Block:
    """A residual block: the spine ``merge`` node and the ``branch`` nodes that rejoin it."""

    name: str
    merge: str
    branch: list


@dataclass
class Unit:
    """One step along the spine: a block (``block`` set) or a single node."""

    keys: list
    signature: tuple
    block: Block | None = None

    @property
    def name(self):
        return self.block.name if self.block else self.keys[0]


@dataclass
class Structure:
    """The module-level DAG (see the module docstring)."""

    nodes: dict
    spine: list
    blocks: list
    units: list

    # -- reading --------------------------------------------------------------------
    @property
    def order(self):
        """Node keys in execution order (the input excluded)."""
        return [
            k
            for k, n in sorted(self.nodes.items(), key=lambda kv: kv[1].position)
            if n.kind != "input"
        ]

    @property
    def merges(self):
        """The spine's merges in order: the points of the residual stream."""
        return [k for k in self.spine if self.nodes[k].kind == "merge"]

    @property
    def stream_end(self):
        """The last merge on the spine (None in a network without one)."""
        m = self.merges
        return m[-1] if m else None

    def zero_below(self):
        """``{key: the node whose exactly-zero weights cut it off}`` for every node that no
        gradient can reach, read from the parameters as they are now.

        "Weights" are a module's parameters other than its bias (a Linear's weight, a
        norm layer's gain, a ``ResidualGate``'s alpha); a node whose weights are all
        exactly zero passes back no gradient.  A node is cut off when each of its paths
        to the output passes such a node; of the zero nodes on those paths the last one
        is named, since it is the one that must become non-zero first (Fixup's zero
        classifier for the stream, a branch's own zero last layer for the branch).  One
        pass in reverse execution order.
        """
        below, reached = {}, {}
        for n in sorted(self.nodes.values(), key=lambda n: -n.position):
            if not n.succs:
                reached[n.key] = True
                continue
            cuts = []
            for s in n.succs:
                if _zero_weights(self.nodes[s]):
                    cuts.append(s)
                elif reached[s]:
                    break
                else:
                    cuts.append(below[s])
            else:
                below[n.key] = max(cuts, key=lambda k: self.nodes[k].position)
            reached[n.key] = n.key not in below
        return below

    def block_of(self, key):
        return next((b for b in self.blocks if key == b.merge or key in b.branch), None)

    def repeats(self):
        """Runs of identical consecutive units: ``[(first index, count)]`` into ``units``."""
        runs, i = [], 0
        while i < len(self.units):
            j = i + 1
            while j < len(self.units) and self.units[j].signature == self.units[i].signature:
                j += 1
            runs.append((i, j - i))
            i = j
        return runs

    # -- building -------------------------------------------------------------------
    @classmethod
    def build(cls, recorder, outputs):
        """From a :class:`Recorder`'s ``probes`` (tensor id -> Probe) and ``params``
        (parameter ids) and the graph below ``outputs`` (intact)."""
        order, _ = walk(outputs, caller="Monitor")
        nodes, point, counts = {}, {}, {}
        for i, t in enumerate(order):
            probe = recorder.probes.get(id(t))
            if probe is None:
                continue
            key = _key(probe, counts)
            nodes[key] = Node(key, _kind(probe), i, [probe])
            point[id(t)] = key
        src = {}
        for t in order:
            if t._node is None:
                s = frozenset() if id(t) in recorder.params else frozenset({"input"})
            else:
                s = frozenset().union(
                    *(src.get(id(a), frozenset()) for a in t._node.inputs if hasattr(a, "_node"))
                )
            key = point.get(id(t))
            if key is None:
                src[id(t)] = s
                continue
            nodes[key].preds = sorted(s, key=lambda k: nodes[k].position if k in nodes else -1)
            src[id(t)] = frozenset({key})
        if any("input" in n.preds for n in nodes.values()):
            nodes["input"] = Node("input", "input", -1, [])
        out_src = src.get(id(outputs[0]), frozenset()) if outputs else frozenset()
        return cls._assemble(nodes, max(out_src, key=lambda k: nodes[k].position, default=None))

    @classmethod
    def from_trace(cls, trace, outputs):
        """From a :class:`~tinygrad_init.diagnostics.ownership.ModuleTrace` (the op graph's
        ``viz.trace_modules``) and the graph below ``outputs`` (intact): the same nodes as
        the Monitor's, from the leaf calls and the merges the trace saw, unmeasured
        (``act`` is None)."""
        params = set(trace.params)
        probes = {id(t): Probe("module", name, id(t), None, m) for name, m, t in trace.calls}
        for t in trace.claimed:
            name = trace.owners[id(t)]
            if name not in trace.leaves and id(t) not in probes and is_merge(t, params):
                probes[id(t)] = Probe("merge", name, id(t), None)
        return cls.build(_Points(probes, params), outputs)

    @classmethod
    def chain(cls, recorder):
        """Fallback without a root forward: the leaf calls as a chain, in call order."""
        nodes, counts, prev = {}, {}, None
        probes = [p for p in recorder.probes.values() if p.kind == "module"]
        for i, probe in enumerate(probes):
            key = _key(probe, counts)
            nodes[key] = Node(key, _kind(probe), i, [probe], preds=[prev] if prev else [])
            prev = key
        return cls._assemble(nodes, prev)

    @classmethod
    def _assemble(cls, nodes, out):
        _link(nodes)
        _attach(nodes)
        spine = _spine(nodes, out)
        blocks = _blocks(nodes, spine)
        units = _units(nodes, spine, blocks)
        return cls(nodes, spine, blocks, units)


@dataclass
class _Points:
    """What :meth:`Structure.build` reads of a Recorder, gathered from a trace instead."""

    probes: dict
    params: set


def _zero_weights(node):
    m = node.module
    weights = [
        p for name, p in getattr(m, "_parameters", {}).items() if p is not None and name != "bias"
    ]
    return bool(weights) and not any(np.any(p._array) for p in weights)


def _key(probe, counts):
    if probe.kind == "merge":
        base = f"{probe.owner}.+" if probe.owner else "+"
    elif probe.kind == "attention":
        base = f"{probe.owner}.attn" if probe.owner else "attn"
    else:
        base = probe.owner
    counts[base] = counts.get(base, 0) + 1
    return base if counts[base] == 1 else f"{base}#{counts[base]}"


def _kind(probe):
    if probe.kind != "module":
        return probe.kind
    m = probe.module
    w = getattr(m, "_parameters", {}).get("weight")
    if w is not None and w.ndim >= 2:
        return "layer"
    if is_norm(m):
        return "norm"
    return "module"


def _link(nodes):
    for n in nodes.values():
        n.succs = []
    for n in sorted(nodes.values(), key=lambda n: n.position):
        for p in n.preds:
            if p in nodes:
                nodes[p].succs.append(n.key)


def _attachable(n):
    m = n.module
    return (
        n.kind == "module"
        and m is not None
        and not any(p is not None for p in getattr(m, "_parameters", {}).values())
    )


def _attach(nodes):
    """Fold a parameter-free module into its only input node when that feeds nothing else."""
    for n in sorted(list(nodes.values()), key=lambda n: n.position):
        if not _attachable(n) or len(n.preds) != 1 or n.preds[0] not in nodes:
            continue
        p = nodes[n.preds[0]]
        if p.kind in ("input", "attention") or p.succs != [n.key]:
            continue
        p.probes += n.probes
        p.succs = n.succs
        for s in n.succs:
            nodes[s].preds = [p.key if k == n.key else k for k in nodes[s].preds]
        del nodes[n.key]


def _spine(nodes, out):
    spine, cur = [], out
    while cur is not None and cur != "input":
        spine.append(cur)
        nodes[cur].on_spine = True
        cands = [k for k in nodes[cur].preds if k in nodes and nodes[k].kind != "attention"]
        cur = min(cands, key=lambda k: nodes[k].position, default=None)
    return spine[::-1]


def _blocks(nodes, spine):
    """Each off-spine node joins the first spine node it feeds; a merge with joiners is a
    block."""
    join = {}
    for n in sorted(nodes.values(), key=lambda n: -n.position):
        if n.on_spine or n.kind == "input":
            continue
        targets = [s if nodes[s].on_spine else join.get(s) for s in n.succs]
        targets = [t for t in targets if t is not None]
        if targets:
            join[n.key] = min(targets, key=lambda k: nodes[k].position)
    blocks = []
    for key in spine:
        if nodes[key].kind != "merge":
            continue
        branch = sorted((k for k, j in join.items() if j == key), key=lambda k: nodes[k].position)
        names = [p.owner for k in branch + [key] for p in nodes[k].probes]
        name = _common_prefix(names) or f"block {len(blocks) + 1}"
        block = Block(name, key, branch)
        for k in branch + [key]:
            nodes[k].block = name
        blocks.append(block)
    return blocks


def _common_prefix(names):
    parts = [n.split(".") for n in names if n]  # the root owns everything: ignore it
    if not parts:
        return ""
    common = os.path.commonprefix(parts)
    return ".".join(common)


def _units(nodes, spine, blocks):
    by_merge = {b.merge: b for b in blocks}
    units = []
    for key in spine:
        block = by_merge.get(key)
        if block is not None:
            keys = block.branch + [key]
            sig = ("block", tuple(nodes[k].signature() for k in keys))
            units.append(Unit(keys, sig, block))
        else:
            units.append(Unit([key], nodes[key].signature()))
    return units
