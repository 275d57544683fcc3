"""Multimodal models: LegoMerge, LegoFuse, and the late- and end-to-end fusion baselines.

The late fusion of concatenated block embeddings (``late_fusion_concat``) is split in two
stages with their own envs: :mod:`mmlego.training.embeddings` (torch: the frozen blocks embed the
patients) and :func:`mmlego.training.baselines.late_fusion_concat_fold` (scikit-survival: the
penalised model on the embeddings).
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from mmlego.io import write_tsv
from mmlego.models.checkpoint import load_model, save_model
from mmlego.models.concat_fusion import ConcatFusion
from mmlego.models.encoders import build_encoder
from mmlego.models.ensemble import ensemble, member_sets, members
from mmlego.models.lego_fuse import LegoFuse
from mmlego.models.lego_merge import LegoMerge, score_weights
from mmlego.pipeline.fold import Fold
from mmlego.pipeline.selection import Candidate, apply_candidate, stage_candidates
from mmlego.training.data import (
    Modality,
    TileSampler,
    evaluation_parts,
    modalities_used,
    multimodal_batch,
)
from mmlego.training.fold import (
    load_fold_modalities,
    member_key,
    member_view,
    paired_subset,
    seed_everything,
)
from mmlego.training.loop import (
    FitParams,
    device,
    fit,
    fit_and_score,
    predict,
    race,
    tune_score,
    with_curve,
)
from mmlego.training.tasks import make_task, prediction_table

log = logging.getLogger(__name__)


def multimodal_forward(modalities: Mapping[str, Modality], sampler: TileSampler | None = None):
    """The forward function of a LegoMerge / LegoFuse model over patient ids; ``sampler`` caps
    the tiles of each bag while the model is in training mode. Evaluation sees every tile, a
    batch of large bags in parts (:func:`evaluation_parts`)."""

    def run(model: nn.Module, ids: Sequence[str]) -> torch.Tensor:
        dev = next(model.parameters()).device
        sample = sampler if model.training else None
        inputs, present = multimodal_batch(modalities, ids, device=dev, sampler=sample)
        return model(inputs, present)

    def forward(model: nn.Module, ids: Sequence[str]) -> torch.Tensor:
        if model.training:
            return run(model, ids)
        parts = evaluation_parts(modalities, ids)
        if len(parts) == 1:
            return run(model, ids)
        return torch.cat([run(model, part) for part in parts])

    return forward


def _load_blocks(paths: Sequence[str], names: Sequence[str]) -> dict[str, nn.Module]:
    return {name: load_model(path) for name, path in zip(names, paths, strict=True)}


def patients_with(
    fold: Fold, role: str, modalities: Mapping[str, Modality]
) -> tuple[list[str], list[str]]:
    """The patients of ``role`` (sorted) with every modality (paired) and those with some but
    not all."""
    paired, partial = [], []
    for p in fold.ids(role):
        has = sum(p in m.patients for m in modalities.values())
        if has == len(modalities):
            paired.append(p)
        elif has:
            partial.append(p)
    return paired, partial


def having_any(ids: Sequence[str], modalities: Mapping[str, Modality]) -> list[str]:
    """The patients of ``ids`` (in their order) with at least one of ``modalities``."""
    return [p for p in ids if any(p in m.patients for m in modalities.values())]


def with_any(fold: Fold, role: str, modalities: Mapping[str, Modality]) -> list[str]:
    """The patients of ``role`` (sorted) with at least one of ``modalities``."""
    return having_any(fold.ids(role), modalities)


def _predict_val(model, modalities, fold: Fold, task, out_predictions: str) -> None:
    """Predict the val patients with any of the modalities (a Cox model's survival curve fitted
    on the train patients with any of them)."""
    val, train = (with_any(fold, role, modalities) for role in ("val", "train"))
    forward = multimodal_forward(modalities)
    task = with_curve(task, model, forward, train)
    logits = predict(model, forward, val)
    write_tsv(
        prediction_table(task, val, logits, modalities_used(modalities, val)), out_predictions
    )


def tune_held_out(fold: Fold, member_folds: Sequence[Fold]) -> list[list[str]]:
    """For each ensemble member (``member_folds[m]``: the fold as member m saw it), the fold's
    tune patients it did not train on: all of them with fixed tune sets; with rotating ones,
    only for the members whose group is the fold's tune set. The other groups are training
    patients, whose outcomes fitted the fold's preprocessing (an outcome-ranked feature
    selection chose their inputs), so a score on them is optimistic."""
    tune = set(fold.ids("tune"))
    return [sorted(tune.intersection(f.ids("tune"))) for f in member_folds]


def held_out_logits(
    models: Sequence[nn.Module], forward, held_out: Sequence[Sequence[str]]
) -> tuple[list[str], torch.Tensor]:
    """Each patient's logits averaged over the ensemble members that held it out
    (``held_out[m]``: the patients ``models[m]`` did not train on). With every member holding
    out the same patients this is the ensemble's prediction on them. Returns (sorted patients,
    logits (n, k))."""
    kept: dict[str, list[torch.Tensor]] = {}
    for model, ids in zip(models, held_out, strict=True):
        if ids:
            for p, row in zip(ids, predict(model, forward, ids), strict=True):
                kept.setdefault(p, []).append(row)
    ids = sorted(kept)
    if not ids:
        return [], torch.empty(0)
    return ids, torch.stack([torch.stack(kept[p]).mean(0) for p in ids])  # (n, k)


def held_out_score(
    models: Sequence[nn.Module], forward, task, held_out: Sequence[Sequence[str]]
) -> float:
    """The score (c-index / AUC) of :func:`held_out_logits` (NaN with no patient held out)."""
    ids, logits = held_out_logits(models, forward, held_out)
    if not ids:
        return float("nan")
    dev = device()
    return float(task.score(logits.to(dev), task.targets(ids, dev)))


def block_tune_scores(
    blocks: Mapping[str, nn.Module],
    modalities: Mapping[str, Modality],
    held_out: Sequence[Sequence[str]],
    task,
) -> dict[str, float]:
    """Each block's score (c-index / AUC) on the tune patients with its modality, each patient
    predicted by the block's ensemble members that held it out (``held_out``: per member, from
    :func:`tune_held_out`)."""
    from mmlego.training.blocks import block_forward

    out = {}
    for name, block in blocks.items():
        models = [m.to(device()) for m in members(block)]
        mine = [having_any(ids, {name: modalities[name]}) for ids in held_out]
        forward = block_forward(name, modalities[name])
        out[name] = held_out_score(models, forward, task, mine)
    return out


def cached_tune_scores(
    cache: dict[str, float] | None,
    blocks: Mapping[str, nn.Module],
    modalities: Mapping[str, Modality],
    held_out: Sequence[Sequence[str]],
    task,
) -> dict[str, float]:
    """:func:`block_tune_scores`, computed on first use and kept in ``cache`` (None: not kept),
    so that a race's candidates score the blocks once."""
    cache = {} if cache is None else cache
    if not cache:
        cache.update(block_tune_scores(blocks, modalities, held_out, task))
        log.info("block tune scores %s", {m: round(v, 3) for m, v in sorted(cache.items())})
    return cache


