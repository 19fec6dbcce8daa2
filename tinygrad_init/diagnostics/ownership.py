"""Module ownership: which module of a model produced each tensor of a forward pass.

A forward hook on every module *claims*, when the module's forward returns, the tensors
its forward created: it walks the recorded graph back from the module's outputs to its
inputs, and every tensor on the way that no module owns yet becomes this module's.  Inner
modules return first, so each tensor ends up owned by the innermost module that made it
(``''`` is the root; a model input is owned by nobody).  :func:`claim` is that walk; the
Monitor's hooks (:mod:`.hooks`) and :class:`ModuleTrace` (``viz.trace_modules``, the op
graph's clusters) both use it.
"""

from __future__ import annotations

from ..tensor import Tensor

__all__ = ["tensors_of", "claim", "ModuleTrace", "trace_modules"]


def tensors_of(value):
    """The Tensors in a module's arguments or output (a tensor, a tuple/list, a dict)."""
    if isinstance(value, Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [v for v in value if isinstance(v, Tensor)]
    if isinstance(value, dict):
        return [v for v in value.values() if isinstance(v, Tensor)]
    return []


def claim(owners, keep, outs, name, inputs):
    """Give ``name`` every tensor between ``outs`` and the ids in ``inputs`` that ``owners``
    (id -> module name) does not have yet; each claimed tensor is appended to ``keep`` so
    that its id stays valid.  Returns the claimed tensors."""
    claimed, stack, seen = [], list(outs), set()
    while stack:
        t = stack.pop()
        if id(t) in seen or id(t) in inputs or t._node is None:
            continue
        seen.add(id(t))
        if id(t) not in owners:
            owners[id(t)] = name
            keep.append(t)
            claimed.append(t)
        stack += [a for a in t._node.inputs or () if isinstance(a, Tensor)]
    return claimed


class ModuleTrace:
    """Which module produced each tensor of a forward pass (see :func:`trace_modules`).

    ``owner(t)`` is the qualified name of the innermost module whose forward created
    tensor ``t`` (``''`` for the root, None outside the model); ``kinds`` maps module
    names to class names; ``params`` maps parameter ids to qualified names;
    ``outputs`` maps module names to their (last) output tensor; ``calls`` lists, in call
    order, ``(name, module, output)`` for every call of a leaf module (one without
    children) that returned a new tensor, the points the structural model is built on
    (:meth:`~tinygrad_init.diagnostics.structure.Structure.from_trace`).
    """

    def __init__(self, model):
        self.model = model
        self.owners = {}
        self.kinds = {}
        self.outputs = {}
        self.params = {}
        self.param_owner = {}
        self.calls = []
        self._keep = []
        self._handles = []
        for name, p in model.named_parameters():
            self.params[id(p)] = name
            self.param_owner[id(p)] = name.rpartition(".")[0]
        self.leaves = {n for n, m in model.named_modules() if not list(m.children())}
        for name, m in model.named_modules():
            self.kinds[name] = type(m).__name__
            self._handles.append(m.register_forward_hook(self._hook(name)))

    def _hook(self, name):
        def hook(module, args, output):
            outs = tensors_of(output)
            inputs = tensors_of(args)
            if outs:
                self.outputs[name] = outs[-1]
                if name in self.leaves and all(outs[0] is not a for a in inputs):
                    self.calls.append((name, module, outs[0]))
            claim(self.owners, self._keep, outs, name, {id(a) for a in inputs})
            return None

        return hook

    @property
    def claimed(self):
        """Every tensor a module claimed, in the order the modules returned."""
        return list(self._keep)

    def owner(self, t):
        if id(t) in self.param_owner:
            return self.param_owner[id(t)]
        return self.owners.get(id(t))

    def close(self):
        """Remove the forward hooks."""
        for h in self._handles:
            h.remove()
        self._handles = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def trace_modules(model):
    """Context manager recording which module of ``model`` produced each tensor."""
    if not (
        callable(getattr(model, "named_modules", None))
        and callable(getattr(model, "register_forward_hook", None))
    ):
        raise TypeError(f"trace_modules: expected an nn.Module, got {type(model).__name__}")
    return ModuleTrace(model)
