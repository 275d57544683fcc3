"""Scalar performance metrics for survival and classification predictions.

All functions are pure: arrays in, one float out. Malformed input (length mismatch, missing or
non-finite values, negative times, unknown classes) raises :class:`ValueError` naming what is
wrong. *Degenerate but well-formed* input, where the metric is simply undefined (no events, fewer
than two patients, no comparable pairs, a single class), returns ``nan`` and logs a warning with
the reason, so that one unlucky fold does not abort the evaluation of a whole cohort; summaries
then count only the folds with a value.

Survival risks follow the project convention: higher risk = worse prognosis (earlier event).
Predicted survival curves are ``surv[i, j] = P(T_i > times[j])``.

Fold-level summaries live here too: :func:`bootstrap_ci` (percentile interval of a mean over
folds) and :func:`paired_differences` (model minus baseline, fold by fold).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Hashable, Mapping, Sequence

import numpy as np
from sklearn import metrics as skm
from sksurv.metrics import (
    concordance_index_censored,
    concordance_index_ipcw,
    cumulative_dynamic_auc,
    integrated_brier_score,
)

log = logging.getLogger(__name__)

TIED_TOL = 1e-8


def _survival_arrays(
    time: Sequence[float], event: Sequence[int], risk: Sequence[float], *, what: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Validate and convert survival inputs; raise ValueError naming ``what`` is malformed."""
    t = np.asarray(time, dtype=float).ravel()  # (n,)
    e = np.asarray(event).ravel()  # (n,)
    r = np.asarray(risk, dtype=float).ravel()  # (n,)
    if not (len(t) == len(e) == len(r)):
        raise ValueError(
            f"{what}: time, event and risk differ in length ({len(t)}, {len(e)}, {len(r)})"
        )
    if not np.all(np.isfinite(t)) or np.any(t < 0):
        bad = t[~np.isfinite(t) | (t < 0)][:5]
        raise ValueError(f"{what}: time must be finite and >= 0 (got {bad})")
    if not np.all(np.isfinite(r)):
        n_bad = int(np.sum(~np.isfinite(r)))
        raise ValueError(f"{what}: risk has {n_bad} missing/non-finite values")
    e_float = e.astype(float)
    if not np.all(np.isin(e_float, (0.0, 1.0))):
        values = sorted(set(e_float.tolist()))[:5]
        raise ValueError(f"{what}: event must be 0/1, got values {values}")
    return t, e_float.astype(bool), r


def _undefined(metric: str, reason: str) -> float:
    log.warning("%s is undefined (%s); returning NaN", metric, reason)
    return float("nan")


def harrell_c(time: Sequence[float], event: Sequence[int], risk: Sequence[float]) -> float:
    """Harrell's concordance index of a risk score.

    Parameters
    ----------
    time : array-like, shape (n,)
        Follow-up time (event or censoring).
    event : array-like, shape (n,)
        1 if the event was observed at ``time``, 0 if censored.
    risk : array-like, shape (n,)
        Predicted risk; higher means an earlier expected event.

    Returns
    -------
    float
        Fraction of comparable pairs ordered correctly (risk ties count 1/2, within 1e-8);
        ``nan`` (with a logged warning) when fewer than two patients, no events or no
        comparable pairs.
    """
    t, e, r = _survival_arrays(time, event, risk, what="harrell_c")
    if len(t) < 2:
        return _undefined("harrell_c", f"{len(t)} patient(s)")
    if not e.any():
        return _undefined("harrell_c", f"no events among {len(t)} patients")
    try:
        return float(concordance_index_censored(e, t, r, tied_tol=TIED_TOL)[0])
    except ValueError as err:  # sksurv's NoComparablePairException is a ValueError
        return _undefined("harrell_c", str(err))


def default_tau(train_time: Sequence[float], test_time: Sequence[float]) -> float:
    """Truncation time for Uno's c-index: ``min(max training time, max test time)``.

    Test patients with time >= tau get zero weight as the "earlier" member of a pair (they still
    act as the later member), so the censoring distribution fitted on the training patients is
    only ever evaluated strictly inside the training follow-up, where it is positive.
    """
    return float(min(np.max(np.asarray(train_time, float)), np.max(np.asarray(test_time, float))))


