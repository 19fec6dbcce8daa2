"""Graph machinery: grad mode, anomaly mode, the backward pass, ``grad`` and ``Function``.

A Tensor produced by a primitive while grad mode is on carries a ``Node`` (its
``grad_fn``): the primitive, the input Tensors (or constants) and the non-tensor
parameters.  The backward pass orders the Tensors topologically with an explicit stack
(no recursion, so a chain of 100,000 ops is fine), then walks them from the outputs back,
calling each primitive's VJP rules and accumulating gradients in a dict.  Unless
``retain_graph`` is set, each node drops its inputs once used, which releases the arrays
that the forward pass kept alive; a second backward through it raises ``RuntimeError``.
"""

from __future__ import annotations

import functools
import os
import sys
import threading

import numpy as np

from . import ops

__all__ = [
    "Function",
    "FunctionCtx",
    "once_differentiable",
    "AccumulateGrad",
    "Node",
    "backward",
    "grad",
    "no_grad",
    "enable_grad",
    "set_grad_enabled",
    "is_grad_enabled",
    "detect_anomaly",
    "is_anomaly_enabled",
    "record_gradients",
    "creation_site",
]


class _ThreadState(threading.local):
    """Per-thread switches: recording on/off and anomaly detection.

    Every attribute read of a ``threading.local`` finds the thread's dict again, so the
    hot paths (``tensor.apply``, ``run_backward``) read ``_state.__dict__`` once, this
    thread's dict of the four switches set here, and then its keys."""

    def __init__(self):
        self.grad_enabled = True
        self.anomaly = False
        self.recorder = None
        self.tape = None  # the recording of tg.compile, while one is made


_state = _ThreadState()


def is_grad_enabled():
    """True when operations on Tensors that require grad are recorded (this thread)."""
    return _state.grad_enabled


def is_anomaly_enabled():
    return _state.anomaly


