"""``tg.compile``: record one call of a training step, then replay it as flat numpy calls.

The recording model
-------------------
A call of the compiled function runs it eagerly while a *tape* watches the engine.  The
tape sees four kinds of event, each turned into a few lines of one generated Python
function, the replay, whose local variables ``s0, s1, ...`` are numbered *slots* (the
arrays that one call computes) and whose other names stand for the objects the recording
saw (rules, leaves, constants); ``tape.source`` holds its text, and a traceback through a
replay shows its lines:

* a primitive's forward (``tensor.apply``): ``s5 = forward(s2, w._array, *params)``;
* one node of a backward pass (``autograd.run_backward``): each needed VJP rule called
  directly (``s9 = rule(xp, s8, s5, s2, w._array)``), then the cast and un-broadcast of
  its result where the recording needed them, the sum into the gradient already arriving
  at that input, and the store into a leaf's ``.grad`` (by the engine's own
  ``_store_grad``);
* a recorded *effect*: a library function that works on Python objects rather than on the
  graph (``Optimizer.step``, ``zero_grad``, gradient clipping, BatchNorm's running
  statistics, dropout's mask, ``LRScheduler.step``).  It is replayed by calling it again
  with the same objects, so ``.grad``, parameters and optimizer state are the very objects
  eager mode uses, updated by the same code; an effect may offer a cheaper replay with the
  same result bit for bit (the optimizers' ``step`` and ``zero_grad`` replay as their
  per-parameter updates alone, with the scratch arrays looked up once and the
  hyper-parameters read afresh; a changed set of parameter groups calls the method);
* the root gradient of a backward pass (a fresh copy of the recorded one, ones for a
  scalar loss).

Every array an event reads is named by where it came from: a slot (an input of the call or
something computed in it), a *leaf* that existed before the call (a parameter or buffer,
read through the Tensor object at replay time), or a *constant* (an array made outside the
engine, e.g. a mask computed with numpy).  A constant is only trusted once a second call
with the same key has recorded the same operations and a bit-identical constant; from the
third call on the tape replays.  A constant that changed (a numpy computation on tensor
data, a random draw the tape cannot see) or a different sequence of operations
(data-dependent Python control flow) raises ``RuntimeError`` naming the op.

The key of a recording is the structure of the arguments (shapes, dtypes, requires_grad of
Tensors and whether they have tensor hooks; other arguments by value), grad mode and the
default dtype; each replay also checks its *guards*: every leaf's shape, dtype and
requires_grad, and that no leaf backward reaches has gained a tensor hook; for each module
called, its training flag, the identity of its parameters, buffers, children and hooks
(one replaced, or a hook registered after the recording, records again), and its other
attributes as its first forward of the call found them (dropout's ``p``, an ``eps``, a
user's ``self.scale``: numbers, strings, None and tuples/lists of them by value, other
objects by identity); the same, as the call left them, for the modules below a called one
and those the function closes over, is bound to or names as globals (and below them),
which it may read without calling (a tied weight); the values the function closes over, as
the call started from them (compared the same way); and any module hook's own guard.  The
modules' guards are tested first in passes of flat checks, value by value only when a pass
sees a difference; the pass of identities only runs when some module has been written
since it last held (a global count of the writes a replay relies on: attributes set or
deleted, ``train``/``eval``, the entries of the parameter, buffer, child and hook dicts; a
write straight into a module's ``__dict__`` is not seen).  A changed key or guard records
again (``debug=True`` warns which part changed), so a value the recording baked into a
step is never replayed stale.  An optimizer's hyper-parameters need no guard: the replayed
step reads each ``param_group`` afresh.  What cannot be replayed faithfully raises a clear
``RuntimeError`` while recording: reading a value into Python (``item``, ``tolist``,
``numpy``, ``bool``, ``float``), in-place writes on a Tensor, assigning ``.grad`` of a
leaf that backward then fills (seen on the second call, which compares the leaves'
``.grad`` with the recorded effects' resets), tensor hooks, ``retain_grad``,
``create_graph``/``tg.grad``, module hooks without a guard, random ops without an explicit
``generator``.  Anomaly mode runs eagerly.  Checks of the input's values that eager mode
makes are effects (binary cross-entropy's [0, 1] input) or made by the forward the replay
calls (cross-entropy's target range), so a replay raises as eager mode would; so are the
branch masks of the library's piecewise functions (``leaky_relu``, ``elu``, ``softplus``,
``huber_loss``, ``smooth_l1_loss``, binary cross-entropy's clamped log).  A comparison in
the function itself (``tg.where(t > 0, ...)``) gives a constant: it raises when it changes
between the two recording calls, but one equal on both is trusted from then on.

Python side effects of the function other than tensor operations and the recorded effects
(appending to a list, an attribute write on an object that is not a module it calls)
happen only while recording; which object a global name the function reads stands for is
not guarded (pass it as an argument, which is part of the key), only a module's contents.
A closed-over variable that the function rebinds, or a module attribute it writes after
that module's forward, to a new value on every call fails the guard on each next call, so
such a function runs eagerly every time (``debug=True`` says why).  Tensors returned by a
replay hold the replayed values and no ``grad_fn``; each replay computes new arrays (no
buffer is reused between calls), so what an earlier call returned never changes.
"""

from __future__ import annotations

import builtins
import functools
import itertools
import linecache
import threading
import warnings
import weakref
from collections import OrderedDict

import numpy as np

from . import ops
from .autograd import _state, _store_grad
from .tensor import Tensor, get_default_dtype

