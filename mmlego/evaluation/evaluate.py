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
    ``ibs``                Integrated Brier score of the predicted survival curve (columns
                           ``surv_at_<t>``; lower is better), only for files with such columns
                           and when ``train_outcomes`` is given.
    ``td_auc``             Mean cumulative/dynamic AUC of the risk at the fold's curve times
                           ``t`` (taken from the ``surv_at_<t>`` columns of the fold's files, so
                           it is computed for every model of such a fold, the oracle included),
                           when ``train_outcomes`` is given.
    ``n_patients``, ``n_events``, ``n_patients_complete``.
Classification metrics: ``auc``, ``average_precision``, ``balanced_accuracy``, ``f1``,
``n_patients``.

Undefined metrics (e.g. a fold without events) are ``nan`` with a logged warning; see
:mod:`mmlego.evaluation.metrics`.

Summaries: :func:`summarise` (mean, SD and a bootstrap interval over folds per model and
metric) and :func:`paired_table` (per-fold differences of every model against the best
baseline, :func:`best_baseline`), with :func:`summarise_differences` for their mean, SD and
number of folds won.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
from collections.abc import Hashable, Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from mmlego.evaluation import metrics as M
from mmlego.evaluation.prediction_format import (
    PROB_PREFIX,
    RISK,
    SURV_PREFIX,
    prob_class,
    prob_column,
    surv_time,
)
from mmlego.pipeline.fold import DEVELOPMENT_ROLES, Role, patients_in
from mmlego.pipeline.models import ORACLE_MODEL, TASKS, is_lego

log = logging.getLogger(__name__)

#: Metrics where a smaller value is better (a "win" is a negative difference).
LOWER_IS_BETTER = frozenset({"ibs"})
#: Metrics compared against the best baseline by default, per task.
PAIRED_METRICS = {
    "survival": ("c_index", "c_index_complete", "c_index_uno", "td_auc", "ibs"),
    "classification": ("auc", "average_precision", "balanced_accuracy", "f1"),
}
PAIRED_COLUMNS = ["model", "baseline", "metric", "fold", "diff"]
SURVIVAL_COLUMNS = ("patient_id", "time", "event", RISK, "modalities")
CLASSIFICATION_COLUMNS = ("patient_id", "label", "modalities")

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
    if task == "classification" and not any(c.startswith(PROB_PREFIX) for c in df.columns):
        raise ValueError(f"{path}: no prob_<class> columns for the classification task")
    dup = df["patient_id"][df["patient_id"].duplicated()]
    if len(dup):
        raise ValueError(f"{path}: patient(s) predicted more than once: {sorted(set(dup))[:5]}")
    curve = list(curve_columns(df, path=path))
    if curve:
        values = df[curve].apply(pd.to_numeric, errors="coerce").to_numpy(float)  # (n, T)
        bad = ~np.isfinite(values) | (values < 0) | (values > 1)
        if bad.any():
            rows = df.loc[bad.any(axis=1), "patient_id"].tolist()[:5]
            raise ValueError(
                f"{path}: surv_at_<t> values must be probabilities in [0, 1]; "
                f"missing or out of range for patient(s) {rows}"
            )
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
    roles: Iterable[str] = DEVELOPMENT_ROLES,
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


def curve_columns(df: pd.DataFrame, *, path: PathLike | str = "predictions") -> dict[str, float]:
    """The ``surv_at_<t>`` columns of a prediction table, mapped to their time ``t``.

    Raises
    ------
    ValueError
        When a column's suffix is not a number, or the times are not strictly increasing in
        column order.
    """
    out = {}
    for col in df.columns:
        if not str(col).startswith(SURV_PREFIX):
            continue
        try:
            out[col] = surv_time(str(col))
        except ValueError:
            raise ValueError(f"{path}: column {col!r} is not surv_at_<time>") from None
    times = list(out.values())
    if any(b <= a for a, b in itertools.pairwise(times)):
        raise ValueError(f"{path}: surv_at_<t> columns are not in increasing time order: {times}")
    return out