def uno_c(
    train_time: Sequence[float],
    train_event: Sequence[int],
    time: Sequence[float],
    event: Sequence[int],
    risk: Sequence[float],
    *,
    tau: float | None = None,
) -> float:
    """Uno's inverse-probability-of-censoring-weighted concordance index, truncated at ``tau``.

    The censoring distribution is the Kaplan-Meier estimate on the training patients. Its
    estimate is zero (or undefined) at and beyond the longest training follow-up, so ``tau`` is
    clipped to at most the longest training time (default :func:`default_tau`): test patients
    followed longer than the training cohort never raise, they only lose their weight as the
    earlier member of a pair.

    Parameters
    ----------
    train_time, train_event : array-like, shape (m,)
        Outcomes of the fold's training patients (fit the censoring distribution).
    time, event, risk : array-like, shape (n,)
        Outcomes and predicted risk of the evaluated patients.
    tau : float, optional
        Truncation time; pairs whose earlier time is >= tau do not count.

    Returns
    -------
    float
        Uno's c-index, or ``nan`` (logged warning) when undefined: fewer than two patients, no
        test event before tau, or no comparable pairs.
    """
    tt, te, _ = _survival_arrays(
        train_time, train_event, np.zeros(len(train_time)), what="uno_c train"
    )
    t, e, r = _survival_arrays(time, event, risk, what="uno_c")
    if len(tt) < 2:
        return _undefined("uno_c", f"{len(tt)} training patient(s)")
    if len(t) < 2:
        return _undefined("uno_c", f"{len(t)} patient(s)")
    limit = float(tt.max())
    tau_used = default_tau(tt, t) if tau is None else min(float(tau), limit)
    if tau is not None and float(tau) > limit:
        log.warning("uno_c: tau=%g beyond the longest training time; clipped to %g", tau, limit)
    if not np.any(e & (t < tau_used)):
        return _undefined("uno_c", f"no events before tau={tau_used:g} among {len(t)} patients")
    try:
        c = concordance_index_ipcw(
            _structured(te, tt), _structured(e, t), r, tau=tau_used, tied_tol=TIED_TOL
        )
        return float(c[0])
    except ValueError as err:
        return _undefined("uno_c", str(err))


def _structured(event: np.ndarray, time: np.ndarray) -> np.ndarray:
    return np.array(list(zip(event, time, strict=True)), dtype=[("event", bool), ("time", float)])


