"""Neural-network building blocks (``torch.nn``): Module, Parameter, containers, layers,
activations and losses.  ``nn.functional`` and ``nn.init`` are ``tinygrad_init.functional``
and ``tinygrad_init.init`` under their PyTorch paths; ``nn.utils`` holds gradient
clipping."""

from . import functional, init, utils
from .modules import *  # noqa: F403
from .modules import __all__ as _modules_all

__all__ = list(_modules_all) + ["functional", "init", "utils"]
