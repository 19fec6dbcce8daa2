"""Attention: ``MultiheadAttention`` (``torch.nn.MultiheadAttention``'s names and semantics)."""

from __future__ import annotations

import math

import numpy as np

from ... import functional as F
from ... import init as _init
from ...tensor import Tensor
from ._utils import check_positive_int, float_dtype, initialize, shape_error
from .linear import Linear
from .module import Module, Parameter

__all__ = ["MultiheadAttention"]


class MultiheadAttention(Module):
    """Multi-head attention (Vaswani et al. 2017, "Attention is all you need")::

        head_i = softmax(Q W_q,i^T (K W_k,i^T)^T / sqrt(d) + mask) V W_v,i^T,  d = E / H
        out    = concat(head_1, ..., head_H) W_o^T + b_o

    ``torch.nn.MultiheadAttention``: the same parameter names (``in_proj_weight`` (3E, E)
    holding W_q, W_k, W_v stacked, ``in_proj_bias`` (3E,), ``out_proj`` a Linear; with
    ``kdim``/``vdim`` different from ``embed_dim``: ``q_proj_weight``, ``k_proj_weight``,
    ``v_proj_weight``), so state dicts move between the two.  Inputs are (L, N, E), or
    (N, L, E) with ``batch_first=True``, or unbatched (L, E).

    Default initialization, as PyTorch's ``_reset_parameters``: the in-projection weights
    ``xavier_uniform_`` (U(-b, b), b = sqrt(6 / (fan_in + fan_out)), fans of the stacked
    (3E, E) matrix), ``in_proj_bias`` and ``out_proj.bias`` zero, ``out_proj.weight``
    Linear's default U(-1/sqrt(E), 1/sqrt(E)).  ``weight_init`` / ``bias_init`` replace the
    in-projection weight and the two biases' initializers; ``generator`` drives the draws
    and the dropout masks.

    ``forward(query, key, value, key_padding_mask=None, need_weights=True, attn_mask=None,
    average_attn_weights=True, is_causal=False)`` returns ``(output, weights)``.  Bool
    masks are True where attention is *not* allowed (``key_padding_mask`` (N, S) marks
    padded keys; ``attn_mask`` (L, S) or (N * H, L, S)); float masks are added to the
    scores.  ``is_causal`` is a hint that ``attn_mask`` is the causal mask, which must be
    given, as in PyTorch.  ``weights`` (after dropout, as PyTorch returns them) are (N, L,
    S) averaged over heads, or (N, H, L, S) with ``average_attn_weights=False``; None when
    ``need_weights=False``.  A query whose every key is masked gets zero weights and a zero
    attention output (PyTorch gives NaN there when ``need_weights=True``).
    ``add_bias_kv`` and ``add_zero_attn`` are not supported.
    """

    def __init__(
        self,
        embed_dim,
        num_heads,
        dropout=0.0,
        bias=True,
        add_bias_kv=False,
        add_zero_attn=False,
        kdim=None,
        vdim=None,
        batch_first=False,
        dtype=None,
        *,
        weight_init=None,
        bias_init=None,
        generator=None,
    ):
        super().__init__()
        name = "MultiheadAttention"
        self.embed_dim = check_positive_int(embed_dim, "embed_dim", name)
        self.num_heads = check_positive_int(num_heads, "num_heads", name)
        self.kdim = self.embed_dim if kdim is None else check_positive_int(kdim, "kdim", name)
        self.vdim = self.embed_dim if vdim is None else check_positive_int(vdim, "vdim", name)
        if self.embed_dim % self.num_heads:
            raise ValueError(
                f"{name}: embed_dim must be divisible by num_heads, got embed_dim="
                f"{embed_dim} and num_heads={num_heads}"
            )
        if (
            isinstance(dropout, bool)
            or not isinstance(dropout, (int, float))
            or not 0 <= dropout <= 1
        ):
            raise ValueError(f"{name}: dropout must be between 0 and 1, got {dropout!r}")
        if add_bias_kv or add_zero_attn:
            raise NotImplementedError(
                f"{name}: add_bias_kv and add_zero_attn are not supported; build the "
                "extra key/value rows into the inputs instead"
            )
        self.dropout, self.batch_first = float(dropout), bool(batch_first)
        self.head_dim = self.embed_dim // self.num_heads
        self.add_bias_kv, self.add_zero_attn = False, False
        self._qkv_same_embed_dim = self.kdim == self.embed_dim and self.vdim == self.embed_dim
        self.weight_init, self.bias_init, self.generator = weight_init, bias_init, generator
        dtype = float_dtype(dtype, name)
        e = self.embed_dim
        if self._qkv_same_embed_dim:
            self.in_proj_weight = Parameter(np.empty((3 * e, e), dtype))
            for n in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):
                self.register_parameter(n, None)
        else:
            self.q_proj_weight = Parameter(np.empty((e, e), dtype))
            self.k_proj_weight = Parameter(np.empty((e, self.kdim), dtype))
            self.v_proj_weight = Parameter(np.empty((e, self.vdim), dtype))
            self.register_parameter("in_proj_weight", None)
        if bias:
            self.in_proj_bias = Parameter(np.empty((3 * e,), dtype))
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = Linear(e, e, bias=bias, dtype=dtype, generator=generator)
        self.reset_parameters()

    def reset_parameters(self):
        """xavier_uniform_ in-projection weights, zero biases, Linear default out_proj weight."""
        self.out_proj.reset_parameters()
        if self._qkv_same_embed_dim:
            weights = (self.in_proj_weight,)
        else:
            weights = (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight)
        for w in weights:
            initialize(w, self.weight_init, _init.xavier_uniform_, self.generator)
        initialize(self.in_proj_bias, self.bias_init, _init.zeros_, self.generator)
        initialize(self.out_proj.bias, self.bias_init, _init.zeros_, self.generator)

    def _projections(self):
        e = self.embed_dim
        if self._qkv_same_embed_dim:
            w = self.in_proj_weight
            weights = (w[:e], w[e : 2 * e], w[2 * e :])
        else:
            weights = (self.q_proj_weight, self.k_proj_weight, self.v_proj_weight)
        b = self.in_proj_bias
        biases = (None,) * 3 if b is None else (b[:e], b[e : 2 * e], b[2 * e :])
        return weights, biases

    def _check_inputs(self, query, key, value):
        for what, t in (("query", query), ("key", key), ("value", value)):
            if not isinstance(t, Tensor):
                raise TypeError(
                    f"{self._get_name()}: {what} must be a Tensor, got {type(t).__name__}"
                )
        if query.ndim not in (2, 3) or key.ndim != query.ndim or value.ndim != query.ndim:
            raise shape_error(
                self,
                "query, key and value all 3-D (batched) or all 2-D (unbatched), got "
                f"key {tuple(key.shape)} and value {tuple(value.shape)}; query",
                query.shape,
            )
        layout = "(N, L, E)" if self.batch_first else "(L, N, E)"
        for what, t, width in (
            ("query", query, self.embed_dim),
            ("key", key, self.kdim),
            ("value", value, self.vdim),
        ):
            if t.shape[-1] != width:
                raise shape_error(self, f"{what} of shape {layout} with E = {width}", t.shape)
        if key.shape[:-1] != value.shape[:-1]:
            raise shape_error(
                self,
                f"value with the key's shape but the last dim, key {tuple(key.shape)}",
                value.shape,
            )
        batch_axis = 0 if self.batch_first else 1
        if query.ndim == 3 and query.shape[batch_axis] != key.shape[batch_axis]:
            raise shape_error(
                self, f"key with the query's batch size, query {tuple(query.shape)}", key.shape
            )

    def _mask_bias(self, attn_mask, key_padding_mask, n, length, source, dtype):
        """The additive mask for scores of shape (N, H, L, S), or None."""
        h = self.num_heads
        bias = None
        if attn_mask is not None:
            shape = tuple(
                np.shape(attn_mask._array if isinstance(attn_mask, Tensor) else attn_mask)
            )
            if shape == (length, source):
                pass
            elif shape == (n * h, length, source):
                attn_mask = (
                    attn_mask.reshape(n, h, length, source)
                    if isinstance(attn_mask, Tensor)
                    else np.reshape(attn_mask, (n, h, length, source))
                )
            else:
                raise RuntimeError(
                    f"{self._get_name()}: the shape of attn_mask is {shape}, but should be "
                    f"{(length, source)} or {(n * h, length, source)}"
                )
            bias = _additive(attn_mask, (n, h, length, source), dtype)
        if key_padding_mask is not None:
            kpm = key_padding_mask
            shape = tuple(np.shape(kpm._array if isinstance(kpm, Tensor) else kpm))
            if shape != (n, source):
                raise RuntimeError(
                    f"{self._get_name()}: expected key_padding_mask of shape {(n, source)}, "
                    f"got {shape}"
                )
            kpm = (
                kpm.reshape(n, 1, 1, source)
                if isinstance(kpm, Tensor)
                else np.reshape(kpm, (n, 1, 1, source))
            )
            padding = _additive(kpm, (n, h, length, source), dtype)
            bias = padding if bias is None else bias + padding
        return bias

    def forward(
        self,
        query,
        key,
        value,
        key_padding_mask=None,
        need_weights=True,
        attn_mask=None,
        average_attn_weights=True,
        is_causal=False,
    ):
        self._check_inputs(query, key, value)
        if is_causal and attn_mask is None:
            raise RuntimeError(
                "Need attn_mask if specifying the is_causal hint. You may use the "
                "Transformer module method `generate_square_subsequent_mask` to create "
                "this mask."
            )
        batched = query.ndim == 3
        if not batched:
            query, key, value = query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1)
            if key_padding_mask is not None:
                key_padding_mask = _unsqueeze0(key_padding_mask)
        elif self.batch_first:
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        length, n, e = query.shape
        source = key.shape[0]
        h, d = self.num_heads, self.head_dim
        (wq, wk, wv), (bq, bk, bv) = self._projections()

        def heads(x, w, b, rows):  # (rows, N, E_in) -> (N, H, rows, d)
            return F.linear(x, w, b).reshape(rows, n, h, d).permute(1, 2, 0, 3)

        q = heads(query, wq, bq, length)
        k = heads(key, wk, bk, source)
        v = heads(value, wv, bv, source)
        bias = self._mask_bias(attn_mask, key_padding_mask, n, length, source, q.dtype)
        p = self.dropout if self.training else 0.0
        attended, weights = F._attend(q, k, v, bias, p, 1 / math.sqrt(d), self.generator)
        out = self.out_proj(attended.permute(2, 0, 1, 3).reshape(length, n, e))
        if not batched:
            out = out.squeeze(1)
        elif self.batch_first:
            out = out.transpose(0, 1)
        if not need_weights:
            return out, None
        if average_attn_weights:
            weights = weights.mean(1)
        if not batched:
            weights = weights.squeeze(0)
        return out, weights


def _unsqueeze0(mask):
    return mask.unsqueeze(0) if isinstance(mask, Tensor) else np.expand_dims(mask, 0)


def _additive(mask, shape, dtype):
    """MultiheadAttention's masks (bool True = masked, or float added) as an additive bias."""
    return F._attention_bias(mask, False, shape, dtype, "MultiheadAttention")
