"""Attention and feed-forward layers shared by the LegoBlock and its raw-input encoder.

Both are pre-normalised (LayerNorm inside the module) and return the update only; the caller adds
the residual. Attention uses :func:`torch.nn.functional.scaled_dot_product_attention` with a
boolean key mask (True = real token), so padded tokens never receive weight.

When the context has few tokens (an omics block's handful of tokens against a 64-row latent),
:class:`Attention` computes the same maths in "absorbed" form: the query and output projections
are folded into the keys and values (``q_h k_h^T = x (W_q,h^T k_h^T)`` and
``sum_h P_h v_h W_o,h = P (v W_o)``), which skips the two (rows x heads*dim_head) projections of
the latent. It is chosen per call by counting multiply-adds, so results agree with the plain form
to rounding error.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def check_mask(mask: torch.Tensor | None, b: int, n: int, *, what: str) -> torch.Tensor | None:
    """Validate a token mask of shape (b, n) with at least one real token per row.

    Parameters
    ----------
    mask
        Boolean tensor, True = real token, or None (every token real).
    b, n
        Expected batch size and number of tokens.
    what
        Name of the input, used in error messages.

    Returns
    -------
    The mask as a bool tensor, or None.
    """
    if mask is None:
        return None
    if mask.shape != (b, n):
        raise ValueError(f"{what}: mask has shape {tuple(mask.shape)}, expected ({b}, {n})")
    mask = mask.bool()
    empty = ~mask.any(dim=1)  # (b,)
    if bool(empty.any()):
        rows = empty.nonzero().flatten().tolist()
        raise ValueError(
            f"{what}: batch rows {rows[:5]} have no real token (mask all False); "
            "drop patients without this modality before calling the block"
        )
    return mask


class Attention(nn.Module):
    """Multi-head attention with pre-LayerNorm: queries from ``x``, keys/values from ``context``.

    Parameters
    ----------
    query_dim
        Width of the query tokens.
    context_dim
        Width of the context tokens; None = self-attention (context is ``x``, one shared norm).
    heads, dim_head
        Number of heads and width per head.
    dropout
        Dropout on attention weights (training only) and on the output.
    """

    def __init__(
        self,
        query_dim: int,
        context_dim: int | None = None,
        *,
        heads: int = 4,
        dim_head: int = 16,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.self_attention = context_dim is None
        context_dim = query_dim if context_dim is None else context_dim
        inner = heads * dim_head
        self.heads, self.dim_head, self.dropout = heads, dim_head, dropout
        self.norm_q = nn.LayerNorm(query_dim)
        self.norm_c = None if self.self_attention else nn.LayerNorm(context_dim)
        self.to_q = nn.Linear(query_dim, inner, bias=False)
        self.to_kv = nn.Linear(context_dim, 2 * inner, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner, query_dim), nn.Dropout(dropout))

    def _split(self, t: torch.Tensor) -> torch.Tensor:
        return t.unflatten(-1, (self.heads, self.dim_head)).transpose(1, 2)  # (b, h, n, dh)

    def context_kv(self, context: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values, each (b, n, h, dh), of a cross-attention context (b, n, context_dim).

        They depend on the context alone: a caller attending with the same weights to the same
        context several times (weights tied across steps) computes them once and passes ``kv``.
        """
        if self.self_attention:
            raise ValueError("context_kv is for cross-attention")
        cn = self.norm_c(context)  # (b, n, context_dim)
        k, v = self.to_kv(cn).unflatten(-1, (2, self.heads, self.dim_head)).unbind(-3)
        return k, v  # (b, n, h, dh) each

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
        *,
        kv: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Attention update for ``x`` (b, q, query_dim); ``mask`` (b, n) masks context tokens.

        ``kv``: the context's keys and values from :meth:`context_kv` (then ``context`` is not
        read).
        """
        xn = self.norm_q(x)  # (b, q, query_dim)
        if kv is None:
            if self.self_attention:
                kv = self.to_kv(xn).unflatten(-1, (2, self.heads, self.dim_head)).unbind(-3)
            elif context is None:
                raise ValueError("cross-attention needs a context")
            else:
                kv = self.context_kv(context)
        k, v = kv  # (b, n, h, dh) each
        if self._absorbed_is_cheaper(xn.shape[-2], k.shape[1], xn.shape[-1]):
            return self._absorbed(xn, k, v, mask)
        q = self._split(self.to_q(xn))  # (b, h, q, dh)
        k, v = k.transpose(1, 2), v.transpose(1, 2)  # (b, h, n, dh)
        attn_mask = None if mask is None else mask[:, None, None, :]  # (b, 1, 1, n)
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=self.dropout if self.training else 0.0
        )  # (b, h, q, dh)
        return self.to_out(out.transpose(1, 2).flatten(2))  # (b, q, query_dim)

    def _absorbed_is_cheaper(self, n_q: int, n_kv: int, query_dim: int) -> bool:
        """Multiply-adds per batch row: absorbed form well below the plain one."""
        h, dh = self.heads, self.dim_head
        plain = 2 * n_q * query_dim * h * dh + 2 * h * n_q * n_kv * dh
        absorbed = 2 * h * n_kv * dh * query_dim + 2 * n_q * query_dim * h * n_kv
        return 2 * absorbed < plain

    def _absorbed(
        self, xn: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None
    ) -> torch.Tensor:
        """Same result as the plain form, projections folded into keys and values (b, n, h, dh)."""
        h, dh, n = self.heads, self.dim_head, k.shape[1]
        w_q = self.to_q.weight.view(h, dh, -1)  # (h, dh, query_dim)
        out_linear = self.to_out[0]
        w_o = out_linear.weight.view(-1, h, dh)  # (query_dim, h, dh)
        # token-major (n, h) layout: the softmax then runs over a non-last axis, which CPU
        # kernels do much faster than over a short last axis
        keys = torch.einsum("bnhe,hed->bdnh", k, w_q * dh**-0.5).flatten(2)  # (b, d, n h)
        values = torch.einsum("bnhe,dhe->bnhd", v, w_o).flatten(1, 2)  # (b, n h, d)
        scores = torch.matmul(xn, keys).unflatten(-1, (n, h))  # (b, q, n, h)
        if mask is not None:
            scores = scores.masked_fill(~mask[:, None, :, None], float("-inf"))
        weights = F.dropout(scores.softmax(dim=-2), self.dropout, self.training)  # (b, q, n, h)
        out = torch.matmul(weights.flatten(2), values) + out_linear.bias  # (b, q, query_dim)
        return self.to_out[1](out)  # (b, q, query_dim)


class FeedForward(nn.Module):
    """Pre-LayerNorm feed-forward with a SELU-gated GLU of ``mult`` x width (as the reference)."""

    def __init__(self, dim: int, *, mult: int = 4, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.proj_in = nn.Linear(dim, 2 * mult * dim)
        self.proj_out = nn.Sequential(nn.Dropout(dropout), nn.Linear(mult * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Update for ``x`` (..., dim)."""
        a, gate = self.proj_in(self.norm(x)).chunk(2, dim=-1)  # (..., mult * dim) each
        return self.proj_out(a * F.selu(gate))
