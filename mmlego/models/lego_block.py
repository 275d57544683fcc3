"""LegoBlock: one modality's encoder plus a latent cross-attention stack in the frequency domain.

Per forward (F = FFT along the latent-channel axis, dim -2 of a (b, l_c, l_d) latent)::

    H = E(X)                                    # once; tokens (b, n, d_e) and padding mask
    K_w, V_w = proj_w(LN H)                     # once per distinct step weights w (tied steps
                                                #   share theirs), each (b, n, heads, dim_head)
    L = L0 (or a start latent handed in)        # time domain
    for s in 0..S-1:
        Z = F(normalise(L)); R, J = Re Z, Im Z
        U = R + XAttn_s(LN R, LN H)             # H is not transformed: bag order does not matter
        U = U + FF_s(LN U)
        if s < S-1: L = F^-1(U + iJ) (track_imaginary) or F^-1(U), real part
    z = U + iJ                                  # the block's latent, frequency domain
    logits = Head(U)                            # mean over l_c -> LayerNorm -> Linear

With ``frequency_domain=False`` no transform happens (R = L, J = 0): a plain latent
cross-attention stack. ``forward`` never reassigns parameters or buffers.

Mixed precision: under ``torch.autocast`` the linear layers run in half precision while the
transforms (and the residual stream they feed) stay in float32: a half-precision latent is cast up
before each FFT and inverse FFT.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mmlego.models.attention import Attention, FeedForward, check_mask
from mmlego.models.encoders import RawEncoder, build_encoder
from mmlego.pipeline.config import base_defaults

_DEFAULTS = base_defaults("model")  # the workflow's: a block built here is the workflow's block

_HALF = (torch.float16, torch.bfloat16)


def _fft_ready(t: torch.Tensor) -> torch.Tensor:
    """``t`` cast up to float32 if it is in half precision (FFTs run in float32 or wider)."""
    return t.float() if t.dtype in _HALF else t


def readout(u: torch.Tensor) -> torch.Tensor:
    """What a head reads of a real latent ``u`` (b, l_c, l_d): its mean over channels (b, l_d)."""
    return u.mean(dim=-2)


class LatentHead(nn.Module):
    """:func:`readout` (mean over latent channels) -> LayerNorm -> Linear(l_d, n_outputs)."""

    def __init__(self, latent_dim: int, n_outputs: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(latent_dim)
        self.linear = nn.Linear(latent_dim, n_outputs)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """Logits (b, n_outputs) from a real latent ``u`` (b, l_c, l_d)."""
        return self.linear(self.norm(readout(u)))


class LegoStep(nn.Module):
    """Cross-attention of the latent on the tokens, then feed-forward (updates only)."""

    def __init__(
        self,
        latent_dim: int,
        context_dim: int,
        *,
        heads: int,
        dim_head: int,
        ff_mult: int,
        dropout: float,
    ) -> None:
        super().__init__()
        self.attn = Attention(
            latent_dim, context_dim, heads=heads, dim_head=dim_head, dropout=dropout
        )
        self.ff = FeedForward(latent_dim, mult=ff_mult, dropout=dropout)


def encoder_config(encoder: nn.Module) -> dict[str, Any]:
    """The JSON-able config ``{"kind", "in_dim", ...}`` that rebuilds ``encoder``."""
    cfg = getattr(encoder, "config", None)
    if not isinstance(cfg, dict) or "kind" not in cfg or "in_dim" not in cfg:
        raise ValueError(
            f"encoder {type(encoder).__name__} has no `config` dict with 'kind' and 'in_dim': "
            "register its class with mmlego.models.encoders.register_block_encoder and build it "
            "with build_encoder (or give it a `config` property) to save it"
        )
    return dict(cfg)


class LegoBlock(nn.Module):
    """One modality's MM-Lego block.

    The settings that the config's ``model`` section names default to the workflow's values
    (``config/config.yaml``).

    Parameters
    ----------
    encoder
        Module with ``out_dim`` and ``forward(x, mask) -> (tokens, mask)``
        (see :mod:`mmlego.models.encoders`), or None: the block then applies its own
        self-attention + feed-forward to raw (b, c, in_dim) input.
    in_dim
        Input width; only (and then required) when ``encoder`` is None.
    n_outputs
        Logits of the head (survival bins or classes).
    latent_channels, latent_dim
        Latent shape (l_c, l_d); blocks to be merged or fused must share it.
    depth
        Number of steps S.
    heads, dim_head, ff_mult, dropout
        Attention and feed-forward sizes.
    frequency_domain
        False = plain latent cross-attention (no FFT; the ablation).
    track_imaginary
        Carry the imaginary part through the inverse FFT between steps.
    normalise
        L2-normalise the latent over the l_c axis before each FFT (frequency domain only).
    share_weights
        True = steps 1..S-1 share one set of weights (step 0 has its own).
    """

    def __init__(
        self,
        encoder: nn.Module | None,
        *,
        in_dim: int | None = None,
        n_outputs: int,
        latent_channels: int = _DEFAULTS["latent_channels"],
        latent_dim: int = _DEFAULTS["latent_dim"],
        depth: int = _DEFAULTS["depth"],
        heads: int = _DEFAULTS["heads"],
        dim_head: int = _DEFAULTS["dim_head"],
        ff_mult: int = 4,
        dropout: float = _DEFAULTS["dropout"],
        frequency_domain: bool = _DEFAULTS["frequency_domain"],
        track_imaginary: bool = _DEFAULTS["track_imaginary"],
        normalise: bool = True,
        share_weights: bool = False,
    ) -> None:
        super().__init__()
        if depth < 1 or n_outputs < 1 or latent_channels < 1 or latent_dim < 1:
            raise ValueError(
                f"LegoBlock needs depth, n_outputs, latent_channels, latent_dim >= 1; got "
                f"{depth}, {n_outputs}, {latent_channels}, {latent_dim}"
            )
        if encoder is None:
            if in_dim is None:
                raise ValueError("LegoBlock without an encoder needs in_dim (raw input width)")
            encoder = RawEncoder(
                in_dim, heads=heads, dim_head=dim_head, ff_mult=ff_mult, dropout=dropout
            )
            self.raw = True
        else:
            if in_dim is not None:
                raise ValueError("in_dim is only for blocks without an encoder (encoder=None)")
            self.raw = False
        out_dim = getattr(encoder, "out_dim", None)
        if not isinstance(out_dim, int) or out_dim < 1:
            raise ValueError(
                f"encoder {type(encoder).__name__} must declare a positive int `out_dim`, "
                f"got {out_dim!r}"
            )
        self.encoder = encoder
        self.n_outputs, self.depth = n_outputs, depth
        self.latent_channels, self.latent_dim = latent_channels, latent_dim
        self.heads, self.dim_head, self.ff_mult, self.dropout = heads, dim_head, ff_mult, dropout
        self.frequency_domain, self.track_imaginary = frequency_domain, track_imaginary
        self.normalise, self.share_weights = normalise, share_weights

        self.latent0 = nn.Parameter(torch.randn(latent_channels, latent_dim))  # (l_c, l_d)
        n_distinct = min(depth, 2) if share_weights else depth
        self.steps = nn.ModuleList(
            LegoStep(
                latent_dim,
                out_dim,
                heads=heads,
                dim_head=dim_head,
                ff_mult=ff_mult,
                dropout=dropout,
            )
            for _ in range(n_distinct)
        )
        self.head_module = LatentHead(latent_dim, n_outputs)

    # ----------------------------------------------------------------- config
    @property
    def config(self) -> dict[str, Any]:
        """JSON-able dict rebuilding this block with :meth:`from_config` (weights not included)."""
        return {
            "type": "LegoBlock",
            "encoder": None if self.raw else encoder_config(self.encoder),
            "in_dim": self.encoder.in_dim if self.raw else None,
            "n_outputs": self.n_outputs,
            "latent_channels": self.latent_channels,
            "latent_dim": self.latent_dim,
            "depth": self.depth,
            "heads": self.heads,
            "dim_head": self.dim_head,
            "ff_mult": self.ff_mult,
            "dropout": self.dropout,
            "frequency_domain": self.frequency_domain,
            "track_imaginary": self.track_imaginary,
            "normalise": self.normalise,
            "share_weights": self.share_weights,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> LegoBlock:
        """Build a (freshly initialised) block from :attr:`config`."""
        cfg = {k: v for k, v in config.items() if k != "type"}
        enc_cfg = cfg.pop("encoder")
        encoder = None
        if enc_cfg is not None:
            enc_cfg = dict(enc_cfg)
            encoder = build_encoder(enc_cfg.pop("kind"), enc_cfg.pop("in_dim"), **enc_cfg)
        return cls(encoder, **cfg)

    @property
    def latent_shape(self) -> tuple[int, int]:
        return (self.latent_channels, self.latent_dim)

    # ----------------------------------------------------------------- pieces
    def encode(
        self, x: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Run the encoder once: tokens (b, n, d_e) and mask (b, n) | None."""
        tokens, tmask = self.encoder(x, mask)
        if tokens.dim() != 3 or tokens.shape[-1] != self.encoder.out_dim:
            raise ValueError(
                f"encoder {type(self.encoder).__name__} returned tokens of shape "
                f"{tuple(tokens.shape)}, expected (b, n, {self.encoder.out_dim})"
            )
        tmask = check_mask(tmask, tokens.shape[0], tokens.shape[1], what="encoder output")
        return tokens, tmask

    def initial_latent(self, b: int) -> torch.Tensor:
        """The learned latent broadcast to (b, l_c, l_d) (a view; nothing is reassigned)."""
        return self.latent0.expand(b, -1, -1)

    def step_module(self, s: int) -> LegoStep:
        """The weights used at step ``s``."""
        return self.steps[self.weights_index(s)]

    def context(self, tokens: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Keys and values of the tokens for each distinct set of step weights (tied steps share
        one entry): ``[(K, V), ...]``, each (b, n, heads, dim_head). Index with
        :meth:`weights_index`."""
        return [step.attn.context_kv(tokens) for step in self.steps]

    def weights_index(self, s: int) -> int:
        """Which distinct step weights step ``s`` uses."""
        return min(s, len(self.steps) - 1)

    def layer(
        self,
        s: int,
        latent: torch.Tensor,
        tokens: torch.Tensor,
        mask: torch.Tensor | None = None,
        *,
        kv: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One step from a time-domain ``latent`` (b, l_c, l_d).

        ``kv``: this step's keys and values of ``tokens`` (from :meth:`context`), computed here
        when not given. Returns ``(U, J)``, both (b, l_c, l_d) real: the updated real part and
        the untouched imaginary part of the frequency-domain latent (J = 0 without the
        frequency domain).
        """
        step = self.step_module(s)
        if self.frequency_domain:
            latent = _fft_ready(latent)
            if self.normalise:
                latent = F.normalize(latent, dim=-2)  # L2 over l_c
            z = torch.fft.fft(latent, dim=-2)  # (b, l_c, l_d) complex
            r, j = z.real, z.imag
        else:
            r, j = latent, torch.zeros_like(latent)
        u = r + step.attn(r, tokens, mask, kv=kv)  # (b, l_c, l_d)
        u = u + step.ff(u)
        return u, j

    def to_time(self, u: torch.Tensor, j: torch.Tensor) -> torch.Tensor:
        """Back to the time domain: real part of F^-1(U + iJ) (or of F^-1(U))."""
        if not self.frequency_domain:
            return u
        u = _fft_ready(u)
        z = torch.complex(u, _fft_ready(j)) if self.track_imaginary else u  # ifft takes real too
        return torch.fft.ifft(z, dim=-2).real

    def propagate(
        self,
        tokens: torch.Tensor,
        mask: torch.Tensor | None = None,
        *,
        start: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """All S steps on encoded tokens; returns the final frequency-domain ``(U, J)``."""
        b = tokens.shape[0]
        if start is None:
            latent = self.initial_latent(b)
        else:
            if start.shape != (b, *self.latent_shape):
                raise ValueError(
                    f"start latent has shape {tuple(start.shape)}, expected "
                    f"({b}, {self.latent_channels}, {self.latent_dim})"
                )
            latent = start
        kv = self.context(tokens)  # once per forward, per distinct step weights
        for s in range(self.depth):
            u, j = self.layer(s, latent, tokens, mask, kv=kv[self.weights_index(s)])
            if s < self.depth - 1:
                latent = self.to_time(u, j)
        return u, j

    def latent(
        self,
        x: torch.Tensor,
        mask: torch.Tensor | None = None,
        *,
        start: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The block's complex output latent z = U + iJ (b, l_c, l_d), frequency domain.

        ``start`` optionally replaces the learned initial latent (time domain, (b, l_c, l_d)).
        """
        u, j = self.propagate(*self.encode(x, mask), start=start)
        return torch.complex(_fft_ready(u), _fft_ready(j))

    def head(self, u_real: torch.Tensor) -> torch.Tensor:
        """Logits (b, n_outputs) from the real part of a latent (b, l_c, l_d)."""
        return self.head_module(u_real)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (b, n_outputs) for input ``x`` (and padding ``mask``, True = real token)."""
        u, _ = self.propagate(*self.encode(x, mask))
        return self.head(u)