def _curve_inputs(
    train_time: Sequence[float],
    train_event: Sequence[int],
    time: Sequence[float],
    event: Sequence[int],
    times: Sequence[float],
    *,
    what: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Validate inputs of the time-dependent metrics; return them with the valid times mask."""
    tt, te, _ = _survival_arrays(
        train_time, train_event, np.zeros(len(np.ravel(train_time))), what=f"{what} train"
    )
    t, e, _ = _survival_arrays(time, event, np.zeros(len(np.ravel(time))), what=what)
    grid = np.asarray(times, dtype=float).ravel()  # (T,)
    if grid.size == 0 or not np.all(np.isfinite(grid)):
        raise ValueError(f"{what}: times must be a non-empty array of finite values, got {grid}")
    if np.any(np.diff(grid) <= 0):
        raise ValueError(f"{what}: times must be strictly increasing, got {grid}")
    return tt, te, t, e, grid


def valid_times(
    train_time: Sequence[float], time: Sequence[float], times: Sequence[float]
) -> np.ndarray:
    """Mask of the evaluation ``times`` at which IPCW curve metrics are defined.

    A time ``t`` is kept when ``min(time) <= t < max(time)`` (scikit-survival requires the
    times inside the test follow-up; some test patient is still at risk after ``t``) and
    ``t < max(train_time)`` (the Kaplan-Meier censoring distribution of the training patients
    is positive only strictly before the longest training follow-up).
    """
    t = np.asarray(time, float).ravel()
    grid = np.asarray(times, float).ravel()
    if t.size == 0 or np.size(train_time) == 0:
        return np.zeros(grid.shape, dtype=bool)
    upper = min(t.max(), float(np.max(np.asarray(train_time, float))))
    return (grid >= t.min()) & (grid < t.max()) & (grid < upper)


def _truncate_after(
    time: np.ndarray, event: np.ndarray, *, last: float, train_max: float
) -> tuple[np.ndarray, np.ndarray]:
    """Make patients followed beyond the last evaluated time plain controls.

    A patient with ``time > last`` is a control (still event-free) at every evaluated time, so
    neither its exact time nor its event flag enters the Brier score or the AUC at those times.
    Censoring such patients and clipping their time to the longest training follow-up keeps
    scikit-survival from evaluating the training censoring distribution where it is zero or
    undefined, and leaves the values unchanged.
    """
    beyond = time > last
    return np.where(beyond, np.minimum(time, train_max), time), event & ~beyond


def integrated_brier(
    train_time: Sequence[float],
    train_event: Sequence[int],
    time: Sequence[float],
    event: Sequence[int],
    surv: np.ndarray,
    times: Sequence[float],
) -> float:
    """Integrated Brier score (IPCW, Graf et al.) of predicted survival curves; lower is better.

    Uses :func:`sksurv.metrics.integrated_brier_score`, which averages the Brier score over the
    evaluation times by the trapezoidal rule between the first and the last time. Only the
    times where the score is defined are used (:func:`valid_times`: inside the test follow-up
    and before the longest training follow-up); dropped times are logged. Patients followed
    beyond the last used time count as controls there (see :func:`_truncate_after`).

    Parameters
    ----------
    train_time, train_event : array-like, shape (m,)
        Outcomes of the fold's training patients (fit the censoring distribution).
    time, event : array-like, shape (n,)
        Outcomes of the evaluated patients.
    surv : array-like, shape (n, T)
        Predicted survival probabilities ``P(T_i > times[j])``, in [0, 1].
    times : array-like, shape (T,)
        Strictly increasing evaluation times of the columns of ``surv``.

    Returns
    -------
    float
        The IBS over the valid times, or ``nan`` (logged warning) when fewer than two times
        are valid or there are fewer than two patients.
    """
    tt, te, t, e, grid = _curve_inputs(
        train_time, train_event, time, event, times, what="integrated_brier"
    )
    s = np.asarray(surv, dtype=float)  # (n, T)
    if s.ndim != 2 or s.shape != (len(t), len(grid)):
        raise ValueError(
            f"integrated_brier: surv must have shape (n_patients, n_times) = "
            f"({len(t)}, {len(grid)}), got {s.shape}"
        )
    if not np.all(np.isfinite(s)) or np.any((s < 0) | (s > 1)):
        raise ValueError("integrated_brier: survival probabilities must be finite and in [0, 1]")
    if len(t) < 2 or len(tt) < 2:
        return _undefined("integrated_brier", f"{len(t)} patient(s), {len(tt)} training")
    keep = valid_times(tt, t, grid)
    if keep.sum() < 2:
        return _undefined(
            "integrated_brier",
            f"{int(keep.sum())} of times {grid.tolist()} inside the follow-up "
            f"[{t.min():g}, {min(t.max(), tt.max()):g}); need 2",
        )
    if not keep.all():
        log.info("integrated_brier: times %s outside the follow-up dropped", grid[~keep].tolist())
    t_used, e_used = _truncate_after(t, e, last=grid[keep].max(), train_max=tt.max())
    return float(
        integrated_brier_score(
            _structured(te, tt), _structured(e_used, t_used), s[:, keep], grid[keep]
        )
    )


def td_auc(
    train_time: Sequence[float],
    train_event: Sequence[int],
    time: Sequence[float],
    event: Sequence[int],
    risk: Sequence[float],
    times: Sequence[float],
) -> float:
    """Mean cumulative/dynamic time-dependent AUC of a risk score (Uno et al. 2007).

    Uses :func:`sksurv.metrics.cumulative_dynamic_auc` (IPCW with the training censoring
    distribution, ties within 1e-8) at the valid times (:func:`valid_times`, and not before
    the first test event, where there are no cases). The returned summary is scikit-survival's
    ``mean_auc``: the AUC(t) averaged with weights given by the drop of the test patients'
    Kaplan-Meier curve at each time (Lambert & Chevret 2014); with one valid time, AUC(t).

    Parameters
    ----------
    train_time, train_event : array-like, shape (m,)
        Outcomes of the fold's training patients.
    time, event, risk : array-like, shape (n,)
        Outcomes and predicted risk (higher = earlier event) of the evaluated patients.
    times : array-like, shape (T,)
        Strictly increasing evaluation times.

    Returns
    -------
    float
        Mean AUC over the valid times, or ``nan`` (logged warning) when no time is valid.
    """
    tt, te, t, e, grid = _curve_inputs(train_time, train_event, time, event, times, what="td_auc")
    r = np.asarray(risk, dtype=float).ravel()  # (n,)
    if len(r) != len(t) or not np.all(np.isfinite(r)):
        raise ValueError(f"td_auc: risk must be {len(t)} finite values, got {len(r)} values")
    if len(t) < 2 or len(tt) < 2:
        return _undefined("td_auc", f"{len(t)} patient(s), {len(tt)} training")
    keep = valid_times(tt, t, grid)
    if e.any():
        keep &= grid >= t[e].min()
    else:
        keep[:] = False
    if not keep.any():
        return _undefined(
            "td_auc", f"no time of {grid.tolist()} has both cases and controls in the follow-up"
        )
    t_used, e_used = _truncate_after(t, e, last=grid[keep].max(), train_max=tt.max())
    _, mean_auc = cumulative_dynamic_auc(
        _structured(te, tt), _structured(e_used, t_used), r, grid[keep], tied_tol=TIED_TOL
    )
    return float(mean_auc)


def bootstrap_ci(
    values: Sequence[float], *, n_boot: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of per-fold values.

    The finite values (NaN folds are dropped) are resampled with replacement ``n_boot`` times
    with ``numpy.random.default_rng(seed)``; the interval is the ``(1 - level) / 2`` and
    ``(1 + level) / 2`` quantiles of the resampled means. Only the number of values enters the
    random draws, so with the same ``seed`` every model gets the same resampled folds (a paired
    bootstrap across models). With few folds (e.g. 5) the interval is coarse and tends to be
    too narrow; it describes the spread over folds, not over new cohorts.

    Returns
    -------
    (float, float)
        Lower and upper bound; ``(nan, nan)`` with fewer than two finite values.
    """
    if not 0 < level < 1:
        raise ValueError(f"bootstrap_ci: level must be in (0, 1), got {level}")
    if n_boot < 1:
        raise ValueError(f"bootstrap_ci: n_boot must be >= 1, got {n_boot}")
    v = np.asarray(values, dtype=float).ravel()
    v = v[np.isfinite(v)]  # (k,)
    if len(v) < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(v), size=(n_boot, len(v)))  # (n_boot, k)
    means = v[idx].mean(axis=1)  # (n_boot,)
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return float(low), float(high)


