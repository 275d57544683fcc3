"""Scalar performance metrics for survival and classification predictions.

All functions are pure: arrays in, one float out. Malformed input (length mismatch, missing or
non-finite values, negative times, unknown classes) raises :class:`ValueError` naming what is
wrong. *Degenerate but well-formed* input, where the metric is simply undefined (no events, fewer
than two patients, no comparable pairs, a single class), returns ``nan`` and logs a warning with
the reason, so that one unlucky fold does not abort the evaluation of a whole cohort; summaries
then count only the folds with a value.

Survival risks follow the project convention: higher risk = worse prognosis (earlier event).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence

import numpy as np
from sklearn import metrics as skm
from sksurv.metrics import concordance_index_censored, concordance_index_ipcw

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
    y_train = np.array(list(zip(te, tt, strict=True)), dtype=[("event", bool), ("time", float)])
    y_test = np.array(list(zip(e, t, strict=True)), dtype=[("event", bool), ("time", float)])
    try:
        return float(concordance_index_ipcw(y_train, y_test, r, tau=tau_used, tied_tol=TIED_TOL)[0])
    except ValueError as err:
        return _undefined("uno_c", str(err))


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
