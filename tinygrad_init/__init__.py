"""tinygrad_init: a small autodiff framework on numpy for studying weight
initialization and gradient flow.  Names and semantics follow PyTorch.

The engine needs only numpy; ``tg.viz`` (graphviz) is imported when first used."""

__version__ = "0.1.0"

import sys as _sys

import numpy as _np

from . import (
    autograd,
    data,
    diagnostics,
    func,
    functional,
    init,
    nn,
    optim,
    tensor_functions,
    testing,
    utils,
)
from . import autograd_functional as _autograd_functional
from .autograd import enable_grad, grad, is_grad_enabled, no_grad, set_grad_enabled
from .devices import accelerator, backends, cuda, device
from .gradcheck import GradcheckError, gradcheck, gradcheck_graph, gradgradcheck
from .replay import compile
from .serialization import load, save
from .tensor import (
    DtypeError,
    Generator,
    ShapeError,
    Tensor,
    arange,
    cat,
    default_generator,
    eye,
    full,
    full_like,
    get_default_dtype,
    linspace,
    manual_seed,
    matmul,
    maximum,
    minimum,
    ones,
    ones_like,
    rand,
    randint,
    randn,
    set_default_dtype,
    stack,
    tensor,
    where,
    zeros,
    zeros_like,
)
from .tensor_functions import *  # noqa: E402, F403  (tg.sin, tg.mm, tg.topk, ...)

# tg.autograd.functional, importable under that name as torch.autograd.functional is
autograd.functional = _autograd_functional
_sys.modules[__name__ + ".autograd.functional"] = _autograd_functional


def __getattr__(name):
    # viz imports the graphviz package: load it on first use so the core needs only numpy.
    if name == "viz":
        import importlib

        return importlib.import_module(".viz", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


# dtypes under PyTorch's names: tg.zeros(3, dtype=tg.float64); t.dtype == tg.float32
float16, float32, float64 = _np.dtype(_np.float16), _np.dtype(_np.float32), _np.dtype(_np.float64)
int64, int32, int16 = _np.dtype(_np.int64), _np.dtype(_np.int32), _np.dtype(_np.int16)
int8, uint8, bool = _np.dtype(_np.int8), _np.dtype(_np.uint8), _np.dtype(_np.bool_)
half, float, double = float16, float32, float64
short, int, long = int16, int32, int64

__all__ = [
    "__version__",
    "autograd",
    "compile",
    "enable_grad",
    "grad",
    "is_grad_enabled",
    "no_grad",
    "set_grad_enabled",
    "DtypeError",
    "ShapeError",
    "Tensor",
    "arange",
    "cat",
    "default_generator",
    "eye",
    "full",
    "full_like",
    "get_default_dtype",
    "linspace",
    "manual_seed",
    "matmul",
    "maximum",
    "minimum",
    "ones",
    "ones_like",
    "rand",
    "randint",
    "randn",
    "set_default_dtype",
    "stack",
    "tensor",
    "where",
    "zeros",
    "zeros_like",
    "float16",
    "float32",
    "float64",
    "int64",
    "int32",
    "int16",
    "int8",
    "uint8",
    "bool",
    "half",
    "float",
    "double",
    "short",
    "int",
    "long",
    "Generator",
    "device",
    "cuda",
    "backends",
    "accelerator",
    "tensor_functions",
    "utils",
    *tensor_functions.__all__,
    "data",
    "func",
    "functional",
    "init",
    "nn",
    "optim",
    "testing",
    "diagnostics",
    "viz",  # noqa: F405  (loaded by __getattr__)
    "GradcheckError",
    "gradcheck",
    "gradcheck_graph",
    "gradgradcheck",
    "load",
    "save",
]