def merge_weights(
    blocks: Mapping[str, nn.Module],
    modalities: Mapping[str, Modality],
    held_out: Sequence[Sequence[str]],
    task,
    merge: Mapping[str, Any],
    scores: dict[str, float] | None = None,
) -> dict[str, float] | None:
    """The configured merge weights: None (equal) or from the blocks' tune scores (``scores``,
    filled on first use, keeps them between calls; ``held_out``: per member, from
    :func:`tune_held_out`)."""
    if merge["weights"] == "equal":
        return None
    scores = cached_tune_scores(scores, blocks, modalities, held_out, task)
    weights = score_weights(scores, floor=float(merge["weight_floor"]))
    log.info(
        "merge weights from tune scores: %s",
        ", ".join(f"{m} {scores[m]:.3f} -> {weights[m]:.3f}" for m in sorted(scores)),
    )
    return weights


def merge_blocks(
    *,
    block_paths: Sequence[str],
    names: Sequence[str],
    data: Mapping[str, tuple[str, str]],
    fold: Fold,
    settings: Mapping[str, Any],
    out_model: str,
    out_predictions: str,
    out_selection: str,
) -> None:
    """LegoMerge of a fold's blocks: no training, no paired data; predict the val patients.

    The merge settings of ``selection.space.merge`` are each scored on the fold's tune patients
    (with whichever modalities each has); the best is kept and the scores written to
    ``out_selection``."""
    modalities = load_fold_modalities(fold, data)
    task = make_task(dict(settings), fold.outcomes, fold.ids("train"))
    blocks = _load_blocks(block_paths, names)
    sets = member_sets(blocks, sources=dict(zip(names, block_paths, strict=True)))
    # the merged members are judged on the fold's tune patients, each by those that held it out
    member_folds = [member_view(fold, m, settings) for m in range(len(sets))]
    held_out = [having_any(ids, modalities) for ids in tune_held_out(fold, member_folds)]
    judged = sorted(set().union(*held_out))
    base = {"merge": settings["merge"]}
    candidates = stage_candidates("merge", base, settings, fold.index, race=bool(judged))
    scores: dict[str, float] = {}

    def run(candidate: Candidate, _epochs: int) -> tuple[float, nn.Module]:
        merge = apply_candidate(base, candidate)["merge"]
        weights = merge_weights(blocks, modalities, held_out, task, merge, scores)
        merged = [  # member m of every block merged together, for each m
            LegoMerge(
                blocks_m, latent_merge=merge["latent"], head_merge=merge["head"], weights=weights
            ).to(device())
            for blocks_m in sets
        ]
        score = held_out_score(merged, multimodal_forward(modalities), task, held_out)
        return score, ensemble(merged)

    what = ("merge", f"merge fold {fold.index}")
    model, _ = race(
        what,
        candidates,
        run,
        epochs=0,
        selection=settings["selection"],
        task=task,
        tune_ids=judged,
        out_selection=out_selection,
    )
    save_model(model.cpu(), out_model, extra={"fold": fold.index})
    _predict_val(model.to(device()), modalities, fold, task, out_predictions)


