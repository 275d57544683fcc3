"""Prediction tasks: what the heads output, the loss, and the score written to predictions.

Survival uses discrete-time hazards with bins fitted on the fold's training patients (all of
them, whatever their modalities, so that every block of a fold shares the same output meaning
and their heads can be merged). Classification uses cross entropy over the training classes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from mmlego.models import survival


@dataclass(frozen=True)
class SurvivalTask:
    """Discrete-time hazard survival: K bins, NLL loss with weight ``alpha`` on uncensored terms."""

    outcomes: pd.DataFrame  # index patient_id; columns time, event
    edges: np.ndarray  # bin edges fitted on training patients
    alpha: float = 0.0

    @classmethod
    def fit(cls, outcomes: pd.DataFrame, train_ids: Sequence[str], *, n_bins: int, alpha: float):
        train = outcomes.loc[list(train_ids)]
        edges = survival.fit_bins(
            train["time"].to_numpy(float), train["event"].to_numpy(int), n_bins=n_bins
        )
        return cls(outcomes=outcomes, edges=np.asarray(edges), alpha=alpha)

    @property
    def n_outputs(self) -> int:
        return len(self.edges) - 1

    def targets(self, patient_ids: Sequence[str], device: torch.device) -> dict[str, torch.Tensor]:
        rows = self.outcomes.loc[list(patient_ids)]
        y = survival.discretise(rows["time"].to_numpy(float), self.edges)
        return {
            "y": torch.as_tensor(np.asarray(y), dtype=torch.long, device=device),
            "c": torch.as_tensor(1 - rows["event"].to_numpy(), dtype=torch.float32, device=device),
        }

    def loss(self, logits: torch.Tensor, targets: dict[str, torch.Tensor]) -> torch.Tensor:
        return survival.nll_loss(logits, targets["y"], targets["c"], alpha=self.alpha)

    def scores(self, logits: torch.Tensor) -> dict[str, np.ndarray]:
        """Risk (minus the sum of the survival curve) and the curve itself at the inner bin
        edges: column ``surv_at_<t>`` is the predicted probability of surviving past ``t``."""
        out = {"risk": survival.risk(logits).detach().cpu().numpy().astype(float)}
        curve = survival.survival_curve(logits).detach().cpu().numpy().astype(float)  # (b, K)
        for k, t in enumerate(self.edges[1:-1]):  # S_k = P(T > upper edge of bin k)
            out[f"surv_at_{t:.6g}"] = curve[:, k]
        return out


@dataclass(frozen=True)
class ClassificationTask:
    """Cross entropy over the classes seen in training, optionally class-weighted."""

    outcomes: pd.DataFrame  # index patient_id; column label
    classes: tuple[str, ...]

    @classmethod
    def fit(cls, outcomes: pd.DataFrame, train_ids: Sequence[str]):
        classes = tuple(sorted(outcomes.loc[list(train_ids), "label"].astype(str).unique()))
        if len(classes) < 2:
            raise ValueError(
                f"classification needs >= 2 classes among training patients, got {classes}"
            )
        return cls(outcomes=outcomes, classes=classes)

    @property
    def n_outputs(self) -> int:
        return len(self.classes)

    def targets(self, patient_ids: Sequence[str], device: torch.device) -> dict[str, torch.Tensor]:
        labels = self.outcomes.loc[list(patient_ids), "label"].astype(str)
        lookup = {c: i for i, c in enumerate(self.classes)}
        y = [lookup.get(v, -100) for v in labels]  # classes unseen in training are ignored
        return {"y": torch.as_tensor(y, dtype=torch.long, device=device)}

    def loss(self, logits: torch.Tensor, targets: dict[str, torch.Tensor]) -> torch.Tensor:
        return F.cross_entropy(logits, targets["y"], ignore_index=-100)

    def scores(self, logits: torch.Tensor) -> dict[str, np.ndarray]:
        probs = torch.softmax(logits, dim=-1).detach().cpu().numpy().astype(float)
        return {f"prob_{c}": probs[:, i] for i, c in enumerate(self.classes)}


Task = SurvivalTask | ClassificationTask


def make_task(settings: dict, outcomes: pd.DataFrame, train_ids: Sequence[str]) -> Task:
    """The task of the workflow settings, fitted on the fold's training patients."""
    if settings["task"] == "survival":
        surv = settings["survival"]
        return SurvivalTask.fit(outcomes, train_ids, n_bins=surv["n_bins"], alpha=surv["alpha"])
    return ClassificationTask.fit(outcomes, train_ids)


def prediction_table(
    task: Task, patient_ids: Sequence[str], logits: torch.Tensor, modalities: Sequence[str]
) -> pd.DataFrame:
    """The predictions file: patient_id, outcome columns, scores, modalities used."""
    out = task.outcomes.loc[list(patient_ids)].reset_index()
    cols = (
        ["patient_id", "time", "event"]
        if isinstance(task, SurvivalTask)
        else ["patient_id", "label"]
    )
    out = out[[c for c in cols if c in out.columns]]
    for name, values in task.scores(logits).items():
        out[name] = values
    out["modalities"] = list(modalities)
    return out