class _SwitchContext:
    """Context manager and decorator that sets a thread-local switch and restores it."""

    attribute = ""
    value = True

    def __enter__(self):
        self._previous = getattr(_state, self.attribute)
        setattr(_state, self.attribute, self.value)
        return self

    def __exit__(self, *exc):
        setattr(_state, self.attribute, self._previous)
        return False

    def _fresh(self):
        """A new instance with the same setting, so a decorated function is re-entrant."""
        return type(self)()

    def __call__(self, fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with self._fresh():
                return fn(*args, **kwargs)

        return wrapper


class no_grad(_SwitchContext):
    """Record nothing inside the block (as ``torch.no_grad``); also a decorator."""

    attribute, value = "grad_enabled", False


class enable_grad(_SwitchContext):
    """Record operations inside the block even within ``no_grad`` (``torch.enable_grad``)."""

    attribute, value = "grad_enabled", True


class set_grad_enabled(_SwitchContext):
    """Set grad mode to ``mode`` now; used as a context manager it restores it on exit."""

    attribute = "grad_enabled"

    def __init__(self, mode):
        self.value = bool(mode)
        self._previous = _state.grad_enabled
        _state.grad_enabled = self.value

    def __enter__(self):
        return self

    def _fresh(self):
        return _Restoring(self.value)


class _Restoring(_SwitchContext):
    """Sets grad mode on entry, restores it on exit (set_grad_enabled as a decorator)."""

    attribute = "grad_enabled"

    def __init__(self, value):
        self.value = value


class record_gradients:
    """Keep, for every backward pass run inside the block, the gradient reaching each tensor.

    ``rec.grad(t)`` is the numpy gradient that arrived at tensor ``t`` (None if none did):
    the input of each op's rule, and for leaves the gradient accumulated into ``.grad``.
    Results are unchanged; with no recorder active the engine pays one attribute check per
    backward call.  The recorder keeps the tensors it saw alive until it is dropped.

        with tg.autograd.record_gradients() as rec:
            loss.backward()
        rec.grad(hidden)
    """

    def __init__(self):
        self._grads = {}
        self._tensors = {}

    def __enter__(self):
        self._previous = _state.recorder
        _state.recorder = self
        return self

    def __exit__(self, *exc):
        _state.recorder = self._previous
        return False

    def _record(self, t, g):
        key = id(t)
        g = g._array if isinstance(g, _tensor.Tensor) else g
        self._tensors[key] = t
        self._grads[key] = g if key not in self._grads else self._grads[key] + g

    def grad(self, t):
        """The gradient recorded for tensor ``t`` (a numpy array), or None."""
        return self._grads.get(id(t))

    @property
    def tensors(self):
        """The tensors that received a gradient, in the order the pass reached them."""
        return list(self._tensors.values())


class detect_anomaly(_SwitchContext):
    """Inside the block, the first forward or backward op that produces NaN or Inf raises.

    The error names the op and the file:line of the user code that created it
    (``torch.autograd.detect_anomaly``).  Recording creation sites costs time, so it is off
    by default.
    """

    attribute, value = "anomaly", True


# ----------------------------------------------------------------------------------------
# Nodes


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def creation_site():
    """``file:line`` of the innermost caller outside this package."""
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame = frame.f_back
    return "<unknown>" if frame is None else f"{frame.f_code.co_filename}:{frame.f_lineno}"


class Node:
    """One recorded op application: the ``grad_fn`` of the Tensor it produced.

    ``inputs`` holds the input Tensors and constants in call order, ``params`` the
    non-tensor arguments; ``arrays`` the same inputs as the arrays the forward ran on and
    ``needs`` which of them required grad when the op was recorded (the engine's per-node
    bookkeeping, kept so that backward does not recompute it).  Both are tuples: holding
    only arrays, numbers and bools, the garbage collector stops tracking them at its first
    pass, so the passes over a long graph visit the Tensor, its Node and the ``inputs``
    tuple only.  All four become None when
    the graph is freed after backward.  ``site`` is where the op was created (recorded in
    anomaly mode).  ``versions`` holds the version of each input Tensor when the op was
    recorded (None for constants) and, last, that of the output: the rules' saved values
    are checked against them before use.
    """

    __slots__ = ("op", "inputs", "params", "site", "arrays", "needs", "versions", "epoch")

    def __init__(self, op, inputs, params, site=None, arrays=None, needs=None, versions=None):
        self.op = op
        self.inputs = inputs
        self.params = params
        self.site = site
        self.arrays = (
            arrays
            if arrays is not None
            else tuple(a._array if isinstance(a, _tensor.Tensor) else a for a in inputs)
        )
        self.needs = (
            needs
            if needs is not None
            else tuple(isinstance(a, _tensor.Tensor) and a.requires_grad for a in inputs)
        )
        self.versions = versions  # None: every input Tensor was at version 0
        self.epoch = _writes[0]

    def name(self):
        """PyTorch-style name, e.g. ``MulBackward``."""
        return self.op.name[:1].upper() + self.op.name[1:] + "Backward"

    @property
    def next_functions(self):
        """``(fn, 0)`` per input, as ``torch``'s ``grad_fn.next_functions``: the input's
        node, an ``AccumulateGrad`` for a leaf that requires grad, None otherwise."""
        Tensor = _tensor.Tensor
        if self.inputs is None:
            return ()
        out = []
        for a in self.inputs:
            if not isinstance(a, Tensor) or not a.requires_grad:
                out.append((None, 0))
            elif a._node is None:
                out.append((AccumulateGrad(a), 0))
            else:
                out.append((a._node, 0))
        return tuple(out)

    @property
    def next_tensors(self):
        """Input Tensors that require grad (empty once freed)."""
        return tuple(
            a for a in self.inputs or () if isinstance(a, _tensor.Tensor) and a.requires_grad
        )

    def __repr__(self):
        return f"<{self.name()}>"


# In-place writes so far, in any tensor (bumped by Tensor._bump_version).  A node recorded
# at the current count has seen no write since, so backward skips its version check: the
# check then costs one comparison per node on the hot path.
_writes = [0]


def versions_of(inputs):
    """The versions of ``inputs`` (None for constants), then 0 for the new output."""
    Tensor = _tensor.Tensor
    out = []
    for a in inputs:
        if isinstance(a, Tensor):
            vc = a._vc
            out.append(0 if vc is None else vc[0])
        else:
            out.append(None)
    out.append(0)
    return tuple(out)


def _check_saved(node, t, saves, needs):
    """Raise if a tensor that a needed rule reads was modified in place since recording
    (PyTorch's saved-variable version check)."""
    if node.op.variadic:
        saves = saves * len(needs)
    Tensor = _tensor.Tensor
    versions = node.versions
    for reads, need in zip(saves, needs):
        if not need:
            continue
        for i in reads:
            if i == "out":
                a, what = t, "the output"
                expected = 0 if versions is None else versions[-1]
            else:
                a, what = node.inputs[i], f"input {i}"
                if versions is not None:
                    expected = versions[i]
                else:
                    expected = 0 if isinstance(a, Tensor) else None
            vc = None if expected is None else a._vc
            if vc is not None and vc[0] != expected:
                raise RuntimeError(
                    "one of the variables needed for gradient computation has been modified "
                    f"by an inplace operation: {what} of op '{node.op.name}' ({node.name()}), "
                    f"a tensor of shape {tuple(a.shape)} and dtype {a.dtype}, is at version "
                    f"{vc[0]}; expected version {expected} instead. Clone it before the "
                    "in-place op, or do the op out of place."
                )


class AccumulateGrad:
    """The end of a path in ``next_functions``: where the gradient of leaf ``variable``
    is accumulated into its ``.grad``."""

    __slots__ = ("variable",)
    next_functions = ()

    def __init__(self, variable):
        self.variable = variable

    def name(self):
        return "AccumulateGrad"

    def __eq__(self, other):
        return isinstance(other, AccumulateGrad) and other.variable is self.variable

    def __hash__(self):
        return id(self.variable)

    def __repr__(self):
        return "<AccumulateGrad>"


def check_finite(op_name, array, what, site):
    """Anomaly mode: raise when ``array`` holds NaN or Inf."""
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        kind = "nan" if np.isnan(array).any() else "inf"
        raise RuntimeError(
            f"anomaly: op '{op_name}' produced {kind} values in its {what} "
            f"(op created at {site or '<unknown>'})"
        )


# ----------------------------------------------------------------------------------------
# The backward pass


def _freed_error(node):
    return RuntimeError(
        f"Trying to backward through the graph a second time: the saved values of op "
        f"'{node.op.name}' ({node.name()}) were freed by the previous backward. "
        "Pass retain_graph=True to the first backward() or grad() call to keep them."
    )


def _topological_order(roots):
    """Tensors that require grad reachable from ``roots``, inputs before their users.

    Depth first with an explicit stack.  A tensor is pushed once to be expanded; it is
    pushed again under its inputs and emitted when popped a second time (``visited`` and
    not yet ``emitted``), so the stack holds plain Tensors.  A leaf has no inputs, so it is
    emitted as soon as it is found.  Which inputs require grad is read from the node's
    ``needs``, recorded with it.  Tensors hash by identity, so they serve directly as set
    and dict keys here.
    """
    order, visited, emitted = [], set(), set()
    stack = list(roots)
    push, pop, visit, emit, out = stack.append, stack.pop, visited.add, emitted.add, order.append
    while stack:
        t = pop()
        if t in visited:
            if t not in emitted:
                emit(t)
                out(t)
            continue
        visit(t)
        node = t._node
        if node is None:
            emit(t)
            out(t)
            continue
        push(t)
        inputs = node.inputs
        if inputs is None:
            raise _freed_error(node)
        for a, need in zip(inputs, node.needs):
            if need and a not in visited:
                if a._node is None:  # a leaf: nothing below it
                    visit(a)
                    emit(a)
                    out(a)
                else:
                    push(a)
    return order


def _store_grad(t, g, create_graph, stored):
    """Accumulate ``g`` into ``t.grad`` (in place when the buffer is ours).

    A new ``.grad`` holds a buffer that no other ``.grad`` or caller shares: ``g`` itself
    when it owns its writeable memory and no other tensor stored it (``stored``), else a
    copy."""
    if create_graph:
        t.grad = g if t.grad is None else t.grad + g
    elif t.grad is None:
        if g.base is not None or not g.flags.writeable or id(g) in stored:
            g = g.copy()
        stored.add(id(g))
        grad = object.__new__(_tensor.Tensor)  # Tensor._make, inlined: one call less per leaf
        grad._init_fields(g)
        t.grad = grad
    elif t.grad._array.shape == g.shape and t.grad._array.flags.writeable:
        t.grad._array += g
    else:
        t.grad = _tensor.Tensor._make(t.grad._array + g)


def _run_hooks(t, g, create_graph, exposed):
    """Call ``t``'s hooks on its gradient; a returned tensor replaces it.

    A hook may keep what it sees or returns, so those arrays are added to ``exposed``: they
    are never stored as a ``.grad`` that a later backward accumulates into in place.  A
    replacement of another shape or dtype raises (as in PyTorch)."""
    Tensor = _tensor.Tensor
    for hook in tuple(t._hooks.values()):
        if not create_graph:
            exposed.add(id(g))
        replaced = hook(g if create_graph else Tensor._make(g))
        if replaced is None:
            continue
        new = replaced._array if isinstance(replaced, Tensor) else None
        name = getattr(hook, "__name__", type(hook).__name__)
        old = g._array if create_graph else g
        if new is None:
            raise TypeError(f"hook '{name}' must return a Tensor or None, got {type(replaced)}")
        if new.shape != old.shape:
            raise RuntimeError(
                f"hook '{name}' has changed the size of value: it returned shape "
                f"{tuple(new.shape)} for a gradient of shape {tuple(old.shape)}"
            )
        if new.dtype != old.dtype:
            raise RuntimeError(
                f"hook '{name}' has changed the type of value (was {old.dtype} got {new.dtype})"
            )
        g = replaced if create_graph else new
    if not create_graph:
        exposed.add(id(g))
    return g


def _needed_for(inputs, order):
    """Tensors through which some of ``inputs`` can be reached (the part grad() must walk)."""
    Tensor = _tensor.Tensor
    needed = set(inputs)
    for t in order:
        node = t._node
        if node is not None and any(isinstance(a, Tensor) and a in needed for a in node.inputs):
            needed.add(t)
    return needed


def run_backward(outputs, grad_outputs, retain_graph, create_graph, inputs=None, batch=None):
    """Backpropagate ``grad_outputs`` from ``outputs``.

    Without ``inputs`` the gradients are accumulated into ``.grad`` of leaves (and of
    tensors that called ``retain_grad``); with ``inputs`` nothing is stored and the
    gradients of those tensors are returned in a list (None where unreached).

    With ``batch`` (an int n, numpy only, with ``inputs``) every gradient carries a leading
    dimension of size n: n cotangents in one sweep.  The caller ensures that every op
    between ``inputs`` and ``outputs`` is ``batched`` and that no hooks are on the way.
    """
    ndarray = np.ndarray
    xp = _tensor.TENSOR_XP if create_graph else ops.NUMPY
    order = _topological_order(outputs)
    grads = {}
    for t, g in zip(outputs, grad_outputs):
        grads[t] = g if t not in grads else grads[t] + g
    pop, get = grads.pop, grads.get
    needed = None if inputs is None else _needed_for(inputs, order)
    captured = None if inputs is None else {t: None for t in inputs}
    state = _state.__dict__  # this thread's switches: one thread-local lookup (see apply)
    anomaly, recorder, tape = state["anomaly"], state["recorder"], state["tape"]
    if tape is not None:
        tape.check_backward(create_graph, inputs, recorder)
        tape.begin_backward()
        for g in grads.values():
            tape.root(g)
    stored = set()
    plain = not create_graph and batch is None  # numpy gradients, one cotangent
    previous = state["grad_enabled"]  # set_grad_enabled(create_graph), without its object
    state["grad_enabled"] = create_graph
    try:
        for t in reversed(order):
            g = pop(t, None)
            if g is None:
                continue
            if tape is not None:
                tape.check_tensor(t)
            if t._hooks:
                g = _run_hooks(t, g, create_graph, stored)
            if recorder is not None:
                recorder._record(t, g)
                if not create_graph:
                    stored.add(id(g))  # the recorder keeps g: never accumulate into it
            node = t._node
            if captured is not None:
                if t in captured:
                    captured[t] = g
                if t not in needed:
                    continue
            elif node is None or t._retains_grad:
                _store_grad(t, g, create_graph, stored)
                if tape is not None:
                    tape.store(t, g)
            if node is None:
                continue
            inputs_ = node.inputs
            if inputs_ is None:
                raise _freed_error(node)
            needs = node.needs
            if needed is not None:
                needs = [n and a in needed for n, a in zip(needs, inputs_)]
            op = node.op
            if op.saves is not None and node.epoch != _writes[0]:
                _check_saved(node, t, op.saves, needs)
            if create_graph:
                input_grads = op.vjp(xp, g, t, inputs_, node.params, needs)
            else:
                input_grads = op.vjp(xp, g, t._array, node.arrays, node.params, needs)
                if tape is not None:
                    posts = tape.backward_node(node, g, t._array, needs, input_grads)
            for i, ga in enumerate(input_grads):
                if ga is None:
                    continue
                a = inputs_[i]
                if plain:
                    data = a._array
                    if (
                        type(ga) is not ndarray
                        or ga.dtype is not data.dtype
                        or ga.shape != data.shape
                    ):
                        ga = _as_input_grad(ga, data.dtype, data.shape, node)
                elif create_graph:
                    if ga.shape != a._array.shape:
                        ga = _reduce_to(xp, ga, a._array.shape, node)
                else:
                    ga = _as_batched_input_grad(ga, a._array, batch, node)
                if anomaly:
                    check_finite(
                        node.name(),
                        ga if not create_graph else ga._array,
                        f"gradient for input {i}",
                        node.site,
                    )
                prev = get(a)
                grads[a] = ga if prev is None else prev + ga
                if tape is not None:
                    tape.input_grad(posts, i, a._array, prev, grads[a])
            if not retain_graph:  # drop the saved inputs: the arrays they keep are released
                node.inputs = node.params = node.arrays = node.needs = node.versions = None
    finally:
        state["grad_enabled"] = previous
    if captured is not None:
        return [captured[t] for t in inputs]
    return None


def _as_input_grad(ga, dtype, shape, node):
    """A rule's numpy gradient as an array of its input's ``dtype`` and ``shape``."""
    if type(ga) is not np.ndarray:
        ga = np.asarray(ga)
    if ga.dtype is not dtype and ga.dtype != dtype:
        ga = ga.astype(dtype)
    if ga.shape != shape:
        ga = _reduce_to(ops.NUMPY, ga, shape, node)
    return ga


def _as_batched_input_grad(ga, data, n, node):
    """A batched rule's gradient, ``(n,) + broadcast shape``, as ``(n,) + data.shape``: the
    operand's shape is padded with leading 1s so that unbroadcasting never sums the batch."""
    ga = np.asarray(ga, dtype=data.dtype)
    padded = (n,) + (1,) * (ga.ndim - 1 - data.ndim) + data.shape
    return _reduce_to(ops.NUMPY, ga, padded, node).reshape((n,) + data.shape)


def _reduce_to(xp, ga, shape, node):
    """Undo broadcasting, or explain which rule returned a gradient of the wrong shape."""
    try:
        return ops.unbroadcast(xp, ga, shape)
    except ValueError:
        raise RuntimeError(
            f"op '{node.op.name}' returned a gradient of shape {tuple(ga.shape)} for an "
            f"input of shape {tuple(shape)}"
        ) from None


def _root_gradients(outputs, grad_outputs, create_graph):
    """Validate outputs and build their starting gradients (ones for scalars)."""
    Tensor = _tensor.Tensor
    if grad_outputs is None:
        grad_outputs = [None] * len(outputs)
    if len(grad_outputs) != len(outputs):
        raise ValueError(
            f"grad_outputs has {len(grad_outputs)} entries but there are {len(outputs)} outputs"
        )
    roots = []
    for k, (t, g) in enumerate(zip(outputs, grad_outputs)):
        if not isinstance(t, Tensor):
            raise TypeError(f"outputs[{k}] must be a Tensor, got {type(t).__name__}")
        if not t.requires_grad:
            raise RuntimeError(
                f"element {k} of tensors does not require grad and does not have a grad_fn"
            )
        if g is None:
            if t._array.size != 1:
                raise RuntimeError(
                    f"grad can be implicitly created only for scalar outputs; this output "
                    f"has shape {tuple(t.shape)}: pass gradient= (a tensor of that shape)"
                )
            g = np.empty(t._array.shape, dtype=t._array.dtype)
            g.fill(1)  # np.ones without its two Python-level frames (ones, copyto)
            roots.append(Tensor._make(g) if create_graph else g)
            continue
        g_data = g._array if isinstance(g, Tensor) else np.asarray(g, dtype=t.dtype)
        if g_data.shape != t._array.shape:
            raise RuntimeError(
                f"Mismatch in shape: gradient has shape {tuple(g_data.shape)} "
                f"but the output has shape {tuple(t.shape)}"
            )
        if create_graph:
            roots.append(g if isinstance(g, Tensor) else Tensor._make(g_data))
        else:
            roots.append(np.array(g_data, dtype=t.dtype, copy=True))
    return roots


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False):
    """Accumulate d(tensors)/d(leaf) into each leaf's ``.grad`` (``torch.autograd.backward``)."""
    tensors = [tensors] if isinstance(tensors, _tensor.Tensor) else list(tensors)
    if isinstance(grad_tensors, _tensor.Tensor):
        grad_tensors = [grad_tensors]
    if retain_graph is None:
        retain_graph = create_graph
    roots = _root_gradients(tensors, grad_tensors, create_graph)
    run_backward(tensors, roots, retain_graph, create_graph)