__all__ = ["compile", "effect", "refuse", "check_generator"]

_SLOT, _LEAF, _CONST, _INPUT = 0, 1, 2, 3


def refuse(construct):
    """Raise if a compiled function is being recorded: ``construct`` cannot be replayed."""
    if _state.tape is not None:
        raise RuntimeError(
            f"tg.compile: {construct} inside a compiled function cannot be replayed "
            "faithfully; move it outside the compiled function (return the tensor and read "
            "it after the call) or do not compile this function"
        )


def check_generator(generator, what):
    """Random draws inside a compiled function need an explicit ``generator=``."""
    if generator is None and _state.tape is not None:
        raise RuntimeError(
            f"tg.compile: {what} without an explicit generator= inside a compiled function "
            "cannot be replayed faithfully (tg.manual_seed may replace the default "
            "generator); pass generator=np.random.default_rng(seed)"
        )


def effect(fn=None, *, flat=None):
    """Mark ``fn`` as a recorded effect: a compiled function's replay calls it again.

    For library functions that update Python-side state with numpy (optimizer steps,
    ``zero_grad``, clipping, running statistics); outside recording it costs one check.
    ``flat(*args, **kwargs)``, asked once the recorded call has run, may return a cheaper
    replay of it: a function of no arguments with the same effects bit for bit (and a
    result of None), or None to replay by calling ``fn`` again.
    """
    if fn is None:
        return lambda f: effect(f, flat=flat)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        tape = _state.tape
        if tape is None:
            return fn(*args, **kwargs)
        return tape.effect(fn, args, kwargs, flat)

    return wrapper


def _same_array(a, b):
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


