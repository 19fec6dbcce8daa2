"""Function transforms: vjp, jvp, jacrev, jacfwd, hessian, hvp, grad (``torch.func`` names).

Forward mode is a tangent sweep over the recorded graph.  ``f`` runs once with its
inputs recording; then the recorded nodes are visited inputs-first and each primitive's
tangent rule (``ops.defjvp``, beside its VJP rules) maps the input tangents to the output
tangent: ``t_out = sum_i J_i t_i``.  A jvp therefore costs one recorded forward plus one
sweep of tangent rules, the same shape of work as a vjp (one recorded forward plus one
backward sweep); no double-vjp is needed.

Nesting (``jacfwd(jacrev(f))``, ``jvp(grad(f))``) works because every transform, when its
primal already requires grad and grad mode is on, records what it computes (the backward
with ``create_graph=True``, the tangent rules with Tensor operations), so an outer transform
differentiates through it.  Each transform differentiates with respect to a fresh node
(a clone of the primal), so closures over an outer primal are constants to it, as in
``torch.func``.  Conv and pooling tangents are numpy-only: recorded (nested) use of them
raises NotImplementedError naming the op.  A custom ``Function`` takes part through its
``jvp(ctx, *tangents)``; one without it raises NotImplementedError naming it.

Jacobians take one recorded forward and then one backward (jacrev) or tangent sweep
(jacfwd) per basis vector, reusing that forward.  jacrev batches: when every op between
the inputs and an output is ``batched`` (its rules take a leading batch dimension, see
``ops.Primitive``), no tensor on the way has hooks and the result need not be
differentiable, the basis vectors go through one backward as one cotangent of shape
``(n,) + output.shape`` (``chunk_size`` of them at a time); otherwise it loops.
"""

from __future__ import annotations

import numpy as np

from . import ops
from .autograd import (
    _needed_for,
    _state,
    _topological_order,
    enable_grad,
    is_grad_enabled,
    run_backward,
)
from .autograd import (
    grad as _autograd_grad,
)
from .tensor import TENSOR_XP, Tensor, stack

__all__ = [
    "vjp",
    "jvp",
    "grad",
    "grad_and_value",
    "jacrev",
    "jacfwd",
    "hessian",
    "hvp",
    "functional_call",
    "per_sample_grad",
]


# ----------------------------------------------------------------------------------------
# Inputs and outputs


def _check_primals(primals, api, argname):
    if not isinstance(primals, tuple):
        raise RuntimeError(
            f"{api}: Expected {argname} to be a tuple of Tensors, got {type(primals)}"
        )
    if not primals:
        raise RuntimeError(f"{api}: Expected {argname} to be a non-empty tuple of Tensors.")
    for p in primals:
        if not isinstance(p, Tensor):
            raise RuntimeError(
                f"{api}: Expected {argname} to be a tuple of Tensors, got a tuple with an "
                f"element of type {type(p)}"
            )


def _connected(tensors):
    """True when the transform's results must themselves be differentiable."""
    return is_grad_enabled() and any(isinstance(t, Tensor) and t.requires_grad for t in tensors)


def _differentiable(p, api):
    """A fresh node standing for primal ``p``: a recorded clone when ``p`` is itself being
    differentiated (so outer transforms see through), else a new leaf."""
    if not np.issubdtype(p.dtype, np.floating):
        raise RuntimeError(
            f"{api}: only floating point Tensors can be differentiated, got dtype {p.dtype}"
        )
    if p.requires_grad and is_grad_enabled():
        return p.clone()
    leaf = Tensor._make(p._array)
    leaf.requires_grad = True
    return leaf


def _flat_outputs(out, api):
    """(tuple of output Tensors, was_single)."""
    if isinstance(out, Tensor):
        return (out,), True
    if isinstance(out, tuple) and out and all(isinstance(o, Tensor) for o in out):
        return out, False
    bad = (
        out
        if not isinstance(out, tuple) or not out
        else next(o for o in out if not isinstance(o, Tensor))
    )
    raise RuntimeError(
        f"{api}: expected f(*primals) to return only tensors, got unsupported type {type(bad)}"
    )