def grad(
    outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False, allow_unused=False
):
    """Gradients of ``outputs`` with respect to ``inputs``, returned as a tuple.

    Nothing is accumulated into ``.grad`` (``torch.autograd.grad``).  An input that the
    outputs do not depend on raises unless ``allow_unused=True``, in which case its
    gradient is None.  With ``create_graph=True`` the result is itself differentiable.
    """
    Tensor = _tensor.Tensor
    outputs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    single = isinstance(inputs, Tensor)
    inputs = [inputs] if single else list(inputs)
    for k, t in enumerate(inputs):
        if not isinstance(t, Tensor) or not t.requires_grad:
            raise RuntimeError(
                f"inputs[{k}] does not require grad: every input of grad() "
                "must be a Tensor with requires_grad=True"
            )
    if isinstance(grad_outputs, Tensor):
        grad_outputs = [grad_outputs]
    if retain_graph is None:
        retain_graph = create_graph
    roots = _root_gradients(outputs, grad_outputs, create_graph)
    results = run_backward(outputs, roots, retain_graph, create_graph, inputs=inputs)
    out = []
    for k, g in enumerate(results):
        if g is None:
            if not allow_unused:
                raise RuntimeError(
                    f"inputs[{k}] appears not to have been used in the graph of the outputs. "
                    "Set allow_unused=True if this is the desired behavior."
                )
            out.append(None)
        else:
            out.append(g if create_graph else Tensor._make(g))
    return tuple(out)


