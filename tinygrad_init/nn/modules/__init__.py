"""The layers of ``tinygrad_init.nn``, one file per family."""

from .activation import (
    ELU,
    GELU,
    SELU,
    LeakyReLU,
    LogSoftmax,
    ReLU,
    Sigmoid,
    SiLU,
    Softmax,
    Softplus,
    Tanh,
)
from .attention import MultiheadAttention
from .containers import ModuleDict, ModuleList, Sequential
from .conv import AvgPool2d, Conv2d, MaxPool2d
from .dropout import Dropout
from .linear import Flatten, Identity, LazyLinear, Linear
from .loss import (
    BCELoss,
    BCEWithLogitsLoss,
    CrossEntropyLoss,
    HuberLoss,
    L1Loss,
    MSELoss,
    NLLLoss,
)
from .module import Module, Parameter, RemovableHandle
from .normalization import BatchNorm1d, BatchNorm2d, GroupNorm, LayerNorm
from .residual import Residual, ResidualGate
from .sparse import Embedding
from .transformer import TransformerEncoder, TransformerEncoderLayer

__all__ = [
    "Module",
    "Parameter",
    "RemovableHandle",
    "Sequential",
    "ModuleList",
    "ModuleDict",
    "Linear",
    "LazyLinear",
    "Identity",
    "Flatten",
    "Conv2d",
    "MaxPool2d",
    "AvgPool2d",
    "Dropout",
    "BatchNorm1d",
    "BatchNorm2d",
    "LayerNorm",
    "GroupNorm",
    "Embedding",
    "MultiheadAttention",
    "Residual",
    "ResidualGate",
    "TransformerEncoderLayer",
    "TransformerEncoder",
    "ReLU",
    "LeakyReLU",
    "Sigmoid",
    "Tanh",
    "GELU",
    "SiLU",
    "ELU",
    "SELU",
    "Softplus",
    "Softmax",
    "LogSoftmax",
    "MSELoss",
    "L1Loss",
    "HuberLoss",
    "CrossEntropyLoss",
    "NLLLoss",
    "BCELoss",
    "BCEWithLogitsLoss",
]
