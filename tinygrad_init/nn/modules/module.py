"""``Parameter`` and ``Module``: the bookkeeping every layer shares (``torch.nn.Module``).

A Module holds three ordered registries, filled by plain attribute assignment:

* ``_parameters``: name -> ``Parameter`` (or None), assigned as ``self.weight = Parameter(...)``;
* ``_buffers``: name -> Tensor (or None), registered with ``register_buffer``;
  buffers are state that is saved but not trained (BatchNorm's running statistics);
* ``_modules``: name -> submodule (or None), assigned as ``self.fc1 = Linear(...)``.

Names in ``named_parameters``, ``state_dict`` and ``load_state_dict`` are the dotted
attribute paths, exactly PyTorch's (``0.weight``, ``fc1.bias``, ``bn.running_mean``), so
state dicts move between the two frameworks.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict, namedtuple
from collections.abc import Mapping

import numpy as np

from ...autograd import Function, _state, is_grad_enabled
from ...replay import effect
from ...tensor import DtypeError, Tensor, _to_dtype_arg, get_default_dtype

__all__ = ["Parameter", "Module", "RemovableHandle"]


# ----------------------------------------------------------------------------------------
# Parameter


class Parameter(Tensor):
    """A Tensor that a Module registers as trainable when assigned as an attribute.

    ``requires_grad`` is True unless told otherwise.  Like ``torch.nn.Parameter`` it wraps
    the given data without copying it (a Tensor's array or a numpy array is shared).
    """

    __slots__ = ()

    def __init__(self, data=None, requires_grad=True):
        if data is None:
            array = np.empty((0,), dtype=get_default_dtype())
        elif isinstance(data, Tensor):
            array = data._array
        elif isinstance(data, np.ndarray):
            array = data
        else:
            array = Tensor(data)._array
        self._init_fields(array)
        if requires_grad:
            self.requires_grad_(True)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()


# ----------------------------------------------------------------------------------------
# Hook handles and the load_state_dict result


class RemovableHandle:
    """Returned by the ``register_*_hook`` methods; ``remove()`` unregisters the hook.

    Also a context manager: the hook is removed when the ``with`` block ends.
    """

    _ids = itertools.count()

    def __init__(self, hooks_dict):
        self._hooks_dict = hooks_dict
        self.id = next(RemovableHandle._ids)

    def remove(self):
        self._hooks_dict.pop(self.id, None)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()
        return False


class _IncompatibleKeys(namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])):
    """What ``load_state_dict`` returns: ``(missing_keys, unexpected_keys)``."""

    __slots__ = ()

    def __repr__(self):
        if not self.missing_keys and not self.unexpected_keys:
            return "<All keys matched successfully>"
        return super().__repr__()

    __str__ = __repr__


def _addindent(text, spaces):
    """Indent every line of ``text`` but the first by ``spaces`` spaces."""
    lines = text.split("\n")
    if len(lines) == 1:
        return text
    pad = " " * spaces
    return lines[0] + "\n" + "\n".join(pad + line for line in lines[1:])


def _check_name(kind, name, module, registry):
    if not isinstance(name, str):
        raise TypeError(f"{kind} name should be a string, got {type(name).__name__}")
    if name == "":
        raise KeyError(f'{kind} name can\'t be empty string ""')
    if "." in name:
        raise KeyError(f'{kind} name can\'t contain ".", got: {name}')
    if hasattr(module, name) and name not in module.__dict__[registry]:
        raise KeyError(f"attribute '{name}' already exists")


# ----------------------------------------------------------------------------------------
# Full backward hooks


class _BackwardHookFunction(Function):
    """Identity whose node marks where a module's outputs start (PyTorch's
    ``BackwardHookFunctionBackward``); hooks on its output see ``grad_output``."""

    @staticmethod
    def forward(ctx, x):
        return Tensor._make(x._array)

    @staticmethod
    def backward(ctx, grad):
        return grad


class _PackInputs(Function):
    """Flatten and concatenate a module's inputs into one vector (one node for all)."""

    @staticmethod
    def forward(ctx, *xs):
        ctx.shapes = [(x.shape, x.dtype, x.numel()) for x in xs]
        return Tensor._make(np.concatenate([x._array.reshape(-1) for x in xs]))

    @staticmethod
    def backward(ctx, grad):
        grads, start = [], 0
        for shape, dtype, n in ctx.shapes:
            grads.append(grad[start : start + n].reshape(shape).to(dtype))
            start += n
        return tuple(grads)


