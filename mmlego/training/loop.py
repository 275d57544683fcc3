"""A small, explicit training loop with early stopping on the fold's `tune` patients.

The validation patients of a fold never reach this module: the weights kept are chosen on
`tune` patients, which are carved out of the training patients.

- ``select="loss"``: the epoch with the lowest tune loss; ``select="score"``: the epoch with the
  highest tune score (:meth:`Task.score`: c-index for survival, AUC for classification), which
  is what is reported and is less noisy than the NLL on a few dozen tune patients.
- ``ema`` (decay in [0, 1), 0 = off): an exponential moving average of the weights, updated after
  every optimiser step, ``theta_ema <- ema * theta_ema + (1 - ema) * theta``; the tune patients
  score (and the run keeps) the averaged weights.
- ``average_best`` (k >= 1): the kept weights are the mean of the weights of the k best epochs
  (by the selection criterion), not the best epoch alone.

Early stopping: after ``patience`` epochs without improvement of the criterion.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from mmlego.io import write_tsv
from mmlego.pipeline.config import base_defaults, check_section
from mmlego.pipeline.selection import Candidate, score_se, successive_halving, trials_table
from mmlego.training.tasks import Task

log = logging.getLogger(__name__)

Forward = Callable[[nn.Module, Sequence[str]], torch.Tensor]  # (model, patients) -> logits (b, k)

_DEFAULTS = base_defaults("training")


@dataclass(frozen=True)
class FitParams:
    """One training run's settings (config key ``training``, checked against its schema);
    ``select``, ``ema`` and ``average_best`` default to the workflow's."""

    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    patience: int
    seed: int
    select: str = _DEFAULTS["select"]
    ema: float = _DEFAULTS["ema"]
    average_best: int = _DEFAULTS["average_best"]

    def __post_init__(self) -> None:
        check_section({k: v for k, v in asdict(self).items() if k != "seed"}, "training")

    @classmethod
    def from_settings(cls, training: dict, *, seed: int, **override) -> FitParams:
        """From the config's ``training`` section; ``override`` replaces keys (fuse epochs, lr).

        ``select``, ``ema`` and ``average_best`` are optional (the workflow's defaults)."""
        keys = ("epochs", "batch_size", "lr", "weight_decay", "patience")
        optional = {k: training[k] for k in ("select", "ema", "average_best") if k in training}
        return cls(**{k: training[k] for k in keys} | optional | override, seed=seed)


def device() -> torch.device:
    """CUDA when present, else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _batches(ids: Sequence[str], size: int, gen: torch.Generator | None) -> list[list[str]]:
    order = torch.randperm(len(ids), generator=gen).tolist() if gen is not None else range(len(ids))
    ids = [ids[i] for i in order]
    return [ids[i : i + size] for i in range(0, len(ids), size)]


def evaluate_loss(
    model: nn.Module, forward: Forward, task: Task, ids: Sequence[str], *, batch_size: int
) -> float:
    """Mean loss over ``ids`` (weighted by batch size), in eval mode, without gradients."""
    dev = next(model.parameters()).device
    model.eval()
    total = 0.0
    with torch.no_grad():
        for batch in _batches(ids, batch_size, None):
            loss = task.loss(forward(model, batch), task.targets(batch, dev))
            total += float(loss) * len(batch)
    return total / max(len(ids), 1)


def evaluate(
    model: nn.Module, forward: Forward, task: Task, ids: Sequence[str], *, batch_size: int
) -> tuple[float, float]:
    """(mean loss, score) over ``ids`` in eval mode, the score on all of them at once."""
    dev = next(model.parameters()).device
    logits = predict(model, forward, ids, batch_size=batch_size).to(dev)
    targets = task.targets(ids, dev)
    with torch.no_grad():
        loss = float(task.loss(logits, targets)) if len(ids) else np.nan
    return loss, task.score(logits, targets) if len(ids) else np.nan


class WeightAverage:
    """Exponential moving average of a model's floating-point parameters and buffers."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay = decay
        self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """``avg <- decay * avg + (1 - decay) * current`` (non-float entries copied)."""
        for k, v in model.state_dict().items():
            if v.is_floating_point():
                self.state[k].mul_(self.decay).add_(v.detach(), alpha=1 - self.decay)
            else:
                self.state[k].copy_(v)


