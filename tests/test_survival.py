"""Discrete-time survival: bins from uncensored training times, NLL by hand, curve, risk, Cox."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mmlego.models import survival


def sig(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def test_bins_use_only_uncensored_times_with_open_outer_edges():
    times = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 100.0, 200.0, 0.1])
    events = np.array([1, 1, 1, 1, 1, 0, 0, 0])  # censored times must not move the edges
    edges = survival.fit_bins(times, events, n_bins=4)
    np.testing.assert_allclose(edges, [-np.inf, 2.0, 3.0, 4.0, np.inf])
    bins = survival.discretise(times, edges)
    assert bins.dtype == np.int64
    np.testing.assert_array_equal(bins, [0, 1, 2, 3, 3, 3, 3, 0])
    tbins = survival.discretise(torch.tensor(times), edges)
    assert tbins.dtype == torch.long and tbins.tolist() == bins.tolist()
    changed = survival.fit_bins(np.r_[times, 1000.0], np.r_[events, 0], n_bins=4)
    np.testing.assert_array_equal(changed, edges)


def test_bins_need_enough_events():
    with pytest.raises(ValueError, match="uncensored"):
        survival.fit_bins(np.array([1.0, 2.0, 3.0]), np.array([1, 0, 1]), n_bins=4)
    with pytest.raises(ValueError, match="0/1"):
        survival.fit_bins(np.array([1.0, 2.0]), np.array([1, 2]), n_bins=1)


@pytest.mark.parametrize("alpha", [0.0, 0.4])
def test_nll_matches_hand_computation(alpha):
    logits = [[0.2, -1.0, 0.5], [1.5, 0.3, -0.7], [-0.4, 0.8, 0.1]]
    y = [1, 2, 0]
    c = [0, 1, 1]  # patient 0 died in bin 1; patients 1, 2 censored in bins 2, 0
    total = 0.0
    for row, k, cens in zip(logits, y, c, strict=True):
        h = [sig(v) for v in row]
        s = [math.prod(1 - hj for hj in h[: i + 1]) for i in range(3)]
        s_prev = 1.0 if k == 0 else s[k - 1]
        l_unc = -(1 - cens) * (math.log(s_prev) + math.log(h[k]))
        l_cen = -cens * math.log(s[k])
        total += (1 - alpha) * (l_unc + l_cen) + alpha * l_unc
    loss = survival.nll_loss(
        torch.tensor(logits), torch.tensor(y), torch.tensor(c, dtype=torch.float32), alpha=alpha
    )
    assert math.isclose(float(loss), total / 3, rel_tol=1e-6)


def test_nll_is_finite_for_extreme_logits_and_checks_bins():
    logits = torch.tensor([[60.0, -60.0], [-60.0, 60.0]], requires_grad=True)
    loss = survival.nll_loss(logits, torch.tensor([1, 0]), torch.tensor([0.0, 1.0]))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(logits.grad).all()
    with pytest.raises(ValueError, match="bins must lie"):
        survival.nll_loss(logits, torch.tensor([2, 0]), torch.tensor([0.0, 1.0]))


def test_survival_curve_and_risk():
    logits = torch.tensor([[0.0, 0.0], [2.0, 2.0]])
    s = survival.survival_curve(logits)
    np.testing.assert_allclose(s[0].numpy(), [0.5, 0.25], rtol=1e-6)
    h = sig(2.0)
    np.testing.assert_allclose(s[1].numpy(), [1 - h, (1 - h) ** 2], rtol=1e-5)
    r = survival.risk(logits)
    assert math.isclose(float(r[0]), -0.75, rel_tol=1e-6)
    assert r[1] > r[0]  # higher hazards = higher risk


def test_cox_loss_matches_hand_computation():
    risk = torch.tensor([0.5, -0.2, 1.0])
    time = torch.tensor([3.0, 1.0, 2.0])
    event = torch.tensor([1.0, 0.0, 1.0])
    # risk sets: patient 0 (t=3): {0}; patient 2 (t=2): {0, 2}
    expected = -((0.5 - 0.5) + (1.0 - math.log(math.exp(0.5) + math.exp(1.0)))) / 2
    assert math.isclose(float(survival.cox_loss(risk, time, event)), expected, rel_tol=1e-6)