def _split_aux(out, has_aux, api):
    if not has_aux:
        return out, None
    if not (isinstance(out, tuple) and len(out) == 2):
        raise RuntimeError(
            f"{api}: output of function f should be a tuple: (output, aux) if has_aux is True"
        )
    return out


def _argnums(argnums, n, api):
    items = argnums if isinstance(argnums, tuple) else (argnums,)
    if not isinstance(argnums, (int, tuple)) or not items:
        raise RuntimeError(f"argnums must be int or Tuple[int, ...], got: {type(argnums)}")
    for a in items:
        if not isinstance(a, int) or not -n <= a < n:
            raise RuntimeError(f"{api}: Got argnum={a}, but only {n} positional inputs")
    wrapped = tuple(a % n for a in items)
    if len(set(wrapped)) != len(wrapped):
        raise RuntimeError(f"argnums elements must be unique, got {argnums}")
    return wrapped


def _trace(f, args, argnums, api, has_aux=False):
    """Run ``f`` recording, with fresh nodes at ``argnums``.  Returns (nodes, outputs,
    single output?, aux, connected?)."""
    for k in argnums:
        if not isinstance(args[k], Tensor):
            raise RuntimeError(f"{api}: Expected argument {k} to be a Tensor, got {type(args[k])}")
    grad_mode = is_grad_enabled()
    args = list(args)
    nodes = []
    with enable_grad():
        for k in argnums:
            args[k] = _differentiable(args[k], api)
            nodes.append(args[k])
        out, aux = _split_aux(f(*args), has_aux, api)
    outs, single = _flat_outputs(out, api)
    return nodes, outs, single, aux, grad_mode and _depends_on_others(outs, nodes)


def _depends_on_others(outs, nodes):
    """True when ``outs`` depend on a tensor that requires grad besides ``nodes`` (an outer
    primal, a closed-over tensor, a parameter): the results must then stay differentiable,
    as torch.func's do, so outer transforms and backward see through."""
    own = set(nodes)
    order = _topological_order([o for o in outs if o.requires_grad])
    return any(t._node is None and t not in own for t in order)


def _value(t, connected):
    return t if connected else t.detach()


# ----------------------------------------------------------------------------------------
# The tangent sweep


def _push_tangents(inputs, tangents, outputs, connected):
    """Output tangents of the recorded graph, given ``tangents`` of the ``inputs`` nodes.

    Visits the nodes that depend on the inputs, inputs first, summing each op's tangent
    rules; with ``connected`` the rules run on Tensors (recorded), else on arrays.
    """
    roots = [o for o in outputs if o.requires_grad]
    order = _topological_order(roots)
    cone = _needed_for(inputs, order)
    xp = TENSOR_XP if connected else ops.NUMPY
    tan = {}
    for x, t in zip(inputs, tangents):
        tan[x] = t if connected else t._array
    for t in order:
        if t in tan or t not in cone:
            continue
        node = t._node
        if connected:
            values, out = node.inputs, t
        else:
            values, out = node.arrays, t._array
        total = None
        for i, a in enumerate(node.inputs):
            ta = tan.get(a) if isinstance(a, Tensor) else None
            if ta is None:
                continue
            c = node.op.jvp(i, xp, ta, out, values, node.params)
            total = c if total is None else total + c
        if total is None:
            continue
        if connected:
            if total.shape != t.shape:
                total = total.expand(t.shape)
        else:
            total = np.asarray(total)
            if total.shape != t.shape:
                total = np.broadcast_to(total, t.shape)
            total = total.astype(t.dtype, copy=False)
        tan[t] = total
    result = []
    for o in outputs:
        r = tan.get(o)
        if r is None:
            r = Tensor._make(np.zeros(o.shape, dtype=o.dtype))
        elif not connected:
            r = Tensor._make(np.array(r))
        result.append(r)
    return result


# ----------------------------------------------------------------------------------------
# The transforms


