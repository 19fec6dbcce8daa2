"""Optimizer: the base class of every optimizer (``torch.optim.Optimizer``).

Parameters are kept in ``param_groups``, a list of dicts each holding ``"params"`` (a list
of Tensors) and that group's hyperparameters; per-parameter buffers live in ``state``,
keyed by the parameter Tensor.  ``state_dict()`` refers to parameters by their index in
the order the groups list them, so a state dict can be loaded into a fresh optimizer
built over the same parameters (and moved to or from PyTorch with the same layout).

Updates are applied in place to ``p._array`` with numpy, outside the autograd graph.  State
buffers take the parameter's dtype (float32 stays float32), and each step reuses a small
pool of scratch arrays instead of allocating temporaries.
"""

from __future__ import annotations

import copy
import itertools
import warnings
from collections import defaultdict
from collections.abc import Iterable, Mapping
from operator import is_

import numpy as np

from ..autograd import enable_grad
from ..replay import effect
from ..tensor import Tensor

__all__ = ["Optimizer"]

_NO_SCRATCHES = itertools.repeat((None, None))  # for a loop over parameters without them


class _Required:
    """Marks a hyperparameter that has no default and must be given."""

    def __repr__(self):
        return "<required parameter>"


required = _Required()


class Optimizer:
    """Base class of all optimizers.

    Args:
        params: an iterable of Tensors, or of dicts that each hold ``"params"`` and any
            hyperparameters that should differ from ``defaults`` for that group.
        defaults: the hyperparameters used where a group does not give its own.

    Subclasses implement ``step``; they read ``p.grad`` and update ``p._array`` in place.
    The library's optimizers give ``_hyper``, ``_update`` and ``_uses_direction`` instead
    and call ``_step``: one statement of each update, shared with the replay of
    ``tg.compile`` (``_flat_step``).
    """

    def __init__(self, params, defaults):
        self.defaults = dict(defaults)
        self.state = defaultdict(dict)
        self.param_groups = []
        self._scratch_pool = {}
        self._scratch_views = {}
        if isinstance(params, Tensor):
            raise TypeError(
                "params argument given to the optimizer should be an iterable of "
                "Tensors or dicts, but got Tensor"
            )
        if isinstance(params, (set, frozenset)):
            raise TypeError(
                "optimizer parameters need to be organized in ordered collections, "
                "but the ordering of tensors in sets will change between runs. "
                "Please use a list instead."
            )
        if not isinstance(params, Iterable):
            raise TypeError(
                "params argument given to the optimizer should be an iterable of "
                f"Tensors or dicts, but got {type(params).__name__}"
            )
        groups = list(params)
        if len(groups) == 0:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(groups[0], Mapping):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def __repr__(self):
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for key in sorted(group):
                if key != "params":
                    lines.append(f"    {key}: {group[key]}")
        lines.append(")")
        return "\n".join(lines)

    # -- groups ---------------------------------------------------------------------------
    def add_param_group(self, param_group):
        """Add a group of parameters (a dict with ``"params"``), e.g. a layer unfrozen later.

        Missing hyperparameters are filled in from ``defaults``.  A parameter may belong to
        one group only.
        """
        if not isinstance(param_group, Mapping):
            raise TypeError(f"param_group must be a dict, but got {type(param_group).__name__}")
        if "params" not in param_group:
            raise ValueError("param_group must have a 'params' key holding the tensors to optimize")
        group = dict(param_group)
        params = group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, (set, frozenset)):
            raise TypeError(
                "optimizer parameters need to be organized in ordered collections, "
                "but the ordering of tensors in sets will change between runs. "
                "Please use a list instead."
            )
        else:
            params = list(params)
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError(
                    "optimizer can only optimize Tensors, but one of the params is "
                    f"{type(p).__name__}"
                )
            if not p.is_leaf and not p._retains_grad:
                raise ValueError("can't optimize a non-leaf Tensor")
        group["params"] = params

        for name, default in self.defaults.items():
            if default is required and name not in group:
                raise ValueError(
                    "parameter group didn't specify a value of required "
                    f"optimization parameter {name}"
                )
            group.setdefault(name, default)

        ids = [id(p) for p in params]
        if len(set(ids)) != len(ids):
            warnings.warn(
                "optimizer contains a parameter group with duplicate parameters; "
                "each parameter should appear once (duplicates are updated twice "
                "per step)",
                UserWarning,
                stacklevel=3,
            )
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if not seen.isdisjoint(ids):
            raise ValueError("some parameters appear in more than one parameter group")
        self._check_group(group)
        self.param_groups.append(group)

    def _check_group(self, group):
        """Validate a group's hyperparameters (subclasses raise ValueError)."""

    # -- gradients ------------------------------------------------------------------------
    def _flat_zero_grad(self, set_to_none=True):
        """For ``tg.compile``: the replay of ``zero_grad()`` as ``p.grad = None`` for each
        parameter; None with ``set_to_none=False`` (that replay calls zero_grad).  A replay
        whose optimizer no longer has the same groups and parameters calls it too."""
        if not set_to_none:
            return None
        layout = self._layout()
        params = [p for group in self.param_groups for p in group["params"]]

        def replay():
            if not self._layout_holds(layout):
                self.zero_grad(set_to_none)
                return
            for p in params:
                p.grad = None

        return replay

    @effect(flat=lambda self, set_to_none=True: self._flat_zero_grad(set_to_none))
    def zero_grad(self, set_to_none=True):
        """Reset the gradients of all parameters.

        ``set_to_none=True`` (the default, as in PyTorch) drops ``.grad`` so the next
        backward allocates it afresh; ``False`` fills the existing buffers with zeros.
        """
        for group in self.param_groups:
            for p in group["params"]:
                g = p.grad
                if g is None:
                    continue
                if set_to_none:
                    p.grad = None
                elif g._node is None and g._array.flags.writeable:
                    g.requires_grad = False
                    g._array.fill(0)
                else:
                    p.grad = Tensor._make(np.zeros_like(g._array))

    def step(self, closure=None):
        """Perform one update of every parameter that has a gradient.

        ``closure``, if given, re-evaluates the model and returns the loss; it is called
        with gradient recording enabled and its result is returned.
        """
        raise NotImplementedError

    # -- the update loop, shared by step() and its replay under tg.compile ---------------
    # A subclass gives _hyper(group) (the group's hyper-parameters, in the order _update
    # takes them), _update(p, *hyper, d=None, s=None) (one parameter's update, in place;
    # d and s its scratch arrays when the caller has looked them up) and
    # _uses_direction(group) (whether _update needs _direction's scratch for it).
    _WHOLE_SCRATCH = True  # False: large parameters are updated block by block

    def _step(self, closure):
        """The body of ``step()``: ``_update`` of every parameter that has a gradient."""
        loss = self._closure_loss(closure)
        for group in self.param_groups:
            self._update_group(self._hyper(group), group["params"])
        return loss

    def _update_group(self, hyper, params, scratches=None):
        """``_update(p, *hyper)`` of each parameter of ``params`` that has a gradient;
        ``scratches``: its ``(d, s)`` pair (``_scratches``) per parameter, when the caller
        has looked them up.  A subclass may do a common case in one loop (SGD)."""
        update = self._update
        if scratches is None:
            for p in params:
                if p.grad is not None:
                    update(p, *hyper)
        else:
            for p, (d, s) in zip(params, scratches):
                if p.grad is not None:
                    update(p, *hyper, d, s)

    def _flat_step(self, closure=None):
        """For ``tg.compile`` (``effect(flat=...)``): the replay of a step without a closure
        as the same ``_update_group`` of each group, its scratch arrays looked up in
        advance and the hyper-parameters read afresh from each group; None with a
        closure.  A replay whose optimizer no longer has the same groups and parameters, by
        identity, calls step() instead."""
        if closure is not None:
            return None
        layout = self._layout()
        whole = self._WHOLE_SCRATCH
        plan = [
            (g, ps, [self._scratches(p, self._uses_direction(g), whole) for p in ps])
            for g, ps in ((g, tuple(g["params"])) for g in self.param_groups)
        ]
        hyper_of, update_group = self._hyper, self._update_group

        def replay():
            if not self._layout_holds(layout):
                self.step()
                return
            for group, params, scratches in plan:
                update_group(hyper_of(group), params, scratches)

        return replay

    def _closure_loss(self, closure):
        if closure is None:
            return None
        with enable_grad():
            return closure()

    # -- helpers for the update rules -----------------------------------------------------
    def _scratch(self, like, slot=0):
        """A reusable array shaped and typed like ``like`` (contents undefined).

        One flat buffer per (dtype, slot) grows to the largest parameter seen, and each
        shape gets a cached view of its front, so a step allocates nothing once warmed up.
        """
        key = (like.shape, like.dtype, slot)
        view = self._scratch_views.get(key)
        if view is None:
            flat_key = (like.dtype, slot)
            flat = self._scratch_pool.get(flat_key)
            if flat is None or flat.size < like.size:
                flat = np.empty(max(like.size, 1), dtype=like.dtype)
                self._scratch_pool[flat_key] = flat
                self._scratch_views = {
                    k: v for k, v in self._scratch_views.items() if k[1:] != flat_key
                }
            view = flat[: like.size].reshape(like.shape)
            self._scratch_views[key] = view
        return view

    _BLOCK = 1 << 18

    def _add_scaled(self, w, g, alpha, scratch=None):
        """``w += alpha * g`` in place, ``g`` untouched, with scratch memory of at most
        ``_BLOCK`` values: a large parameter is updated one block at a time (each block
        still in cache when it is added), so no temporary the size of a parameter is kept
        or allocated.  ``scratch``: a small parameter's buffer from ``_scratch(w, 1)``,
        looked up in advance by a caller that updates the same parameter every step."""
        if w.size <= self._BLOCK:
            s = self._scratch(w, 1) if scratch is None else scratch
            np.multiply(g, alpha, out=s)
            w += s
        elif w.flags.c_contiguous and g.flags.c_contiguous and g.shape == w.shape:
            wf, gf = w.reshape(-1), g.reshape(-1)
            block = self._scratch(wf[: self._BLOCK], 1)
            for start in range(0, w.size, self._BLOCK):
                stop = start + self._BLOCK
                s = block[: wf[start:stop].size]
                np.multiply(gf[start:stop], alpha, out=s)
                wf[start:stop] += s
        else:
            w += alpha * g

    def _descend(self, params, alpha, scratches=None):
        """``w += alpha * g`` for each parameter of ``params`` that has a gradient: plain
        SGD's update, ``_arrays`` then ``_add_scaled`` with their common case inline (a
        gradient of the parameter's shape, a parameter of at most ``_BLOCK`` values: the
        version bump, one ``np.multiply`` into the scratch and one ``+=``), every other
        case through them.  ``scratches``: as ``_update_group`` takes them.  Measured on
        100 parameters of 64x64 and 64 (the deep MLP of tools/bench.py): 174 us -> 125 us
        a step, as fast as a hand-written ``w -= lr * g`` loop."""
        block, multiply, scratch = self._BLOCK, np.multiply, self._scratch
        for p, (_, s) in zip(params, _NO_SCRATCHES if scratches is None else scratches):
            grad = p.grad
            if grad is None:
                continue
            w, g = p._array, grad._array
            if w.size > block or g.shape != w.shape:
                self._add_scaled(*self._arrays(p), alpha, s)
                continue
            p._bump_version()
            if s is None:
                s = scratch(w, 1)
            multiply(g, alpha, s)  # out positionally: the keyword costs 0.3 us a call
            w += s

    @staticmethod
    def _lerp(avg, x, weight, s):
        """``avg += weight * (x - avg)`` in place (PyTorch's ``lerp_``), i.e. ``avg = (1 -
        weight) * avg + weight * x``: a moving average of ``x``, through scratch ``s``."""
        np.subtract(x, avg, out=s)
        s *= weight
        avg += s

    @staticmethod
    def _decay_square(avg, g, decay, s):
        """``avg = decay * avg + (1 - decay) * g^2`` in place (PyTorch's ``mul_`` then
        ``addcmul_``): a moving average of the squared gradient, through scratch ``s``."""
        avg *= decay
        np.multiply(g, g, out=s)
        s *= 1.0 - decay
        avg += s

    def _direction(self, w, g, maximize, weight_decay, d=None):
        """The gradient the update rules use: ``(-g if maximize else g) + weight_decay * w``.

        Returns ``g`` itself when neither applies (it is never modified in place), else
        the result in scratch slot 0 (``d``, when the caller has looked it up).
        """
        if not maximize and weight_decay == 0:
            return g
        if d is None:
            d = self._scratch(w, 0)
        if weight_decay != 0:
            np.multiply(w, weight_decay, out=d)
            if maximize:
                d -= g
            else:
                d += g
        else:
            np.negative(g, out=d)
        return d

    def _scratches(self, p, direction, whole=True):
        """The scratch arrays of ``p``'s update, looked up once by a flat replay: slot 0
        (``_direction``'s) when ``direction``, else None; slot 1, or None for a parameter
        that ``_add_scaled`` updates block by block when ``whole`` is False."""
        w = p._array
        d = self._scratch(w, 0) if direction else None
        return d, (self._scratch(w, 1) if whole or w.size <= self._BLOCK else None)

    def _layout(self):
        """What a flat replay (``tg.compile``) relies on: the groups, their parameter lists
        and the parameters in them, by identity."""
        return [(g, g["params"], tuple(g["params"])) for g in self.param_groups]

    def _layout_holds(self, layout):
        """Whether ``layout`` (from ``_layout``) still describes the optimizer: a plain loop,
        as it runs twice in every replay of a compiled step (zero_grad and step)."""
        groups = self.param_groups
        if len(groups) != len(layout):
            return False
        for g, (group, ps, then) in zip(groups, layout):
            if g is not group or g["params"] is not ps or len(ps) != len(then):
                return False
            if not all(map(is_, ps, then)):
                return False
        return True

    @staticmethod
    def _arrays(p):
        """(parameter array, gradient array) of ``p`` for an update in place.

        A ``.grad`` of another shape raises instead of being broadcast into the update, and
        the parameter's version is bumped (an in-place write, as PyTorch counts it)."""
        w, g = p._array, p.grad._array
        if g.shape != w.shape:
            raise RuntimeError(
                f"the .grad of a parameter has shape {tuple(g.shape)} but the parameter has "
                f"shape {tuple(w.shape)}: assign a gradient of the parameter's shape"
            )
        p._bump_version()
        return w, g

    @staticmethod
    def _zeros_state(p):
        """A zero buffer shaped and typed like parameter ``p``."""
        return Tensor._make(np.zeros(p._array.shape, dtype=p._array.dtype))

    @staticmethod
    def _state_copy(p, values):
        """A buffer holding a copy of ``values``, in the dtype of parameter ``p``."""
        return Tensor._make(np.array(values, dtype=p._array.dtype, order="C"))

    # -- state dict -----------------------------------------------------------------------
    def state_dict(self):
        """The optimizer's state as ``{"state": {index: {...}}, "param_groups": [...]}``.

        Parameters are replaced by their index, counted across groups in order.  As in
        PyTorch, the per-parameter buffers are the live ones (not copies): take
        ``copy.deepcopy`` of the result to keep a snapshot while training continues.
        """
        index = {}
        groups = []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            for p in group["params"]:
                index.setdefault(id(p), len(index))
            packed["params"] = [index[id(p)] for p in group["params"]]
            groups.append(packed)
        state = {(index[id(k)] if isinstance(k, Tensor) else k): v for k, v in self.state.items()}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Load a state produced by ``state_dict()`` of an optimizer over the same parameters.

        Everything is checked (group count and sizes, buffer shapes) before anything is
        changed.  The loaded buffers are copied and cast to their parameter's dtype.
        """
        if (
            not isinstance(state_dict, Mapping)
            or "param_groups" not in state_dict
            or "state" not in state_dict
        ):
            raise ValueError(
                "load_state_dict: expected a dict with 'state' and 'param_groups' "
                "keys, as returned by Optimizer.state_dict()"
            )
        groups = self.param_groups
        saved_groups = state_dict["param_groups"]
        if len(groups) != len(saved_groups):
            raise ValueError(
                "loaded state dict has a different number of parameter groups "
                f"({len(saved_groups)}) than the optimizer ({len(groups)})"
            )
        for i, (g, sg) in enumerate(zip(groups, saved_groups)):
            if len(g["params"]) != len(sg["params"]):
                raise ValueError(
                    "loaded state dict contains a parameter group that doesn't "
                    f"match the size of optimizer's group (group {i}: "
                    f"{len(sg['params'])} saved, {len(g['params'])} here)"
                )
        id_map = {}
        for g, sg in zip(groups, saved_groups):
            for p, key in zip(g["params"], sg["params"]):
                id_map[key] = p

        new_state = defaultdict(dict)
        for key, value in state_dict["state"].items():
            if key not in id_map:
                new_state[key] = copy.deepcopy(value)
                continue
            p = id_map[key]
            if not isinstance(value, Mapping):
                raise TypeError(
                    f"load_state_dict: state of parameter {key} must be a dict, "
                    f"got {type(value).__name__}"
                )
            entry = {}
            for name, v in value.items():
                entry[name] = _load_state_value(name, v, p, key)
            new_state[p] = entry

        new_groups = []
        for g, sg in zip(groups, saved_groups):
            ng = copy.deepcopy({k: v for k, v in sg.items() if k != "params"})
            ng["params"] = g["params"]
            new_groups.append(ng)
        for ng in new_groups:
            self._check_group(ng)
        self.state = new_state
        self.param_groups = new_groups


def _load_state_value(name, value, p, key):
    """Copy one saved buffer, cast to the parameter's dtype and checked against its shape."""
    if name == "step":
        if isinstance(value, Tensor):
            value = value._array
        return int(np.asarray(value).item())
    if not isinstance(value, (Tensor, np.ndarray)) and hasattr(value, "__array__"):
        value = np.asarray(value)  # e.g. a buffer from a PyTorch optimizer's state dict
    if isinstance(value, (Tensor, np.ndarray)):
        arr = value._array if isinstance(value, Tensor) else value
        if arr.shape != p._array.shape:
            raise ValueError(
                f"load_state_dict: state '{name}' of parameter {key} has shape "
                f"{arr.shape}, but the parameter has shape {p._array.shape}"
            )
        dtype = p._array.dtype if np.issubdtype(arr.dtype, np.floating) else arr.dtype
        return Tensor._make(np.array(arr, dtype=dtype, order="C"))
    return copy.deepcopy(value)