def paired_differences(
    values: Mapping[Hashable, float], baseline: Mapping[Hashable, float]
) -> dict[Hashable, float]:
    """Per-fold differences ``values[fold] - baseline[fold]``.

    Parameters
    ----------
    values, baseline : mapping fold -> float
        One metric of a model and of the baseline, per fold.

    Returns
    -------
    dict fold -> float
        Only the folds where both values are finite (a NaN fold pairs with nothing).
    """
    out = {}
    for fold, v in values.items():
        b = baseline.get(fold, np.nan)
        if np.isfinite(v) and np.isfinite(b):
            out[fold] = float(v) - float(b)
    return out


def _class_arrays(
    y_true: Sequence[str], prob: np.ndarray, classes: Sequence[str], *, what: str
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    y = np.asarray(y_true).astype(str).ravel()  # (n,)
    p = np.asarray(prob, dtype=float)  # (n, k)
    cls = [str(c) for c in classes]
    if p.ndim != 2 or p.shape != (len(y), len(cls)):
        raise ValueError(
            f"{what}: probabilities must have shape (n_patients, n_classes) = "
            f"({len(y)}, {len(cls)}), got {p.shape}"
        )
    if len(cls) < 2 or len(set(cls)) != len(cls):
        raise ValueError(f"{what}: need >= 2 distinct classes, got {cls}")
    if not np.all(np.isfinite(p)):
        n_bad = int(np.sum(~np.isfinite(p)))
        raise ValueError(f"{what}: probabilities have {n_bad} missing values")
    return y, p, cls


def _ovr_macro(
    score_fn, y_true: Sequence[str], prob: np.ndarray, classes: Sequence[str], *, what: str
) -> float:
    """Binary: the score of the second (positive) class; multiclass: macro one-vs-rest mean.

    In the multiclass case classes without both positive and negative patients are skipped
    (their one-vs-rest score is undefined); patients whose label is not among ``classes`` (unseen
    in training) count as negatives for every class.
    """
    y, p, cls = _class_arrays(y_true, prob, classes, what=what)
    if len(np.unique(y)) < 2:
        return _undefined(what, f"only one class ({np.unique(y).tolist()}) among {len(y)} patients")
    columns = [1] if len(cls) == 2 else range(len(cls))
    scores = []
    for j in columns:
        positive = y == cls[j]
        if positive.all() or not positive.any():
            continue
        scores.append(score_fn(positive.astype(int), p[:, j]))
    if not scores:
        return _undefined(what, "no class has both positive and negative patients")
    return float(np.mean(scores))


def auc(y_true: Sequence[str], prob: np.ndarray, *, classes: Sequence[str]) -> float:
    """Area under the ROC curve from class probabilities.

    Parameters
    ----------
    y_true : array-like of str, shape (n,)
        True labels.
    prob : array-like, shape (n, k)
        Predicted probabilities, column ``j`` for ``classes[j]``.
    classes : sequence of str, length k
        Class names; with two classes ``classes[1]`` is the positive class.

    Returns
    -------
    float
        Binary AUC, or the macro average of one-vs-rest AUCs for k > 2; ``nan`` (logged) when
        only one class is present.
    """
    return _ovr_macro(skm.roc_auc_score, y_true, prob, classes, what="auc")


def class_aucs(y_true: Sequence[str], prob: np.ndarray, *, classes: Sequence[str]) -> list[float]:
    """One-vs-rest ROC AUC of each class, in the order of ``classes`` (``nan`` for a class that
    all or none of the patients have); with more than two classes :func:`auc` is their mean."""
    y, p, cls = _class_arrays(y_true, prob, classes, what="class_aucs")
    return [
        float(skm.roc_auc_score(y == c, p[:, j])) if 0 < np.sum(y == c) < len(y) else float("nan")
        for j, c in enumerate(cls)
    ]


def average_precision(y_true: Sequence[str], prob: np.ndarray, *, classes: Sequence[str]) -> float:
    """Average precision binary or macro one-vs-rest as :func:`auc`."""
    return _ovr_macro(skm.average_precision_score, y_true, prob, classes, what="average_precision")


def _label_arrays(y_true: Sequence[str], y_pred: Sequence[str], *, what: str):
    y = np.asarray(y_true).astype(str).ravel()
    yp = np.asarray(y_pred).astype(str).ravel()
    if len(y) != len(yp):
        raise ValueError(f"{what}: y_true and y_pred differ in length ({len(y)}, {len(yp)})")
    return y, yp


def balanced_accuracy(y_true: Sequence[str], y_pred: Sequence[str]) -> float:
    """Mean per-class recall over the classes present in ``y_true``; ``nan`` for no patients."""
    y, yp = _label_arrays(y_true, y_pred, what="balanced_accuracy")
    if len(y) == 0:
        return _undefined("balanced_accuracy", "no patients")
    with warnings.catch_warnings():  # predicted classes absent from y_true are expected
        warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
        return float(skm.balanced_accuracy_score(y, yp))


def f1(y_true: Sequence[str], y_pred: Sequence[str]) -> float:
    """Macro F1 over the union of true and predicted classes (0 if undefined); ``nan`` if empty."""
    y, yp = _label_arrays(y_true, y_pred, what="f1")
    if len(y) == 0:
        return _undefined("f1", "no patients")
    return float(skm.f1_score(y, yp, average="macro", zero_division=0.0))
