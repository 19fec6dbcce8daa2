"""Transformer encoder: ``TransformerEncoderLayer`` and ``TransformerEncoder`` (PyTorch's
names, parameter names and semantics)."""

from __future__ import annotations

import copy

from ...tensor import Tensor
from ._utils import check_positive_int
from .activation import GELU, ReLU
from .attention import MultiheadAttention
from .containers import ModuleList
from .dropout import Dropout
from .linear import Linear
from .module import Module
from .normalization import LayerNorm

__all__ = ["TransformerEncoderLayer", "TransformerEncoder"]

_ACTIVATIONS = {"relu": ReLU, "gelu": GELU}


class TransformerEncoderLayer(Module):
    """Self-attention and a feed-forward network, each a residual branch (Vaswani et al.
    2017; ``torch.nn.TransformerEncoderLayer``)::

        post-LN (norm_first=False):  x = norm1(x + sa(x));         x = norm2(x + ff(x))
        pre-LN  (norm_first=True):   x = x + sa(norm1(x));         x = x + ff(norm2(x))

        sa(x) = dropout1(self_attn(x, x, x)),  ff(x) = dropout2(linear2(dropout(act(linear1(x)))))

    Parameter names are PyTorch's (``self_attn.in_proj_weight``, ``linear1.weight``,
    ``norm1.weight`` ...), each layer with its default init.  ``activation``: 'relu',
    'gelu', or a callable / Module.  Inputs (S, N, E), or (N, S, E) with
    ``batch_first=True``, or unbatched (S, E).  ``forward(src, src_mask=None,
    src_key_padding_mask=None, is_causal=False)`` with MultiheadAttention's mask rules.
    Post-LN puts a LayerNorm on the residual stream itself, pre-LN keeps the stream an
    identity path (Xiong et al. 2020, "On layer normalization in the transformer
    architecture").  ``residual_branches()`` names ``[self_attn]`` and ``[linear1,
    linear2]`` for the residual-era inits.
    """

    def __init__(
        self,
        d_model,
        nhead,
        dim_feedforward=2048,
        dropout=0.1,
        activation="relu",
        layer_norm_eps=1e-5,
        batch_first=False,
        norm_first=False,
        bias=True,
        dtype=None,
        *,
        generator=None,
    ):
        super().__init__()
        name = "TransformerEncoderLayer"
        d_model = check_positive_int(d_model, "d_model", name)
        dim_feedforward = check_positive_int(dim_feedforward, "dim_feedforward", name)
        if isinstance(activation, str):
            if activation not in _ACTIVATIONS:
                raise RuntimeError(f"activation should be relu/gelu, not {activation}")
            activation = _ACTIVATIONS[activation]()
        elif not callable(activation):
            raise TypeError(
                f"{name}: activation must be 'relu', 'gelu' or a callable, got {activation!r}"
            )
        kw = {"dtype": dtype}
        self.self_attn = MultiheadAttention(
            d_model,
            nhead,
            dropout=dropout,
            bias=bias,
            batch_first=batch_first,
            generator=generator,
            **kw,
        )
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, generator=generator, **kw)
        self.dropout = Dropout(dropout, generator=generator)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, generator=generator, **kw)
        self.norm_first = bool(norm_first)
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **kw)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias, **kw)
        self.dropout1 = Dropout(dropout, generator=generator)
        self.dropout2 = Dropout(dropout, generator=generator)
        self.activation = activation
        self.batch_first = bool(batch_first)

    def residual_branches(self):
        return [[self.self_attn], [self.linear1, self.linear2]]

    def _sa_block(self, x, attn_mask, key_padding_mask, is_causal):
        x = self.self_attn(
            x,
            x,
            x,
            attn_mask=attn_mask,
            key_padding_mask=key_padding_mask,
            need_weights=False,
            is_causal=is_causal,
        )[0]
        return self.dropout1(x)

    def _ff_block(self, x):
        return self.dropout2(self.linear2(self.dropout(self.activation(self.linear1(x)))))

    def forward(self, src, src_mask=None, src_key_padding_mask=None, is_causal=False):
        if not isinstance(src, Tensor):
            raise TypeError(
                f"{self._get_name()}: expected a Tensor input, got {type(src).__name__}"
            )
        x = src
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), src_mask, src_key_padding_mask, is_causal)
            x = x + self._ff_block(self.norm2(x))
        else:
            x = self.norm1(x + self._sa_block(x, src_mask, src_key_padding_mask, is_causal))
            x = self.norm2(x + self._ff_block(x))
        return x


class TransformerEncoder(Module):
    """``num_layers`` copies of ``encoder_layer`` applied in turn, then ``norm`` if given
    (``torch.nn.TransformerEncoder``; the copies start with the same weights, as PyTorch's
    deep copies do).  Parameter names ``layers.0.self_attn.in_proj_weight`` ... and
    ``norm.weight``.  ``forward(src, mask=None, src_key_padding_mask=None,
    is_causal=None)``; ``enable_nested_tensor`` and ``mask_check`` are accepted and have
    no effect (there are no nested tensors here).
    """

    def __init__(
        self, encoder_layer, num_layers, norm=None, enable_nested_tensor=True, mask_check=True
    ):
        super().__init__()
        if not isinstance(encoder_layer, Module):
            raise TypeError(
                f"TransformerEncoder: encoder_layer must be a Module, got "
                f"{type(encoder_layer).__name__}"
            )
        num_layers = check_positive_int(num_layers, "num_layers", "TransformerEncoder")
        self.layers = ModuleList([copy.deepcopy(encoder_layer) for _ in range(num_layers)])
        self.num_layers = num_layers
        self.norm = norm
        self.enable_nested_tensor, self.mask_check = enable_nested_tensor, mask_check

    def forward(self, src, mask=None, src_key_padding_mask=None, is_causal=None):
        out = src
        causal = bool(is_causal)
        for layer in self.layers:
            out = layer(
                out, src_mask=mask, src_key_padding_mask=src_key_padding_mask, is_causal=causal
            )
        return out if self.norm is None else self.norm(out)
