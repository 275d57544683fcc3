"""Score prediction files per model and fold into the long metrics table, and summarise it.

Input: the prediction TSVs ``predictions/<model>/fold<k>.tsv`` (patient_id, time, event, risk,
modalities; classification: label, prob_<class>, modalities). Output: a long table with one row
per (model, fold, metric) -- the ``metrics.tsv`` contract -- and its per-model summary.

Survival metrics per model and fold
    ``c_index``            Harrell's c on every validation patient the model predicted.
    ``c_index_uno``        Uno's IPCW c (censoring fitted on the fold's training patients),
                           only when ``train_outcomes`` is given.
    ``c_index_complete``   Harrell's c on the fold's *complete* patients (see
                           :func:`complete_patients`): one patient set per fold shared by every
                           model, so that models that use different modalities are comparable.
    ``n_patients``, ``n_events``, ``n_patients_complete``.
Classification metrics: ``auc``, ``average_precision``, ``balanced_accuracy``, ``f1``,
``n_patients``.

Undefined metrics (e.g. a fold without events) are ``nan`` with a logged warning; see
:mod:`mmlego.evaluation.metrics`. New metrics (IBS, time-dependent AUC) slot into
:func:`survival_metrics`; bootstrap intervals into :func:`summarise`.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Hashable, Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from mmlego.evaluation import metrics as M

log = logging.getLogger(__name__)

ORACLE_MODEL = "oracle_synthetic_true_risk"
SURVIVAL_COLUMNS = ("patient_id", "time", "event", "risk", "modalities")
CLASSIFICATION_COLUMNS = ("patient_id", "label", "modalities")
TASKS = ("survival", "classification")

PathLike = str | os.PathLike
Fold = Hashable


def modality_set(value: object) -> frozenset[str]:
    """Parse a ``modalities`` cell ('cnv+rnaseq+wsi'; empty/NaN = none) into a set."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return frozenset()
    return frozenset(m for m in str(value).split("+") if m)


def read_predictions(path: PathLike, *, task: str) -> pd.DataFrame:
    """Read and validate one prediction TSV.

    Raises
    ------
    ValueError
        Naming the file when a required column is missing, a patient appears twice, or
        (classification) no ``prob_<class>`` column exists.
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    # ids, modality strings and labels stay text ("01", "1" are labels, not numbers)
    df = pd.read_csv(path, sep="\t", dtype={"patient_id": str, "modalities": str, "label": str})
    required = SURVIVAL_COLUMNS if task == "survival" else CLASSIFICATION_COLUMNS
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ValueError(
            f"{path}: missing column(s) {missing} for task {task!r}; has {list(df.columns)}"
        )
    if task == "classification" and not any(c.startswith("prob_") for c in df.columns):
        raise ValueError(f"{path}: no prob_<class> columns for the classification task")
    dup = df["patient_id"][df["patient_id"].duplicated()]
    if len(dup):
        raise ValueError(f"{path}: patient(s) predicted more than once: {sorted(set(dup))[:5]}")
    df["modalities"] = df["modalities"].fillna("").astype(str)
    return df


def find_prediction_files(pred_dir: PathLike) -> dict[tuple[str, int], Path]:
    """Map (model, fold) to ``<pred_dir>/<model>/fold<k>.tsv`` for every such file found."""
    found = {}
    for path in sorted(Path(pred_dir).glob("*/fold*.tsv")):
        match = re.fullmatch(r"fold(\d+)\.tsv", path.name)
        if match:
            found[(path.parent.name, int(match.group(1)))] = path
    return found


def train_outcomes_from_splits(
    patients: pd.DataFrame,
    splits: Mapping[Fold, pd.DataFrame],
    *,
    roles: Iterable[str] = ("train", "tune"),
) -> dict[Fold, pd.DataFrame]:
    """Outcomes (index patient_id; time, event) of each fold's training patients (train + tune)."""
    table = patients.set_index("patient_id") if "patient_id" in patients.columns else patients
    roles = set(roles)
    out = {}
    for fold, split in splits.items():
        ids = split.loc[split["role"].isin(roles), "patient_id"].astype(str)
        unknown = sorted(set(ids) - set(table.index.astype(str)))
        if unknown:
            raise ValueError(
                f"fold {fold}: training patient(s) not in the patients table: {unknown[:5]}"
            )
        out[fold] = table.loc[list(ids), ["time", "event"]]
    return out


