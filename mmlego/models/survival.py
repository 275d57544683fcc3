"""Discrete-time hazard survival: bins, negative log-likelihood, survival curve and risk.

K bins from the quantiles of the uncensored training times (outer edges open). Hazards
h = sigmoid(logits), S_k = prod_{j<=k} (1 - h_j), S_{-1} = 1. Per patient with bin y and
censoring c (1 = censored)::

    l_unc = -(1 - c) [log S_{y-1} + log h_y],   l_cen = -c log S_y
    loss  = mean[(1 - alpha)(l_unc + l_cen) + alpha l_unc]

Logs are computed with ``logsigmoid`` (log h = logsigmoid(x), log(1 - h) = logsigmoid(-x)),
so no clamping is needed. Risk = -sum_k S_k (higher = worse).

The Cox alternative (:func:`cox_loss`): one output per patient, its log hazard ratio r, which is
also the risk; its survival curve is S(t | r) = exp(-H0(t) exp(r)) with Breslow's estimate of the
cumulative baseline hazard H0 on the training patients (:func:`breslow`). :func:`concordance`
(Harrell's c-index in numpy) scores a risk on tune patients.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def fit_bins(times: np.ndarray, events: np.ndarray, *, n_bins: int = 4) -> np.ndarray:
    """Bin edges (n_bins + 1,) from quantiles of the uncensored times; outer edges -inf, +inf.

    Parameters
    ----------
    times
        Follow-up times of the training patients (> 0).
    events
        1 = death observed, 0 = censored. Only patients with event 1 set the edges.
    n_bins
        Number of bins K.
    """
    times = np.asarray(times, dtype=float)
    events = np.asarray(events)
    if times.shape != events.shape or times.ndim != 1:
        raise ValueError(f"times {times.shape} and events {events.shape} must be equal 1-d arrays")
    if not np.isin(events, (0, 1)).all():
        raise ValueError(f"events must be 0/1, got values {sorted(set(events.tolist()))[:5]}")
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    observed = times[events == 1]
    if observed.size < n_bins:
        raise ValueError(
            f"need at least n_bins={n_bins} uncensored training patients to fit bins, "
            f"got {observed.size}: lower survival.n_bins or splits.k, or use a larger cohort"
        )
    edges = np.quantile(observed, np.linspace(0.0, 1.0, n_bins + 1))
    edges[0], edges[-1] = -np.inf, np.inf
    return edges


def discretise(times: np.ndarray | torch.Tensor, edges: np.ndarray) -> np.ndarray | torch.Tensor:
    """Bin index in 0..K-1 of each time: bin k holds edges[k] <= t < edges[k+1].

    Returns an int64 numpy array, or a LongTensor when ``times`` is a tensor.
    """
    inner = np.asarray(edges, dtype=float)[1:-1]
    if isinstance(times, torch.Tensor):
        boundaries = torch.as_tensor(inner, dtype=times.dtype, device=times.device)
        return torch.bucketize(times, boundaries, right=True)
    return np.searchsorted(inner, np.asarray(times, dtype=float), side="right").astype(np.int64)


def log_survival(logits: torch.Tensor) -> torch.Tensor:
    """log S_k (b, K) = cumulative sum of log(1 - h_j)."""
    return torch.cumsum(F.logsigmoid(-logits), dim=-1)


def nll_loss(
    logits: torch.Tensor, y: torch.Tensor, c: torch.Tensor, *, alpha: float = 0.0
) -> torch.Tensor:
    """Mean discrete-time survival NLL.

    Parameters
    ----------
    logits
        (b, K) hazard logits.
    y
        (b,) bin index in 0..K-1.
    c
        (b,) censoring indicator, 1 = censored.
    alpha
        Extra weight on the uncensored term (0 = plain likelihood).
    """
    if logits.dim() != 2 or y.shape != (logits.shape[0],) or c.shape != (logits.shape[0],):
        raise ValueError(
            f"nll_loss: logits {tuple(logits.shape)} must be (b, K), y {tuple(y.shape)} and "
            f"c {tuple(c.shape)} must be (b,)"
        )
    k = logits.shape[1]
    y = y.long()
    if bool(((y < 0) | (y >= k)).any()):
        raise ValueError(f"nll_loss: bins must lie in 0..{k - 1}, got {y.unique().tolist()}")
    c = c.to(logits.dtype)
    log_s = torch.cat(
        [logits.new_zeros(logits.shape[0], 1), log_survival(logits)], dim=1
    )  # (b, K+1)
    idx = y[:, None]
    log_s_prev = log_s.gather(1, idx).squeeze(1)  # log S_{y-1}
    log_s_y = log_s.gather(1, idx + 1).squeeze(1)  # log S_y
    log_h_y = F.logsigmoid(logits).gather(1, idx).squeeze(1)  # log h_y
    l_unc = -(1 - c) * (log_s_prev + log_h_y)
    l_cen = -c * log_s_y
    return ((1 - alpha) * (l_unc + l_cen) + alpha * l_unc).mean()


def survival_curve(logits: torch.Tensor) -> torch.Tensor:
    """S_k (b, K): probability of surviving past bin k."""
    return torch.exp(log_survival(logits))


def risk(logits: torch.Tensor) -> torch.Tensor:
    """Risk score (b,) = -sum_k S_k; higher = worse."""
    return -survival_curve(logits).sum(dim=-1)


def cox_loss(risk: torch.Tensor, time: torch.Tensor, event: torch.Tensor) -> torch.Tensor:
    """Negative Cox partial log-likelihood (Breslow ties), averaged over events.

    ``risk`` (b,) log hazard ratios, ``time`` (b,), ``event`` (b,) 1 = death observed.
    """
    at_risk = time[None, :] >= time[:, None]  # (b, b): j in risk set of i
    log_denominator = torch.logsumexp(risk[None, :].masked_fill(~at_risk, float("-inf")), dim=1)
    event = event.to(risk.dtype)
    return -(event * (risk - log_denominator)).sum() / event.sum().clamp_min(1.0)


def breslow(risk: np.ndarray, time: np.ndarray, event: np.ndarray, at: np.ndarray) -> np.ndarray:
    """Breslow's cumulative baseline hazard H0 at the times ``at`` (m,), for hazards exp(risk).

    ``H0(t) = sum over event times s <= t of d_s / sum_{j: time_j >= s} exp(risk_j)``, with d_s
    the deaths at s (ties as in :func:`cox_loss`). ``risk``, ``time``, ``event`` (n,) are the
    fitting patients'; pass risks centred (e.g. minus their maximum) to keep exp() finite.
    """
    r = np.asarray(risk, dtype=float).ravel()
    t = np.asarray(time, dtype=float).ravel()
    e = np.asarray(event).ravel().astype(bool)
    at = np.asarray(at, dtype=float).ravel()
    if not (len(r) == len(t) == len(e)) or not np.isfinite(r).all():
        raise ValueError(f"breslow: need finite risks and one time / event each, got {len(r)}")
    s = np.unique(t[e])  # (k,) distinct event times
    deaths = np.array([np.sum(e & (t == u)) for u in s], dtype=float)  # (k,)
    order = np.argsort(t)
    tail = np.cumsum(np.exp(r[order])[::-1])[::-1]  # (n,) sum of exp(r) over time >= t_order[i]
    first = np.searchsorted(t[order], s, side="left")  # (k,) first index of the risk set
    increments = deaths / tail[first]  # (k,)
    return np.array([increments[s <= x].sum() for x in at])


def concordance(risk: np.ndarray, time: np.ndarray, event: np.ndarray) -> float:
    """Harrell's c-index of ``risk`` (higher = earlier event); risk ties count 1/2.

    A pair (i, j) is comparable when patient i had the event and ``time[i] < time[j]``, or
    ``time[i] == time[j]`` with j censored (as scikit-survival counts them). NaN when no pair
    is comparable. O(n^2) memory: meant for tune sets of a few hundred patients.
    """
    r = np.asarray(risk, dtype=float).ravel()
    t = np.asarray(time, dtype=float).ravel()
    e = np.asarray(event).ravel().astype(bool)
    later = (t[:, None] < t[None, :]) | ((t[:, None] == t[None, :]) & ~e[None, :])
    comparable = e[:, None] & later  # (n, n): i died before j's time
    n = int(comparable.sum())
    if n == 0:
        return float("nan")
    diff = r[:, None] - r[None, :]  # (n, n)
    right = (comparable & (diff > 1e-8)).sum() + 0.5 * (comparable & (np.abs(diff) <= 1e-8)).sum()
    return float(right / n)
