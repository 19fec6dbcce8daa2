"""``tg.autograd.functional``: PyTorch's ``torch.autograd.functional`` signatures, as thin
wrappers over ``tinygrad_init.func``.

``inputs`` is a Tensor or a tuple of Tensors and results keep that form; without
``create_graph=True`` the results are detached, with it inputs that do not require grad are
replaced by fresh leaves that do (torch's ``_grad_preprocess``), so the results stay
differentiable.  ``vectorize=True`` selects func.jacrev's batched backward where the ops
allow it (one backward for all basis vectors); the default loops, one backward per output
element, as torch's does.

``strict=True`` raises torch's RuntimeErrors (same wording) where torch's would: an output
that does not require grad, an input that an output's recorded graph does not reach (where
torch's ``autograd.grad`` would give None), with ``create_graph=True`` a derivative that does
not depend on the inputs, and, for the Hessians, a gradient that does not depend on them.
Dependence is structural, as in torch: a path through ``x * 0`` counts.
"""

from __future__ import annotations

from . import func
from .autograd import _topological_order, enable_grad, no_grad
from .tensor import Tensor

__all__ = ["vjp", "jvp", "jacobian", "hessian", "hvp", "vhp"]


def _as_tuple(x, argname, fn):
    single = isinstance(x, Tensor)
    items = (x,) if single else x
    if not isinstance(items, tuple):
        raise TypeError(
            f"The {argname} given to {fn} must be either a Tensor or a tuple of Tensors but "
            f"the given {argname} has type {type(x)}."
        )
    for i, el in enumerate(items):
        if not isinstance(el, Tensor):
            raise TypeError(
                f"The {argname} given to {fn} must be either a Tensor or a tuple of Tensors "
                f"but the value at index {i} has type {type(el)}."
            )
    return single, items


def _strict_error(message):
    return RuntimeError(f"{message} This is not allowed in strict mode.")


def _reaches(outputs, inputs):
    """For each of ``inputs``: whether the recorded graph of ``outputs`` contains it (where
    it does not, ``autograd.grad`` gives None)."""
    graph = set(_topological_order([o for o in outputs if o.requires_grad]))
    return [x in graph for x in inputs]


class _Traced:
    """The user's function, wrapped: its outputs must be Tensors (torch's TypeError); under
    ``strict`` each must require grad.  Keeps the nodes it was last called with and its
    outputs, for the strict checks that follow."""

    def __init__(self, f, fn, strict):
        self.f, self.fn, self.strict = f, fn, strict
        self.args = self.outs = self.single = None

    def __call__(self, *args):
        out = self.f(*args)
        self.single, outs = _as_tuple(out, "outputs of the user-provided function", self.fn)
        if self.strict:
            for i, o in enumerate(outs):
                if not o.requires_grad:
                    raise RuntimeError(
                        f"Output {i} of the user-provided function does not require "
                        "gradients. The outputs must be computed in a differentiable manner "
                        "from the input when running in strict mode."
                    )
        self.args, self.outs = args, outs
        return out


def _mode(create_graph):
    return enable_grad() if create_graph else no_grad()


def _preprocess(xs, create_graph):
    """With ``create_graph``, inputs that do not require grad become fresh leaves that do."""
    if not create_graph:
        return xs
    return tuple(x if x.requires_grad else x.detach().requires_grad_() for x in xs)


def _check_graph_kept(results, strict, create_graph, what):
    """Under strict and create_graph, every derivative must depend on the inputs."""
    if strict and create_graph:
        for i, r in enumerate(results):
            if not r.requires_grad:
                raise RuntimeError(
                    f"The {what} of the user-provided function is independent of input {i}. "
                    "This is not allowed in strict mode when create_graph=True."
                )


def _single_element_v(v, items, what, fn):
    if v is not None:
        return _as_tuple(v, "v", fn)[1]
    if len(items) != 1 or items[0].numel() != 1:
        raise RuntimeError(
            f"The vector v can only be None if the {what} is a single Tensor with a single element."
        )
    return (Tensor._make(items[0]._array * 0 + 1),)


def vjp(func_, inputs, v=None, create_graph=False, strict=False):
    """``(func(inputs), v^T J)`` (``torch.autograd.functional.vjp``)."""
    fn = "vjp"
    single, xs = _as_tuple(inputs, "inputs", fn)
    traced = _Traced(func_, fn, strict)
    with _mode(create_graph):
        out, vjp_fn = func.vjp(traced, *_preprocess(xs, create_graph))
        outs = (out,) if isinstance(out, Tensor) else out
        vs = _single_element_v(v, outs, "user-provided function returns", fn)
        if strict:
            for i, reached in enumerate(_reaches(traced.outs, traced.args)):
                if not reached:
                    raise _strict_error(
                        f"The output of the user-provided function is independent of input {i}."
                    )
        grads = vjp_fn(vs[0] if isinstance(out, Tensor) else vs)
    _check_graph_kept(grads, strict, create_graph, "jacobian")
    return out, grads[0] if single else grads