def average_states(states: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Entry-wise mean of state dicts (non-float entries from the first)."""
    out = {}
    for k, v in states[0].items():
        if v.is_floating_point():
            out[k] = torch.stack([s[k] for s in states]).mean(0)
        else:
            out[k] = v.clone()
    return out


def fit(
    model: nn.Module,
    *,
    forward: Forward,
    task: Task,
    train_ids: Sequence[str],
    tune_ids: Sequence[str],
    params: FitParams,
) -> pd.DataFrame:
    """Train ``model`` in place; keep the weights chosen on the tune patients (module docs).

    Returns the history: one row per epoch with columns epoch, train_loss, tune_loss,
    tune_score, best. With no tune patients the last epoch is kept (and a warning is logged).
    """
    if not train_ids:
        raise ValueError("no training patients: cannot fit")
    dev = next(model.parameters()).device
    gen = torch.Generator().manual_seed(params.seed)
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=params.lr, weight_decay=params.weight_decay)
    if not tune_ids:
        log.warning("no tune patients: early stopping disabled, keeping the last epoch")
    average = WeightAverage(model, params.ema) if params.ema > 0 else None
    ranked: list[tuple[float, int, dict[str, torch.Tensor]]] = []  # (criterion, epoch, state)
    best, stale, rows = np.inf, 0, []
    for epoch in range(params.epochs):
        model.train()
        seen, total = 0, 0.0
        for batch in _batches(list(train_ids), params.batch_size, gen):
            loss = task.loss(forward(model, batch), task.targets(batch, dev))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if average is not None:
                average.update(model)
            seen += len(batch)
            total += loss.item() * len(batch)
        current = None
        if average is not None:  # score the averaged weights
            current = copy.deepcopy(model.state_dict())
            model.load_state_dict(average.state)
        tune_loss, tune_score = (
            evaluate(model, forward, task, tune_ids, batch_size=params.batch_size)
            if tune_ids
            else (np.nan, np.nan)
        )
        criterion = tune_loss if params.select == "loss" else -tune_score  # lower = better
        if not np.isfinite(criterion):
            criterion = np.inf
        improved = bool(tune_ids) and criterion < best - 1e-6
        if tune_ids:
            ranked.append((criterion, epoch, copy.deepcopy(model.state_dict())))
            ranked = sorted(ranked, key=lambda r: (r[0], r[1]))[: params.average_best]
        if improved:
            best, stale = criterion, 0
        else:
            stale += 1
        if current is not None:
            model.load_state_dict(current)
        rows.append(
            {
                "epoch": epoch,
                "train_loss": total / max(seen, 1),
                "tune_loss": tune_loss,
                "tune_score": tune_score,
                "best": improved,
            }
        )
        log.info(
            "epoch %d train_loss %.4f tune_loss %.4f tune_score %.4f",
            epoch,
            rows[-1]["train_loss"],
            tune_loss,
            tune_score,
        )
        if tune_ids and stale >= params.patience:
            break
    if ranked:
        model.load_state_dict(average_states([r[2] for r in ranked]))
    elif average is not None:
        model.load_state_dict(average.state)
    return pd.DataFrame(rows)


def tune_score(model: nn.Module, forward: Forward, task: Task, tune_ids: Sequence[str]) -> float:
    """The score (c-index / AUC) of ``model`` as it is on the tune patients (NaN with none)."""
    if not tune_ids:
        return float("nan")
    return float(evaluate(model, forward, task, tune_ids, batch_size=64)[1])


def fit_and_score(model: nn.Module, **fit_args: Any) -> tuple[float, tuple[nn.Module, Any]]:
    """:func:`fit` (``fit_args``: its keyword arguments), then the tune score of the weights kept:
    (score, (model, history)), one run of a race (:func:`race`)."""
    history = fit(model, **fit_args)
    score = tune_score(model, fit_args["forward"], fit_args["task"], fit_args["tune_ids"])
    return score, (model, history)


def race(
    what: tuple[str, str],
    candidates: Sequence[Candidate],
    run: Callable[[Candidate, int], tuple[float, Any]],
    *,
    epochs: int,
    selection: Mapping[str, Any],
    task: Task,
    tune_ids: Sequence[str],
    out_selection: str,
) -> tuple[Any, Candidate]:
    """Race ``candidates`` by successive halving (:mod:`mmlego.pipeline.selection`) with
    ``epochs`` as the full budget, log the choice, write the race to ``out_selection``; return
    what the chosen run returned and the chosen candidate. ``what``: the stage and what is
    raced (for the log). The configured settings keep their place unless beaten by
    ``selection.margin`` standard errors of the task's score on ``tune_ids``, the patients
    ``run`` scores on."""
    stage, label = what
    margin = 0.0
    if len(candidates) > 1:
        margin = float(selection["margin"]) * score_se(*task.score_counts(tune_ids))
    # a score difference never exceeds 1: without events on the tune set (infinite standard
    # error) no challenger can win
    outcome = successive_halving(
        candidates, run, epochs=epochs, eta=selection["eta"], margin=min(margin, 1.0)
    )
    if len(candidates) > 1:
        last = [t for t in outcome.trials if t.candidate == outcome.chosen][-1]
        log.info(
            "%s: chose candidate %d of %d %s (tune score %.4f; challengers had to beat the "
            "configured settings by %.4f)",
            label,
            outcome.chosen,
            len(candidates),
            dict(candidates[outcome.chosen]),
            last.score,
            margin,
        )
    write_tsv(pd.DataFrame(trials_table(stage, candidates, outcome)), out_selection)
    return outcome.result, candidates[outcome.chosen]


def predict(
    model: nn.Module, forward: Forward, ids: Sequence[str], *, batch_size: int = 64
) -> torch.Tensor:
    """Logits for ``ids`` in eval mode, concatenated in the order of ``ids``."""
    model.eval()
    with torch.no_grad():
        parts = [forward(model, batch).cpu() for batch in _batches(list(ids), batch_size, None)]
    return torch.cat(parts) if parts else torch.empty(0)


def with_curve(task: Task, model: nn.Module, forward: Forward, fit_ids: Sequence[str]) -> Task:
    """The task that writes ``model``'s predictions: a Cox task gets Breslow's baseline hazard
    from the model's risks on ``fit_ids`` (the fold's training patients it was fitted on), so
    that its predictions carry a survival curve; any other task is returned as it is."""
    if not task.needs_baseline or not fit_ids:
        return task
    return task.with_baseline(predict(model, forward, fit_ids), fit_ids)
