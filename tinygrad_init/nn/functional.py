"""``tinygrad_init.nn.functional``: the same module as ``tinygrad_init.functional``."""

from ..functional import *  # noqa: F403
from ..functional import __all__  # noqa: F401