class _BackwardHookState:
    """One forward call's bookkeeping for ``register_full_backward_hook``.

    The tensor inputs that require grad are flattened and concatenated into one tensor
    ``packed`` (one node with all of them as inputs); the module receives slices of it
    reshaped to the original shapes.  Every gradient the module sends to its inputs
    therefore meets at ``packed``, whose tensor hook runs exactly once, after all of them
    are summed: there ``grad_input`` is complete, the user hooks run, and a replacement
    ``grad_input`` they return is packed again and passed on to the real inputs.
    """

    def __init__(self, module, hooks):
        self.module = module
        self.hooks = hooks
        self.grad_outputs = []
        self.n_inputs = 0
        self.slots = []  # per tensor input: (start, stop, shape, dtype) or None
        self.arrived = []  # per tensor input that requires grad: reached by backward?

    def setup_inputs(self, args):
        """Replace tensor inputs that require grad by views of one packed tensor."""
        tensor_positions = [i for i, a in enumerate(args) if isinstance(a, Tensor)]
        self.n_inputs = len(tensor_positions)
        needing = [i for i in tensor_positions if args[i].requires_grad]
        self.slots = [None] * self.n_inputs
        if not needing:
            return args
        packed = _PackInputs.apply(*[args[i] for i in needing])
        new_args = list(args)
        start = 0
        self.arrived = [False] * len(needing)
        for k, i in enumerate(needing):
            a = args[i]
            stop = start + a.numel()
            self.slots[tensor_positions.index(i)] = (start, stop, a.shape, a.dtype, k)
            view = packed[start:stop].reshape(a.shape).to(a.dtype)
            view.register_hook(self._arrival(k))
            new_args[i] = view
            start = stop
        packed.register_hook(self._input_hook)
        return tuple(new_args)

    def _arrival(self, k):
        def mark(grad):
            self.arrived[k] = True

        return mark

    def setup_outputs(self, result):
        """Wrap the output tensors so that their gradients are seen (``grad_output``)."""
        single = isinstance(result, Tensor)
        outputs = (
            [result] if single else list(result) if isinstance(result, (tuple, list)) else None
        )
        if outputs is None:
            return result
        self.grad_outputs = [None] * sum(isinstance(o, Tensor) for o in outputs)
        new_outputs, k = [], 0
        for o in outputs:
            if isinstance(o, Tensor):
                if o.requires_grad:
                    o = _BackwardHookFunction.apply(o)
                    o.register_hook(self._output_hook(k))
                k += 1
            new_outputs.append(o)
        self.any_input = any(s is not None for s in self.slots)
        if single:
            return new_outputs[0]
        return type(result)(new_outputs)

    def _output_hook(self, k):
        def capture(grad):
            self.grad_outputs[k] = grad
            if not self.any_input:
                # Nothing upstream inside the module needs a gradient: PyTorch calls the
                # hooks with grad_input all None once grad_output is known.
                self._call_hooks((None,) * self.n_inputs)

        return capture

    def _input_hook(self, grad):
        grad_input = []
        for slot in self.slots:
            if slot is None or not self.arrived[slot[4]]:
                grad_input.append(None)
            else:
                start, stop, shape, dtype, _ = slot
                grad_input.append(grad[start:stop].reshape(shape))
        replaced = self._call_hooks(tuple(grad_input))
        if replaced is None:
            return None
        pieces = []
        for slot, new in zip(self.slots, replaced):
            if slot is None:
                continue
            start, stop, shape, _, _ = slot
            if new is None:
                new = np.zeros(shape, dtype=grad.dtype)
            if tuple(np.shape(new)) != tuple(shape):
                raise RuntimeError(
                    f"backward hook of {self.module._get_name()} returned a grad_input entry "
                    f"of shape {tuple(np.shape(new))} for an input of shape {tuple(shape)}"
                )
            pieces.append(
                new.reshape(-1).to(grad.dtype)
                if isinstance(new, Tensor)
                else Tensor(np.asarray(new, dtype=grad.dtype).reshape(-1))
            )
        return _PackInputs.apply(*pieces)

    def _call_hooks(self, grad_input):
        grad_output = tuple(self.grad_outputs)
        replaced = False
        for hook in tuple(self.hooks):
            out = hook(self.module, grad_input, grad_output)
            if out is None:
                continue
            out = tuple(out) if isinstance(out, (tuple, list)) else (out,)
            if len(out) != len(grad_input):
                raise RuntimeError(
                    f"backward hook of {self.module._get_name()} returned {len(out)} "
                    f"gradients, expected {len(grad_input)} (one per tensor input)"
                )
            grad_input = out
            replaced = True
        return grad_input if replaced else None


