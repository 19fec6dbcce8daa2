"""``tinygrad_init.nn.init``: the same initializers as ``tinygrad_init.init``."""

from ..init import *  # noqa: F403
from ..init import __all__  # noqa: F401