# ----------------------------------------------------------------------------------------
# User-defined operations


class FunctionCtx:
    """The ``ctx`` passed to ``Function.forward`` and ``Function.backward``."""

    def __init__(self, needs_input_grad):
        self.needs_input_grad = needs_input_grad
        self._saved = ()
        self._saved_versions = ()
        self.non_differentiable = ()

    def save_for_backward(self, *tensors):
        """Keep tensors for backward; they come back as ``ctx.saved_tensors``."""
        Tensor = _tensor.Tensor
        self._saved = tensors
        self._saved_versions = tuple(t._version if isinstance(t, Tensor) else None for t in tensors)

    @property
    def saved_tensors(self):
        """The saved tensors; raises if one was modified in place since it was saved."""
        for k, (t, v) in enumerate(zip(self._saved, self._saved_versions)):
            if v is not None and t._version != v:
                raise RuntimeError(
                    "one of the variables needed for gradient computation has been modified "
                    f"by an inplace operation: saved tensor {k} (shape {tuple(t.shape)}) is "
                    f"at version {t._version}; expected version {v} instead."
                )
        return self._saved

    def mark_non_differentiable(self, *tensors):
        """Outputs that get no gradient (say, indices): they are returned without a graph
        and backward receives zeros for them."""
        self.non_differentiable = self.non_differentiable + tensors


