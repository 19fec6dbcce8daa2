"""Fully connected layers: ``Linear``, ``Identity``, ``Flatten``."""

from __future__ import annotations

from functools import partial

import numpy as np

from ... import functional as F
from ... import init as _init
from ...tensor import Tensor
from ._utils import check_positive_int, float_dtype, initialize, shape_error
from .module import Module, Parameter

__all__ = ["Linear", "LazyLinear", "Identity", "Flatten"]


class Identity(Module):
    """Returns its input unchanged; constructor arguments are accepted and ignored."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, input):
        return input


class Linear(Module):
    """y = x W^T + b, with W of shape (out_features, in_features) (``torch.nn.Linear``).

    Default initialization: every entry of W and b is drawn from
    ``U(-1/sqrt(in_features), 1/sqrt(in_features))``.  This is exactly what PyTorch's
    ``kaiming_uniform_(W, a=sqrt(5))`` amounts to (gain^2 = 2 / (1 + 5) = 1/3, bound =
    sqrt(3) * sqrt(1/3) / sqrt(fan_in)), written plainly.

    ``weight_init`` / ``bias_init``: an initializer ``fn(tensor, generator=None)`` or a
    registry name of ``tinygrad_init.init`` (``'kaiming_normal'``, ``'zeros'`` ...) used
    instead of the default; ``generator`` (a ``np.random.Generator``) drives the draws
    (the default generator, seeded by ``tg.manual_seed``, when None).
    """

    def __init__(
        self,
        in_features,
        out_features,
        bias=True,
        dtype=None,
        *,
        weight_init=None,
        bias_init=None,
        generator=None,
    ):
        super().__init__()
        self.in_features = check_positive_int(in_features, "in_features", "Linear")
        self.out_features = check_positive_int(out_features, "out_features", "Linear")
        dtype = float_dtype(dtype, "Linear")
        self.weight_init, self.bias_init, self.generator = weight_init, bias_init, generator
        self.weight = Parameter(np.empty((self.out_features, self.in_features), dtype))
        if bias:
            self.bias = Parameter(np.empty((self.out_features,), dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        """Draw the weight and bias again (the default or the given initializers)."""
        initialize(self.weight, self.weight_init, _init.default_uniform_, self.generator)
        initialize(
            self.bias,
            self.bias_init,
            partial(_init.default_uniform_, fan_in=self.in_features),
            self.generator,
        )

    def forward(self, input):
        if not isinstance(input, Tensor):
            raise TypeError(
                f"{self._get_name()}: expected a Tensor input, got {type(input).__name__}"
            )
        shape = input._array.shape
        if not shape or shape[-1] != self.in_features:
            raise shape_error(
                self,
                f"input with last dimension {self.in_features}",
                input.shape,
                f"{self._get_name()}(in_features="
                f"{self.in_features}, out_features={self.out_features})",
            )
        try:  # the registry that self.weight and self.bias read, without __getattr__'s detour
            params = self._parameters
            weight, bias = params["weight"], params["bias"]
        except KeyError:  # one was deleted: the AttributeError that self.weight raises
            weight, bias = self.weight, self.bias
        return F.linear(input, weight, bias)

    def extra_repr(self):
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}"
        )


class LazyLinear(Linear):
    """A ``Linear`` whose ``in_features`` is read from its first input (``torch.nn.LazyLinear``).

    Until then ``weight`` is an empty Parameter (shape (0,)) and ``in_features`` is 0; the
    first forward gives the same Parameter objects their shapes and draws them as
    ``Linear`` does, so an optimizer made before that call updates them.  Loading a state
    dict into an unmaterialized layer is not supported (run one forward first).
    """

    def __init__(self, out_features, bias=True, dtype=None, **kwargs):
        Module.__init__(self)
        self.in_features = 0
        self.out_features = check_positive_int(out_features, "out_features", "LazyLinear")
        self.weight_init = kwargs.pop("weight_init", None)
        self.bias_init = kwargs.pop("bias_init", None)
        self.generator = kwargs.pop("generator", None)
        if kwargs:
            raise TypeError(f"LazyLinear got unexpected keyword arguments {sorted(kwargs)}")
        self._dtype = float_dtype(dtype, "LazyLinear")
        self.weight = Parameter(np.empty((0,), self._dtype))
        if bias:
            self.bias = Parameter(np.empty((0,), self._dtype))
        else:
            self.register_parameter("bias", None)

    def has_uninitialized_params(self):
        """True until the first forward has fixed ``in_features``."""
        return self.in_features == 0

    def reset_parameters(self):
        if not self.has_uninitialized_params():
            super().reset_parameters()

    def forward(self, input):
        if self.has_uninitialized_params():
            if not isinstance(input, Tensor) or input.ndim == 0:
                raise TypeError("LazyLinear: expected a Tensor input with at least one dim")
            self.in_features = check_positive_int(input.shape[-1], "in_features", "LazyLinear")
            self.weight._array = np.empty((self.out_features, self.in_features), self._dtype)
            if self.bias is not None:
                self.bias._array = np.empty((self.out_features,), self._dtype)
            self.reset_parameters()
        return super().forward(input)


class Flatten(Module):
    """Flattens dims ``start_dim..end_dim`` into one: (N, C, H, W) -> (N, C*H*W) by default."""

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, input):
        return input.flatten(self.start_dim, self.end_dim)

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"
