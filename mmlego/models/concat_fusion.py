"""End-to-end fusion baseline: the modalities' encoders, pooled and concatenated, one MLP head.

The conventional alternative that MM-Lego is compared with: no shared latent, no frequency
domain, trained from scratch end to end on PAIRED patients only (those with every modality).
For each modality m::

    H_m, mask_m = E_m(X_m)                      # tokens (b, n_m, d_m)
    h_m = masked mean of H_m over tokens        # (b, d_m)
    logits = MLP([h_1, ..., h_M])               # concatenation in sorted modality order

A patient missing a modality cannot be scored (there is nothing to concatenate): predict only
patients with every modality.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from mmlego.models.encoders import build_encoder
from mmlego.models.lego_block import encoder_config


class ConcatFusion(nn.Module):
    """Concatenation of pooled encoder outputs -> LayerNorm -> MLP -> ``n_outputs`` logits."""

    def __init__(
        self,
        encoders: Mapping[str, nn.Module],
        *,
        n_outputs: int,
        hidden: int = 64,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if len(encoders) < 1:
            raise ValueError("ConcatFusion needs at least one encoder")
        self.names = sorted(encoders)
        self.encoders = nn.ModuleDict({n: encoders[n] for n in self.names})
        self.n_outputs, self.hidden, self.dropout = n_outputs, hidden, dropout
        width = sum(int(self.encoders[n].out_dim) for n in self.names)
        self.head = nn.Sequential(
            nn.LayerNorm(width),
            nn.Linear(width, hidden),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, n_outputs),
        )

    @property
    def config(self) -> dict[str, Any]:
        return {
            "type": "ConcatFusion",
            "encoders": {n: encoder_config(e) for n, e in self.encoders.items()},
            "n_outputs": self.n_outputs,
            "hidden": self.hidden,
            "dropout": self.dropout,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> ConcatFusion:
        encoders = {}
        for name, cfg in config["encoders"].items():
            cfg = dict(cfg)
            encoders[name] = build_encoder(cfg.pop("kind"), cfg.pop("in_dim"), **cfg)
        return cls(
            encoders,
            n_outputs=config["n_outputs"],
            hidden=config["hidden"],
            dropout=config["dropout"],
        )

    def forward(
        self,
        inputs: Mapping[str, tuple[torch.Tensor, torch.Tensor | None]],
        present: Mapping[str, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Logits (b, n_outputs); every row must have every modality (``present`` all True)."""
        pooled = []
        for name in self.names:
            if present is not None and not bool(present[name].all()):
                raise ValueError(f"ConcatFusion: some patients lack modality {name!r}")
            x, mask = inputs[name]
            tokens, tmask = self.encoders[name](x, mask)  # (b, n, d), (b, n) | None
            if tmask is None:
                pooled.append(tokens.mean(dim=1))
            else:
                w = tmask.to(tokens.dtype).unsqueeze(-1)  # (b, n, 1)
                pooled.append((tokens * w).sum(dim=1) / w.sum(dim=1).clamp_min(1.0))
        return self.head(torch.cat(pooled, dim=-1))  # (b, sum d) -> (b, n_outputs)