def once_differentiable(backward):
    """Decorator for ``Function.backward``: it runs with recording off, so its result has
    no graph and a second differentiation through it finds nothing to follow (as
    ``torch.autograd.function.once_differentiable``)."""

    @functools.wraps(backward)
    def wrapper(ctx, *grad_outputs):
        with no_grad():
            grad_outputs = [
                g.detach() if isinstance(g, _tensor.Tensor) else g for g in grad_outputs
            ]
            return backward(ctx, *grad_outputs)

    return wrapper


class _Outputs:
    """How several outputs of a ``Function`` are packed into one array for the engine.

    The differentiable outputs are flattened and concatenated (in their common dtype) into
    the output of the Function's node; each returned tensor is a piece of it (``_Piece``),
    so the engine sums the gradients of all the pieces into one flat gradient, which the
    Function's backward receives split again (zeros for pieces that got none).
    """

    def __init__(self, outs, differentiable):
        self.shapes = [o._array.shape for o in outs]
        self.dtypes = [o._array.dtype for o in outs]
        self.differentiable = differentiable
        self.dtype = np.result_type(*[d for d, k in zip(self.dtypes, differentiable) if k])
        self.slices, start = [], 0
        for o, k in zip(outs, differentiable):
            n = o._array.size if k else 0
            self.slices.append(slice(start, start + n))
            start += n

    def pack(self, outs):
        kept = [o for o, k in zip(outs, self.differentiable) if k]
        return np.concatenate([o._array.reshape(-1).astype(self.dtype) for o in kept])

    def split(self, g, create_graph):
        """Per-output gradients from the flat gradient ``g`` (zeros where not differentiable)."""
        Tensor = _tensor.Tensor
        grads = []
        for shape, dtype, sl, k in zip(self.shapes, self.dtypes, self.slices, self.differentiable):
            if not k:
                zero = np.zeros(shape, dtype=dtype)
                grads.append(Tensor._make(zero))
                continue
            piece = g[sl].reshape(shape)
            if create_graph:
                grads.append(piece.to(dtype))
            else:
                grads.append(Tensor._make(piece.astype(dtype, copy=False)))
        return grads