def vjp(func, *primals, has_aux=False):
    """``(output, vjp_fn)`` with ``vjp_fn(cotangents) = J^T cotangents`` for every primal
    (``torch.func.vjp``).  ``vjp_fn`` may be called many times; it returns a tuple with
    one gradient per primal (zeros where the output does not depend on it)."""
    api = "vjp(f, *primals)"
    _check_primals(primals, api, "primals")
    nodes, outs, single, aux, connected = _trace(
        func, primals, tuple(range(len(primals))), api, has_aux
    )
    for o in outs:
        if not np.issubdtype(o.dtype, np.floating):
            raise RuntimeError(
                "vjp(f, ...): All outputs of f must be floating-point or complex Tensors, "
                f"got Tensor with dtype {o.dtype}"
            )

    def vjp_fn(cotangents):
        cts = (cotangents,) if single else cotangents
        if (
            not isinstance(cts, tuple)
            or len(cts) != len(outs)
            or not all(isinstance(c, Tensor) for c in cts)
        ):
            raise RuntimeError(
                "Expected pytree structure of cotangents to be the same as pytree structure "
                f"of outputs to the function. cotangents: {type(cotangents).__name__}, "
                f"primal output: {'Tensor' if single else f'tuple of {len(outs)} Tensors'}"
            )
        for c, o in zip(cts, outs):
            if c.shape != o.shape:
                raise RuntimeError(
                    f"Mismatch in shape: grad_output[0] has a shape of {tuple(c.shape)} and "
                    f"output[0] has a shape of {tuple(o.shape)}."
                )
        live = [(o, c) for o, c in zip(outs, cts) if o.requires_grad]
        grads = [None] * len(nodes)
        if live:
            with enable_grad():
                grads = _autograd_grad(
                    [o for o, _ in live],
                    nodes,
                    [c for _, c in live],
                    retain_graph=True,
                    create_graph=connected or any(c.requires_grad for _, c in live),
                    allow_unused=True,
                )
        return tuple(
            Tensor._make(np.zeros(n.shape, dtype=n.dtype)) if g is None else g
            for g, n in zip(grads, nodes)
        )

    value = outs[0] if single else outs
    value = _value(value, connected) if single else tuple(_value(o, connected) for o in outs)
    return (value, vjp_fn, aux) if has_aux else (value, vjp_fn)


def jvp(func, primals, tangents, *, strict=False, has_aux=False):
    """``(output, J tangents)``: the forward-mode derivative of ``func`` at ``primals`` in the
    direction ``tangents`` (``torch.func.jvp``; both tuples of Tensors of matching shapes)."""
    api = "jvp(f, primals, tangents)"
    _check_primals(primals, api, "primals")
    _check_primals(tangents, api, "tangents")
    if len(primals) != len(tangents):
        raise RuntimeError(
            f"{api}: Expected primals and tangents to have the same python structure. For "
            f"example, if primals is a tuple of 3 tensors, tangents also must be. Got "
            f"{len(primals)} primals and {len(tangents)} tangents"
        )
    for p, t in zip(primals, tangents):
        if p.shape != t.shape:
            raise RuntimeError(
                f"{api}: Expected primals and tangents to have same shape. Got primal shape "
                f"{tuple(p.shape)} and tangent shape {tuple(t.shape)}"
            )
    nodes, outs, single, aux, connected = _trace(
        func, primals, tuple(range(len(primals))), api, has_aux
    )
    connected = connected or _connected(tangents)
    if strict and not any(o.requires_grad for o in outs):
        raise RuntimeError(
            "jvp(f, primals, tangents, strict=True): The output of f is independent of the "
            "inputs. This is not allowed with strict=True."
        )
    tans = _push_tangents(nodes, tangents, outs, connected)
    values = tuple(_value(o, connected) for o in outs)
    result = (values[0], tans[0]) if single else (values, tuple(tans))
    return result + (aux,) if has_aux else result


