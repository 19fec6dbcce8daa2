"""Devices: everything runs on the CPU (numpy); other devices get a clear error.

``tg.device('cpu')``, ``device=`` on creation functions, ``t.to('cpu')``, ``t.cpu()`` and
``t.device`` behave as in PyTorch.  The availability checks that real scripts run before
choosing a device (``torch.cuda.is_available()``, ``torch.backends.mps.is_available()``,
``torch.accelerator.is_available()``) answer False, so such a script picks ``'cpu'``.
Asking for any other device raises ``RuntimeError`` naming it.
"""

from __future__ import annotations

from types import SimpleNamespace

__all__ = ["device", "check_device", "cuda", "backends", "accelerator"]


class device:
    """A device name, as ``torch.device``: only ``'cpu'`` (optionally ``'cpu:0'``) exists.

    >>> tg.device('cpu')
    device(type='cpu')
    """

    __slots__ = ("type", "index")

    def __init__(self, type, index=None):
        if isinstance(type, device):
            type, index = type.type, type.index
        if not isinstance(type, str):
            raise TypeError(f"device(): expected a string such as 'cpu', got {type!r}")
        name, _, number = type.partition(":")
        if number:
            if index is not None:
                raise RuntimeError(f"device(): type {type!r} already names an index")
            if not number.isdigit():
                raise RuntimeError(f"Invalid device string: {type!r}")
            index = int(number)
        if name != "cpu":
            raise RuntimeError(_unavailable(type))
        self.type, self.index = name, index

    def __eq__(self, other):
        if isinstance(other, str):
            try:
                other = device(other)
            except RuntimeError:
                return False
        return isinstance(other, device) and (self.type, self.index) == (other.type, other.index)

    def __hash__(self):
        return hash((self.type, self.index))

    def __str__(self):
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __repr__(self):
        index = "" if self.index is None else f", index={self.index}"
        return f"device(type={self.type!r}{index})"


def _unavailable(name):
    return (
        f"device {name!r} is not available: tinygrad_init computes on the CPU with numpy "
        "only; use device='cpu' (or leave device= out)"
    )


def check_device(value, where):
    """Accept None, ``'cpu'``, ``'cpu:N'`` or ``tg.device('cpu')``; raise for anything else."""
    if value is None or isinstance(value, device):
        return
    if not isinstance(value, str):
        raise TypeError(f"{where}: device must be a string or tg.device, got {value!r}")
    if value.partition(":")[0] != "cpu":
        raise RuntimeError(f"{where}: {_unavailable(value)}")


def _false(*args, **kwargs):
    """No such device here: always False."""
    return False


def _none(*args, **kwargs):
    """No accelerator here: always None."""
    return None


def _zero(*args, **kwargs):
    """No such device here: always 0."""
    return 0


# The availability checks of torch.cuda, torch.backends.mps / cudnn and torch.accelerator.
# Seeding a device that does not exist does nothing, as in torch on a machine without one.
cuda = SimpleNamespace(
    is_available=_false, device_count=_zero, manual_seed=_none, manual_seed_all=_none
)
backends = SimpleNamespace(
    mps=SimpleNamespace(is_available=_false, is_built=_false),
    cuda=SimpleNamespace(is_built=_false),
    cudnn=SimpleNamespace(is_available=_false),
)
accelerator = SimpleNamespace(is_available=_false, current_accelerator=_none, device_count=_zero)
