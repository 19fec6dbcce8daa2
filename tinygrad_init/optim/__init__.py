"""Optimizers and learning-rate schedules (``torch.optim``).

Every optimizer updates each parameter's storage in place from ``p.grad``, outside the
autograd graph; the docstring of each class states its update rule.
"""

from . import lr_scheduler
from .adam import Adam, AdamW
from .optimizer import Optimizer
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "lr_scheduler"]