class _Piece(ops.Primitive):
    """Output ``k`` of a several-output Function: a slice of its packed array, reshaped."""

    def __init__(self, name, layout, k):
        sl, shape, dtype = layout.slices[k], layout.shapes[k], layout.dtypes[k]

        def forward(packed):
            return packed[sl].reshape(shape).astype(dtype, copy=False)

        def rule(xp, g, out, packed):
            flat = xp.reshape(xp.astype(g, packed.dtype), (-1,))
            return xp.scatter(flat, packed.shape, (sl,))

        def tangent(xp, t, out, packed):  # arrays and Tensors both slice with t[sl]
            return xp.astype(xp.reshape(t[sl], shape), dtype)

        super().__init__(name, forward, rule)
        ops.defjvp(self, tangent)


class _FunctionOp:
    """Adapts a ``Function`` subclass to the primitive interface the engine calls."""

    __slots__ = ("function", "name", "layout")
    saves = None  # saved tensors are checked by ctx.saved_tensors
    view = False
    variadic = False

    def __init__(self, function, layout=None):
        self.function = function
        self.name = function.__name__
        self.layout = layout  # an _Outputs for several outputs, else None

    def run(self, ctx, args):
        """The user's forward on ``args`` with recording off, as one array (packed when
        there are several outputs)."""
        with no_grad():
            out = self.function.forward(ctx, *args)
        return out._array if self.layout is None else self.layout.pack(out)

    def forward(self, *arrays_and_ctx):
        """Re-run the user's forward on arrays (used by gradient checking)."""
        Tensor = _tensor.Tensor
        args = [Tensor._make(a) if isinstance(a, np.ndarray) else a for a in arrays_and_ctx[:-1]]
        return self.run(FunctionCtx((False,) * len(args)), args)

    def jvp(self, i, xp, t, out, inputs, params):
        """Input ``i``'s contribution ``J_i t`` to the output tangent, from the user's
        ``jvp(ctx, *tangents)`` called with ``t`` at position ``i``, zeros at the other Tensor
        arguments and None at the rest.  The tangent sweep sums these contributions over the
        inputs; ``jvp`` is linear, so the sum equals one call with every tangent (a Function
        with k differentiated inputs costs k calls of its jvp)."""
        Tensor = _tensor.Tensor
        if self.function.jvp is Function.jvp:
            raise NotImplementedError(
                f"{self.name}: You must implement the jvp function for custom "
                "autograd.Function to use it with forward mode AD."
            )
        recorded = xp is not ops.NUMPY
        (ctx,) = params
        tangents = []
        for k, a in enumerate(inputs):
            if k == i:
                tangents.append(t if recorded else Tensor._make(t))
            elif isinstance(a, (Tensor, np.ndarray)):
                shape, dtype = a.shape, a.dtype
                tangents.append(Tensor._make(np.zeros(shape, dtype=dtype)))
            else:
                tangents.append(None)
        if recorded:
            result = self.function.jvp(ctx, *tangents)
        else:
            with no_grad():
                result = self.function.jvp(ctx, *tangents)
        several = self.layout is not None
        results = result if isinstance(result, tuple) else (result,)
        count = len(self.layout.shapes) if several else 1
        if len(results) != count:
            raise RuntimeError(
                f"function {self.name}.jvp returned an incorrect number of tangents "
                f"(expected {count}, got {len(results)})"
            )
        shapes = self.layout.shapes if several else [out.shape]
        kept = self.layout.differentiable if several else [True]
        pieces = []
        for r, shape, keep in zip(results, shapes, kept):
            if not keep:
                continue
            if r is None:
                r = Tensor._make(np.zeros(shape, dtype=out.dtype))
            elif not isinstance(r, Tensor):
                r = Tensor._make(np.asarray(r))
            if tuple(r.shape) != tuple(shape):
                raise RuntimeError(
                    f"function {self.name}.jvp returned a tangent of shape {tuple(r.shape)} "
                    f"for an output of shape {tuple(shape)}"
                )
            pieces.append(r)
        if not several:
            return pieces[0] if recorded else pieces[0]._array
        if recorded:
            return _tensor.cat([p.reshape(-1).to(out.dtype) for p in pieces])
        return np.concatenate([p._array.reshape(-1).astype(out.dtype) for p in pieces])

    def vjp(self, xp, g, out, inputs, params, needs):
        Tensor = _tensor.Tensor
        create_graph = xp is not ops.NUMPY
        (ctx,) = params
        if self.layout is None:
            grad_outputs = [g if create_graph else Tensor._make(g)]
        else:
            grad_outputs = self.layout.split(g, create_graph)
        grads = self.function.backward(ctx, *grad_outputs)
        if not isinstance(grads, tuple):
            grads = (grads,)
        if len(grads) != len(inputs):
            raise RuntimeError(
                f"function {self.name}.backward returned an incorrect number of gradients "
                f"(expected {len(inputs)}, got {len(grads)})"
            )
        result = []
        for need, gr in zip(needs, grads):
            if not need or gr is None:
                result.append(None)
            elif create_graph:
                result.append(gr if isinstance(gr, Tensor) else Tensor._make(np.asarray(gr)))
            else:
                result.append(gr._array if isinstance(gr, Tensor) else np.asarray(gr))
        return result