def fuse_order_and_weights(
    blocks: Mapping[str, nn.Module],
    modalities: Mapping[str, Modality],
    held_out: Sequence[Sequence[str]],
    task,
    fuse: Mapping[str, Any],
    scores: dict[str, float] | None = None,
) -> tuple[list[str] | None, dict[str, float] | None]:
    """The configured block order (None = sorted names) and head weights (None = equal).

    ``fuse.order: tune_score`` visits the blocks from the lowest to the highest tune score (the
    best block last, next to the head); ``fuse.head_weights: tune_score`` merges the initial
    head with :func:`~mmlego.models.lego_merge.score_weights` of the same scores. ``scores``
    (filled on first use) keeps the blocks' tune scores between calls; ``held_out``: per
    member, from :func:`tune_held_out`.
    """
    by_order = fuse["order"] == "tune_score"
    by_weight = fuse["head_weights"] == "tune_score"
    if not (by_order or by_weight):
        return None, None
    scores = cached_tune_scores(scores, blocks, modalities, held_out, task)
    finite = {m: v if np.isfinite(v) else 0.0 for m, v in scores.items()}
    order = sorted(finite, key=lambda m: (finite[m], m)) if by_order else None
    return order, score_weights(scores) if by_weight else None


def fuse_blocks(
    *,
    block_paths: Sequence[str],
    names: Sequence[str],
    data: Mapping[str, tuple[str, str]],
    fold: Fold,
    settings: Mapping[str, Any],
    out_model: str,
    out_history: str,
    out_predictions: str,
    out_selection: str,
    paired_fraction: float = 1.0,
) -> None:
    """LegoFuse of a fold's blocks, fine-tuned briefly on the training patients that
    ``fuse.patients`` names: ``all``, those with any of the modalities, each through its own
    blocks; ``paired``, those with every one.

    ``paired_fraction`` keeps a seeded share of the paired training patients (the paper's
    paired-data budget; 0 = the fused model with no fine-tuning at all). The fuse settings of
    ``selection.space.fuse`` race on the same train and tune patients
    (:mod:`mmlego.pipeline.selection`); the race is written to ``out_selection``.

    ``fuse.refit``: the kept models (every ensemble member) are then fine-tuned afresh with the
    chosen settings on the train and tune patients together (the budget's share of the paired
    tune patients, too) for ``fuse.epochs`` epochs, keeping the last: the tune patients, which
    no block was trained on, also fine-tune LegoFuse, and no epoch is chosen on them.
    """
    modalities = load_fold_modalities(fold, data)
    task = make_task(dict(settings), fold.outcomes, fold.ids("train"))
    every = settings["fuse"]["patients"] == "all"

    def patients(member: int, refit: bool = False) -> tuple[list[str], list[str]]:
        """The train and tune patients of ensemble member ``member``; with ``refit``, its train
        and tune patients together, and no tune patients."""
        member_fold = member_view(fold, member, settings)
        (paired, partial), (tune_paired, tune_partial) = (
            patients_with(member_fold, role, modalities) for role in ("train", "tune")
        )
        budget = {"seed": settings["seed"], "fold": fold.index}
        paired = paired_subset(paired, paired_fraction, **budget)
        if refit and paired:
            paired += paired_subset(tune_paired, paired_fraction, **budget)
            partial, tune_paired, tune_partial = partial + tune_partial, [], []
        train = sorted(paired + partial) if every and paired else sorted(paired)
        tune = sorted(tune_paired + tune_partial) if every else tune_paired
        log.info(
            "fuse fold %d member %d%s: %d train patients (%d paired), %d tune patients (%d paired)",
            fold.index,
            member,
            " (refit on train + tune)" if refit else "",
            len(train),
            len(paired),
            len(tune),
            len(tune_paired),
        )
        return train, tune

    train, tune = patients(0)
    scores: dict[str, float] = {}
    # member m of every block, for each m (the blocks once from disk; each run trains a copy)
    trained = _load_blocks(block_paths, names)
    sets = member_sets(trained, sources=dict(zip(names, block_paths, strict=True)))
    held_out = tune_held_out(fold, [member_view(fold, m, settings) for m in range(len(sets))])
    base = {"fuse": settings["fuse"], "training": settings["training"]}
    candidates = stage_candidates("fuse", base, settings, fold.index, race=bool(train and tune))

    def run(
        candidate: Candidate, epochs: int, member: int = 0, refit: bool = False
    ) -> tuple[float, tuple[LegoFuse, pd.DataFrame]]:
        chosen = apply_candidate(base, candidate)
        fuse, tr = chosen["fuse"], chosen["training"]
        blocks = copy.deepcopy(sets[member])  # fresh weights for every run
        order, head_weights = fuse_order_and_weights(
            trained, modalities, held_out, task, fuse, scores
        )
        seed = seed_everything(settings["seed"], "fuse", fold.index, *member_key(member))
        model = LegoFuse(blocks, mode=fuse["mode"], order=order, head_weights=head_weights)
        model = model.to(device())
        if fuse["freeze_encoders"]:
            model.freeze(encoders=True)
        forward = multimodal_forward(modalities, TileSampler.from_settings(tr, seed, "tiles"))
        train_m, tune_m = (train, tune) if member == 0 and not refit else patients(member, refit)
        if not train_m:
            log.info("no paired training patients: LegoFuse is not fine-tuned")
            history = pd.DataFrame(
                columns=["epoch", "train_loss", "tune_loss", "tune_score", "best"]
            )
            return tune_score(model, forward, task, tune_m), (model, history)
        params = FitParams.from_settings(
            tr, seed=settings["seed"] if member == 0 else seed, epochs=epochs, lr=fuse["lr"]
        )
        return fit_and_score(
            model, forward=forward, task=task, train_ids=train_m, tune_ids=tune_m, params=params
        )

    epochs = base["fuse"]["epochs"]
    (model, history), chosen = race(
        ("fuse", f"fuse fold {fold.index}"),
        candidates,
        run,
        epochs=epochs,
        selection=settings["selection"],
        task=task,
        tune_ids=tune,
        out_selection=out_selection,
    )
    # blocks that are seed ensembles: member m of every block fused and fine-tuned together,
    # with the settings the race chose on the first members
    if settings["fuse"]["refit"]:
        runs = [run(chosen, epochs, m, refit=True)[1] for m in range(len(sets))]
        model, history = ensemble([r[0] for r in runs]), runs[0][1]
    else:
        model = ensemble([model, *(run(chosen, epochs, m)[1][0] for m in range(1, len(sets)))])
    save_model(model.cpu(), out_model, extra={"fold": fold.index})
    write_tsv(history, out_history)
    _predict_val(model.to(device()), modalities, fold, task, out_predictions)