class _Tape:
    """One recording: the replay steps, the slots, the guards and the constants."""

    def __init__(self, inputs):
        self.thread = threading.get_ident()
        self.steps, self.reads, self.writes, self.signature, self.constants = [], [], [], [], []
        self.slot_of, self.keep = {}, []
        self.nslots = 0
        self.created = set()
        self.leaves, self.modules, self.hook_guards = {}, {}, []
        self.input_ids = {id(t): i for i, t in enumerate(inputs)}
        for t in inputs:
            self.new_slot(t._array)
        self.output = None
        self.spoiled = None  # why this recording must not be replayed (the call was eager)
        self.stored_leaves, self.grads_before, self.reset_by_effect = [], {}, set()

    def add(self, emit, reads, writes=()):
        """One event: ``emit(source)`` gives its lines of the replay function (asked once
        the call is over), ``reads`` and ``writes`` the slots it reads and assigns."""
        self.steps.append(emit)
        self.reads.append(reads)
        self.writes.append(writes)

    def refuse(self, construct):
        refuse(construct)

    # -- naming arrays ------------------------------------------------------------------
    def new_slot(self, array):
        slot = self.nslots
        self.nslots += 1
        self.slot_of[id(array)] = slot
        self.keep.append(array)
        return slot

    def constant(self, array, what):
        self.keep.append(array)
        self.constants.append((what, np.array(array, copy=True)))
        self.signature.append(("const", array.shape, array.dtype.str))
        return (_CONST, array)

    def ref_array(self, a, what):
        slot = self.slot_of.get(id(a))
        if slot is not None:
            return (_SLOT, slot)
        return self.constant(a, what)

    def ref_tensor(self, t, what):
        slot = self.slot_of.get(id(t._array))
        if slot is not None:
            return (_SLOT, slot)
        if id(t) in self.created:
            return self.constant(t._array, what)
        if t._node is not None:
            raise RuntimeError(
                f"tg.compile: {what} is a tensor whose graph was built outside the compiled "
                "function; pass its inputs instead, or detach() it"
            )
        self.leaves[id(t)] = (t, t.requires_grad, t._array.shape, t._array.dtype)
        self.signature.append(("leaf", id(t)))
        return (_LEAF, t)

    def ref(self, value, what):
        """A reference for any argument: Tensors, arrays, containers of them, constants."""
        if isinstance(value, Tensor):
            return self.ref_tensor(value, what)
        if type(value) is np.ndarray:
            return self.ref_array(value, what)
        if isinstance(value, (tuple, list)) and any(
            isinstance(v, (Tensor, np.ndarray, tuple, list)) for v in value
        ):
            return (type(value), [self.ref(v, what) for v in value])
        self.signature.append(("value", _describe(value)))
        return (_CONST, value)

    # -- events -------------------------------------------------------------------------
    def forward(self, op, args, arrays, params, out):
        """``out = op.forward(*arrays, *params)`` happened (from ``tensor.apply``)."""
        what = f"an argument of op '{op.name}'"
        specs = [
            self.ref(a, what) if isinstance(a, Tensor) else self.ref(x, what)
            for a, x in zip(args, arrays)
        ]
        pspec = self.ref(tuple(params), what) if params else (_CONST, ())
        self.signature.append(("op", op.name))
        dst = self.new_slot(out)
        forward = op.forward

        def emit(src):
            args = src.args(specs, pspec)
            return [
                f"s{dst} = {src.name(forward)}({args})",
                f"if type(s{dst}) is not ndarray: s{dst} = asarray(s{dst})",
            ]

        self.add(emit, _slots((list, specs)) + _slots(pspec), [dst])

    def check_backward(self, create_graph, inputs, recorder):
        if create_graph:
            refuse("backward with create_graph=True")
        if inputs is not None:
            refuse("tg.grad()")
        if recorder is not None:
            refuse("record_gradients")

    def root(self, g):
        """The starting gradient of a backward pass: replayed as a fresh copy."""
        spec = self.ref_array(g, "a gradient passed to backward()")
        dst = self.new_slot(g)
        self.add(lambda src: [f"s{dst} = _copy({src.expr(spec)})"], _slots(spec), [dst])

    def begin_backward(self):
        """Each backward pass has its own set of ``.grad`` buffers it owns (``_store_grad``)."""
        dst = self.nslots
        self.nslots += 1
        self.stored_slot = dst
        self.add(lambda src: [f"s{dst} = set()"], [], [dst])

    def check_tensor(self, t):
        if t._hooks:
            refuse("a tensor hook (register_hook) reached by backward")
        if t._retains_grad:
            refuse("retain_grad()")

    def backward_node(self, node, g, out, needs, grads):
        """One node's VJP call (``grads``: what its rules returned); ``input_grad`` then
        adds one post per input gradient: its rule, bound once here, called directly on
        replay (not through ``Primitive.vjp``), and the cast, un-broadcast and sum into
        the gradient already arriving at that input, each only where the recording
        needed it."""
        what = f"an input of op '{node.op.name}' in backward"
        specs = [
            self.ref(a, what) if isinstance(a, Tensor) else self.ref(x, what)
            for a, x in zip(node.inputs, node.arrays)
        ]
        pspec = self.ref(tuple(node.params), what) if node.params else (_CONST, ())
        gs, os_ = self.slot_of[id(g)], self.slot_of[id(out)]
        self.signature.append(("vjp", node.op.name, tuple(needs)))
        posts, reads = [], [gs, os_, *_slots((list, specs)), *_slots(pspec)]

        def emit(src):
            args = src.args([(_SLOT, gs), (_SLOT, os_), *specs], pspec)
            lines = []
            for rule, cast, dtype, shape, prev, dst in posts:
                ga = f"{src.name(rule)}(xp, {args})"
                if cast:
                    like = f"{src.name(dtype)}, {src.name(shape)}, {src.name(node)}"
                    ga = f"_as_input_grad({ga}, {like})"
                lines.append(f"s{dst} = {ga}" if prev is None else f"s{dst} = s{prev} + {ga}")
            return lines

        writes = []
        self.add(emit, reads, writes)
        return node, grads, len(specs), posts, reads, writes

    def input_grad(self, handle, i, data, prev, new):
        node, grads, n, posts, reads, writes = handle
        prev_slot = None if prev is None else self.slot_of[id(prev)]
        if prev_slot is not None:
            reads.append(prev_slot)
        op, raw = node.op, grads[i]
        rule = _variadic_rule(op.vjps[0], i, n) if op.variadic else op.vjps[i]
        # the rule's result has the input's type, dtype and shape: no cast on replay (they
        # follow from the shapes and dtypes the key and guards fix, not from values)
        cast = not (type(raw) is np.ndarray and raw.dtype == data.dtype and raw.shape == data.shape)
        dst = self.new_slot(new)
        posts.append((rule, cast, data.dtype, data.shape, prev_slot, dst))
        writes.append(dst)

    def store(self, t, g):
        """``_store_grad(t, g)`` happened; later reads of ``t.grad`` name its new array."""
        if id(t) in self.input_ids:
            ref = (_INPUT, self.input_ids[id(t)])
        elif id(t) in self.created:
            refuse("backward into a tensor created inside the compiled function")
        else:
            ref = self.ref_tensor(t, "a leaf reached by backward")
            self.stored_leaves.append(t)
            self._check_grad_kept(t)
        gs, stored = self.slot_of[id(g)], self.stored_slot
        dst = self.new_slot(t.grad._array)

        def emit(src):
            leaf = f"inputs[{ref[1]}]" if ref[0] == _INPUT else src.name(ref[1])
            lines = [f"_store_grad({leaf}, s{gs}, False, s{stored})"]
            if dst in src.read:  # a later event reads this .grad
                lines.append(f"s{dst} = {leaf}.grad._array")
            return lines

        self.add(emit, [gs, stored])  # dst is assigned only where it is read

    def watch_grads(self, leaves):
        """Note the ``.grad`` of the leaves an earlier recording stored into, to tell a
        reset by a recorded effect (zero_grad) from an assignment the tape cannot see."""
        self.grads_before = {id(t): (t, t.grad) for t in leaves}

    def _note_resets(self):
        for key, (t, before) in self.grads_before.items():
            if t.grad is not before:
                self.reset_by_effect.add(key)

    def _check_grad_kept(self, t):
        t_before = self.grads_before.get(id(t))
        if t_before is None or t_before[1] is None or t.grad is t_before[1]:
            return
        if id(t) not in self.reset_by_effect:
            refuse("assigning .grad (p.grad = None; zero_grad() is recorded, this is not)")

    def effect(self, fn, args, kwargs, flat=None):
        args = [list(a) if _is_iterator(a) else a for a in args]
        kwargs = {k: list(v) if _is_iterator(v) else v for k, v in kwargs.items()}
        what = f"an argument of {fn.__qualname__}"
        aspec = [self._effect_ref(a, what) for a in args]
        kspec = {k: self._effect_ref(v, what) for k, v in kwargs.items()}
        self.signature.append(("effect", fn.__qualname__))
        _state.tape = None
        try:
            result = fn(*args, **kwargs)
        finally:
            _state.tape = self if self.spoiled is None else None
        self._note_resets()
        replay = flat(*args, **kwargs) if flat is not None and result is None else None
        if replay is not None:
            self.add(lambda src: [f"{src.name(replay)}()"], [])
            return result
        rslot = None
        if isinstance(result, Tensor):
            rslot = self.new_slot(result._array)
        elif type(result) is np.ndarray:
            rslot = self.new_slot(result)

        def emit(src):
            args = [src.effect_expr(spec) for spec in aspec]
            if kspec:
                items = ", ".join(f"{k!r}: {src.effect_expr(v)}" for k, v in kspec.items())
                args.append(f"**{{{items}}}")
            call = f"{src.name(fn)}({', '.join(args)})"
            if rslot is None:
                return [call]
            return [f"s{rslot} = {call}", f"s{rslot} = _unwrap(s{rslot})"]

        reads = _effect_slots(aspec) + _effect_slots(list(kspec.values()))
        self.add(emit, reads, [] if rslot is None else [rslot])
        return result

    def _effect_ref(self, value, what):
        """Effects receive objects: intermediate Tensors are rebuilt around their slot."""
        if isinstance(value, Tensor):
            kind, v = self.ref_tensor(value, what)
            return (
                ("tensor", v)
                if kind == _SLOT
                else ("object", value if kind == _LEAF else Tensor._make(v))
            )
        if type(value) is np.ndarray:
            kind, v = self.ref_array(value, what)
            return ("array", v) if kind == _SLOT else ("object", v)
        if isinstance(value, (list, tuple)):
            return ("seq", type(value), [self._effect_ref(v, what) for v in value])
        self.signature.append(("object", _describe(value)))
        return ("object", value)

    def module_call(self, module):
        self._guard(module)  # what its first forward of this call read
        d = module.__dict__
        for kind in _HOOKS:
            for hook in d.get(kind, {}).values():
                guard = getattr(hook, "compile_guard", None)
                if guard is None:
                    raise RuntimeError(
                        f"tg.compile: {type(module).__name__} has a module hook "
                        f"({getattr(hook, '__qualname__', hook)!r}) that would not run on "
                        "replay; remove it, give it a compile_guard (a function that is "
                        "True when the hook does nothing), or do not compile this function"
                    )
                if not guard():  # the rest of this call runs plainly, unrecorded
                    self.spoiled = "a module hook is active on this call"
                    _state.tape = None
                self.hook_guards.append(guard)

    def _guard(self, module):
        """Keep what a replay relies on in ``module`` as it is now, once per call: its
        training flag, what it holds (``_structure``) and its other attributes."""
        if id(module) not in self.modules:
            d = module.__dict__
            self.modules[id(module)] = (module, module.training, _structure(d), _attributes(d))

    def _guard_reachable(self, roots):
        """Guard, as the call left them, the modules below a called one and those of
        ``roots`` (``_modules_of`` the function) and below: a forward may read a child's
        parameter without calling the child (a tied weight), the function a closed-over
        module's, and either is a leaf read through the Tensor object the recording
        saw."""
        for top in [m for m, *_ in self.modules.values()] + list(roots):
            for m in top.modules():
                self._guard(m)

    # -- after the call -----------------------------------------------------------------
    def finish(self, result, roots):
        self.output = self._output_ref(result)
        self.source, self.run = self._generate()
        self.steps = self.reads = self.writes = None  # now lines of self.run
        self.keep = self.slot_of = None
        self.created = None
        self.guards = tuple(self.leaves.values())
        self.leaf_guards = _leaf_checks(self.guards, self.stored_leaves)
        self._guard_reachable(roots)
        self.module_guards = tuple(self.modules.values())
        self.identity_guards, self.value_guards = _module_checks(self.module_guards)
        self.checked = None  # the mutation count at which the identity guards last held

    def _generate(self):
        """The replay function: each event's lines in order, over local variables ``s<n>``
        (the slots).  A slot is deleted after its last read, so a replay holds no more
        arrays alive than the eager call, whose graph is freed as backward walks it
        (keeping them all measured 40% slower on a 20-layer MLP).  Replacing the
        closure per event by one function made compiled steps 1.35-1.45x faster on the
        tiny and scalar MLPs of tools/bench.py (CPU time, same machine, load 8)."""
        src = _Source()
        last = {}
        for k, reads in enumerate(self.reads):
            for slot in reads:
                last[slot] = k
        kept = set(_slots(self.output))
        src.read = set(last) | kept
        drops = [[] for _ in self.steps]
        for slot, k in last.items():
            if slot not in kept:
                drops[k].append(slot)
        for k, writes in enumerate(self.writes):  # assigned, then never read
            drops[k].extend(w for w in writes if w not in src.read)
        body = [f"s{i} = inputs[{i}]._array" for i in range(len(self.input_ids))]
        for emit, drop in zip(self.steps, drops):
            body += emit(src)
            if drop:
                body.append("del " + ", ".join(f"s{d}" for d in sorted(set(drop))))
        body.append(f"return {src.output_expr(self.output)}")
        return src.function(body)

    def _output_ref(self, value):
        if isinstance(value, Tensor):
            if id(value) in self.input_ids:
                return (_INPUT, self.input_ids[id(value)])
            return self.ref_tensor(value, "a returned tensor")
        if isinstance(value, (tuple, list)):
            return (type(value), [self._output_ref(v) for v in value])
        if isinstance(value, dict):
            return (dict, {k: self._output_ref(v) for k, v in value.items()})
        self.signature.append(("value", _describe(value)))
        return (_CONST, value)

    def mismatch(self, other):
        """Why ``other`` (a second recording under the same key) differs, or None."""
        if self.signature != other.signature:
            pairs = zip(self.signature, other.signature)
            k = next((i for i, (a, b) in enumerate(pairs) if a != b), len(self.signature))
            near = [s for s in self.signature[:k] if s[0] in ("op", "vjp", "effect")]
            where = f"after {near[-1][0]} '{near[-1][1]}'" if near else "at the start"
            return (
                "two calls with the same key recorded different operations "
                f"({where}): data-dependent Python control flow"
            )
        for (what, a), (_, b) in zip(self.constants, other.constants):
            if not _same_array(a, b):
                return (
                    f"{what} is an array computed outside the recorded operations (numpy "
                    "on tensor data, or a random draw) and it changed between calls"
                )
        return None

    def guards_hold(self):
        """Why a guard fails, or None.  The modules' guards are first tested in passes of
        flat checks (``_module_checks``), the one of identities only when a module has
        been written since it last held; only when a pass finds a difference are they
        checked one by one, by value where the recording compares values."""
        if not self.leaf_guards():
            why = self._leaf_changed()
            if why is not None:
                return why
        mutations = _module._mutations
        if (mutations != self.checked and not self.identity_guards()) or not self.value_guards():
            why = self._module_changed()
            if why is not None:
                return why
        self.checked = mutations
        if self.cells and _cells_changed(self.closure, self.cells):
            return "a variable the function closes over changed"
        for guard in self.hook_guards:
            if not guard():
                return "a module hook is active on this call"
        return None

    def _leaf_changed(self):
        for t, requires_grad, shape, dtype in self.guards:
            a = t._array
            if t.requires_grad is not requires_grad or a.shape != shape or a.dtype != dtype:
                return "a parameter or leaf tensor changed shape, dtype or requires_grad"
        for t in self.stored_leaves:
            if t._hooks:
                return "a tensor hook was registered on a leaf that backward reaches"
        return None

    def _module_changed(self):
        for m, training, structure, attributes in self.module_guards:
            if m.training is not training:
                return f"{type(m).__name__}.training changed"
            d = m.__dict__
            if _structure(d) != structure:
                return f"the parameters, buffers, children or hooks of a {type(m).__name__} changed"
            name = _attribute_changed(d, attributes)
            if name is not None:
                return f"an attribute of a {type(m).__name__} changed ({name})"
        return None