class Function:
    """Base class for user-written differentiable operations (``torch.autograd.Function``).

    Subclass it with two static methods::

        class Cube(Function):
            @staticmethod
            def forward(ctx, x):            # Tensors in, Tensor out; nothing is recorded
                ctx.save_for_backward(x)
                return x ** 3

            @staticmethod
            def backward(ctx, grad_out):    # one gradient per forward argument (or None)
                (x,) = ctx.saved_tensors
                return grad_out * 3 * x ** 2

    and call ``Cube.apply(x)``.  ``ctx.needs_input_grad`` tells which arguments need a
    gradient.  Written with Tensor operations, ``backward`` supports ``create_graph=True``.

    ``forward`` may return a tuple of Tensors; ``backward`` then takes one gradient per
    output (zeros for an output that received none, and for those passed to
    ``ctx.mark_non_differentiable``, which are returned without a graph).

    For forward mode (``tg.func.jvp``, ``jacfwd``) define ``jvp(ctx, *tangents)`` too: one
    tangent per forward argument in (zeros for a Tensor argument not being differentiated,
    None for a non-Tensor), ``J t`` out, one per output (``torch.autograd.Function.jvp``).
    """

    @staticmethod
    def forward(ctx, *args):
        raise NotImplementedError("Function subclasses must implement forward(ctx, ...)")

    @staticmethod
    def backward(ctx, *grad_outputs):
        raise NotImplementedError("Function subclasses must implement backward(ctx, grad)")

    @staticmethod
    def jvp(ctx, *tangents):
        """Forward mode (``torch.autograd.Function.jvp``): one tangent per forward argument
        in, ``J t`` out (one tangent per output; None counts as zero)."""
        raise NotImplementedError(
            "You must implement the jvp function for custom autograd.Function to use it "
            "with forward mode AD."
        )

    @classmethod
    def apply(cls, *args):
        Tensor = _tensor.Tensor
        needs = tuple(isinstance(a, Tensor) and a.requires_grad for a in args)
        ctx = FunctionCtx(needs)
        with no_grad():
            out = cls.forward(ctx, *args)
        several = isinstance(out, tuple)
        outs = out if several else (out,)
        for k, o in enumerate(outs):
            if not isinstance(o, Tensor):
                raise TypeError(
                    f"{cls.__name__}.forward must return a Tensor or a tuple of Tensors, got "
                    f"{type(o).__name__}" + (f" at position {k}" if several else "")
                )
        marked = {id(t) for t in ctx.non_differentiable}
        differentiable = [
            id(o) not in marked and np.issubdtype(o._array.dtype, np.floating) for o in outs
        ]
        if not (_state.grad_enabled and any(needs) and any(differentiable)):
            plain = tuple(Tensor._make(o._array) for o in outs)
            return plain if several else plain[0]
        site = creation_site() if _state.anomaly else None
        if _state.anomaly:
            for o in outs:
                check_finite(cls.__name__, o._array, "output", site)
        if not several:
            return Tensor._make(out._array, Node(_FunctionOp(cls), args, (ctx,), site))
        layout = _Outputs(outs, differentiable)
        packed = Tensor._make(layout.pack(outs), Node(_FunctionOp(cls, layout), args, (ctx,), site))
        results = []
        for k, (o, keep) in enumerate(zip(outs, differentiable)):
            if keep:
                piece = _Piece(cls.__name__, layout, k)
                results.append(_tensor.apply(piece, packed))
            else:
                results.append(Tensor._make(o._array))
        return tuple(results)


# The core pair refer to each other; importing last lets either module load first.
from . import tensor as _tensor  # noqa: E402