def grad_and_value(func, argnums=0, has_aux=False):
    """``f -> (grad f(*args), f(*args))`` for a scalar ``f`` (``torch.func.grad_and_value``)."""
    api = "grad_and_value(f)(*args)"

    def wrapper(*args):
        ks = _argnums(argnums, len(args), api)
        nodes, outs, single, aux, connected = _trace(func, args, ks, api, has_aux)
        out = outs[0]
        if not single:
            raise RuntimeError(f"{api}: Expected f(*args) to return a Tensor, got {type(outs)}")
        if out.ndim != 0:
            raise RuntimeError(
                f"{api}: Expected f(*args) to return a scalar Tensor, got tensor with "
                f"{out.ndim} dims. Maybe you wanted to use the vjp or jacrev APIs instead?"
            )
        if out.requires_grad:
            with enable_grad():
                gs = _autograd_grad(out, nodes, create_graph=connected, allow_unused=True)
        else:
            gs = (None,) * len(nodes)
        gs = tuple(
            Tensor._make(np.zeros(n.shape, dtype=n.dtype)) if g is None else g
            for g, n in zip(gs, nodes)
        )
        g = gs[0] if isinstance(argnums, int) else gs
        value = _value(out, connected)
        return (g, (value, aux)) if has_aux else (g, value)

    return wrapper


def grad(func, argnums=0, has_aux=False):
    """``f -> grad f``: the gradient of a scalar function with respect to argument(s)
    ``argnums`` (``torch.func.grad``)."""
    gv = grad_and_value(func, argnums, has_aux)

    def wrapper(*args):
        g, value = gv(*args)
        return (g, value[1]) if has_aux else g

    return wrapper


def _basis(shape, dtype):
    """The standard basis of a space of ``shape``: n tensors, one 1 each."""
    n = int(np.prod(shape))
    eye = np.eye(n, dtype=dtype)
    return [Tensor._make(eye[i].reshape(shape)) for i in range(n)]


def _assemble(columns, lead, trail, connected):
    """Stack per-basis-vector results into a (lead + trail) Jacobian.

    ``columns[k]`` is the result for basis vector k of the ``trail`` space (jacfwd) or of
    the ``lead`` space (jacrev)."""
    if connected:
        return stack(columns).reshape(lead + trail)
    return Tensor._make(np.stack([c._array for c in columns]).reshape(lead + trail))


def _batchable(o, nodes):
    """Whether one backward can carry a batch of cotangents from ``o`` to ``nodes``."""
    if _state.tape is not None or _state.recorder is not None:
        return False
    order = _topological_order([o])
    for t in _needed_for(nodes, order):
        if t._hooks or (t._node is not None and not t._node.op.batched):
            return False
    return True


def _batched_jacobian(o, nodes, chunk_size):
    """d o / d nodes, by backwards that each carry ``chunk_size`` basis cotangents."""
    m = o.numel()
    step = m if chunk_size is None else chunk_size
    eye = np.eye(m, dtype=o.dtype)
    parts = [[] for _ in nodes]
    for start in range(0, m, step):
        basis = eye[start : start + step].reshape((-1,) + o.shape)
        gs = run_backward([o], [basis], True, False, inputs=nodes, batch=len(basis))
        for p, g, n in zip(parts, gs, nodes):
            p.append(np.zeros((len(basis),) + n.shape, n.dtype) if g is None else g)
    return tuple(
        Tensor._make(np.concatenate(p).reshape(o.shape + n.shape)) for p, n in zip(parts, nodes)
    )


def jacrev(func, argnums=0, *, has_aux=False, chunk_size=None):
    """``f -> J_f``: the Jacobian by reverse mode (``torch.func.jacrev``).

    Shape ``output.shape + input.shape``; for a tuple ``argnums`` a tuple over the inputs,
    for a tuple of outputs a tuple over the outputs (of tuples over the inputs).  One
    recorded forward, then batched backwards (at most ``chunk_size`` basis vectors each)
    where the ops allow, else one backward per output element."""
    return _jacrev(func, argnums, has_aux, chunk_size, batched=True)