def jvp(func_, inputs, v=None, create_graph=False, strict=False):
    """``(func(inputs), J v)`` (``torch.autograd.functional.jvp``)."""
    fn = "jvp"
    single, xs = _as_tuple(inputs, "inputs", fn)
    vs = _single_element_v(v, xs, "input to the user-provided function", fn)
    traced = _Traced(func_, fn, strict)
    with _mode(create_graph):
        out, tangents = func.jvp(traced, _preprocess(xs, create_graph), vs)
    if strict:
        outs, nodes = traced.outs, traced.args
        for i, reached in enumerate(_reaches(outs, nodes)):
            if not reached:
                raise _strict_error(
                    f"The output of the user-provided function is independent of input {i}."
                )
        for j, o in enumerate(outs):
            if not any(_reaches((o,), nodes)):
                raise _strict_error(
                    f"The gradient with respect to the input is independent of entry {j} in "
                    "the grad_outputs when using the double backward trick to compute forward "
                    "mode gradients."
                )
    _check_graph_kept(
        (tangents,) if isinstance(tangents, Tensor) else tangents, strict, create_graph, "jacobian"
    )
    return out, tangents


def _strategy(strategy, vectorize, create_graph, strict):
    """The Jacobian transform for ``strategy``, after torch's checks in torch's order."""
    if strategy not in ("forward-mode", "reverse-mode"):
        raise ValueError(
            'Expected strategy to be either "forward-mode" or "reverse-mode". Hint: If your '
            'function has more outputs than inputs, "forward-mode" tends to be more '
            'performant. Otherwise, prefer to use "reverse-mode".'
        )
    if strategy == "reverse-mode":
        return lambda f, argnums: func._jacrev(f, argnums, False, None, batched=vectorize)
    if create_graph:
        raise NotImplementedError(
            "torch.autograd.functional.jacobian: `create_graph=True` and "
            '`strategy="forward-mode"` are not supported together (yet). Please either set '
            '`create_graph=False` or `strategy="reverse-mode"`.'
        )
    if strict:
        raise RuntimeError(
            "torch.autograd.functional.jacobian: `strict=True` and "
            '`strategy="forward-mode"` are not supported together (yet). Please either set '
            '`strict=False` or `strategy="reverse-mode"`.'
        )
    if not vectorize:
        raise NotImplementedError(
            "Computing Jacobian using forward-AD or forward-over-reverse Hessian is only "
            "implemented for `vectorize=True`."
        )
    return func.jacfwd


def _jacobian(func_, xs, create_graph, strict, vectorize, strategy):
    """Jacobians ``J[i][j]`` of output i with respect to input j (tuples of tuples), and
    whether ``func_`` returned a single Tensor."""
    fn = "jacobian"
    jac = _strategy(strategy, vectorize, create_graph, strict)
    traced = _Traced(func_, fn, strict)

    def call(*args):
        out = traced(*args)
        if strict and vectorize:
            raise RuntimeError(
                "torch.autograd.functional.jacobian: `strict=True` and `vectorized=True` are "
                "not supported together. Please either set `strict=False` or "
                "`vectorize=False`."
            )
        return out

    with _mode(create_graph):
        result = jac(call, tuple(range(len(xs))))(*_preprocess(xs, create_graph))
    rows = (result,) if traced.single else result
    if strict:
        for i, (row, o) in enumerate(zip(rows, traced.outs)):
            if o.numel() == 0:
                continue
            for j, (jij, reached) in enumerate(zip(row, _reaches((o,), traced.args))):
                if not reached:
                    raise _strict_error(
                        f"Output {i} of the user-provided function is independent of input {j}."
                    )
                if create_graph and not jij.requires_grad:
                    raise RuntimeError(
                        "The jacobian of the user-provided function is independent of input "
                        f"{i}. This is not allowed in strict mode when create_graph=True."
                    )
    return rows, traced.single


def jacobian(
    func_, inputs, create_graph=False, strict=False, vectorize=False, strategy="reverse-mode"
):
    """d func(inputs) / d inputs, shaped ``output.shape + input.shape``; a tuple over the
    inputs when ``inputs`` is a tuple, over the outputs when ``func`` returns a tuple
    (``torch.autograd.functional.jacobian``)."""
    single, xs = _as_tuple(inputs, "inputs", "jacobian")
    rows, single_out = _jacobian(func_, xs, create_graph, strict, vectorize, strategy)
    rows = tuple(row[0] if single else row for row in rows)
    return rows[0] if single_out else rows


