"""The layers of ``tinygrad_init.nn``, one file per family."""

from .containers import ModuleDict, ModuleList, Sequential
from .module import Module, Parameter, RemovableHandle

__all__ = ["Module", "Parameter", "RemovableHandle", "Sequential", "ModuleList", "ModuleDict"]
