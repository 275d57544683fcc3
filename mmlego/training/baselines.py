"""Penalised linear baselines on the table modalities: Coxnet (survival), elastic-net logistic
regression (classification).

They read the same per-fold preprocessed tables as the LegoBlocks (``omics/<m>/fold<k>.npz``,
statistics fitted on the fold's ``train`` patients), concatenated over every table modality; slide
modalities are not used (on the synthetic demo, for instance, the baseline sees the RNA-seq and CNV
tables only). A patient needs at least one table modality; a missing one is filled with the
training patients' column means (for a z-scored table, zero), and the ``modalities`` column of the
predictions says which tables the patient really had.

The penalty is chosen by an inner cross-validation over the fold's training patients (``train``
and ``tune`` roles) only: the strength ``alpha`` on a path of ``n_alphas`` values, by the mean
inner Harrell's c-index (survival) or ROC AUC (classification); ties go to the stronger penalty.
The model is then refitted on all training patients with the chosen penalty and scores the fold's
``val`` patients once.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields

import numpy as np
import pandas as pd

from mmlego.io import write_tsv
from mmlego.omics.preprocess import load_omics_fold

log = logging.getLogger(__name__)

__all__ = [
    "BaselineParams",
    "baseline_name",
    "design_matrix",
    "fit_coxnet",
    "fit_logistic",
    "linear_baseline_fold",
]

TRAINING_ROLES = ("train", "tune")


@dataclass(frozen=True)
class BaselineParams:
    """Settings of the penalised linear baselines (config key ``baselines``).

    Parameters
    ----------
    l1_ratio
        Elastic-net mixing: 1 = lasso, towards 0 = ridge.
    n_alphas
        Length of the penalty path searched by the inner cross-validation.
    alpha_min_ratio
        Smallest penalty on the path relative to the largest (Coxnet's ``alpha_min_ratio``).
    inner_folds
        Folds of the inner cross-validation over the training patients.
    """

    l1_ratio: float = 0.5
    n_alphas: int = 30
    alpha_min_ratio: float = 0.01
    inner_folds: int = 5

    def __post_init__(self) -> None:
        if not 0 < self.l1_ratio <= 1:
            raise ValueError(f"baselines.l1_ratio must be in (0, 1], got {self.l1_ratio}")
        if self.n_alphas < 1 or self.inner_folds < 2:
            raise ValueError("baselines: n_alphas must be >= 1 and inner_folds >= 2")
        if not 0 < self.alpha_min_ratio < 1:
            raise ValueError(
                f"baselines.alpha_min_ratio must be in (0, 1), got {self.alpha_min_ratio}"
            )

    @classmethod
    def from_config(cls, config: Mapping[str, object] | None) -> BaselineParams:
        config = dict(config or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(config) - known)
        if unknown:
            raise ValueError(f"baselines: unknown key(s) {unknown}; known: {sorted(known)}")
        return cls(**config)  # type: ignore[arg-type]


def baseline_name(task: str) -> str:
    """The model name of the linear baseline of a task."""
    return "coxnet" if task == "survival" else "logistic_enet"


def design_matrix(
    paths: Mapping[str, str], train_ids: Sequence[str]
) -> tuple[pd.DataFrame, pd.Series]:
    """Concatenate the per-fold tables of several modalities.

    Parameters
    ----------
    paths
        Modality name -> ``omics/<m>/fold<k>.npz``.
    train_ids
        The training patients: the column means that fill a missing modality come from them.

    Returns
    -------
    X : pandas.DataFrame
        (n, p) indexed by patient_id: every patient with at least one table, columns
        ``<modality>:<feature>``.
    modalities : pandas.Series
        '+'-joined sorted names of the tables each patient has.
    """
    blocks, has = [], {}
    for name in sorted(paths):
        fold = load_omics_fold(paths[name])
        frame = fold.frame().add_prefix(f"{name}:")
        blocks.append(frame)
        has[name] = set(frame.index)
    X = pd.concat(blocks, axis=1, join="outer")  # (n, p), NaN where a modality is missing
    X.index = X.index.astype(str)
    train = X.loc[X.index.isin(set(map(str, train_ids)))]
    if train.empty:
        raise ValueError("no training patient of this fold has any table modality")
    means = train.mean(axis=0).fillna(0.0)
    X = X.fillna(means)
    mods = pd.Series(
        ["+".join(m for m in sorted(has) if pid in has[m]) for pid in X.index], index=X.index
    )
    return X, mods


def _inner_splits(y_strata: np.ndarray, k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import StratifiedKFold

    k = max(2, min(k, int(np.bincount(pd.factorize(y_strata)[0]).min())))
    cv = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    return list(cv.split(np.zeros(len(y_strata)), y_strata))


def _choose(scores: np.ndarray, alphas: np.ndarray) -> int:
    """Index of the best mean score; ties go to the largest alpha (strongest penalty)."""
    mean = np.nanmean(scores, axis=0)  # (n_alphas,)
    best = np.nanmax(mean)
    candidates = np.flatnonzero(mean >= best - 1e-12)
    return int(candidates[np.argmax(alphas[candidates])])


def fit_coxnet(
    X: np.ndarray, time: np.ndarray, event: np.ndarray, *, params: BaselineParams, seed: int
):
    """Coxnet with the penalty chosen by inner cross-validation on (X, time, event).

    Parameters
    ----------
    X
        (n, p) training features.
    time, event
        (n,) survival times and event indicators (1 = death) of the training patients.
    params
        Baseline settings.
    seed
        Seed of the inner folds.

    Returns
    -------
    model : sksurv.linear_model.CoxnetSurvivalAnalysis
        Fitted on all of ``X`` along the penalty path.
    alpha : float
        The chosen penalty (pass to ``model.predict(X, alpha=alpha)``).
    cv : pandas.DataFrame
        alpha, mean_c_index, sd_c_index, chosen (one row per alpha).
    """
    from sksurv.linear_model import CoxnetSurvivalAnalysis
    from sksurv.metrics import concordance_index_censored
    from sksurv.util import Surv

    event = np.asarray(event).astype(bool)
    time = np.asarray(time, dtype=float)
    y = Surv.from_arrays(event, time)

    def make(ratio: float, alphas=None) -> CoxnetSurvivalAnalysis:
        return CoxnetSurvivalAnalysis(
            l1_ratio=params.l1_ratio,
            n_alphas=params.n_alphas,
            alpha_min_ratio=ratio,
            alphas=alphas,
            max_iter=100_000,
        )

    ratio = params.alpha_min_ratio
    while True:  # very small penalties can overflow on wide data: shorten the path then
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                full = make(ratio).fit(X, y)
            break
        except ArithmeticError:
            if ratio >= 0.5:
                raise
            ratio = min(0.5, ratio * 3)
            log.warning("coxnet: numerical overflow; alpha_min_ratio raised to %.3g", ratio)
    alphas = full.alphas_
    scores = np.full((params.inner_folds, len(alphas)), np.nan)
    # strata: event crossed with time above/below the median, so every inner fold has events
    strata = event.astype(int) * 2 + (time > np.median(time))
    for i, (tr, te) in enumerate(_inner_splits(strata, params.inner_folds, seed)):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                inner = make(ratio, alphas=alphas).fit(X[tr], y[tr])
        except ArithmeticError:
            log.warning("coxnet: inner fold %d failed numerically; skipped", i)
            continue
        for j, a in enumerate(inner.alphas_):
            risk = inner.predict(X[te], alpha=a)
            if event[te].any() and np.ptp(risk) > 0:
                scores[i, j] = concordance_index_censored(event[te], time[te], risk)[0]
            else:
                scores[i, j] = 0.5
    chosen = _choose(scores, alphas)
    cv = pd.DataFrame(
        {
            "alpha": alphas,
            "mean_c_index": np.nanmean(scores, axis=0),
            "sd_c_index": np.nanstd(scores, axis=0),
            "chosen": np.arange(len(alphas)) == chosen,
        }
    )
    n_nonzero = int((np.abs(full.coef_[:, chosen]) > 0).sum())
    log.info(
        "coxnet: alpha %.4g chosen (inner c-index %.3f), %d non-zero coefficient(s) of %d",
        alphas[chosen],
        cv["mean_c_index"].iloc[chosen],
        n_nonzero,
        X.shape[1],
    )
    return full, float(alphas[chosen]), cv


def fit_logistic(X: np.ndarray, labels: np.ndarray, *, params: BaselineParams, seed: int):
    """Elastic-net logistic regression with the penalty chosen by inner cross-validation.

    Returns
    -------
    model : sklearn.linear_model.LogisticRegression
        Refitted on all of ``X`` with the chosen penalty.
    classes : list of str
        The model's classes, in column order of ``predict_proba``.
    cv : pandas.DataFrame
        C (inverse penalty), mean_auc, sd_auc, chosen.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    labels = np.asarray(labels).astype(str)
    Cs = np.logspace(-3, 1, min(params.n_alphas, 12))  # inverse penalties, strongest first

    def make(C: float) -> LogisticRegression:
        return LogisticRegression(
            C=C,
            l1_ratio=params.l1_ratio,
            solver="saga",
            tol=1e-3,
            max_iter=1000,
            class_weight="balanced",
            random_state=seed,
            warm_start=True,
        )

    scores = np.full((params.inner_folds, len(Cs)), np.nan)
    for i, (tr, te) in enumerate(_inner_splits(labels, params.inner_folds, seed)):
        if len(set(labels[te])) < 2:
            continue
        m = make(Cs[0])
        for j, C in enumerate(Cs):  # along the path, each fit warm-started from the last
            m.set_params(C=C)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                m.fit(X[tr], labels[tr])
            prob = m.predict_proba(X[te])
            if len(m.classes_) == 2:
                scores[i, j] = roc_auc_score(labels[te] == m.classes_[1], prob[:, 1])
            else:
                scores[i, j] = roc_auc_score(
                    labels[te], prob, multi_class="ovr", labels=list(m.classes_)
                )
    # larger alpha = smaller C: choose on -C so that ties favour the stronger penalty
    chosen = _choose(scores, 1.0 / Cs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = make(float(Cs[chosen])).fit(X, labels)
    cv = pd.DataFrame(
        {
            "C": Cs,
            "mean_auc": np.nanmean(scores, axis=0),
            "sd_auc": np.nanstd(scores, axis=0),
            "chosen": np.arange(len(Cs)) == chosen,
        }
    )
    log.info("logistic: C %.4g chosen (inner AUC %.3f)", Cs[chosen], cv["mean_auc"].iloc[chosen])
    return model, [str(c) for c in model.classes_], cv


def linear_baseline_fold(
    *,
    data: Mapping[str, str],
    split: pd.DataFrame,
    outcomes: pd.DataFrame,
    task: str,
    params: BaselineParams,
    seed: int,
    out_predictions: str,
    out_cv: str,
) -> pd.DataFrame:
    """Fit the task's linear baseline on a fold's training patients; predict its val patients.

    Parameters
    ----------
    data
        Table modality -> that fold's ``.npz``.
    split
        ``patient_id, role`` of the fold.
    outcomes
        Indexed by patient_id: time, event (survival) or label (classification).
    task
        ``"survival"`` (Coxnet) or ``"classification"`` (elastic-net logistic regression).
    params, seed
        Settings and seed of the inner cross-validation.
    out_predictions, out_cv
        Where the predictions (the workflow's prediction format) and the inner-CV table go.

    Returns
    -------
    pandas.DataFrame
        The predictions written.
    """
    roles = split.assign(patient_id=split["patient_id"].astype(str)).set_index("patient_id")["role"]
    training = roles.index[roles.isin(TRAINING_ROLES)]
    X, mods = design_matrix(data, training)
    train_ids = [p for p in sorted(training) if p in X.index]
    val_ids = [p for p in sorted(roles.index[roles == "val"]) if p in X.index]
    log.info(
        "%s: %d training patients (train + tune), %d val patients, %d features",
        baseline_name(task),
        len(train_ids),
        len(val_ids),
        X.shape[1],
    )
    Xtr = X.loc[train_ids].to_numpy(np.float64)  # (n_train, p)
    Xva = X.loc[val_ids].to_numpy(np.float64)  # (n_val, p)
    if task == "survival":
        rows = outcomes.loc[train_ids]
        model, alpha, cv = fit_coxnet(
            Xtr,
            rows["time"].to_numpy(float),
            rows["event"].to_numpy(int),
            params=params,
            seed=seed,
        )
        val = outcomes.loc[val_ids]
        preds = pd.DataFrame(
            {
                "patient_id": val_ids,
                "time": val["time"].to_numpy(float),
                "event": val["event"].to_numpy(int),
                "risk": model.predict(Xva, alpha=alpha) if val_ids else [],
            }
        )
    else:
        model, classes, cv = fit_logistic(
            Xtr, outcomes.loc[train_ids, "label"].astype(str).to_numpy(), params=params, seed=seed
        )
        prob = model.predict_proba(Xva) if val_ids else np.zeros((0, len(classes)))
        preds = pd.DataFrame(
            {
                "patient_id": val_ids,
                "label": outcomes.loc[val_ids, "label"].astype(str).to_numpy(),
            }
        )
        for i, c in enumerate(classes):
            preds[f"prob_{c}"] = prob[:, i]
    preds["modalities"] = mods.loc[val_ids].to_numpy() if val_ids else []
    write_tsv(preds.reset_index(drop=True), out_predictions)
    write_tsv(cv, out_cv)
    return preds
