"""The one walk over a recorded graph: tensors in topological order and the edges between them.

Every reader of a recorded graph (``gradcheck_graph``, the op diagrams of
:mod:`tinygrad_init.viz`, the structural model of :mod:`tinygrad_init.diagnostics`) calls
:func:`walk`.  The engine keeps its own inlined loop on the hot path of ``backward()``.
"""

from __future__ import annotations

from .tensor import Tensor

__all__ = ["walk"]


def walk(roots, *, leaves=True, caller="walk"):
    """``(order, edges)`` of the graph below ``roots``.

    ``order``: every reachable Tensor once, inputs before their users (depth first with an
    explicit stack, so a chain of 100,000 ops works); leaves (tensors without a recorded
    op) only when ``leaves`` is true.  ``edges``: ``(input, user)`` pairs in the order
    the ops list their inputs, one per tensor argument.  A graph freed by ``backward()``
    raises a ``RuntimeError`` naming ``caller`` and the op.
    """
    order, edges, seen = [], [], set()
    stack = [(t, False) for t in reversed(list(roots))]
    while stack:
        t, expanded = stack.pop()
        if expanded:
            order.append(t)
            continue
        if id(t) in seen:
            continue
        seen.add(id(t))
        node = t._node
        if node is None:
            if leaves:
                order.append(t)
            continue
        if node.inputs is None:
            raise RuntimeError(
                f"{caller}: the graph was freed by a previous backward pass (op "
                f"'{node.op.name}' has no saved inputs any more): walk it before backward(), "
                "or call backward(retain_graph=True)"
            )
        stack.append((t, True))
        inputs = [a for a in node.inputs if isinstance(a, Tensor)]
        edges += [(a, t) for a in inputs if leaves or a._node is not None]
        stack += [(a, False) for a in reversed(inputs) if id(a) not in seen]
    return order, edges
