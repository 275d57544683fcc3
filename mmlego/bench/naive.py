"""A straightforward implementation of the LegoBlock maths, the baseline of the speed benchmark.

:class:`NaiveLegoBlock` computes exactly what :class:`mmlego.models.LegoBlock` computes (same
parameters, same names, so ``naive.load_state_dict(block.state_dict())`` works), written the way
the reference code and a first implementation do it:

- a Python loop over the batch (one patient at a time; ``batch_loop=False`` drops only this);
- the encoder re-run at every step (as the authors' ``LegoBlock.forward`` does);
- the FFT computed once per use (once for the real part, again for the imaginary part);
- explicit complex copies (``.clone()`` of the FFT parts, a zero imaginary part built when it
  is not tracked, the complex latent copied before the inverse FFT);
- multi-head attention written out (scores, masked softmax, weighted sum) instead of SDPA.

Used by :mod:`mmlego.bench.models`, which asserts that both give the same outputs before timing.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mmlego.models import LegoBlock, build_encoder
from mmlego.models.encoders import RawEncoder

__all__ = ["NaiveLegoBlock"]


class _Attention(nn.Module):
    """Parameters named as :class:`mmlego.models.attention.Attention` (cross-attention)."""

    def __init__(self, query_dim: int, context_dim: int, *, heads: int, dim_head: int) -> None:
        super().__init__()
        inner = heads * dim_head
        self.heads, self.dim_head = heads, dim_head
        self.norm_q = nn.LayerNorm(query_dim)
        self.norm_c = nn.LayerNorm(context_dim)
        self.to_q = nn.Linear(query_dim, inner, bias=False)
        self.to_kv = nn.Linear(context_dim, 2 * inner, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner, query_dim), nn.Dropout(0.0))

    def forward(
        self, x: torch.Tensor, context: torch.Tensor, mask: torch.Tensor | None
    ) -> torch.Tensor:
        """Update for ``x`` (1, q, d) attending to ``context`` (1, n, d_c), written out."""
        h, dh = self.heads, self.dim_head
        q = self.to_q(self.norm_q(x)).reshape(x.shape[0], x.shape[1], h, dh).permute(0, 2, 1, 3)
        kv = self.to_kv(self.norm_c(context))  # (1, n, 2 h dh)
        k = kv[..., : h * dh].reshape(*context.shape[:2], h, dh).permute(0, 2, 1, 3)
        v = kv[..., h * dh :].reshape(*context.shape[:2], h, dh).permute(0, 2, 1, 3)
        scores = torch.matmul(q, k.transpose(-1, -2)) / dh**0.5  # (1, h, q, n)
        if mask is not None:
            scores = scores.masked_fill(~mask[:, None, None, :], float("-inf"))
        out = torch.matmul(torch.softmax(scores, dim=-1), v)  # (1, h, q, dh)
        out = out.permute(0, 2, 1, 3).reshape(x.shape[0], x.shape[1], h * dh)
        return self.to_out(out)


class _FeedForward(nn.Module):
    """Parameters named as :class:`mmlego.models.attention.FeedForward`."""

    def __init__(self, dim: int, *, mult: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.proj_in = nn.Linear(dim, 2 * mult * dim)
        self.proj_out = nn.Sequential(nn.Dropout(0.0), nn.Linear(mult * dim, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = self.proj_in(self.norm(x))
        half = hidden.shape[-1] // 2
        return self.proj_out(hidden[..., :half] * F.selu(hidden[..., half:]))


class _Step(nn.Module):
    def __init__(self, latent_dim: int, context_dim: int, *, heads: int, dim_head: int, mult: int):
        super().__init__()
        self.attn = _Attention(latent_dim, context_dim, heads=heads, dim_head=dim_head)
        self.ff = _FeedForward(latent_dim, mult=mult)


class _Head(nn.Module):
    def __init__(self, latent_dim: int, n_outputs: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(latent_dim)
        self.linear = nn.Linear(latent_dim, n_outputs)


class NaiveLegoBlock(nn.Module):
    """The LegoBlock maths, implemented naively (see the module docstring).

    Parameters
    ----------
    config
        :attr:`LegoBlock.config` of the block to mirror; its dropout must be 0 (the re-run
        encoder would otherwise draw different dropout masks at each step).
    batch_loop
        Process one batch row at a time (default) or the whole batch at once.
    """

    def __init__(self, config: dict, *, batch_loop: bool = True) -> None:
        super().__init__()
        cfg = dict(config)
        if cfg["dropout"]:
            raise ValueError(f"NaiveLegoBlock needs dropout 0, got {cfg['dropout']}")
        enc_cfg = cfg["encoder"]
        if enc_cfg is None:
            self.encoder = RawEncoder(
                cfg["in_dim"], heads=cfg["heads"], dim_head=cfg["dim_head"], ff_mult=cfg["ff_mult"]
            )
        else:
            enc_cfg = dict(enc_cfg)
            if enc_cfg.get("dropout", 0.0):
                raise ValueError(
                    f"NaiveLegoBlock needs an encoder without dropout, got {enc_cfg}: it re-runs "
                    "the encoder at every step"
                )
            self.encoder = build_encoder(enc_cfg.pop("kind"), enc_cfg.pop("in_dim"), **enc_cfg)
        self.cfg, self.batch_loop = cfg, batch_loop
        l_c, l_d, depth = cfg["latent_channels"], cfg["latent_dim"], cfg["depth"]
        self.latent0 = nn.Parameter(torch.randn(l_c, l_d))
        n_distinct = min(depth, 2) if cfg["share_weights"] else depth
        self.steps = nn.ModuleList(
            _Step(
                l_d,
                self.encoder.out_dim,
                heads=cfg["heads"],
                dim_head=cfg["dim_head"],
                mult=cfg["ff_mult"],
            )
            for _ in range(n_distinct)
        )
        self.head_module = _Head(l_d, cfg["n_outputs"])

    @classmethod
    def mirror(cls, block: LegoBlock, *, batch_loop: bool = True) -> NaiveLegoBlock:
        """A naive block holding a copy of ``block``'s parameters."""
        naive = cls(block.config, batch_loop=batch_loop)
        naive.load_state_dict(block.state_dict())
        p = next(block.parameters())
        return naive.to(device=p.device, dtype=p.dtype)

    def _one(self, x: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits and complex latent of a (sub-)batch, the naive way."""
        cfg = self.cfg
        depth, freq = cfg["depth"], cfg["frequency_domain"]
        latent = self.latent0.unsqueeze(0).repeat(x.shape[0], 1, 1).clone()  # (b, l_c, l_d)
        for s in range(depth):
            tokens, tmask = self.encoder(x, mask)  # re-run at every step
            step = self.steps[min(s, len(self.steps) - 1)]
            if freq:
                if cfg["normalise"]:
                    latent = latent / latent.norm(dim=1, keepdim=True).clamp_min(1e-12)
                r = torch.fft.fft(latent, dim=1).real.clone()  # (b, l_c, l_d)
                j = torch.fft.fft(latent, dim=1).imag.clone()  # FFT recomputed
            else:
                r, j = latent.clone(), torch.zeros_like(latent)
            u = r + step.attn(r, tokens, tmask)
            u = u + step.ff(u)
            if s < depth - 1:
                if freq:
                    imag = j.clone() if cfg["track_imaginary"] else torch.zeros_like(u)
                    z = torch.complex(u.clone(), imag).clone()
                    latent = torch.fft.ifft(z, dim=1).real.clone()
                else:
                    latent = u
        head = self.head_module
        logits = head.linear(head.norm(u.mean(dim=1)))
        return logits, torch.complex(u, j).clone()

    def forward_with_latent(
        self, x: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits (b, n_outputs) and the complex latent (b, l_c, l_d)."""
        if not self.batch_loop:
            return self._one(x, mask)
        outs = [
            self._one(x[i : i + 1], None if mask is None else mask[i : i + 1])
            for i in range(x.shape[0])
        ]
        return torch.cat([o[0] for o in outs]), torch.cat([o[1] for o in outs])

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (b, n_outputs)."""
        return self.forward_with_latent(x, mask)[0]