def train_concat_fusion(
    *,
    specs: Mapping[str, Mapping[str, Any]],
    data: Mapping[str, tuple[str, str]],
    fold: Fold,
    settings: Mapping[str, Any],
    out_model: str,
    out_history: str,
    out_predictions: str,
) -> None:
    """Baseline: the modalities' encoders + concatenation + MLP, trained end to end on the
    fold's PAIRED training patients only; predicts the val patients that have every modality."""
    modalities = load_fold_modalities(fold, data)
    task = make_task(dict(settings), fold.outcomes, fold.ids("train"))
    having = list(modalities.values())
    train, tune, val = (fold.ids(r, having=having) for r in ("train", "tune", "val"))
    log.info("concat fusion fold %d: %d paired train, %d tune", fold.index, len(train), len(tune))
    seed = seed_everything(settings["seed"], "concat_fusion", fold.index)
    encoders = {}
    for name, mod in modalities.items():
        enc = dict(specs[name]["encoder"])
        encoders[name] = build_encoder(enc.pop("kind"), mod.in_dim, **enc)
    model = ConcatFusion(encoders, n_outputs=task.n_outputs).to(device())
    tr = settings["training"]
    forward = multimodal_forward(modalities, TileSampler.from_settings(tr, seed, "tiles"))
    history = fit(
        model,
        forward=forward,
        task=task,
        train_ids=train,
        tune_ids=tune,
        params=FitParams.from_settings(tr, seed=settings["seed"]),
    )
    save_model(model.cpu(), out_model, extra={"fold": fold.index})
    write_tsv(history, out_history)
    model = model.to(device())
    task = with_curve(task, model, forward, train)
    logits = predict(model, forward, val)
    write_tsv(
        prediction_table(task, val, logits, modalities_used(modalities, val)), out_predictions
    )
