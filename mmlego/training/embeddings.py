"""Embeddings of frozen unimodal LegoBlocks, for the ``late_fusion_concat`` baseline.

A patient's embedding under a block is the vector its head's final linear layer sees: the
block's last real frequency-domain latent ``U`` (b, l_c, l_d), averaged over the latent channels
and layer-normalised (:class:`mmlego.models.lego_block.LatentHead`), so that
``block.head_module.linear(embedding)`` are the block's logits. The workflow's ``train_block``
writes them with the block it has just trained, on the inputs it was trained on
(:func:`mmlego.training.fold.load_fold_modalities`: slide bags scaled with the fold's ``train``
patients' tile statistics), in the same job; the block runs in eval mode without gradients.

File written per modality and fold: ``baselines/embeddings/<m>/fold<k>.tsv``: ``patient_id`` then,
for each member m of the block's seed ensemble, ``m<m>_z0 .. m<m>_z<l_d-1>``, one row per
patient of the fold's split that has the modality (train, tune and val alike), sorted. The
penalised models of :func:`mmlego.training.baselines.late_fusion_concat_fold` (one per member)
read these files.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from mmlego.io import write_tsv
from mmlego.models.ensemble import members
from mmlego.models.lego_block import LegoBlock
from mmlego.pipeline.fold import Fold
from mmlego.training.data import Modality, evaluation_parts
from mmlego.training.embedding_format import embedding_column

log = logging.getLogger(__name__)

__all__ = ["block_embeddings", "embed", "embedding_table", "write_block_embeddings"]


def embed(block: LegoBlock, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """The pooled embedding (b, l_d) of input ``x`` (and padding ``mask``) that the block's head
    feeds to its final linear layer."""
    u, _ = block.propagate(*block.encode(x, mask))  # (b, l_c, l_d)
    return block.head_module.norm(u.mean(dim=-2))  # (b, l_d)


def block_embeddings(
    block: LegoBlock, modality: Modality, ids: Sequence[str], *, batch_size: int = 64
) -> np.ndarray:
    """Embeddings (n, l_d) float64 of the patients ``ids`` (all must have the modality)."""
    missing = [p for p in ids if p not in modality.patients]
    if missing:
        raise ValueError(f"modality {modality.name!r}: patient(s) {missing[:5]} do not have it")
    dev = next(block.parameters()).device
    block.eval()
    parts = []
    with torch.no_grad():
        for start in range(0, len(ids), batch_size):
            batch = list(ids[start : start + batch_size])
            for part in evaluation_parts({modality.name: modality}, batch):  # large bags: parts
                x, mask, _ = modality.batch(part)
                z = embed(block, x.to(dev), None if mask is None else mask.to(dev))
                parts.append(z.float().cpu().numpy().astype(np.float64))
    return np.concatenate(parts) if parts else np.zeros((0, block.latent_dim))


def embedding_table(block: nn.Module, modality: Modality, fold: Fold) -> pd.DataFrame:
    """``patient_id``, then ``m<m>_z0 .. m<m>_z<l_d-1>`` per member m of ``block`` (a LegoBlock or
    a seed ensemble of them): one row per patient of ``fold`` that has ``modality``, sorted."""
    blocks = members(block)
    if not all(isinstance(b, LegoBlock) for b in blocks):
        kinds = sorted({type(b).__name__ for b in blocks})
        raise ValueError(f"modality {modality.name!r}: expected LegoBlocks, got {kinds}")
    ids = sorted(p for p in map(str, fold.roles.index) if p in modality.patients)
    Z = [block_embeddings(b, modality, ids) for b in blocks]  # M x (n, l_d)
    columns = [embedding_column(m, j) for m, z in enumerate(Z) for j in range(z.shape[1])]
    table = pd.DataFrame(np.concatenate(Z, axis=1), columns=columns)
    table.insert(0, "patient_id", ids)
    return table


def write_block_embeddings(
    block: nn.Module, modality: Modality, fold: Fold, out_tsv: str
) -> pd.DataFrame:
    """Write :func:`embedding_table` of the fold's trained ``block`` to ``out_tsv``
    (``baselines/embeddings/<m>/fold<k>.tsv``); ``modality`` as the block was trained on it
    (:func:`mmlego.training.fold.load_fold_modalities`). Returns the table."""
    table = embedding_table(block, modality, fold)
    write_tsv(table, out_tsv)
    n_members = len(members(block))
    log.info(
        "%s fold %d: %d patients embedded (%d member(s), %d columns each)",
        modality.name,
        fold.index,
        len(table),
        n_members,
        (table.shape[1] - 1) // n_members,
    )
    return table
