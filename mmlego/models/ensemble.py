"""A seed ensemble: M models of one architecture, trained alike with different seeds, whose
logits are averaged::

    logits(x) = 1/M sum_m f_m(x)        # (b, k)

Blocks trained with ``training.members`` > 1 are ensembles; LegoMerge and LegoFuse of such
blocks are merged / fused member by member (member m of every block together) and averaged the
same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn


class Ensemble(nn.Module):
    """The mean of its members' outputs; takes whatever arguments its members take."""

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        if len(members) < 2:
            raise ValueError(f"an ensemble needs at least 2 members, got {len(members)}")
        self.members = nn.ModuleList(members)

    def forward(self, *args: Any, **kwargs: Any) -> torch.Tensor:
        return torch.stack([m(*args, **kwargs) for m in self.members]).mean(0)  # (b, k)

    @property
    def config(self) -> dict[str, Any]:
        return {"type": "Ensemble", "members": [m.config for m in self.members]}


def members(model: nn.Module) -> list[nn.Module]:
    """The members of an ensemble, or the model itself as the only one."""
    return list(model.members) if isinstance(model, Ensemble) else [model]


def ensemble(models: Sequence[nn.Module]) -> nn.Module:
    """One model as it is, several as their :class:`Ensemble`."""
    return models[0] if len(models) == 1 else Ensemble(models)


def member_sets(
    blocks: Mapping[str, nn.Module], *, sources: Mapping[str, str]
) -> list[dict[str, nn.Module]]:
    """Member m of every block, for each m: the blocks of a merge or fuse must have the same
    number of members (``sources``: block name -> its file, for the error)."""
    sizes = {name: len(members(b)) for name, b in blocks.items()}
    if len(set(sizes.values())) > 1:
        detail = ", ".join(f"{sources[n]}: {k}" for n, k in sorted(sizes.items()))
        raise ValueError(f"blocks with different numbers of ensemble members: {detail}")
    n = next(iter(sizes.values()))
    return [{name: members(b)[m] for name, b in blocks.items()} for m in range(n)]
