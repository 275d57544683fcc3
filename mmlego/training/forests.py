"""Forest baselines on the tabular design matrix: random survival forest (survival, model
``rsf``) and random forest classifier (classification, model ``random_forest``).

They see exactly the design matrix of the penalised linear baselines
(:func:`mmlego.training.baselines.design_matrix`: the per-fold tables and the z-scored
mean-pooled slide features, a missing modality filled with training means), are fitted on the
fold's training patients (``train`` and ``tune`` roles) and score its ``val`` patients once. No
hyper-parameter is tuned: ``baselines.forest_trees``, ``forest_min_samples_leaf`` and
``forest_max_features`` are used as given, with the config seed as ``random_state``, so a fold's
predictions are the same for any number of threads.

Survival predictions: ``risk`` is the forest's risk score (the sum of the ensemble cumulative
hazard over the training times; higher = worse) and, as for the deep models, the survival curve
at the inner edges of the fold's discrete-time bins (:func:`curve_times`, the same quantiles of
the ``train`` patients' event times as :func:`mmlego.models.survival.fit_bins`) in columns
``surv_at_<t>``, so that the evaluation also gives the forest an integrated Brier score.
Classification predictions: ``prob_<class>`` per training class.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from mmlego.evaluation.prediction_format import RISK, surv_column
from mmlego.pipeline.fold import FIT_ROLES
from mmlego.pipeline.models import model_for
from mmlego.training.baselines import (
    BaselineParams,
    fold_design,
    outcome_table,
    tabular_blocks,
    write_fold_predictions,
)

log = logging.getLogger(__name__)

__all__ = [
    "curve_times",
    "fit_random_forest",
    "fit_rsf",
    "forest_baseline_fold",
    "survival_at",
]


def fit_rsf(
    X: np.ndarray,
    time: np.ndarray,
    event: np.ndarray,
    *,
    params: BaselineParams,
    seed: int,
    n_jobs: int = 1,
):
    """A random survival forest fitted on (X, time, event).

    Parameters
    ----------
    X
        (n, p) training features.
    time, event
        (n,) survival times and event indicators (1 = death).
    params
        ``forest_trees``, ``forest_min_samples_leaf``, ``forest_max_features``.
    seed
        ``random_state`` of the forest.
    n_jobs
        Threads used to grow the trees (the result does not depend on it).

    Returns
    -------
    sksurv.ensemble.RandomSurvivalForest
    """
    from sksurv.ensemble import RandomSurvivalForest
    from sksurv.util import Surv

    y = Surv.from_arrays(np.asarray(event).astype(bool), np.asarray(time, dtype=float))
    model = RandomSurvivalForest(
        n_estimators=params.forest_trees,
        min_samples_leaf=params.forest_min_samples_leaf,
        max_features=params.forest_max_features,
        n_jobs=max(1, n_jobs),
        random_state=seed,
    )
    return model.fit(X, y)


def balanced_weights(labels: np.ndarray) -> np.ndarray:
    """Weight n / (k n_c) of each of n patients, n_c of them of its class, k classes: every
    class weighs the same in total, as scikit-learn's ``class_weight="balanced"`` (which fails
    on labels that look like numbers, such as ``"0"``, ``"1"``)."""
    _, inverse, counts = np.unique(np.asarray(labels), return_inverse=True, return_counts=True)
    return len(inverse) / (len(counts) * counts[inverse])


def fit_random_forest(
    X: np.ndarray, labels: np.ndarray, *, params: BaselineParams, seed: int, n_jobs: int = 1
):
    """A class-balanced random forest classifier fitted on (X, labels); see :func:`fit_rsf`.

    Returns
    -------
    sklearn.ensemble.RandomForestClassifier
    """
    from sklearn.ensemble import RandomForestClassifier

    model = RandomForestClassifier(
        n_estimators=params.forest_trees,
        min_samples_leaf=params.forest_min_samples_leaf,
        max_features=params.forest_max_features,
        n_jobs=max(1, n_jobs),
        random_state=seed,
    )
    y = np.asarray(labels).astype(str)
    return model.fit(X, y, sample_weight=balanced_weights(y))


def curve_times(time: np.ndarray, event: np.ndarray, *, n_bins: int) -> np.ndarray | None:
    """The inner edges (n_bins - 1,) of the deep models' discrete-time bins: quantiles of the
    uncensored times (as :func:`mmlego.models.survival.fit_bins`, which needs torch); None when
    there are fewer than ``n_bins`` events."""
    observed = np.asarray(time, dtype=float)[np.asarray(event) == 1]
    if n_bins < 2 or observed.size < n_bins:
        return None
    return np.quantile(observed, np.linspace(0.0, 1.0, n_bins + 1))[1:-1]


def survival_at(model, X: np.ndarray, times: np.ndarray) -> np.ndarray:
    """The forest's survival probabilities (n, T) of ``X`` (n, p) at ``times`` (T,).

    The curve is a step function over the training times ``model.unique_times_``: the value at
    ``t`` is that at the last training time <= t (1 before the first).
    """
    surv = model.predict_survival_function(X, return_array=True)  # (n, U)
    idx = np.searchsorted(model.unique_times_, np.asarray(times, float), side="right") - 1
    out = np.ones((len(X), len(times)))  # (n, T)
    known = idx >= 0
    out[:, known] = surv[:, idx[known]]
    return np.clip(out, 0.0, 1.0)


def forest_baseline_fold(
    *,
    data: Mapping[str, str],
    split: pd.DataFrame,
    outcomes: pd.DataFrame,
    task: str,
    params: BaselineParams,
    seed: int,
    out_predictions: str,
    slide_means: str | None = None,
    slide_modalities: Sequence[str] = (),
    n_bins: int | None = None,
    n_jobs: int = 1,
) -> pd.DataFrame:
    """Fit the task's forest (``rsf`` / ``random_forest``) on a fold; predict its val patients.

    Parameters
    ----------
    data
        Table modality -> that fold's ``omics/<m>/fold<k>.npz``.
    split
        ``patient_id, role`` of the fold.
    outcomes
        Indexed by patient_id: time, event (survival) or label (classification).
    task
        ``"survival"`` or ``"classification"``.
    params, seed
        Forest settings and ``random_state``.
    out_predictions
        Where the predictions go (the workflow's prediction format).
    slide_means, slide_modalities
        The mean-pooled slide features (``baselines/slide_means.tsv``) and the slide modalities
        that use them (none: tables only).
    n_bins
        The config's ``survival.n_bins``: the survival curve is written at the inner bin edges
        fitted on the fold's ``train`` patients (None: no curve).
    n_jobs
        Threads for growing the trees.

    Returns
    -------
    pandas.DataFrame
        The predictions written.
    """
    name = model_for("forest_baseline", task)
    d = fold_design(tabular_blocks(data, slide_means, slide_modalities), split, model=name)
    preds = outcome_table(outcomes, d.val_ids, task=task)
    classifier = None
    if task == "survival":
        rows = outcomes.loc[d.train_ids]
        model = fit_rsf(
            d.X_train,
            rows["time"].to_numpy(float),
            rows["event"].to_numpy(int),
            params=params,
            seed=seed,
            n_jobs=n_jobs,
        )
        model.set_params(n_jobs=1)  # predict in one thread: sums in a fixed order
        preds[RISK] = model.predict(d.X_val) if d.val_ids else []
        roles = split.assign(patient_id=split["patient_id"].astype(str))
        train_role = roles.loc[roles["role"].isin(FIT_ROLES), "patient_id"]
        bins = outcomes.loc[list(train_role)]
        times = (
            curve_times(bins["time"].to_numpy(float), bins["event"].to_numpy(int), n_bins=n_bins)
            if n_bins
            else None
        )
        if times is None:
            log.info("%s: no survival curve written (n_bins %s)", name, n_bins)
        else:
            curve = survival_at(model, d.X_val, times) if d.val_ids else np.zeros((0, len(times)))
            for k, t in enumerate(times):
                preds[surv_column(t)] = curve[:, k]
    else:
        model = fit_random_forest(
            d.X_train,
            outcomes.loc[d.train_ids, "label"].astype(str).to_numpy(),
            params=params,
            seed=seed,
            n_jobs=n_jobs,
        )
        classifier = model.set_params(n_jobs=1)  # predict in one thread, as above
    write_fold_predictions(preds, d, out_predictions, classifier=classifier)
    log.info("%s: %d trees, %d val patients predicted", name, params.forest_trees, len(preds))
    return preds