class _Source:
    """The replay function being generated: its lines and the objects its names stand
    for (``b<n>``: rules, forwards, leaves, constants; fixed names below for the rest)."""

    def __init__(self):
        self.names = {
            "xp": ops.NUMPY,
            "Tensor": Tensor,
            "ndarray": np.ndarray,
            "asarray": np.asarray,
            "_copy": _copy,
            "_unwrap": _unwrap,
            "_store_grad": _store_grad,
            "_as_input_grad": _autograd._as_input_grad,
        }
        self.ids = {}
        self.read = set()

    def name(self, obj):
        """The global name that stands for ``obj`` (one per object; ``names`` keeps it
        alive, so its id is not reused while the source is written)."""
        n = self.ids.get(id(obj))
        if n is None:
            n = self.ids[id(obj)] = f"b{len(self.ids)}"
            self.names[n] = obj
        return n

    def expr(self, spec):
        """An expression for the array a reference names (``ref``)."""
        kind, v = spec
        if kind == _SLOT:
            return f"s{v}"
        if kind == _LEAF:
            return f"{self.name(v)}._array"
        if kind == _CONST:
            return self.name(v)
        if kind == _INPUT:
            return f"inputs[{v}]._array"
        return self._container(kind, [self.expr(s) for s in v])

    def args(self, specs, pspec):
        """The argument list of a call on ``specs`` then the parameters ``pspec``."""
        parts = [self.expr(s) for s in specs]
        if pspec[0] is tuple:  # parameters that name slots or leaves: one by one
            parts += [self.expr(s) for s in pspec[1]]
        elif pspec != (_CONST, ()):
            parts.append(f"*{self.expr(pspec)}")
        return ", ".join(parts)

    def effect_expr(self, spec):
        kind = spec[0]
        if kind == "tensor":
            return f"Tensor._make(s{spec[1]})"
        if kind == "array":
            return f"s{spec[1]}"
        if kind == "seq":
            return self._container(spec[1], [self.effect_expr(s) for s in spec[2]])
        return self.name(spec[1])

    def output_expr(self, spec):
        kind, v = spec
        if kind == _SLOT:
            return f"Tensor._make(s{v})"
        if kind == _LEAF:
            return self.name(v)
        if kind == _INPUT:
            return f"inputs[{v}]"
        if kind == _CONST:
            return f"Tensor._make(_copy({self.name(v)}))" if type(v) is np.ndarray else self.name(v)
        if kind is dict:
            items = ", ".join(f"{self.name(k)}: {self.output_expr(s)}" for k, s in v.items())
            return f"{{{items}}}"
        return self._container(kind, [self.output_expr(s) for s in v])

    def _container(self, kind, items):
        joined = ", ".join(items)
        if kind is list:
            return f"[{joined}]"
        packed = f"({joined},)" if items else "()"
        return packed if kind is tuple else f"{self.name(kind)}({packed})"

    def function(self, body):
        """(source, function) from the body's lines; the source is registered with
        ``linecache`` so that a traceback through a replay shows its lines, for as long
        as the function exists."""
        text = "def replay(inputs):\n" + "".join(f"    {line}\n" for line in body)
        filename = f"<tg.compile replay {next(_sources)}>"
        namespace = dict(self.names)
        exec(builtins.compile(text, filename, "exec"), namespace)  # `compile` is ours
        replay = namespace["replay"]
        linecache.cache[filename] = (len(text), None, text.splitlines(True), filename)
        weakref.finalize(replay, linecache.cache.pop, filename, None)
        return text, replay


