"""Train one LegoBlock on one modality of one fold (the workflow's `train_block` rule)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import torch
from torch import nn

from mmlego.io import write_tsv
from mmlego.models.checkpoint import save_model
from mmlego.models.encoders import build_encoder
from mmlego.models.ensemble import ensemble
from mmlego.models.lego_block import LegoBlock
from mmlego.pipeline.fold import Fold
from mmlego.pipeline.selection import Candidate, apply_candidate, stage_candidates
from mmlego.training.data import Modality, TileSampler, evaluation_parts
from mmlego.training.embeddings import write_block_embeddings
from mmlego.training.fold import (
    derive_seed,
    disjoint_assignment,
    load_fold_modalities,
    member_key,
    member_view,
    seed_everything,
)
from mmlego.training.loop import FitParams, device, fit_and_score, predict, race, with_curve
from mmlego.training.tasks import make_task, prediction_table

log = logging.getLogger(__name__)


def build_block(
    *,
    in_dim: int,
    encoder: Mapping[str, Any],
    model: Mapping[str, Any],
    n_outputs: int,
    shared_seed: int | None = None,
) -> LegoBlock:
    """A LegoBlock with the configured encoder (``kind`` + its options) and latent shape.

    ``model`` is the config's ``model`` section: its keys are LegoBlock's keyword arguments (the
    schema admits no others), so they are passed as they are. The encoder is drawn from torch's
    random state; with ``shared_seed`` the rest of the block (initial latent, attention steps,
    head) is drawn from that seed instead, leaving torch's random state as it was. Blocks of
    different modalities built with one ``shared_seed`` (and encoders of one output width) thus
    start from the same weights everywhere but in their encoders."""
    enc_opts = {k: v for k, v in encoder.items() if k != "kind"}
    enc = build_encoder(encoder["kind"], in_dim, **enc_opts)
    with torch.random.fork_rng(devices=[], enabled=shared_seed is not None):
        if shared_seed is not None:
            torch.manual_seed(shared_seed)
        return LegoBlock(enc, n_outputs=n_outputs, **dict(model))


def shared_init_seed(settings: Mapping[str, Any], fold: int, member: int) -> int | None:
    """The seed of the weights that the blocks of fold ``fold`` (ensemble member ``member``)
    share when ``training.shared_init`` is on (None when it is off): one per fold and member,
    whatever the modality, so that LegoMerge merges networks grown from one initialisation."""
    if not settings["training"]["shared_init"]:
        return None
    return derive_seed(settings["seed"], "shared", fold, *member_key(member))


def block_forward(name: str, modality: Modality, sampler: TileSampler | None = None):
    """The forward function of a unimodal block over patient ids; ``sampler`` caps the tiles of
    each bag while the model is in training mode. Evaluation always sees every tile, a batch of
    large bags in parts (:func:`evaluation_parts`)."""

    def run(model: nn.Module, ids: Sequence[str]) -> torch.Tensor:
        x, mask, _ = modality.batch(ids, sampler if model.training else None)
        dev = next(model.parameters()).device
        return model(x.to(dev), None if mask is None else mask.to(dev))

    def forward(model: nn.Module, ids: Sequence[str]) -> torch.Tensor:
        if model.training:
            return run(model, ids)
        parts = evaluation_parts({name: modality}, ids)
        if len(parts) == 1:
            return run(model, ids)
        return torch.cat([run(model, part) for part in parts])

    return forward


def train_block(
    *,
    name: str,
    modality_spec: Mapping[str, Any],
    data_path: str,
    fold: Fold,
    settings: Mapping[str, Any],
    out_model: str,
    out_history: str,
    out_predictions: str,
    out_selection: str,
    out_embeddings: str | None = None,
    disjoint_with: Mapping[str, tuple[str, str]] | None = None,
) -> None:
    """Fit a block on the fold's train patients with modality ``name``; predict its val patients.

    Its settings are raced on the fold's train and tune patients (``selection``, see
    :mod:`mmlego.pipeline.selection`); the winner is the block kept, the race is written to
    ``out_selection``. ``out_embeddings``: where the block's embeddings of every patient of the
    fold with the modality go (:func:`mmlego.training.embeddings.write_block_embeddings`, for
    the ``late_fusion_concat`` baseline), written here rather than by a job of their own that
    would load the block and its inputs again.

    ``disjoint_with`` (the other modalities, name -> (kind, data path)) trains the block only on
    its share of a partition of the training patients in which every patient serves exactly one
    modality (:func:`mmlego.training.fold.disjoint_assignment`).
    """
    modality = load_fold_modalities(fold, {name: (modality_spec["type"], data_path)})[name]
    task = make_task(dict(settings), fold.outcomes, fold.ids("train"))
    share = None
    if disjoint_with:
        others = load_fold_modalities(
            fold, {m: spec for m, spec in disjoint_with.items() if m != name}
        )
        share = disjoint_assignment(fold, {name: modality, **others}, seed=settings["seed"])[name]

    def patients(member: int) -> tuple[list[str], list[str]]:
        """The train and tune patients of ensemble member ``member`` with this modality."""
        member_fold = member_view(fold, member, settings)
        train, tune = (member_fold.ids(r, having=[modality]) for r in ("train", "tune"))
        if share is not None:
            train, tune = [p for p in train if p in share], [p for p in tune if p in share]
        return train, tune

    (train, tune), val = patients(0), fold.ids("val", having=[modality])
    log.info(
        "%s fold %d: %d train, %d tune, %d val patients",
        name,
        fold.index,
        len(train),
        len(tune),
        len(val),
    )
    if not train:
        raise ValueError(f"modality {name!r}: no training patient of fold {fold.index} has it")
    base = {
        "training": settings["training"],
        "model": settings["model"],
        "encoder": modality_spec["encoder"],
    }
    candidates = stage_candidates("block", base, settings, name, fold.index, race=bool(tune))

    def run(
        candidate: Candidate, epochs: int, member: int = 0
    ) -> tuple[float, tuple[LegoBlock, pd.DataFrame]]:
        chosen = apply_candidate(base, candidate)
        seed = seed_everything(settings["seed"], "block", name, fold.index, *member_key(member))
        block = build_block(
            in_dim=modality.in_dim,
            encoder=chosen["encoder"],
            model=chosen["model"],
            n_outputs=task.n_outputs,
            shared_seed=shared_init_seed(settings, fold.index, member),
        ).to(device())
        tr = chosen["training"]
        forward = block_forward(name, modality, TileSampler.from_settings(tr, seed, "tiles"))
        params = FitParams.from_settings(
            tr, seed=settings["seed"] if member == 0 else seed, epochs=epochs
        )
        train_m, tune_m = (train, tune) if member == 0 else patients(member)
        return fit_and_score(
            block, forward=forward, task=task, train_ids=train_m, tune_ids=tune_m, params=params
        )

    what = ("block", f"block {name} fold {fold.index}")
    epochs = base["training"]["epochs"]
    (block, history), chosen = race(
        what,
        candidates,
        run,
        epochs=epochs,
        selection=settings["selection"],
        task=task,
        tune_ids=tune,
        out_selection=out_selection,
    )
    # a seed ensemble: the other members trained with the chosen settings and their own seeds
    others = [run(chosen, epochs, m)[1][0] for m in range(1, settings["training"]["members"])]
    block = ensemble([block, *others])
    forward = block_forward(name, modality)
    task = with_curve(task, block, forward, train)
    preds = prediction_table(task, val, predict(block, forward, val), [name] * len(val))
    if out_embeddings is not None:
        write_block_embeddings(block, modality, fold, out_embeddings)
    save_model(block.cpu(), out_model, extra={"modality": name, "fold": fold.index})
    write_tsv(history, out_history)
    write_tsv(preds, out_predictions)