def _jacrev(func, argnums, has_aux, chunk_size, batched):
    """jacrev; ``batched=False`` always loops (``vectorize=False`` of tg.autograd.functional)."""
    if chunk_size is not None and chunk_size <= 0:
        raise ValueError("jacrev: `chunk_size` should be greater than 0.")
    api = "jacrev(f)(*args)"

    def wrapper(*args):
        ks = _argnums(argnums, len(args), api)
        nodes, outs, single, aux, connected = _trace(func, args, ks, api, has_aux)
        per_output = []
        for o in outs:
            if batched and not connected and o.requires_grad and o.numel() and _batchable(o, nodes):
                jac = _batched_jacobian(o, nodes, chunk_size)
                per_output.append(jac[0] if isinstance(argnums, int) else jac)
                continue
            rows = [[] for _ in nodes]
            for e in _basis(o.shape, o.dtype):
                if o.requires_grad:
                    with enable_grad():
                        gs = _autograd_grad(
                            o, nodes, e, retain_graph=True, create_graph=connected,
                            allow_unused=True,
                        )  # fmt: skip
                else:
                    gs = (None,) * len(nodes)
                for r, g, n in zip(rows, gs, nodes):
                    r.append(Tensor._make(np.zeros(n.shape, dtype=n.dtype)) if g is None else g)
            jac = tuple(
                _assemble(r, o.shape, n.shape, connected) if r else _empty(o, n)
                for r, n in zip(rows, nodes)
            )
            per_output.append(jac[0] if isinstance(argnums, int) else jac)
        result = per_output[0] if single else tuple(per_output)
        return (result, aux) if has_aux else result

    return wrapper


def _empty(o, n):
    return Tensor._make(np.zeros(o.shape + n.shape, dtype=o.dtype))


def jacfwd(func, argnums=0, has_aux=False, *, randomness="error"):
    """``f -> J_f``: the Jacobian by forward mode (``torch.func.jacfwd``).

    Same shapes as ``jacrev``.  One recorded forward, then one tangent sweep per input
    element.  ``randomness`` ('error', 'different', 'same') is accepted for torch's
    signature; with no vmap here each sweep reuses the one forward, so it has no effect."""
    if randomness not in ("error", "different", "same"):
        raise RuntimeError(
            f"Only allowed values for randomness are 'error', 'different', or 'same'. "
            f"Got {randomness}"
        )
    api = "jacfwd(f)(*args)"

    def wrapper(*args):
        ks = _argnums(argnums, len(args), api)
        nodes, outs, single, aux, connected = _trace(func, args, ks, api, has_aux)
        per_input = []
        for j, n in enumerate(nodes):
            cols = [[] for _ in outs]
            for e in _basis(n.shape, n.dtype):
                tangents = [e if k == j else Tensor._make(np.zeros(m.shape, m.dtype))
                            for k, m in enumerate(nodes)]  # fmt: skip
                for c, t in zip(cols, _push_tangents(nodes, tangents, outs, connected)):
                    c.append(t)
            per_input.append([_forward_jacobian(c, o, n, connected) for c, o in zip(cols, outs)])
        per_output = []
        for i in range(len(outs)):
            jac = tuple(per_input[j][i] for j in range(len(nodes)))
            per_output.append(jac[0] if isinstance(argnums, int) else jac)
        result = per_output[0] if single else tuple(per_output)
        return (result, aux) if has_aux else result

    return wrapper


def _forward_jacobian(cols, o, n, connected):
    """Columns J e_k (one per input element) as an (o.shape + n.shape) Jacobian."""
    if not cols:
        return _empty(o, n)
    m = int(np.prod(o.shape))
    if connected:
        return stack(cols).reshape(len(cols), m).T.reshape(o.shape + n.shape)
    a = np.stack([c._array for c in cols]).reshape(len(cols), m)
    return Tensor._make(np.ascontiguousarray(a.T).reshape(o.shape + n.shape))


def hessian(func, argnums=0):
    """The Hessian of a scalar ``func``: ``jacfwd(jacrev(func, argnums), argnums)``
    (``torch.func.hessian``, forward over reverse)."""
    return jacfwd(jacrev(func, argnums), argnums)


