"""Attention and feed-forward layers shared by the LegoBlock and its raw-input encoder.

Both are pre-normalised (LayerNorm inside the module) and return the update only; the caller adds
the residual. Attention uses :func:`torch.nn.functional.scaled_dot_product_attention` with a
boolean key mask (True = real token), so padded tokens never receive weight.
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

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Attention update for ``x`` (b, q, query_dim); ``mask`` (b, n) masks context tokens."""
        xn = self.norm_q(x)  # (b, q, query_dim)
        if self.self_attention:
            cn = xn
        else:
            if context is None:
                raise ValueError("cross-attention needs a context")
            cn = self.norm_c(context)  # (b, n, context_dim)
        q = self._split(self.to_q(xn))  # (b, h, q, dh)
        k, v = (self._split(t) for t in self.to_kv(cn).chunk(2, dim=-1))  # (b, h, n, dh)
        attn_mask = None if mask is None else mask[:, None, None, :]  # (b, 1, 1, n)
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=self.dropout if self.training else 0.0
        )  # (b, h, q, dh)
        return self.to_out(out.transpose(1, 2).flatten(2))  # (b, q, query_dim)


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
