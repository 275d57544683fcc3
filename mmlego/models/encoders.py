"""Modality encoders: turn one modality's input into tokens for the LegoBlock to attend to.

Interface (for the built-ins and for user encoders alike)
--------------------------------------------------------
An encoder is an :class:`torch.nn.Module` with

- ``out_dim: int`` -- the width of its tokens, declared by the encoder (never guessed);
- ``forward(x, mask=None) -> (tokens, mask)`` -- ``tokens`` (b, n, out_dim) and ``mask`` (b, n) bool
  (True = real token) or None when every token is real;
- ``config`` -- a JSON-able dict ``{"kind": ..., "in_dim": ..., **kwargs}`` that
  :func:`build_encoder` turns back into the same encoder (needed to save and reload a block).

A user encoder class is made available to configs and checkpoints with::

    @register_block_encoder("my_kind")
    class MyEncoder(nn.Module):
        def __init__(self, in_dim: int, *, width: int = 32): ...

Encoders built with :func:`build_encoder` get ``config`` recorded automatically if their class
does not define it.

Every encoder hands over several tokens: with a single token the cross-attention softmax runs over
one key and every latent row receives the same update.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from mmlego.models.attention import Attention, FeedForward, check_mask
from mmlego.registry import Registry

EncoderOutput = tuple[torch.Tensor, torch.Tensor | None]  # tokens (b, n, d), mask (b, n) | None

#: The block encoders by kind (:class:`mmlego.registry.Registry`, as the patch encoders).
BLOCK_ENCODERS: Registry[type[nn.Module]] = Registry("block encoder")


def register_block_encoder(kind: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator registering an encoder class under ``kind`` for :func:`build_encoder`."""
    return BLOCK_ENCODERS.register(kind)


def build_encoder(kind: str, in_dim: int, **kwargs: Any) -> nn.Module:
    """Build a registered encoder.

    Parameters
    ----------
    kind
        Registered name: 'snn', 'abmil', 'mlp', 'raw' or a user kind.
    in_dim
        Input feature width.
    **kwargs
        Keyword options of the encoder class.
    """
    encoder = BLOCK_ENCODERS[kind](in_dim, **kwargs)
    out_dim = getattr(encoder, "out_dim", None)
    if not isinstance(out_dim, int) or out_dim < 1:
        raise ValueError(f"encoder {kind!r} must declare a positive int `out_dim`, got {out_dim!r}")
    if not hasattr(encoder, "config"):
        encoder.config = {"kind": kind, "in_dim": in_dim, **kwargs}
    return encoder


def _as_table(x: torch.Tensor, mask: torch.Tensor | None, name: str) -> torch.Tensor:
    """A table input (b, d) or (b, 1, d) as (b, d)."""
    if x.dim() == 3 and x.shape[1] == 1:
        x = x[:, 0]
    if x.dim() != 2:
        raise ValueError(f"{name} expects a table (b, d) or (b, 1, d), got shape {tuple(x.shape)}")
    if mask is not None:
        raise ValueError(f"{name} takes one vector per patient: mask must be None")
    return x


def _lecun_normal_(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=1.0 / math.sqrt(m.in_features))
            nn.init.zeros_(m.bias)


class TableTokens(nn.Module):
    """A network from one table row per patient (b, in_dim) to ``n_tokens`` tokens
    (b, n_tokens, token_dim): its last layer, of width ``n_tokens * token_dim``, is split.

    Subclasses set ``kind`` (their registered name) and build the network in :meth:`network`.
    """

    kind: str

    def __init__(
        self, in_dim: int, *, hidden: int, n_tokens: int, token_dim: int, dropout: float
    ) -> None:
        super().__init__()
        self.in_dim, self.hidden, self.n_tokens = in_dim, hidden, n_tokens
        self.token_dim, self.dropout = token_dim, dropout
        self.out_dim = token_dim
        self.net = self.network(in_dim, hidden, n_tokens * token_dim, dropout)

    def network(self, in_dim: int, hidden: int, out: int, dropout: float) -> nn.Module:
        raise NotImplementedError

    @property
    def config(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "in_dim": self.in_dim,
            "hidden": self.hidden,
            "n_tokens": self.n_tokens,
            "token_dim": self.token_dim,
            "dropout": self.dropout,
        }

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> EncoderOutput:
        """Tokens (b, n_tokens, token_dim) from a table ``x`` (b, in_dim)."""
        x = _as_table(x, mask, type(self).__name__)
        return self.net(x).unflatten(-1, (self.n_tokens, self.token_dim)), None


@register_block_encoder("snn")
class SNN(TableTokens):
    """Self-normalising network for omics tables; its embedding is split into ``n_tokens`` tokens.

    Linear -> SELU -> AlphaDropout -> Linear -> SELU -> AlphaDropout, the last layer of width
    ``n_tokens * token_dim`` reshaped to (b, n_tokens, token_dim). LeCun-normal initialisation.
    """

    kind = "snn"

    def __init__(
        self,
        in_dim: int,
        *,
        hidden: int = 64,
        n_tokens: int = 8,
        token_dim: int = 32,
        dropout: float = 0.1,
    ) -> None:
        super().__init__(
            in_dim, hidden=hidden, n_tokens=n_tokens, token_dim=token_dim, dropout=dropout
        )

    def network(self, in_dim: int, hidden: int, out: int, dropout: float) -> nn.Module:
        net = nn.Sequential(
            nn.Linear(in_dim, hidden),
            nn.SELU(),
            nn.AlphaDropout(dropout),
            nn.Linear(hidden, out),
            nn.SELU(),
            nn.AlphaDropout(dropout),
        )
        _lecun_normal_(net)
        return net