_sources = itertools.count()


def _copy(a):
    return np.array(a, copy=True)


def _unwrap(r):
    return r._array if isinstance(r, Tensor) else r


_HOOKS = ("_forward_pre_hooks", "_forward_hooks", "_backward_hooks")  # a Module's hook dicts
_HELD = ("_parameters", "_buffers", "_modules", *_HOOKS)  # the dicts a replay relies on


def _structure(d):
    """The identity of what a module holds: its parameters, buffers, children and hooks
    (a leaf is read through the Tensor object the recording saw, so a buffer replaced by
    another Tensor must record again, as a replaced parameter does)."""
    return tuple(tuple(map(id, d.get(field, {}).values())) for field in _HELD)


# The fields every Module has, guarded by _structure and the training flag; everything
# else in a module's __dict__ is an attribute its forward may read as a Python value.
_MODULE_FIELDS = frozenset(
    (
        "training",
        "_parameters",
        "_buffers",
        "_non_persistent_buffers_set",
        "_modules",
        "_forward_hooks",
        "_forward_pre_hooks",
        "_backward_hooks",
    )
)


def _module_checks(module_guards):
    """The module guards as two generated functions of flat checks, each True when all
    its checks hold.  The first, of identities: each module's dict holds the same object
    under each name it held (the training flag, the parameter, buffer, child and hook
    dicts, every attribute), those dicts hold the same objects, every one of these dicts
    has the same size, and a container's children come in the same order; a replay skips
    it while the mutation counter says no module has been written since it last held.
    The second compares the attributes that hold lists by value, as ``_same`` does (an
    edit in place is not a write the counter sees).  Measured on 50 tanh layers (103
    modules, 770 checks): a pass of C loops made the guard check 2.2-2.6x faster than
    checking module by module; generated ``d[k] is v`` lines are 2.5-3x faster again
    (the tiny MLP of tools/bench.py, 52 checks: 3.0 us -> 1.0 us)."""
    names, ids, identities, values = {"_same": _same, "_MISSING": _MISSING}, {}, [], []

    def name(obj):
        n = ids.get(id(obj))
        if n is None:
            n = ids[id(obj)] = f"g{len(ids)}"
            names[n] = obj
        return n

    def key(k):
        return repr(k) if type(k) is str else name(k)

    for m, training, _, (n, snaps) in module_guards:
        d = m.__dict__
        entries = [("training", training)] + [(k, then) for k, (then, _) in snaps]
        for field in _HELD:
            if field in d:
                sub = d[field]
                entries.append((field, sub))
                identities += [f"{name(sub)}[{key(k)}] is {name(v)}" for k, v in sub.items()]
                identities.append(f"len({name(sub)}) == {len(sub)}")
                if field == "_modules" and len(sub) > 1:
                    identities.append(f"tuple({name(sub)}) == {name(tuple(sub))}")
        identities += [f"{name(d)}[{key(k)}] is {name(v)}" for k, v in entries]
        identities.append(f"len({name(d)}) == {n}")
        values += [
            f"_same({name(d)}.get({key(k)}, _MISSING), {name(snap)})"
            for k, snap in snaps
            if snap[1] is not None
        ]
    text = "".join(
        f"def {fn}():\n try:\n  return {' and '.join(terms) or 'True'}\n"
        " except KeyError:\n  return False\n"
        for fn, terms in (("identities", identities), ("values", values))
    )
    exec(builtins.compile(text, "<tg.compile guards>", "exec"), names)
    return names["identities"], names["values"]