# ----------------------------------------------------------------------------------------
# The mutation counter

# How many writes modules have seen that a compiled replay relies on: an attribute set or
# deleted, the training flag, an entry of a parameter, buffer, child or hook dict.  While
# it stays the same, no module can have changed what a recording saw (tg.compile skips
# the identity pass of its module guards).  A write straight into a module's __dict__
# goes unseen.
_mutations = 0


def _mutated():
    global _mutations
    _mutations += 1


class _Registry(OrderedDict):
    """A module's parameters, buffers, children or hooks: an OrderedDict whose every
    write counts in ``_mutations``.  Reads are the dict's own, through the subclass's
    slots (about 15 ns more per lookup; a parameter read ``self.weight`` 30 ns)."""

    __slots__ = ()

    def __setitem__(self, key, value):
        _mutated()
        OrderedDict.__setitem__(self, key, value)

    def __delitem__(self, key):
        _mutated()
        OrderedDict.__delitem__(self, key)

    def __ior__(self, other):
        _mutated()
        return OrderedDict.__ior__(self, other)

    def pop(self, *args):
        _mutated()
        return OrderedDict.pop(self, *args)

    def popitem(self, last=True):
        _mutated()
        return OrderedDict.popitem(self, last)

    def clear(self):
        _mutated()
        OrderedDict.clear(self)

    def update(self, *args, **kwargs):
        _mutated()
        OrderedDict.update(self, *args, **kwargs)

    def setdefault(self, key, default=None):
        _mutated()
        return OrderedDict.setdefault(self, key, default)

    def move_to_end(self, key, last=True):
        _mutated()
        OrderedDict.move_to_end(self, key, last)


# ----------------------------------------------------------------------------------------
# Module


