"""Utilities under PyTorch's ``torch.utils`` names: ``tinygrad_init.utils.data``."""

from . import data

__all__ = ["data"]
