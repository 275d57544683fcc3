"""Prediction tasks: what the heads output, the loss, and the score written to predictions.

Survival uses either discrete-time hazards (``loss: nll``; K outputs, bins fitted on the fold's
training patients, all of them whatever their modalities, so that every block of a fold shares
the same output meaning and their heads can be merged) or the Cox partial likelihood (``loss:
cox``; one output, the log hazard ratio, which is also the risk; its survival curve comes from
Breslow's baseline hazard on the training patients, :meth:`SurvivalTask.with_baseline`).
Classification uses cross entropy over the training classes, with smoothed targets
(``classification.label_smoothing``).

Every task also has a ``score`` (higher = better) of logits on patients: Harrell's c-index of
the risk for survival, ROC AUC (one-vs-rest, macro) of the probabilities for classification.
Training may choose its epoch on the tune patients' score, and LegoMerge may weight blocks by it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from mmlego.evaluation.prediction_format import RISK, prob_column, surv_column
from mmlego.models import survival

SURVIVAL_LOSSES = ("nll", "cox")


@dataclass(frozen=True)
class SurvivalTask:
    """Survival: discrete-time hazards (``loss="nll"``: K bins, NLL with weight ``alpha`` on the
    uncensored terms) or Cox (``loss="cox"``: one output, negative partial log-likelihood of the
    batch, Breslow ties)."""

    outcomes: pd.DataFrame  # index patient_id; columns time, event
    edges: np.ndarray  # bin edges fitted on training patients
    alpha: float = 0.0
    loss_kind: str = "nll"
    # Cox: Breslow's H0 at the inner bin edges for hazards exp(risk - offset) (None: no curve)
    baseline: tuple[float, ...] | None = None
    offset: float = 0.0

    def __post_init__(self) -> None:
        if self.loss_kind not in SURVIVAL_LOSSES:
            raise ValueError(
                f"survival loss must be one of {SURVIVAL_LOSSES}, got {self.loss_kind!r}"
            )

    @classmethod
    def fit(
        cls,
        outcomes: pd.DataFrame,
        train_ids: Sequence[str],
        *,
        n_bins: int,
        alpha: float,
        loss: str = "nll",
    ):
        train = outcomes.loc[list(train_ids)]
        edges = survival.fit_bins(
            train["time"].to_numpy(float), train["event"].to_numpy(int), n_bins=n_bins
        )
        return cls(outcomes=outcomes, edges=np.asarray(edges), alpha=alpha, loss_kind=loss)

    @property
    def n_outputs(self) -> int:
        return 1 if self.loss_kind == "cox" else len(self.edges) - 1

    @property
    def needs_baseline(self) -> bool:
        """True for Cox until :meth:`with_baseline` has given it a survival curve."""
        return self.loss_kind == "cox" and self.baseline is None

    def with_baseline(self, logits: torch.Tensor, patient_ids: Sequence[str]) -> SurvivalTask:
        """This Cox task with Breslow's baseline hazard at the inner bin edges, fitted on the
        risks ``logits`` (b, 1) of ``patient_ids`` (the fold's training patients) and their
        outcomes, so that :meth:`scores` also writes the survival curve."""
        if self.loss_kind != "cox":
            return self
        r = self.risk(logits).detach().cpu().numpy().astype(float)  # (b,)
        rows = self.outcomes.loc[list(patient_ids)]
        offset = float(r.max())
        h0 = survival.breslow(
            r - offset, rows["time"].to_numpy(float), rows["event"].to_numpy(), self.edges[1:-1]
        )
        return replace(self, baseline=tuple(float(h) for h in h0), offset=offset)

    def targets(self, patient_ids: Sequence[str], device: torch.device) -> dict[str, torch.Tensor]:
        rows = self.outcomes.loc[list(patient_ids)]
        time = rows["time"].to_numpy(float)
        y = survival.discretise(time, self.edges)
        return {
            "y": torch.as_tensor(np.asarray(y), dtype=torch.long, device=device),
            "c": torch.as_tensor(1 - rows["event"].to_numpy(), dtype=torch.float32, device=device),
            "time": torch.tensor(time, dtype=torch.float32, device=device),
            "event": torch.tensor(rows["event"].to_numpy(), dtype=torch.float32, device=device),
        }

    def loss(self, logits: torch.Tensor, targets: dict[str, torch.Tensor]) -> torch.Tensor:
        if self.loss_kind == "cox":
            return survival.cox_loss(logits[:, 0], targets["time"], targets["event"])
        return survival.nll_loss(logits, targets["y"], targets["c"], alpha=self.alpha)

    def risk(self, logits: torch.Tensor) -> torch.Tensor:
        """Risk (b,), higher = worse: the log hazard ratio (Cox) or minus the sum of S_k."""
        return logits[:, 0] if self.loss_kind == "cox" else survival.risk(logits)

    def score_counts(self, patient_ids: Sequence[str]) -> tuple[int, int]:
        """(events, others) among ``patient_ids``: the two sides of the c-index's pairs."""
        events = int(self.outcomes.loc[list(patient_ids), "event"].sum())
        return events, len(patient_ids) - events

    def score(self, logits: torch.Tensor, targets: dict[str, torch.Tensor]) -> float:
        """Harrell's c-index of the risk (NaN without comparable pairs)."""
        return survival.concordance(
            self.risk(logits).detach().cpu().numpy(),
            targets["time"].cpu().numpy(),
            targets["event"].cpu().numpy(),
        )

    def scores(self, logits: torch.Tensor) -> dict[str, np.ndarray]:
        """Risk and the survival curve at the inner bin edges (discrete-time hazards, or Cox
        once :meth:`with_baseline` has fitted H0): column ``surv_at_<t>`` is the predicted
        probability of surviving past ``t``."""
        risk = self.risk(logits).detach().cpu().numpy().astype(float)  # (b,)
        out = {RISK: risk}
        if self.loss_kind == "cox":
            if self.baseline is None:
                return out
            h0 = np.asarray(self.baseline)  # (K-1,)
            curve = np.exp(-h0[None, :] * np.exp(risk - self.offset)[:, None])  # (b, K-1)
        else:
            curve = survival.survival_curve(logits).detach().cpu().numpy().astype(float)  # (b, K)
        for k, t in enumerate(self.edges[1:-1]):  # S_k = P(T > upper edge of bin k)
            out[surv_column(t)] = curve[:, k]
        return out


@dataclass(frozen=True)
class ClassificationTask:
    """Cross entropy over the classes seen in training (patients of other classes ignored),
    against targets smoothed by ``label_smoothing`` (eps): 1 - eps + eps / K for the patient's
    class, eps / K for each of the other K - 1."""

    outcomes: pd.DataFrame  # index patient_id; column label
    classes: tuple[str, ...]
    label_smoothing: float = 0.0
    needs_baseline = False  # class probabilities need no survival curve (see SurvivalTask)

    @classmethod
    def fit(cls, outcomes: pd.DataFrame, train_ids: Sequence[str], *, label_smoothing: float = 0.0):
        classes = tuple(sorted(outcomes.loc[list(train_ids), "label"].astype(str).unique()))
        if len(classes) < 2:
            raise ValueError(
                f"classification needs >= 2 classes among training patients, got {classes}"
            )
        return cls(outcomes=outcomes, classes=classes, label_smoothing=label_smoothing)

    @property
    def n_outputs(self) -> int:
        return len(self.classes)

    def targets(self, patient_ids: Sequence[str], device: torch.device) -> dict[str, torch.Tensor]:
        labels = self.outcomes.loc[list(patient_ids), "label"].astype(str)
        lookup = {c: i for i, c in enumerate(self.classes)}
        y = [lookup.get(v, -100) for v in labels]  # classes unseen in training are ignored
        return {"y": torch.as_tensor(y, dtype=torch.long, device=device)}

    def loss(self, logits: torch.Tensor, targets: dict[str, torch.Tensor]) -> torch.Tensor:
        return F.cross_entropy(
            logits, targets["y"], ignore_index=-100, label_smoothing=self.label_smoothing
        )

    def score_counts(self, patient_ids: Sequence[str]) -> tuple[int, int]:
        """(patients of the rarest training class, the others) among ``patient_ids``: the
        smallest side of the AUC's one-vs-rest pairs. Only the classes that :meth:`score` scores
        count: training classes with a patient here (a class absent from a tune set has no
        one-vs-rest AUC, and does not make the score's standard error infinite)."""
        labels = self.outcomes.loc[list(patient_ids), "label"].astype(str)
        counts = [n for n in (int((labels == c).sum()) for c in self.classes) if n]
        if not counts:
            return 0, 0
        return min(counts), sum(counts) - min(counts)

    def score(self, logits: torch.Tensor, targets: dict[str, torch.Tensor]) -> float:
        """ROC AUC of the probabilities (one-vs-rest macro for > 2 classes; NaN with one class)."""
        from sklearn.metrics import roc_auc_score

        y = targets["y"].cpu().numpy()
        keep = y >= 0
        probs = torch.softmax(logits, dim=-1).detach().cpu().numpy()[keep]
        y = y[keep]
        if len(np.unique(y)) < 2:
            return float("nan")
        if probs.shape[1] == 2:
            return float(roc_auc_score(y, probs[:, 1]))
        present = np.unique(y)
        sub = probs[:, present] / probs[:, present].sum(axis=1, keepdims=True)
        if len(present) == 2:
            return float(roc_auc_score(y == present[1], sub[:, 1]))
        return float(roc_auc_score(y, sub, multi_class="ovr", labels=present))

    def scores(self, logits: torch.Tensor) -> dict[str, np.ndarray]:
        probs = torch.softmax(logits, dim=-1).detach().cpu().numpy().astype(float)
        return {prob_column(c): probs[:, i] for i, c in enumerate(self.classes)}


Task = SurvivalTask | ClassificationTask


def make_task(settings: dict, outcomes: pd.DataFrame, train_ids: Sequence[str]) -> Task:
    """The task of the workflow settings, fitted on the fold's training patients."""
    if settings["task"] == "survival":
        surv = settings["survival"]
        return SurvivalTask.fit(
            outcomes,
            train_ids,
            n_bins=surv["n_bins"],
            alpha=surv["alpha"],
            loss=surv["loss"],
        )
    return ClassificationTask.fit(
        outcomes, train_ids, label_smoothing=settings["classification"]["label_smoothing"]
    )


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