class Module:
    """Base class of every layer and model (``torch.nn.Module``).

    Subclasses call ``super().__init__()`` first, assign Parameters, submodules and buffers
    as attributes, and implement ``forward``; calling the module runs the forward
    pre-hooks, ``forward``, then the forward hooks.
    """

    training: bool

    def __init__(self):
        _mutated()
        d = self.__dict__
        d["training"] = True
        d["_parameters"] = _Registry()
        d["_buffers"] = _Registry()
        d["_non_persistent_buffers_set"] = set()
        d["_modules"] = _Registry()
        d["_forward_hooks"] = _Registry()
        d["_forward_pre_hooks"] = _Registry()
        d["_backward_hooks"] = _Registry()

    def forward(self, *args, **kwargs):
        raise NotImplementedError(
            f'Module [{type(self).__name__}] is missing the required "forward" function'
        )

    # -- registration ------------------------------------------------------------------
    def _require_init(self, what):
        if "_parameters" not in self.__dict__:
            raise AttributeError(
                f"cannot assign {what} before Module.__init__() call "
                f"(call super().__init__() first in "
                f"{type(self).__name__}.__init__)"
            )

    def register_parameter(self, name, param):
        """Register ``param`` (a Parameter or None) under ``name``."""
        self._require_init("parameter")
        _check_name("parameter", name, self, "_parameters")
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(
                f"cannot assign '{type(param).__name__}' object to parameter "
                f"'{name}' (nn.Parameter or None required)"
            )
        if param is not None and param.grad_fn is not None:
            raise ValueError(
                f"Cannot assign non-leaf Tensor to parameter '{name}'. Model "
                f"parameters must be created explicitly; use .detach()."
            )
        self._parameters[name] = param

    def register_buffer(self, name, tensor, persistent=True):
        """Register ``tensor`` (a Tensor or None) as a buffer: state that is not trained.

        Persistent buffers appear in ``state_dict``; ``persistent=False`` keeps one out.
        """
        self._require_init("buffer")
        _check_name("buffer", name, self, "_buffers")
        if tensor is not None and not isinstance(tensor, Tensor):
            raise TypeError(
                f"cannot assign '{type(tensor).__name__}' object to buffer "
                f"'{name}' (Tensor or None required)"
            )
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent_buffers_set.discard(name)
        else:
            self._non_persistent_buffers_set.add(name)

    def add_module(self, name, module):
        """Register ``module`` (a Module or None) as a child under ``name``."""
        self._require_init("module")
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module subclass")
        _check_name("module", name, self, "_modules")
        self._modules[name] = module

    register_module = add_module

    def __setattr__(self, name, value):
        _mutated()
        d = self.__dict__
        params = d.get("_parameters")
        if isinstance(value, Parameter):
            self._require_init("parameters")
            self._remove_from(name, "_buffers", "_modules")
            self.__dict__.pop(name, None)
            self.register_parameter(name, value)
        elif params is not None and name in params:
            if value is not None:
                raise TypeError(
                    f"cannot assign '{type(value).__name__}' as parameter "
                    f"'{name}' (nn.Parameter or None expected)"
                )
            params[name] = None
        elif isinstance(value, Module):
            self._require_init("module")
            self._remove_from(name, "_parameters", "_buffers")
            self.__dict__.pop(name, None)
            self._modules[name] = value
        elif d.get("_modules") is not None and name in d["_modules"]:
            if value is not None:
                raise TypeError(
                    f"cannot assign '{type(value).__name__}' as child module "
                    f"'{name}' (nn.Module or None expected)"
                )
            d["_modules"][name] = None
        elif d.get("_buffers") is not None and name in d["_buffers"]:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(
                    f"cannot assign '{type(value).__name__}' as buffer "
                    f"'{name}' (Tensor or None expected)"
                )
            d["_buffers"][name] = value
        else:
            object.__setattr__(self, name, value)

    def _remove_from(self, name, *registries):
        for r in registries:
            self.__dict__[r].pop(name, None)
        self._non_persistent_buffers_set.discard(name)

    def __setstate__(self, state):
        """Unpickling and ``copy``: the saved attributes, a write like any other."""
        _mutated()
        self.__dict__.update(state)

    def __getattr__(self, name):
        d = self.__dict__
        parameters = d.get("_parameters")  # the most frequent lookup (self.weight) first
        if parameters is not None and name in parameters:
            return parameters[name]
        for registry in ("_buffers", "_modules"):
            if registry in d and name in d[registry]:
                return d[registry][name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name):
        _mutated()
        d = self.__dict__
        for registry in ("_parameters", "_buffers", "_modules"):
            if registry in d and name in d[registry]:
                del d[registry][name]
                d["_non_persistent_buffers_set"].discard(name)
                return
        object.__delattr__(self, name)

    def __dir__(self):
        keys = set(super().__dir__())
        for registry in ("_parameters", "_buffers", "_modules"):
            keys.update(self.__dict__.get(registry, {}))
        return sorted(keys)

    # -- traversal ---------------------------------------------------------------------
    def named_modules(self, memo=None, prefix="", remove_duplicate=True):
        """Yield ``(name, module)`` for this module and every descendant, depth first.

        A module reachable by several paths is yielded once (first path) unless
        ``remove_duplicate=False``.  Written with an explicit stack: deep nesting is fine.
        """
        if memo is None:
            memo = set()
        stack = [(prefix, self)]
        while stack:
            name, module = stack.pop()
            if remove_duplicate:
                if id(module) in memo:
                    continue
                memo.add(id(module))
            yield name, module
            children = [
                (name + ("." if name else "") + k, m)
                for k, m in module._modules.items()
                if m is not None
            ]
            stack.extend(reversed(children))

    def modules(self):
        for _, m in self.named_modules():
            yield m

    def named_children(self):
        """Yield ``(name, child)`` for the direct submodules (each module once)."""
        seen = set()
        for name, m in self._modules.items():
            if m is not None and id(m) not in seen:
                seen.add(id(m))
                yield name, m

    def children(self):
        for _, m in self.named_children():
            yield m

    def _named_members(self, registry, prefix, recurse, remove_duplicate):
        seen = set()
        modules = (
            self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate)
            if recurse
            else [(prefix, self)]
        )
        for module_prefix, module in modules:
            for name, value in module.__dict__[registry].items():
                if value is None:
                    continue
                if remove_duplicate:
                    if id(value) in seen:
                        continue
                    seen.add(id(value))
                yield module_prefix + ("." if module_prefix else "") + name, value

    def named_parameters(self, prefix="", recurse=True, remove_duplicate=True):
        """Yield ``(dotted_name, Parameter)``; a shared Parameter appears once (first name)."""
        yield from self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse=True):
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix="", recurse=True, remove_duplicate=True):
        """Yield ``(dotted_name, buffer)`` for every buffer, persistent or not."""
        yield from self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse=True):
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    def get_submodule(self, target):
        """The submodule at dotted path ``target`` ('' is this module)."""
        module = self
        if target == "":
            return module
        for part in target.split("."):
            if part not in module._modules or module._modules[part] is None:
                raise AttributeError(f"{module._get_name()} has no attribute `{part}`")
            module = module._modules[part]
        return module

    def get_parameter(self, target):
        module_path, _, name = target.rpartition(".")
        module = self.get_submodule(module_path)
        if name not in module._parameters:
            raise AttributeError(f"{module._get_name()} has no parameter `{name}`")
        return module._parameters[name]

    # -- modes and maintenance ---------------------------------------------------------
    def train(self, mode=True):
        """Set training mode (``mode=True``) or evaluation mode on this module and all below."""
        if not isinstance(mode, bool):
            raise ValueError("training mode is expected to be boolean")
        _mutated()
        for m in self.modules():
            m.__dict__["training"] = mode
        return self

    def eval(self):
        """Evaluation mode: Dropout is the identity, BatchNorm uses its running statistics."""
        return self.train(False)

    def requires_grad_(self, requires_grad=True):
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    @effect
    def zero_grad(self, set_to_none=True):
        """Reset the gradients of all parameters: to None (default) or to zeros in place."""
        for p in self.parameters():
            if p.grad is None:
                continue
            if set_to_none:
                p.grad = None
            else:
                g = p.grad
                if g.grad_fn is not None or not g._array.flags.writeable:
                    p.grad = Tensor._make(np.zeros_like(g._array))
                else:
                    g._array[...] = 0

    def apply(self, fn):
        """Call ``fn(module)`` on every submodule (children first), then on this one."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    def to(self, *args, dtype=None, **kwargs):
        """Cast floating-point parameters and buffers to ``dtype`` in place.

        Accepts ``to(dtype)``, ``to(dtype=...)`` and the CPU as a device (``'cpu'``,
        ``tg.device('cpu')``; other devices raise).  The Parameter objects stay the same
        (optimizers keep working); their gradients are cast too.
        """
        device = kwargs.pop("device", None)
        if kwargs:
            raise TypeError(f"to() got unexpected keyword arguments {sorted(kwargs)}")
        try:
            dtype = _to_dtype_arg(args, dtype, device)
        except TypeError as e:
            raise TypeError(f"to(): expected a dtype or 'cpu' ({e})") from None
        if dtype is None:
            return self
        if not np.issubdtype(dtype, np.floating):
            raise DtypeError(
                f"nn.Module.to only accepts floating point dtypes, but got desired dtype={dtype}"
            )
        for m in self.modules():
            for registry in ("_parameters", "_buffers"):
                for t in m.__dict__[registry].values():
                    if t is not None and np.issubdtype(t.dtype, np.floating):
                        t._array = t._array.astype(dtype)
                        if t.grad is not None:
                            t.grad = Tensor._make(t.grad._array.astype(dtype))
        return self

    def float(self):
        return self.to(np.float32)

    def double(self):
        return self.to(np.float64)

    # -- state dict --------------------------------------------------------------------
    def _state_items(self):
        """``(key, tensor)`` for every parameter and persistent buffer, as in state_dict."""
        stack = [("", self)]
        while stack:
            prefix, module = stack.pop()
            for name, p in module._parameters.items():
                if p is not None:
                    yield prefix + name, p
            for name, b in module._buffers.items():
                if b is not None and name not in module._non_persistent_buffers_set:
                    yield prefix + name, b
            children = [(prefix + k + ".", m) for k, m in module._modules.items() if m is not None]
            stack.extend(reversed(children))

    def state_dict(self, destination=None, prefix="", keep_vars=False):
        """An OrderedDict of every parameter and persistent buffer by dotted name.

        Values are detached Tensors sharing the module's arrays (``keep_vars=True`` gives
        the Parameters themselves).  A Parameter shared by two submodules appears under
        both names, as in PyTorch.
        """
        if destination is None:
            destination = OrderedDict()
        for key, t in self._state_items():
            destination[prefix + key] = t if keep_vars else t.detach()
        return destination

    def load_state_dict(self, state_dict, strict=True, assign=False):
        """Copy values from ``state_dict`` (Tensors or numpy arrays) into this module.

        Every key and shape is checked before anything is written: missing keys,
        unexpected keys (only errors when ``strict``) and shape mismatches (always errors)
        are all reported in one ``RuntimeError`` and the module is left unchanged.  Values
        are copied into the existing arrays, cast to their dtypes.  Returns
        ``(missing_keys, unexpected_keys)``.
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(
                f"Expected state_dict to be dict-like, got {type(state_dict).__name__}."
            )
        if assign:
            raise NotImplementedError("load_state_dict(assign=True) is not supported")
        own = OrderedDict(self._state_items())
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        errors, staged = [], []
        for key, target in own.items():
            if key not in state_dict:
                continue
            value = state_dict[key]
            try:
                array = value._array if isinstance(value, Tensor) else np.asarray(value)
                if array.dtype == object or array.dtype.kind in "USV":
                    raise TypeError(f"expected numbers, got dtype {array.dtype}")
            except Exception as e:  # noqa: BLE001 - reported with the key below
                errors.append(
                    f'While copying the parameter named "{key}", an exception occurred: {e}.'
                )
                continue
            if array.shape != target.shape:
                errors.append(
                    f"size mismatch for {key}: copying a param with shape "
                    f"{tuple(array.shape)} from checkpoint, the shape in current "
                    f"model is {tuple(target.shape)}."
                )
                continue
            staged.append((target, array))
        if strict:
            if unexpected:
                errors.insert(
                    0,
                    "Unexpected key(s) in state_dict: "
                    + ", ".join(f'"{k}"' for k in unexpected)
                    + ". ",
                )
            if missing:
                errors.insert(
                    0,
                    "Missing key(s) in state_dict: " + ", ".join(f'"{k}"' for k in missing) + ". ",
                )
        if errors:
            raise RuntimeError(
                f"Error(s) in loading state_dict for {self._get_name()}:\n\t" + "\n\t".join(errors)
            )
        converted = [(t, np.asarray(a, dtype=t.dtype)) for t, a in staged]
        for target, array in converted:
            if target._array.flags.writeable:
                target._array[...] = array
            else:
                target._array = array.copy()
        return _IncompatibleKeys(missing, unexpected)

    # -- hooks -------------------------------------------------------------------------
    def _add_hook(self, registry, hook, prepend):
        if not callable(hook):
            raise TypeError(f"hook must be callable, got {type(hook).__name__}")
        hooks = self.__dict__[registry]
        handle = RemovableHandle(hooks)
        hooks[handle.id] = hook
        if prepend:
            hooks.move_to_end(handle.id, last=False)
        return handle

    def register_forward_pre_hook(self, hook, *, prepend=False):
        """``hook(module, args)`` runs before ``forward``; it may return new args.

        A returned value that is not a tuple is wrapped into a 1-tuple.
        """
        return self._add_hook("_forward_pre_hooks", hook, prepend)

    def register_forward_hook(self, hook, *, prepend=False):
        """``hook(module, args, output)`` runs after ``forward``; it may return a new output."""
        return self._add_hook("_forward_hooks", hook, prepend)

    def register_full_backward_hook(self, hook, prepend=False):
        """``hook(module, grad_input, grad_output)`` runs when the input gradients are known.

        ``grad_output`` holds one entry per Tensor the module returned (a Tensor alone or
        the Tensors of a returned tuple/list): the gradient of the loss with respect to
        that output, or None if backward did not reach it.

        ``grad_input`` holds one entry per positional Tensor argument of ``forward``
        (other arguments are skipped): the gradient of the loss with respect to that
        input *through this module only* (not through other uses of the same tensor),
        shaped like the input; None for an input that does not require grad or that
        backward did not reach.  The gradients of the module's parameters are not in it.

        The hook runs once per backward pass through the call, after all of grad_input is
        computed.  It may return a tuple of the same length to replace grad_input (None
        entries count as zeros); the replacement is what flows on to the inputs.  When no
        input requires grad, the hook runs as soon as grad_output is known, with
        grad_input all None.
        """
        return self._add_hook("_backward_hooks", hook, prepend)

    # -- calling -----------------------------------------------------------------------
    def __call__(self, *args, **kwargs):
        d = self.__dict__
        if _state.tape is not None:  # tg.compile is recording: guard training mode and hooks
            _state.tape.module_call(self)
        if not (d.get("_forward_pre_hooks", True) or d["_forward_hooks"] or d["_backward_hooks"]):
            return self.forward(*args, **kwargs)  # no hooks: nothing else to do
        for hook in tuple(self._forward_pre_hooks.values()):
            new = hook(self, args)
            if new is not None:
                args = new if isinstance(new, tuple) else (new,)
        state = None
        if self._backward_hooks and is_grad_enabled():
            state = _BackwardHookState(self, tuple(self._backward_hooks.values()))
            args = state.setup_inputs(args)
        result = self.forward(*args, **kwargs)
        for hook in tuple(self._forward_hooks.values()):
            new = hook(self, args, result)
            if new is not None:
                result = new
        if state is not None:
            result = state.setup_outputs(result)
        return result

    # -- printing ----------------------------------------------------------------------
    def _get_name(self):
        return type(self).__name__

    def extra_repr(self):
        """The text between the parentheses of this module's repr (override in layers)."""
        return ""

    def __repr__(self):
        extra = self.extra_repr()
        extra_lines = extra.split("\n") if extra else []
        child_lines = [f"({key}): " + _addindent(repr(m), 2) for key, m in self._modules.items()]
        lines = extra_lines + child_lines
        main = self._get_name() + "("
        if lines:
            if len(extra_lines) == 1 and not child_lines:
                main += extra_lines[0]
            else:
                main += "\n  " + "\n  ".join(lines) + "\n"
        return main + ")"