def hvp(func, primals, tangents):
    """Hessian-vector product ``H(primals) @ tangents`` of a scalar ``func``, as the jvp of
    its gradient (forward over reverse; the ``hvp`` recipe of the ``torch.func`` docs).
    Returns a tuple with one product per primal."""
    _check_primals(primals, "hvp(f, primals, tangents)", "primals")
    argnums = tuple(range(len(primals)))
    return jvp(grad(func, argnums), primals, tangents)[1]


# ----------------------------------------------------------------------------------------
# Modules as functions


def functional_call(module, parameter_and_buffer_dicts, args=None, kwargs=None, *, strict=False):
    """Call ``module(*args, **kwargs)`` with its parameters and buffers replaced by the
    tensors in the dict(s) keyed by dotted name (``torch.func.functional_call``).

    The module is restored afterwards, also when the call raises.  With ``strict=True``
    every parameter and buffer must be given."""
    dicts = parameter_and_buffer_dicts
    if isinstance(dicts, dict):
        dicts = (dicts,)
    merged = {}
    for d in dicts:
        for k, v in d.items():
            if k in merged:
                raise ValueError(
                    f"{k} appeared in multiple dictionaries; behavior of functional call "
                    "is ambiguous"
                )
            merged[k] = v
    slots = {}
    for name, _ in module.named_parameters(remove_duplicate=False):
        slots[name] = "_parameters"
    for name, _ in module.named_buffers(remove_duplicate=False):
        slots[name] = "_buffers"
    unexpected = [k for k in merged if k not in slots]
    missing = [k for k in slots if k not in merged]
    if unexpected or (strict and missing):
        parts = []
        if unexpected:
            parts.append("Unexpected key(s): " + ", ".join(repr(k) for k in unexpected) + ".")
        if strict and missing:
            parts.append("Missing key(s): " + ", ".join(repr(k) for k in missing) + ".")
        raise RuntimeError(
            f"Error(s) in reparametrizing for {type(module).__name__}:\n\t" + "\n\t".join(parts)
        )
    saved = []
    try:
        for name, tensor in merged.items():
            owner_name, _, attr = name.rpartition(".")
            owner = module.get_submodule(owner_name) if owner_name else module
            registry = owner.__dict__[slots[name]]
            saved.append((registry, attr, registry[attr]))
            registry[attr] = tensor
        if args is None:
            args = ()
        elif not isinstance(args, tuple):
            args = (args,)
        return module(*args, **(kwargs or {}))
    finally:
        for registry, attr, old in reversed(saved):
            registry[attr] = old


def per_sample_grad(func, params, *batched_args):
    """Per-sample gradients: ``out[n] = grad(func)(params, *(a[n] for a in batched_args))``.

    The same as ``torch.func``'s recipe ``vmap(grad(func), in_dims=(None, 0, ...))``:
    ``params`` is a dict of tensors (as ``functional_call`` takes) or a tuple of tensors,
    each sample is passed without its batch dim, and the result has ``params``' structure
    with a leading batch dim on every entry.  Computed by a loop over the samples (one
    forward and backward each); there is no vmap to batch them."""
    if not batched_args:
        raise ValueError("per_sample_grad: give at least one batched argument")
    n = len(batched_args[0])
    if any(len(a) != n for a in batched_args):
        raise ValueError(
            "per_sample_grad: batched arguments differ in length: "
            + ", ".join(str(len(a)) for a in batched_args)
        )
    names = list(params) if isinstance(params, dict) else None
    values = tuple(params.values()) if names is not None else tuple(params)

    def loss(*flat_and_sample):
        flat, sample = flat_and_sample[: len(values)], flat_and_sample[len(values) :]
        p = dict(zip(names, flat)) if names is not None else flat
        return func(p, *sample)

    g = grad(loss, tuple(range(len(values))))
    per = [g(*values, *(a[i] for a in batched_args)) for i in range(n)]
    stacked = [Tensor._make(np.stack([s[k]._array for s in per])) for k in range(len(values))]
    return dict(zip(names, stacked)) if names is not None else tuple(stacked)