def _leaf_checks(guards, stored):
    """The leaf guards as one generated function, True when all hold: each leaf's
    requires_grad, shape and dtype (the very dtype object; an equal one fails here and
    passes ``_leaf_changed``), and no tensor hook on a leaf that backward stores into.
    Against a loop over them, the whole guard check of tools/bench.py's deep workload
    (100 leaves) went 35.0 -> 28.6 us, the tiny one's 4.5 -> 4.1 us."""
    names, lines = {}, []
    for i, (t, requires_grad, shape, dtype) in enumerate(guards):
        names[f"t{i}"], names[f"d{i}"] = t, dtype
        lines += [
            f"a = t{i}._array",
            f"if t{i}.requires_grad is not {requires_grad} or a.shape != {shape!r} "
            f"or a.dtype is not d{i}: return False",
        ]
    names.update((f"h{i}", t) for i, t in enumerate(stored))
    hooks = " or ".join(f"h{i}._hooks" for i in range(len(stored)))
    lines.append(f"return not ({hooks})" if stored else "return True")
    text = "def leaves():\n" + "".join(f" {line}\n" for line in lines)
    exec(builtins.compile(text, "<tg.compile leaf guards>", "exec"), names)
    return names["leaves"]


def _snap(value):
    """A value the recording read, to tell on replay whether it is still the same: by
    identity, and by value where identity cannot tell (a list edited in place, an equal
    number set again)."""
    return (value, _describe(value) if _holds_list(value) else None)


def _holds_list(value):
    return isinstance(value, list) or (
        isinstance(value, tuple) and any(_holds_list(v) for v in value)
    )


def _same(value, snap):
    then, described = snap
    if value is then:
        return described is None or _describe(value) == described
    return _describe(value) == (_describe(then) if described is None else described)