def complete_patients(
    predictions: Mapping[str, pd.DataFrame], modalities: Iterable[str]
) -> set[str]:
    """Patients of one fold that have every cohort modality and were predicted by every model.

    A patient's modalities are the union of its ``modalities`` cells over all models of the
    fold (a unimodal block only reports its own modality, so the union recovers what the patient
    has). Intersecting with the patients every model predicted makes the set identical for all
    models of the fold.
    """
    wanted = frozenset(modalities)
    has: dict[str, set[str]] = {}
    for df in predictions.values():
        for pid, mods in zip(df["patient_id"], df["modalities"], strict=True):
            has.setdefault(pid, set()).update(modality_set(mods))
    complete = {pid for pid, mods in has.items() if wanted <= mods}
    for df in predictions.values():
        complete &= set(df["patient_id"])
    return complete


def survival_metrics(
    df: pd.DataFrame,
    *,
    train: pd.DataFrame | None,
    complete: set[str] | None,
    risk_column: str = "risk",
) -> dict[str, float]:
    """Survival metrics of one model on one fold (``df``: patient_id, time, event, risk)."""
    t = df["time"].to_numpy(float)
    e = df["event"].to_numpy(int)
    r = df[risk_column].to_numpy(float)
    out = {
        "c_index": M.harrell_c(t, e, r),
        "n_patients": float(len(df)),
        "n_events": float(e.sum()),
    }
    if train is not None:
        out["c_index_uno"] = M.uno_c(
            train["time"].to_numpy(float), train["event"].to_numpy(int), t, e, r
        )
    if complete is not None:
        sub = df[df["patient_id"].isin(complete)]
        out["c_index_complete"] = M.harrell_c(
            sub["time"].to_numpy(float),
            sub["event"].to_numpy(int),
            sub[risk_column].to_numpy(float),
        )
        out["n_patients_complete"] = float(len(sub))
    return out


def classification_metrics(df: pd.DataFrame) -> dict[str, float]:
    """Classification metrics of one model on one fold (``df``: label, prob_<class> columns)."""
    prob_cols = [c for c in df.columns if c.startswith("prob_")]
    classes = [c.removeprefix("prob_") for c in prob_cols]
    if df["label"].isna().any():
        bad = df.loc[df["label"].isna(), "patient_id"].tolist()[:5]
        raise ValueError(f"missing label for patient(s) {bad}")
    y = df["label"].astype(str).to_numpy()
    prob = df[prob_cols].to_numpy(float)  # (n, k)
    pred = np.asarray(classes)[np.argmax(prob, axis=1)] if len(df) else np.asarray([], dtype=str)
    return {
        "auc": M.auc(y, prob, classes=classes),
        "average_precision": M.average_precision(y, prob, classes=classes),
        "balanced_accuracy": M.balanced_accuracy(y, pred),
        "f1": M.f1(y, pred),
        "n_patients": float(len(df)),
    }


def _fold_key(fold: Fold) -> tuple[int, float, str]:
    """Sort folds numerically when they are numbers (fold 10 after fold 2)."""
    if isinstance(fold, int | np.integer):
        return (0, float(fold), "")
    return (1, 0.0, str(fold))


def _long_rows(model: str, fold: Fold, values: Mapping[str, float]) -> list[dict]:
    return [{"model": model, "fold": fold, "metric": k, "value": v} for k, v in values.items()]


def _val_ids(splits: Mapping[Fold, pd.DataFrame] | None, fold: Fold) -> set[str] | None:
    if splits is None:
        return None
    if fold not in splits:
        raise ValueError(f"fold {fold!r} has predictions but no split table (have {list(splits)})")
    split = splits[fold]
    return set(split.loc[split["role"] == "val", "patient_id"].astype(str))


def _oracle_rows(
    oracle: pd.DataFrame,
    *,
    folds: list[Fold],
    splits: Mapping[Fold, pd.DataFrame],
    outcomes: pd.DataFrame,
    train_outcomes: Mapping[Fold, pd.DataFrame] | None,
    complete: Mapping[Fold, set[str]],
) -> list[dict]:
    missing = [c for c in ("patient_id", "true_risk") if c not in oracle.columns]
    if missing:
        raise ValueError(f"oracle table lacks column(s) {missing}; has {list(oracle.columns)}")
    truth = oracle.assign(patient_id=oracle["patient_id"].astype(str)).set_index("patient_id")
    rows = []
    for fold in folds:
        ids = sorted(_val_ids(splits, fold))
        known = [p for p in ids if p in outcomes.index and p in truth.index]
        if len(known) < len(ids):
            log.warning(
                "oracle, fold %s: %d validation patient(s) without outcome or true risk skipped",
                fold,
                len(ids) - len(known),
            )
        df = (
            outcomes.loc[known, ["time", "event"]]
            .assign(risk=truth.loc[known, "true_risk"].to_numpy(float))
            .rename_axis("patient_id")
            .reset_index()
        )
        train = train_outcomes.get(fold) if train_outcomes is not None else None
        values = survival_metrics(df, train=train, complete=complete.get(fold))
        rows += _long_rows(ORACLE_MODEL, fold, values)
    return rows


