"""A small, explicit training loop with early stopping on the fold's `tune` patients.

The validation patients of a fold never reach this module: the epoch kept is the one with the
lowest loss on `tune` patients, which are carved out of the training patients.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from mmlego.training.tasks import Task

log = logging.getLogger(__name__)

Forward = Callable[[nn.Module, Sequence[str]], torch.Tensor]  # (model, patients) -> logits (b, k)


@dataclass(frozen=True)
class FitParams:
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    patience: int
    seed: int

    @classmethod
    def from_settings(cls, training: dict, *, seed: int, **override) -> FitParams:
        """From the config's ``training`` section; ``override`` replaces keys (fuse epochs, lr)."""
        keys = ("epochs", "batch_size", "lr", "weight_decay", "patience")
        return cls(**{k: training[k] for k in keys} | override, seed=seed)


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


def fit(
    model: nn.Module,
    *,
    forward: Forward,
    task: Task,
    train_ids: Sequence[str],
    tune_ids: Sequence[str],
    params: FitParams,
) -> pd.DataFrame:
    """Train ``model`` in place; keep the weights of the epoch with the lowest tune loss.

    Returns the history: one row per epoch with columns epoch, train_loss, tune_loss, best.
    With no tune patients the last epoch is kept (and a warning is logged).
    """
    if not train_ids:
        raise ValueError("no training patients: cannot fit")
    dev = next(model.parameters()).device
    gen = torch.Generator().manual_seed(params.seed)
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=params.lr, weight_decay=params.weight_decay)
    if not tune_ids:
        log.warning("no tune patients: early stopping disabled, keeping the last epoch")
    best_loss, best_state, stale, rows = np.inf, None, 0, []
    for epoch in range(params.epochs):
        model.train()
        seen, total = 0, 0.0
        for batch in _batches(list(train_ids), params.batch_size, gen):
            loss = task.loss(forward(model, batch), task.targets(batch, dev))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            seen += len(batch)
            total += loss.item() * len(batch)
        tune_loss = (
            evaluate_loss(model, forward, task, tune_ids, batch_size=params.batch_size)
            if tune_ids
            else np.nan
        )
        improved = bool(tune_ids) and tune_loss < best_loss - 1e-6
        if improved:
            best_loss, best_state, stale = tune_loss, copy.deepcopy(model.state_dict()), 0
        else:
            stale += 1
        rows.append(
            {
                "epoch": epoch,
                "train_loss": total / max(seen, 1),
                "tune_loss": tune_loss,
                "best": improved,
            }
        )
        log.info(
            "epoch %d train_loss %.4f tune_loss %.4f", epoch, rows[-1]["train_loss"], tune_loss
        )
        if tune_ids and stale >= params.patience:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    return pd.DataFrame(rows)


def predict(
    model: nn.Module, forward: Forward, ids: Sequence[str], *, batch_size: int = 64
) -> torch.Tensor:
    """Logits for ``ids`` in eval mode, concatenated in the order of ``ids``."""
    model.eval()
    with torch.no_grad():
        parts = [forward(model, batch).cpu() for batch in _batches(list(ids), batch_size, None)]
    return torch.cat(parts) if parts else torch.empty(0)
