"""LegoFuse: chain trained LegoBlocks through one latent and fine-tune briefly on paired patients.

- stack: the latent passes block to block in ``order``; each block runs all its steps and hands
  its latent over in the time domain (F^-1), since the next block normalises and transforms it.
- weave: step by step, ``for s in steps: for block in order: one step of that block``, each
  block with its own encoder tokens (computed once), attention and feed-forward.

A patient missing a modality skips that block; its latent starts from the learned initial
latent of the first block it has. The last block visited gives U = Re z to the head, which is
initialised from the merged heads of all blocks (the blocks' own heads are unused and frozen).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

from mmlego.models.lego_block import LegoBlock
from mmlego.models.lego_merge import (
    HEAD_MERGES,
    Inputs,
    block_weights,
    check_compatible,
    merged_head,
    presence_matrix,
    select_rows,
)

FUSE_MODES = ("stack", "weave")


class LegoFuse(nn.Module):
    """Trainable fusion of N >= 2 LegoBlocks (deep copies; the originals are untouched).

    Parameters
    ----------
    blocks
        Modality name -> trained block; same latent shape and outputs.
    mode
        'stack' or 'weave'.
    order
        Order in which the latent visits the blocks (default: sorted names).
    head_merge
        How the initial head is merged from the blocks' heads: 'slerp' or 'linear'.
    head_weights
        Modality name -> weight >= 0 of its block's head in that merge (default equal).
    """

    def __init__(
        self,
        blocks: Mapping[str, LegoBlock],
        *,
        mode: str = "stack",
        order: Sequence[str] | None = None,
        head_merge: str = "slerp",
        head_weights: Mapping[str, float] | None = None,
    ) -> None:
        super().__init__()
        check_compatible(blocks, what="LegoFuse")
        if mode not in FUSE_MODES:
            raise ValueError(f"unknown fuse mode {mode!r}; choose from {FUSE_MODES}")
        if head_merge not in HEAD_MERGES:
            raise ValueError(f"unknown head_merge {head_merge!r}; choose from {HEAD_MERGES}")
        order = sorted(blocks) if order is None else list(order)
        if sorted(order) != sorted(blocks) or len(set(order)) != len(order):
            raise ValueError(f"order {order} must list each block once: {sorted(blocks)}")
        names = sorted(blocks)
        self.mode, self.order, self.head_merge = mode, order, head_merge
        self.head_weights = block_weights(head_weights, names, what="head_weights")
        self.blocks = nn.ModuleDict({n: copy.deepcopy(blocks[n]) for n in names})
        self.head = merged_head(
            [self.blocks[n] for n in names],
            [self.head_weights[n] for n in names],
            method=head_merge,
        )
        self.freeze()

    @property
    def names(self) -> list[str]:
        return list(self.blocks)

    @property
    def config(self) -> dict[str, Any]:
        """JSON-able dict rebuilding this module with :meth:`from_config`."""
        return {
            "type": "LegoFuse",
            "blocks": {n: b.config for n, b in self.blocks.items()},
            "mode": self.mode,
            "order": list(self.order),
            "head_merge": self.head_merge,
            "head_weights": dict(self.head_weights),
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> LegoFuse:
        blocks = {n: LegoBlock.from_config(c) for n, c in config["blocks"].items()}
        return cls(
            blocks,
            mode=config["mode"],
            order=config["order"],
            head_merge=config["head_merge"],
            head_weights=config.get("head_weights"),
        )

    def freeze(self, *, encoders: bool = False, blocks: Sequence[str] = ()) -> LegoFuse:
        """Make everything trainable, then freeze all encoders and/or whole named blocks.

        The blocks' own heads are always frozen: the fused ``head`` replaces them.
        """
        unknown = sorted(set(blocks) - set(self.blocks))
        if unknown:
            raise ValueError(f"freeze: unknown blocks {unknown}; blocks are {self.names}")
        for p in self.parameters():
            p.requires_grad_(True)
        for name, block in self.blocks.items():
            block.head_module.requires_grad_(False)
            frozen = block if name in blocks else block.encoder if encoders else None
            if frozen is not None:
                for p in frozen.parameters():
                    p.requires_grad_(False)
        return self

    def forward(
        self, inputs: Inputs, present: Mapping[str, torch.Tensor] | None = None
    ) -> torch.Tensor:
        """Fused logits (b, n_outputs); same arguments as :meth:`LegoMerge.forward`."""
        pres = presence_matrix(inputs, present, self.names)  # (b, M)
        col = {n: i for i, n in enumerate(self.names)}
        visits: list[tuple[str, torch.Tensor, torch.Tensor, torch.Tensor | None, list]] = []
        for name in self.order:
            rows = pres[:, col[name]].nonzero().flatten()
            if rows.numel():
                block = self.blocks[name]
                tokens, mask = block.encode(*select_rows(*inputs[name], rows))
                kv = block.context(tokens) if self.mode == "weave" else []  # K, V once
                visits.append((name, rows, tokens, mask, kv))
        b = pres.shape[0]
        first = self.blocks[visits[0][0]]
        latent = first.latent0.new_zeros(b, *first.latent_shape)  # (b, l_c, l_d), time domain
        u_out = torch.zeros_like(latent)  # frequency-domain U of each row's last visit
        started = torch.zeros(b, dtype=torch.bool, device=latent.device)
        if self.mode == "stack":
            schedule = [(k, None) for k in range(len(visits))]  # (visit, step | None = all steps)
        else:
            depth = max(self.blocks[v[0]].depth for v in visits)
            schedule = [
                (k, s)
                for s in range(depth)
                for k in range(len(visits))
                if s < self.blocks[visits[k][0]].depth
            ]
        for i, (k, s) in enumerate(schedule):
            name, rows, tokens, mask, kv = visits[k]
            block = self.blocks[name]
            own = block.initial_latent(rows.numel())  # rows seeing their first block start here
            start = torch.where(started[rows, None, None], latent.index_select(0, rows), own)
            if s is None:
                u, j = block.propagate(tokens, mask, start=start)
            else:
                u, j = block.layer(s, start, tokens, mask, kv=kv[block.weights_index(s)])
            u_out = u_out.index_copy(0, rows, u)
            if i < len(schedule) - 1:  # hand over in the time domain
                latent = latent.index_copy(0, rows, block.to_time(u, j))
            started = started.index_fill(0, rows, True)
        return self.head(u_out)
