"""``tg.autograd.functional``: PyTorch's ``torch.autograd.functional`` signatures, as thin
wrappers over ``tinygrad_init.func``.

``inputs`` is a Tensor or a tuple of Tensors and results keep that form; without
``create_graph=True`` the results are detached.  ``vectorize`` is accepted (every Jacobian
here is one recorded forward plus one sweep per basis vector either way).  ``strict=True``
(an error when an output does not depend on an input) is not supported and raises.
"""

from __future__ import annotations

from . import func
from .autograd import enable_grad, no_grad
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


def _checked(f, fn):
    """``f`` wrapped so that a non-Tensor output raises PyTorch's error."""

    def wrapped(*args):
        out = f(*args)
        _as_tuple(out, "outputs of the user-provided function", fn)
        return out

    return wrapped


def _mode(create_graph, strict, fn):
    if strict:
        raise NotImplementedError(f"{fn}: strict=True is not supported")
    return enable_grad() if create_graph else no_grad()


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
    with _mode(create_graph, strict, fn):
        out, vjp_fn = func.vjp(_checked(func_, fn), *xs)
        outs = (out,) if isinstance(out, Tensor) else out
        vs = _single_element_v(v, outs, "user-provided function returns", fn)
        grads = vjp_fn(vs[0] if isinstance(out, Tensor) else vs)
    return out, grads[0] if single else grads


def jvp(func_, inputs, v=None, create_graph=False, strict=False):
    """``(func(inputs), J v)`` (``torch.autograd.functional.jvp``)."""
    fn = "jvp"
    single, xs = _as_tuple(inputs, "inputs", fn)
    vs = _single_element_v(v, xs, "input to the user-provided function", fn)
    with _mode(create_graph, strict, fn):
        return func.jvp(_checked(func_, fn), xs, vs)


def _strategy(strategy, vectorize):
    if strategy not in ("forward-mode", "reverse-mode"):
        raise ValueError(
            'Expected strategy to be either "forward-mode" or "reverse-mode". Hint: If your '
            'function has more outputs than inputs, "forward-mode" tends to be more '
            'performant. Otherwise, prefer to use "reverse-mode".'
        )
    if strategy == "forward-mode" and not vectorize:
        raise NotImplementedError(
            "Computing Jacobian using forward-AD or forward-over-reverse Hessian is only "
            "implemented for `vectorize=True`."
        )
    return func.jacfwd if strategy == "forward-mode" else func.jacrev


def jacobian(
    func_, inputs, create_graph=False, strict=False, vectorize=False, strategy="reverse-mode"
):
    """d func(inputs) / d inputs, shaped ``output.shape + input.shape``; a tuple over the
    inputs when ``inputs`` is a tuple, over the outputs when ``func`` returns a tuple
    (``torch.autograd.functional.jacobian``)."""
    fn = "jacobian"
    jac = _strategy(strategy, vectorize)
    single, xs = _as_tuple(inputs, "inputs", fn)
    argnums = 0 if single else tuple(range(len(xs)))
    with _mode(create_graph, strict, fn):
        return jac(_checked(func_, fn), argnums)(*xs)


def _scalar(func_, fn):
    def wrapped(*args):
        out = func_(*args)
        if not isinstance(out, Tensor):
            raise RuntimeError(f"The function given to {fn} should return a single Tensor")
        if out.numel() != 1:
            raise RuntimeError(
                f"The Tensor returned by the function given to {fn} should contain a single element"
            )
        return out.reshape(())

    return wrapped


def hessian(
    func_,
    inputs,
    create_graph=False,
    strict=False,
    vectorize=False,
    outer_jacobian_strategy="reverse-mode",
):
    """Second derivatives of a single-element ``func`` (``torch.autograd.functional.hessian``):
    a Tensor for one input, else a tuple of tuples ``H[i][j]``."""
    fn = "hessian"
    outer = _strategy(outer_jacobian_strategy, vectorize)
    single, xs = _as_tuple(inputs, "inputs", fn)
    argnums = 0 if single else tuple(range(len(xs)))
    with _mode(create_graph, strict, fn):
        return outer(func.jacrev(_scalar(func_, fn), argnums), argnums)(*xs)


def hvp(func_, inputs, v=None, create_graph=False, strict=False):
    """``(func(inputs), H v)`` of a single-element ``func`` (``torch.autograd.functional.hvp``)."""
    return _hessian_product(func_, inputs, v, create_graph, strict, "hvp")


def vhp(func_, inputs, v=None, create_graph=False, strict=False):
    """``(func(inputs), v^T H)`` (``torch.autograd.functional.vhp``); H is symmetric, so the
    values are those of ``hvp``."""
    return _hessian_product(func_, inputs, v, create_graph, strict, "vhp")


def _hessian_product(func_, inputs, v, create_graph, strict, fn):
    single, xs = _as_tuple(inputs, "inputs", fn)
    vs = _single_element_v(v, xs, "input to the user-provided function", fn)
    f = _scalar(func_, fn)
    with _mode(create_graph, strict, fn):
        value = f(*xs)
        if not create_graph:
            value = value.detach()
        h = func.hvp(f, xs, vs)
    return value, h[0] if single else h