class _Scalar:
    """The user's function through ``_Traced``, required to return one single-element
    Tensor (torch's errors), reshaped to a scalar."""

    def __init__(self, func_, fn, strict):
        self.traced, self.fn = _Traced(func_, fn, strict), fn

    def __call__(self, *args):
        out = self.traced(*args)
        if not self.traced.single:
            raise RuntimeError(f"The function given to {self.fn} should return a single Tensor")
        if out.numel() != 1:
            raise RuntimeError(
                f"The Tensor returned by the function given to {self.fn} should contain a "
                "single element"
            )
        return out.reshape(())


def _checked_gradient(scalar, jac, strict, reach):
    """Under strict, torch's checks on the gradient ``jac`` of ``scalar``'s function: each
    entry must depend on the inputs, and with ``reach`` (where torch takes the gradient
    without filling in zeros) the output must reach each input."""
    if not strict:
        return
    traced = scalar.traced
    for i, (g, reached) in enumerate(zip(jac, _reaches(traced.outs, traced.args))):
        if reach and not reached:
            raise _strict_error(
                f"The output of the user-provided function is independent of input {i}."
            )
        if not g.requires_grad:
            raise RuntimeError(
                "While computing the hessian, found that the jacobian of the user-provided "
                f"function with respect to input {i} is independent of the input. This is not "
                "allowed in strict mode. You should ensure that your function is twice "
                "differentiable and that the jacobian depends on the inputs (this would be "
                "violated by a linear function for example)."
            )


def hessian(
    func_,
    inputs,
    create_graph=False,
    strict=False,
    vectorize=False,
    outer_jacobian_strategy="reverse-mode",
):
    """Second derivatives of a single-element ``func`` (``torch.autograd.functional.hessian``):
    a Tensor for one input, else a tuple of tuples ``H[i][j]``; the Jacobian (by
    ``outer_jacobian_strategy``) of the reverse-mode gradient."""
    fn = "hessian"
    single, xs = _as_tuple(inputs, "inputs", fn)
    argnums = tuple(range(len(xs)))

    def gradient(*args):
        scalar = _Scalar(func_, fn, strict)
        jac = func.jacrev(scalar, argnums)(*args)
        _checked_gradient(scalar, jac, strict, reach=False)
        return jac

    rows, _ = _jacobian(gradient, xs, create_graph, strict, vectorize, outer_jacobian_strategy)
    return rows[0][0] if single else rows


def hvp(func_, inputs, v=None, create_graph=False, strict=False):
    """``(func(inputs), H v)`` of a single-element ``func`` (``torch.autograd.functional.hvp``):
    the jvp of its gradient (forward over reverse)."""
    return _hessian_product(func_, inputs, v, create_graph, strict, "hvp")


def vhp(func_, inputs, v=None, create_graph=False, strict=False):
    """``(func(inputs), v^T H)`` (``torch.autograd.functional.vhp``); H is symmetric, so the
    values are those of ``hvp``."""
    return _hessian_product(func_, inputs, v, create_graph, strict, "vhp")


def _hessian_product(func_, inputs, v, create_graph, strict, fn):
    single, xs = _as_tuple(inputs, "inputs", fn)
    vs = _single_element_v(v, xs, "input to the user-provided function", fn)
    scalar = _Scalar(func_, fn, strict)
    argnums = tuple(range(len(xs)))

    def gradient(*nodes):
        jac = func.grad(scalar, argnums)(*nodes)
        _checked_gradient(scalar, jac, strict, reach=True)
        if strict and fn == "vhp":
            for i, reached in enumerate(_reaches(jac, nodes)):
                if not reached:
                    raise _strict_error(
                        f"The jacobian of the user-provided function is independent of input {i}."
                    )
        elif strict:
            for i, g in enumerate(jac):
                if not any(_reaches((g,), nodes)):
                    raise RuntimeError(
                        f"The hessian of the user-provided function is independent of entry {i} "
                        "in the grad_jacobian. This is not allowed in strict mode as it prevents "
                        "from using the double backward trick to replace forward mode AD."
                    )
        return jac

    with _mode(create_graph):
        _, h = func.jvp(gradient, _preprocess(xs, create_graph), vs)
        value = scalar.traced.outs[0]
        if not create_graph:
            value = value.detach()
    _check_graph_kept(h, strict, create_graph, "hessian")
    return value, h[0] if single else h