def _attributes(d):
    """A module's own attributes (dropout's ``p``, an ``eps``, a user's ``scale``): numbers,
    strings, None and tuples/lists of them by value, other objects by identity."""
    return len(d), tuple((k, _snap(v)) for k, v in d.items() if k not in _MODULE_FIELDS)


def _attribute_changed(d, attributes):
    """The name of an attribute that differs from ``attributes``, or None."""
    n, snaps = attributes
    for k, snap in snaps:
        if not _same(d.get(k, _MISSING), snap):
            return k
    if len(d) != n:
        return next(k for k in d if k not in _MODULE_FIELDS and all(k != j for j, _ in snaps))
    return None


_MISSING = object()


def _cells(closure):
    """The values a function closes over, snapped as module attributes are."""
    if not closure:
        return ()
    return tuple(_snap(_cell_value(cell)) for cell in closure)


def _cells_changed(closure, cells):
    return any(not _same(_cell_value(c), snap) for c, snap in zip(closure or (), cells))


def _cell_value(cell):
    try:
        return cell.cell_contents
    except ValueError:  # a cell not yet bound
        return _MISSING


def _describe(value):
    """A comparable description of a constant argument (identity for opaque objects)."""
    if value is None or isinstance(value, (bool, int, float, complex, str, bytes, np.generic)):
        return (type(value).__name__, value)
    if isinstance(value, np.dtype):
        return ("dtype", value.str)
    if isinstance(value, (tuple, list)):
        return (type(value).__name__, tuple(_describe(v) for v in value))
    if isinstance(value, (slice, range)):
        return (type(value).__name__, repr(value))
    if isinstance(value, ops._Saved):
        return ("saved",)
    return ("object", id(value))


def _is_iterator(value):
    return hasattr(value, "__next__") and not isinstance(value, (Tensor, np.ndarray))


def _variadic_rule(rule, i, n):
    """A variadic primitive's rule for input ``i`` of ``n``, called like any other rule."""
    return lambda xp, g, out, *args: rule(i, xp, g, out, list(args[:n]), *args[n:])


def _slots(spec):
    """The slots a reference reads."""
    kind, v = spec
    if kind == _SLOT:
        return [v]
    if kind is dict:
        return [s for sub in v.values() for s in _slots(sub)]
    if isinstance(kind, type):
        return [s for sub in v for s in _slots(sub)]
    return []


def _effect_slots(specs):
    out = []
    for spec in specs:
        if spec[0] in ("tensor", "array"):
            out.append(spec[1])
        elif spec[0] == "seq":
            out.extend(_effect_slots(spec[2]))
    return out


# ----------------------------------------------------------------------------------------
# Tensors created while recording are not leaves that outlive the call: the one place that
# initialises a tensor's fields notes them.

_recording = {}  # thread id -> tape, while that thread records
_plain_init_fields = Tensor._init_fields


def _noting_init_fields(self, data, node=None):
    _plain_init_fields(self, data, node)
    tape = _recording.get(threading.get_ident())
    if tape is not None:
        tape.created.add(id(self))
        tape.keep.append(self)


def _modules_of(fn, cells):
    """The modules ``fn`` closes over (the values its call started from), is bound to, or
    names as globals."""
    values = [then for then, _ in cells] + [getattr(fn, "__self__", None)]
    code, namespace = getattr(fn, "__code__", None), getattr(fn, "__globals__", {})
    if code is not None:
        values += [namespace.get(name) for name in code.co_names]
    return [v for v in values if isinstance(v, _module.Module)]


def _record(fn, args, kwargs, inputs, prior=None):
    tape = _Tape(inputs)
    tape.closure = getattr(fn, "__closure__", None)
    tape.cells = _cells(tape.closure)  # the values the call starts from
    if prior is not None:
        tape.watch_grads(prior.stored_leaves)
    _recording[tape.thread] = tape
    if len(_recording) == 1:
        Tensor._init_fields = _noting_init_fields
    _state.tape = tape
    try:
        result = fn(*args, **kwargs)
        if tape.spoiled is None:
            tape.finish(result, _modules_of(fn, tape.cells))
    finally:
        _state.tape = None
        del _recording[tape.thread]
        if not _recording:
            Tensor._init_fields = _plain_init_fields
    return tape, result


# ----------------------------------------------------------------------------------------
# The decorator


def _flatten(value, tensors, key):
    """Append the Tensors in ``value`` to ``tensors`` and its structure to ``key``."""
    if isinstance(value, Tensor):
        tensors.append(value)
        key.append(
            ("T", value._array.shape, value._array.dtype, value.requires_grad, _hooked(value))
        )
    elif isinstance(value, (tuple, list)):
        key.append((type(value).__name__, len(value)))
        for v in value:
            _flatten(v, tensors, key)
    elif isinstance(value, dict):
        key.append(("dict", tuple(value)))
        for v in value.values():
            _flatten(v, tensors, key)
    elif type(value) is np.ndarray:
        raise TypeError(
            "tg.compile: pass arrays to a compiled function as Tensors (tg.from_numpy or "
            "tg.tensor), so that they become inputs rather than constants"
        )
    else:
        try:
            hash(value)
        except TypeError:
            raise TypeError(
                f"tg.compile: argument of type {type(value).__name__} is neither a Tensor "
                "nor hashable; compiled functions are keyed on their non-tensor arguments"
            ) from None
        key.append(("V", type(value).__name__, value))


def _hooked(t):
    """Whether ``t`` has tensor hooks: part of the key, so that a hook registered on an
    input records again (and the recording refuses it) rather than being skipped."""
    return bool(t._hooks)