def survival_metrics(
    df: pd.DataFrame,
    *,
    train: pd.DataFrame | None,
    complete: set[str] | None,
    risk_column: str = RISK,
    times: np.ndarray | None = None,
) -> dict[str, float]:
    """Survival metrics of one model on one fold.

    Parameters
    ----------
    df : DataFrame
        patient_id, time, event, risk and optionally ``surv_at_<t>`` columns (the curve).
    train : DataFrame(time, event), optional
        The fold's training outcomes; enables ``c_index_uno``, ``td_auc`` and ``ibs``.
    complete : set of str, optional
        The fold's complete patients (``c_index_complete``).
    risk_column : str
        Column holding the risk.
    times : array, shape (T,), optional
        The fold's curve times for ``td_auc``; default: this table's ``surv_at_`` times.
    """
    t = df["time"].to_numpy(float)
    e = df["event"].to_numpy(int)
    r = df[risk_column].to_numpy(float)
    out = {
        "c_index": M.harrell_c(t, e, r),
        "n_patients": float(len(df)),
        "n_events": float(e.sum()),
    }
    curve = curve_columns(df)
    if times is None and curve:
        times = np.asarray(list(curve.values()), float)
    if train is not None:
        tt = train["time"].to_numpy(float)
        te = train["event"].to_numpy(int)
        out["c_index_uno"] = M.uno_c(tt, te, t, e, r)
        if times is not None and len(times):
            out["td_auc"] = M.td_auc(tt, te, t, e, r, times)
        if curve:
            surv = df[list(curve)].to_numpy(float)  # (n, T)
            out["ibs"] = M.integrated_brier(tt, te, t, e, surv, list(curve.values()))
    if complete is not None:
        sub = df[df["patient_id"].isin(complete)]
        out["c_index_complete"] = M.harrell_c(
            sub["time"].to_numpy(float),
            sub["event"].to_numpy(int),
            sub[risk_column].to_numpy(float),
        )
        out["n_patients_complete"] = float(len(sub))
    return out


def cohort_classes(labels: Iterable[object]) -> list[str]:
    """The classes of a cohort's ``label`` values, in the order of every model's ``prob_<class>``
    columns (sorted text, as the models sort the classes of their training patients)."""
    return sorted({str(v) for v in labels})


def class_probabilities(
    df: pd.DataFrame, classes: Sequence[str] | None = None
) -> tuple[list[str], np.ndarray, list[str]]:
    """The class probabilities of a prediction table over ``classes`` (the cohort's, in order;
    default: the table's own ``prob_<class>`` columns, a label of another class counting as a
    negative of every class).

    A model gives no probability to a class that none of its fold's training patients has: that
    class gets probability 0, so that every model of a fold is scored over the same classes (a
    model that never saw a class cannot rank its patients). Returns the classes, the (n, k)
    probabilities and the classes the table lacked. A ``prob_<class>`` column or a label of a
    class not among ``classes`` is an error.
    """
    own = [prob_class(c) for c in df.columns if c.startswith(PROB_PREFIX)]
    if classes is None:
        return own, df[[prob_column(c) for c in own]].to_numpy(float), []
    classes = [str(c) for c in classes]
    unknown = sorted(set(own) - set(classes))
    if unknown:
        raise ValueError(
            f"probabilities of class(es) {unknown}, which are not among the cohort's classes "
            f"{classes}"
        )
    strange = sorted(set(df["label"].dropna().astype(str)) - set(classes))
    if strange:
        raise ValueError(f"label(s) {strange} are not among the cohort's classes {classes}")
    absent = [c for c in classes if c not in own]
    prob = np.zeros((len(df), len(classes)))  # (n, k)
    for j, c in enumerate(classes):
        if c not in absent:
            prob[:, j] = df[prob_column(c)].to_numpy(float)
    return classes, prob, absent


def classification_metrics(
    df: pd.DataFrame, *, classes: Sequence[str] | None = None
) -> dict[str, float]:
    """Classification metrics of one model on one fold (``df``: label, prob_<class> columns),
    over the cohort's ``classes`` when given (see :func:`class_probabilities`)."""
    found, prob, _ = class_probabilities(_labelled(df), classes)
    return _classification_scores(df, found, prob)


def _labelled(df: pd.DataFrame) -> pd.DataFrame:
    """``df``, checked to have a label for every patient."""
    if df["label"].isna().any():
        bad = df.loc[df["label"].isna(), "patient_id"].tolist()[:5]
        raise ValueError(f"missing label for patient(s) {bad}")
    return df