@register_block_encoder("mlp")
class MLPEncoder(TableTokens):
    """Two-layer MLP for clinical (or any) tables, its output split into ``n_tokens`` tokens."""

    kind = "mlp"

    def __init__(
        self,
        in_dim: int,
        *,
        hidden: int = 64,
        n_tokens: int = 4,
        token_dim: int = 32,
        dropout: float = 0.0,
    ) -> None:
        super().__init__(
            in_dim, hidden=hidden, n_tokens=n_tokens, token_dim=token_dim, dropout=dropout
        )

    def network(self, in_dim: int, hidden: int, out: int, dropout: float) -> nn.Module:
        return nn.Sequential(
            nn.Linear(in_dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, out)
        )


@register_block_encoder("abmil")
class ABMIL(nn.Module):
    """Gated attention MIL (Ilse et al. 2018) over a padded bag of patch features.

    Tokens handed over: the attention-pooled bag token, with ``mean_token`` the mean of the
    projected real patches, then the projected patches: ``(b, p + n, token_dim)`` with p = 1 or 2
    pooled tokens, the mask extended accordingly. The attention softmax runs over the patch axis
    of each bag, restricted to real patches.
    """

    def __init__(
        self,
        in_dim: int,
        *,
        token_dim: int = 32,
        attn_dim: int = 32,
        dropout: float = 0.1,
        mean_token: bool = True,
    ) -> None:
        super().__init__()
        self.in_dim, self.token_dim, self.attn_dim, self.dropout = (
            in_dim,
            token_dim,
            attn_dim,
            dropout,
        )
        self.mean_token = mean_token
        self.out_dim = token_dim
        self.project = nn.Sequential(nn.Linear(in_dim, token_dim), nn.ReLU(), nn.Dropout(dropout))
        self.attn_v = nn.Sequential(nn.Linear(token_dim, attn_dim), nn.Tanh())
        self.attn_u = nn.Sequential(nn.Linear(token_dim, attn_dim), nn.Sigmoid())
        self.attn_w = nn.Linear(attn_dim, 1, bias=False)  # softmax is shift-invariant

    @property
    def config(self) -> dict[str, Any]:
        return {
            "kind": "abmil",
            "in_dim": self.in_dim,
            "token_dim": self.token_dim,
            "attn_dim": self.attn_dim,
            "dropout": self.dropout,
            "mean_token": self.mean_token,
        }

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> EncoderOutput:
        """Tokens (b, p + n, token_dim) and mask (b, p + n) from a bag ``x`` (b, n, in_dim)."""
        if x.dim() != 3:
            raise ValueError(f"ABMIL expects a bag (b, n, d), got shape {tuple(x.shape)}")
        b, n, _ = x.shape
        mask = check_mask(mask, b, n, what="ABMIL")
        h = self.project(x)  # (b, n, token_dim)
        scores = self.attn_w(self.attn_v(h) * self.attn_u(h)).squeeze(-1)  # (b, n)
        if mask is not None:
            h = h.masked_fill(~mask[..., None], 0.0)
            scores = scores.masked_fill(~mask, float("-inf"))
        a = torch.softmax(scores, dim=1)  # (b, n), over each bag's patches
        pooled = [torch.einsum("bn,bnd->bd", a, h)]  # (b, token_dim)
        if self.mean_token:
            n_real = n if mask is None else mask.sum(dim=1, keepdim=True)  # (b, 1)
            pooled.append(h.sum(dim=1) / n_real)  # (b, token_dim); padding is 0 in h
        tokens = torch.cat([torch.stack(pooled, dim=1), h], dim=1)  # (b, p + n, token_dim)
        if mask is not None:
            mask = torch.cat([mask.new_ones(b, len(pooled)), mask], dim=1)  # (b, p + n)
        return tokens, mask


@register_block_encoder("raw")
class RawEncoder(nn.Module):
    """Encoder of a block without a user encoder: self-attention + feed-forward on raw tokens.

    ``tokens = x + SelfAttn(x)``, then ``tokens + FF(tokens)``; both results are used.
    Accepts (b, n, in_dim) or a table (b, in_dim), treated as one token.
    """

    def __init__(
        self,
        in_dim: int,
        *,
        heads: int = 4,
        dim_head: int = 16,
        ff_mult: int = 4,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.in_dim, self.heads, self.dim_head = in_dim, heads, dim_head
        self.ff_mult, self.dropout = ff_mult, dropout
        self.out_dim = in_dim
        self.attn = Attention(in_dim, heads=heads, dim_head=dim_head, dropout=dropout)
        self.ff = FeedForward(in_dim, mult=ff_mult, dropout=dropout)

    @property
    def config(self) -> dict[str, Any]:
        return {
            "kind": "raw",
            "in_dim": self.in_dim,
            "heads": self.heads,
            "dim_head": self.dim_head,
            "ff_mult": self.ff_mult,
            "dropout": self.dropout,
        }

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> EncoderOutput:
        """Tokens (b, n, in_dim) from raw input (b, n, in_dim) or (b, in_dim)."""
        if x.dim() == 2:
            x = x[:, None]
        if x.dim() != 3:
            raise ValueError(f"raw block input must be (b, n, d) or (b, d), got {tuple(x.shape)}")
        mask = check_mask(mask, x.shape[0], x.shape[1], what="raw block input")
        tokens = x + self.attn(x, mask=mask)  # (b, n, in_dim)
        return tokens + self.ff(tokens), mask