def _aliasing(tensors):
    """For each tensor argument, the position of its first occurrence."""
    seen = {}
    return tuple(seen.setdefault(id(t), i) for i, t in enumerate(tensors))


def _tensors_key(args):
    """The key ``_flatten`` gives positional arguments that are all plain Tensors (the
    usual ``step(x, y)``), built in one loop; None for any other arguments.  Measured on
    the tiny MLP of tools/bench.py: 2.1 us -> 0.9 us per call; then a pair of arguments
    told apart by one comparison rather than a set, ``_hooked`` inlined (as
    ``bool(t._hooks)``): 2.0 us -> 1.1-1.2 us (a slower machine)."""
    n = len(args)
    key = [("grad", _state.grad_enabled), ("dtype", get_default_dtype()), ("tuple", n)]
    for t in args:
        if type(t) is not Tensor:
            return None
        a = t._array
        key.append(("T", a.shape, a.dtype, t.requires_grad, bool(t._hooks)))
    key.append(("dict", ()))
    distinct = args[0] is not args[1] if n == 2 else len(set(map(id, args))) == n
    key.append(("alias", _in_order(n) if distinct else _aliasing(args)))
    return tuple(key)


@functools.cache
def _in_order(n):
    """The aliasing of ``n`` distinct arguments."""
    return tuple(range(n))


class _Compiled:
    """The callable ``tg.compile`` returns (see the module docstring)."""

    def __init__(self, fn, cache_size, debug):
        if not callable(fn):
            raise TypeError(f"tg.compile: expected a callable, got {type(fn).__name__}")
        if isinstance(cache_size, bool) or not isinstance(cache_size, int) or cache_size < 1:
            raise ValueError(f"tg.compile: cache_size must be a positive int, got {cache_size!r}")
        functools.update_wrapper(self, fn)
        self.fn, self.cache_size, self.debug = fn, cache_size, debug
        self.cache = OrderedDict()  # key -> [tape, verified]
        self.last_key = None
        self.records = self.replays = 0

    def __call__(self, *args, **kwargs):
        if _state.anomaly or _state.tape is not None:
            return self.fn(*args, **kwargs)
        key = _tensors_key(args) if not kwargs else None
        if key is None:
            tensors, key = [], [("grad", _state.grad_enabled), ("dtype", get_default_dtype())]
            _flatten(args, tensors, key)
            _flatten(kwargs, tensors, key)
            key.append(("alias", _aliasing(tensors)))
            key = tuple(key)
        else:
            tensors = args
        entry = self.cache.get(key)
        if entry is not None:
            if len(self.cache) > 1:  # the order of one key is no order
                self.cache.move_to_end(key)
            tape, verified = entry
            why = tape.guards_hold()
            if why is None and verified:
                self.last_key = key  # what a debug message compares the next key with
                self.replays += 1
                return tape.run(tensors)
            if why is not None:
                self._explain(why)
        else:
            self._explain_key(key)
        self.last_key = key
        self.records += 1
        prior = entry[0] if entry is not None and why is None else None
        new, result = _record(self.fn, args, kwargs, tensors, prior)
        if new.spoiled is not None:
            self._explain(f"this call ran eagerly: {new.spoiled}")
            return result
        if entry is not None and why is None:
            problem = entry[0].mismatch(new)
            if problem is not None:
                del self.cache[key]
                raise RuntimeError(f"tg.compile({self.__name__}): {problem}")
            entry[:] = [new, True]
        else:
            self.cache[key] = [new, False]
            while len(self.cache) > self.cache_size:
                self.cache.popitem(last=False)
        return result

    def _explain(self, why):
        if self.debug:
            warnings.warn(f"tg.compile({self.__name__}): recording again: {why}", stacklevel=3)

    def _explain_key(self, key):
        if not self.debug or self.last_key is None:
            return
        old = self.last_key
        if old == key:  # the last call ran eagerly (a spoiled recording is not kept)
            why = "the last call with this key ran eagerly and left no recording"
        elif len(old) != len(key):
            why = "the argument structure changed"
        else:
            k = next(i for i, (a, b) in enumerate(zip(old, key)) if a != b)
            names = {
                "grad": "grad mode",
                "dtype": "the default dtype",
                "alias": "argument aliasing",
            }
            why = names.get(key[k][0], f"argument entry {k - 2} changed: {old[k]} -> {key[k]}")
            if key[k][0] in names:
                why = f"{why} changed"
        self._explain(why)


def compile(fn=None, *, cache_size=8, debug=False):
    """Compile ``fn`` by recording one call and replaying it as flat numpy calls.

    ``torch.compile``'s name; use as ``@tg.compile`` or ``tg.compile(step, debug=True)``.
    The first two calls with a new key run eagerly and record (the second checks the
    first); later calls replay, bit-identical to eager.  ``cache_size`` bounds the number
    of keys kept (least recently used dropped); ``debug=True`` warns which part of the key
    or guards made a call record again.  The recording model, and what raises, is in the
    docstring of ``tinygrad_init.replay``.

        >>> @tg.compile
        ... def step(x, y):
        ...     opt.zero_grad()
        ...     loss = F.cross_entropy(model(x), y)
        ...     loss.backward()
        ...     opt.step()
        ...     return loss
    """
    if fn is None:
        return lambda f: _Compiled(f, cache_size, debug)
    return _Compiled(fn, cache_size, debug)


from . import autograd as _autograd  # noqa: E402
from .nn.modules import module as _module  # noqa: E402