def _most_probable(classes: Sequence[str], prob: np.ndarray) -> np.ndarray:
    """(n,) the class of highest probability of each row of ``prob`` (n, k)."""
    return np.asarray(classes)[np.argmax(prob, axis=1)] if len(prob) else np.asarray([], dtype=str)


def _classification_scores(
    df: pd.DataFrame, classes: Sequence[str], prob: np.ndarray
) -> dict[str, float]:
    """The metrics of :func:`classification_metrics` from the (n, k) probabilities of
    ``classes`` (:func:`class_probabilities`) and ``df``'s labels."""
    y = df["label"].astype(str).to_numpy()
    pred = _most_probable(classes, prob)
    return {
        "auc": M.auc(y, prob, classes=classes),
        "average_precision": M.average_precision(y, prob, classes=classes),
        "balanced_accuracy": M.balanced_accuracy(y, pred),
        "f1": M.f1(y, pred),
        "n_patients": float(len(df)),
    }


def per_class_results(df: pd.DataFrame, *, classes: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per class of one model on one fold (``df`` as for :func:`classification_metrics`):
    ``class``, ``patients`` (of the class), ``correct`` (of those, the ones whose most probable
    class is it) and ``auc`` (the class against the rest; NaN when all or none have it)."""
    classes, prob, _ = class_probabilities(df, classes)
    y = df["label"].astype(str).to_numpy()
    pred = _most_probable(classes, prob)
    aucs = M.class_aucs(y, prob, classes=classes)
    return pd.DataFrame(
        {
            "class": classes,
            "patients": [int(np.sum(y == c)) for c in classes],
            "correct": [int(np.sum((y == c) & (pred == c))) for c in classes],
            "auc": aucs,
        }
    )


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
    return set(patients_in(split, [Role.VAL]).astype(str))


def _oracle_rows(
    oracle: pd.DataFrame,
    *,
    folds: list[Fold],
    splits: Mapping[Fold, pd.DataFrame],
    outcomes: pd.DataFrame,
    train_outcomes: Mapping[Fold, pd.DataFrame] | None,
    complete: Mapping[Fold, set[str]],
    fold_times: Mapping[Fold, np.ndarray],
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
        values = survival_metrics(
            df, train=train, complete=complete.get(fold), times=fold_times.get(fold)
        )
        rows += _long_rows(ORACLE_MODEL, fold, values)
    return rows


def _fold_times(
    fold: Fold, paths: Mapping[str, PathLike], models: Mapping[str, pd.DataFrame]
) -> np.ndarray | None:
    """The fold's curve times (shared by its models); a model with other times is logged."""
    times: np.ndarray | None = None
    source = ""
    for model, df in sorted(models.items()):
        curve = curve_columns(df, path=paths[model])
        if not curve:
            continue
        these = np.asarray(list(curve.values()), float)  # (T,)
        if times is None:
            times, source = these, model
        elif len(these) != len(times) or not np.allclose(these, times):
            log.warning(
                "fold %s: %s has curve times %s, %s has %s; td_auc uses %s's",
                fold,
                model,
                these.tolist(),
                source,
                times.tolist(),
                source,
            )
    return times


def evaluate_predictions(
    pred_files: Mapping[tuple[str, Fold], PathLike],
    *,
    task: str,
    train_outcomes: Mapping[Fold, pd.DataFrame] | None = None,
    modalities: Iterable[str],
    oracle: pd.DataFrame | None = None,
    splits: Mapping[Fold, pd.DataFrame] | None = None,
    outcomes: pd.DataFrame | None = None,
    classes: Sequence[str] | None = None,
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
    classes : sequence of str, optional
        Classification: the cohort's classes (:func:`cohort_classes`). Every model is scored
        over them, a class absent from a model's training patients with probability 0 (logged);
        default: each file's own ``prob_<class>`` columns.

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
    fold_times: dict[Fold, np.ndarray] = {}
    for fold, models in by_fold.items():
        if task == "survival":
            complete[fold] = complete_patients(models, modalities)
            if not complete[fold]:
                log.warning("fold %s: no validation patient has all of %s", fold, modalities)
            times = _fold_times(fold, {m: pred_files[(m, fold)] for m in models}, models)
            if times is not None:
                fold_times[fold] = times
        for model, df in models.items():
            if task == "survival":
                train = train_outcomes.get(fold) if train_outcomes is not None else None
                values = survival_metrics(
                    df, train=train, complete=complete[fold], times=fold_times.get(fold)
                )
            else:
                found, prob, absent = class_probabilities(_labelled(df), classes)
                if absent:
                    log.warning(
                        "%s fold %s: no probability for class(es) %s, which none of the fold's "
                        "training patients has; scored with probability 0",
                        model,
                        fold,
                        absent,
                    )
                values = _classification_scores(df, found, prob)
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
            fold_times=fold_times,
        )

    rows.sort(key=lambda row: (row["model"], _fold_key(row["fold"]), row["metric"]))
    out = pd.DataFrame(rows, columns=["model", "fold", "metric", "value"])
    out["value"] = out["value"].astype(float)
    return out


def _check_long(metrics: pd.DataFrame) -> None:
    missing = [c for c in ("model", "fold", "metric", "value") if c not in metrics.columns]
    if missing:
        raise ValueError(f"metrics table lacks column(s) {missing}; has {list(metrics.columns)}")


def is_count(metric: str) -> bool:
    """Counts (``n_patients``, ``n_events``, ...) are bookkeeping, not performance metrics."""
    return str(metric).startswith("n_")


def summarise(
    metrics: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0, level: float = 0.95
) -> pd.DataFrame:
    """Mean, sample SD (ddof=1) and bootstrap interval of each metric over folds.

    NaN folds are ignored. ``ci_low`` / ``ci_high`` are the percentile bootstrap interval of
    the mean over folds (:func:`mmlego.evaluation.metrics.bootstrap_ci`, ``n_boot`` resamples
    of the folds, seeded with ``seed`` for every (model, metric), so the same inputs give the
    same table). They are NaN for counts (``n_*``) and with fewer than two folds.

    Returns
    -------
    DataFrame
        model, metric, mean, sd, ci_low, ci_high, n_folds (folds with a value; sd is NaN with
        fewer than two).
    """
    _check_long(metrics)
    rows = []
    for (model, metric), part in metrics.groupby(["model", "metric"], sort=True):
        v = part["value"].astype(float)
        finite = v[np.isfinite(v)]
        low, high = (
            (np.nan, np.nan)
            if is_count(metric)
            else M.bootstrap_ci(finite, n_boot=n_boot, seed=seed, level=level)
        )
        rows.append(
            {
                "model": model,
                "metric": metric,
                "mean": finite.mean() if len(finite) else np.nan,
                "sd": finite.std(ddof=1) if len(finite) > 1 else np.nan,
                "ci_low": low,
                "ci_high": high,
                "n_folds": len(finite),
            }
        )
    columns = ["model", "metric", "mean", "sd", "ci_low", "ci_high", "n_folds"]
    out = pd.DataFrame(rows, columns=columns)
    out["n_folds"] = out["n_folds"].astype(int)
    return out


def is_lego_model(model: str) -> bool:
    """MM-Lego models (LegoMerge, LegoFuse and their experiment variants), by the registry."""
    return is_lego(str(model))


def best_baseline(metrics: pd.DataFrame, *, metric: str) -> str | None:
    """The baseline with the best mean ``metric`` over folds.

    Baselines are all models except the MM-Lego ones (:func:`is_lego_model`) and the synthetic
    oracle. "Best" is the highest mean, or the lowest for :data:`LOWER_IS_BETTER` metrics;
    ties go to the first name alphabetically. ``None`` when no baseline has a finite value.
    """
    _check_long(metrics)
    rows = metrics[
        (metrics["metric"] == metric)
        & ~metrics["model"].map(is_lego_model)
        & (metrics["model"] != ORACLE_MODEL)
    ]
    means = rows.groupby("model")["value"].mean().dropna()
    if means.empty:
        return None
    ascending = metric in LOWER_IS_BETTER
    ranked = means.reset_index().sort_values(["value", "model"], ascending=[ascending, True])
    return str(ranked["model"].iloc[0])


def paired_differences(metrics: pd.DataFrame, *, metric: str, baseline: str) -> pd.DataFrame:
    """Per-fold difference ``model - baseline`` of one metric, for every other model.

    Only folds where both values are finite are paired; the oracle is left out.

    Returns
    -------
    DataFrame
        model, baseline, metric, fold, diff (sorted by model, fold).

    Raises
    ------
    ValueError
        When ``baseline`` has no ``metric`` rows.
    """
    _check_long(metrics)
    rows = metrics[metrics["metric"] == metric]
    wide = rows.pivot_table(index="fold", columns="model", values="value", aggfunc="first")
    if baseline not in wide.columns:
        raise ValueError(
            f"baseline {baseline!r} has no {metric!r} values; models with it: {list(wide.columns)}"
        )
    base = wide[baseline].to_dict()
    out = []
    for model in sorted(wide.columns):
        if model in (baseline, ORACLE_MODEL):
            continue
        diffs = M.paired_differences(wide[model].to_dict(), base)
        for fold in sorted(diffs, key=_fold_key):
            out.append(
                {
                    "model": model,
                    "baseline": baseline,
                    "metric": metric,
                    "fold": fold,
                    "diff": diffs[fold],
                }
            )
    return pd.DataFrame(out, columns=PAIRED_COLUMNS)


def paired_table(
    metrics: pd.DataFrame,
    *,
    task: str,
    baseline: str | None = None,
    metrics_to_compare: Iterable[str] | None = None,
) -> pd.DataFrame:
    """Per-fold differences of every model against one baseline, for several metrics.

    Parameters
    ----------
    metrics : DataFrame
        Long metrics table.
    task : {'survival', 'classification'}
        Picks the primary metric (``c_index`` / ``auc``) that chooses the best baseline, and the
        default metrics (:data:`PAIRED_METRICS`).
    baseline : str, optional
        Default: :func:`best_baseline` by the primary metric.
    metrics_to_compare : iterable of str, optional
        Default: those of :data:`PAIRED_METRICS` present in the table.

    Returns
    -------
    DataFrame
        model, baseline, metric, fold, diff (empty when there is no baseline) -- the
        ``metrics_paired.tsv`` table.
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}, got {task!r}")
    _check_long(metrics)
    primary = "c_index" if task == "survival" else "auc"
    baseline = baseline or best_baseline(metrics, metric=primary)
    if baseline is None:
        log.warning("no baseline model with a finite %s; no paired differences", primary)
        return pd.DataFrame(columns=PAIRED_COLUMNS)
    present = set(metrics.loc[metrics["model"] == baseline, "metric"])
    wanted = PAIRED_METRICS[task] if metrics_to_compare is None else tuple(metrics_to_compare)
    parts = [
        paired_differences(metrics, metric=m, baseline=baseline) for m in wanted if m in present
    ]
    parts = [p for p in parts if len(p)]
    if not parts:
        return pd.DataFrame(columns=PAIRED_COLUMNS)
    return pd.concat(parts, ignore_index=True)


def summarise_differences(
    diffs: pd.DataFrame, *, n_boot: int = 1000, seed: int = 0, level: float = 0.95
) -> pd.DataFrame:
    """Mean, SD, bootstrap interval and folds won of paired differences.

    A fold is won when the model is better than the baseline there: ``diff > 0``, or
    ``diff < 0`` for :data:`LOWER_IS_BETTER` metrics (IBS).

    Returns
    -------
    DataFrame
        model, baseline, metric, mean_diff, sd_diff, ci_low, ci_high, n_folds, n_wins.
    """
    missing = [c for c in PAIRED_COLUMNS if c not in diffs.columns]
    if missing:
        raise ValueError(f"paired differences table lacks column(s) {missing}")
    columns = [
        "model",
        "baseline",
        "metric",
        "mean_diff",
        "sd_diff",
        "ci_low",
        "ci_high",
        "n_folds",
        "n_wins",
    ]
    rows = []
    for (model, baseline, metric), part in diffs.groupby(
        ["model", "baseline", "metric"], sort=True
    ):
        d = part["diff"].astype(float).to_numpy()  # (k,)
        d = d[np.isfinite(d)]
        low, high = M.bootstrap_ci(d, n_boot=n_boot, seed=seed, level=level)
        wins = d < 0 if metric in LOWER_IS_BETTER else d > 0
        rows.append(
            {
                "model": model,
                "baseline": baseline,
                "metric": metric,
                "mean_diff": d.mean() if len(d) else np.nan,
                "sd_diff": d.std(ddof=1) if len(d) > 1 else np.nan,
                "ci_low": low,
                "ci_high": high,
                "n_folds": len(d),
                "n_wins": int(wins.sum()),
            }
        )
    return pd.DataFrame(rows, columns=columns)