def evaluate_predictions(
    pred_files: Mapping[tuple[str, Fold], PathLike],
    *,
    task: str,
    train_outcomes: Mapping[Fold, pd.DataFrame] | None = None,
    modalities: Iterable[str],
    oracle: pd.DataFrame | None = None,
    splits: Mapping[Fold, pd.DataFrame] | None = None,
    outcomes: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Score every (model, fold) prediction file.

    Parameters
    ----------
    pred_files : mapping (model, fold) -> path
        Prediction TSVs (see :func:`find_prediction_files`).
    task : {'survival', 'classification'}
    train_outcomes : mapping fold -> DataFrame(time, event), optional
        The fold's training outcomes; enables ``c_index_uno`` (see
        :func:`train_outcomes_from_splits`).
    modalities : iterable of str
        All modalities of the cohort; defines the complete patients for ``c_index_complete``.
    oracle : DataFrame(patient_id, true_risk), optional
        Synthetic cohorts: the generating risk (higher = worse). Adds rows for model
        ``oracle_synthetic_true_risk``, scored on each fold's validation patients; needs
        ``splits``.
    splits : mapping fold -> DataFrame(patient_id, role), optional
        When given, only ``role == 'val'`` patients are scored.
    outcomes : DataFrame(patient_id, time, event), optional
        Outcomes for the oracle rows; default: those in the prediction files.

    Returns
    -------
    DataFrame
        Long form: model, fold, metric, value (sorted by model, fold, metric).
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    if oracle is not None and splits is None:
        raise ValueError("an oracle table needs the splits (its rows are scored on val patients)")
    if oracle is not None and task != "survival":
        raise ValueError("the oracle true risk is only defined for the survival task")
    modalities = list(modalities)

    by_fold: dict[Fold, dict[str, pd.DataFrame]] = {}
    ordered = sorted(pred_files.items(), key=lambda kv: (_fold_key(kv[0][1]), kv[0][0]))
    for (model, fold), path in ordered:
        df = read_predictions(path, task=task)
        val = _val_ids(splits, fold)
        if val is not None:
            dropped = int((~df["patient_id"].isin(val)).sum())
            if dropped:
                log.info("%s: %d non-validation patient(s) not scored", path, dropped)
            df = df[df["patient_id"].isin(val)].reset_index(drop=True)
        by_fold.setdefault(fold, {})[model] = df

    rows: list[dict] = []
    complete: dict[Fold, set[str]] = {}
    for fold, models in by_fold.items():
        if task == "survival":
            complete[fold] = complete_patients(models, modalities)
            if not complete[fold]:
                log.warning("fold %s: no validation patient has all of %s", fold, modalities)
        for model, df in models.items():
            if task == "survival":
                train = train_outcomes.get(fold) if train_outcomes is not None else None
                values = survival_metrics(df, train=train, complete=complete[fold])
            else:
                values = classification_metrics(df)
            rows += _long_rows(model, fold, values)

    if oracle is not None:
        if outcomes is None:
            pooled = pd.concat([df for models in by_fold.values() for df in models.values()])
            outcomes = pooled.drop_duplicates("patient_id")[["patient_id", "time", "event"]]
        outcomes = outcomes.assign(patient_id=outcomes["patient_id"].astype(str))
        outcomes = outcomes.set_index("patient_id")
        rows += _oracle_rows(
            oracle,
            folds=list(by_fold),
            splits=splits,
            outcomes=outcomes,
            train_outcomes=train_outcomes,
            complete=complete,
        )

    rows.sort(key=lambda row: (row["model"], _fold_key(row["fold"]), row["metric"]))
    out = pd.DataFrame(rows, columns=["model", "fold", "metric", "value"])
    out["value"] = out["value"].astype(float)
    return out


def summarise(metrics: pd.DataFrame) -> pd.DataFrame:
    """Mean and sample SD (ddof=1) of each metric over folds, ignoring NaN folds.

    Returns
    -------
    DataFrame
        model, metric, mean, sd, n_folds (folds with a value; sd is NaN with fewer than two).
    """
    missing = [c for c in ("model", "fold", "metric", "value") if c not in metrics.columns]
    if missing:
        raise ValueError(f"metrics table lacks column(s) {missing}")
    grouped = metrics.groupby(["model", "metric"], sort=True)["value"]
    out = grouped.agg(mean="mean", sd=lambda v: v.std(ddof=1), n_folds="count").reset_index()
    out["n_folds"] = out["n_folds"].astype(int)
    return out[["model", "metric", "mean", "sd", "n_folds"]]
