"""Neural-network building blocks (``torch.nn``): Module, Parameter, containers, layers."""

from .modules import *  # noqa: F403
from .modules import __all__ as _modules_all

__all__ = list(_modules_all)
