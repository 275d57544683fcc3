"""Metrics and the evaluation table: hand-checked values, shared patient sets, oracle, NaN folds."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from mmlego.evaluation import metrics as M
from mmlego.evaluation.evaluate import (
    ORACLE_MODEL,
    best_baseline,
    classification_metrics,
    cohort_classes,
    complete_patients,
    evaluate_predictions,
    find_prediction_files,
    paired_differences,
    paired_table,
    read_predictions,
    summarise,
    summarise_differences,
    train_outcomes_from_splits,
)
from mmlego.io import write_tsv

# ---------------------------------------------------------------------------------------------
# metrics


def test_harrell_hand_computed():
    # comparable pairs (earlier time has an event): (2,4) (2,6) (2,8) (6,8); 4 is censored
    time = [2.0, 4.0, 6.0, 8.0]
    event = [1, 0, 1, 1]
    # risks 0.9 > 0.1, 0.5, 0.6 -> 3 concordant; (6,8): 0.5 < 0.6 discordant -> 3/4
    assert M.harrell_c(time, event, [0.9, 0.1, 0.5, 0.6]) == pytest.approx(0.75)
    # a tie on (6,8) counts one half -> 3.5/4
    assert M.harrell_c(time, event, [0.9, 0.1, 0.5, 0.5]) == pytest.approx(0.875)


def test_harrell_perfect_and_reversed():
    rng = np.random.default_rng(0)
    time = rng.exponential(10, 50) + 0.1
    event = rng.integers(0, 2, 50)
    event[0] = 1
    assert M.harrell_c(time, event, -time) == pytest.approx(1.0)
    assert M.harrell_c(time, event, time) == pytest.approx(0.0)


def test_harrell_no_events_is_nan_with_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="mmlego.evaluation.metrics"):
        value = M.harrell_c([1.0, 2.0, 3.0], [0, 0, 0], [0.3, 0.2, 0.1])
    assert np.isnan(value)
    assert "no events" in caplog.text


def test_harrell_bad_input_names_problem():
    with pytest.raises(ValueError, match="differ in length"):
        M.harrell_c([1.0, 2.0], [1, 0, 1], [0.1, 0.2])
    with pytest.raises(ValueError, match="risk has 1 missing"):
        M.harrell_c([1.0, 2.0], [1, 0], [0.1, np.nan])
    with pytest.raises(ValueError, match="event must be 0/1"):
        M.harrell_c([1.0, 2.0], [1, 2], [0.1, 0.2])


def test_uno_equals_harrell_without_censoring_in_training():
    rng = np.random.default_rng(1)
    train_time = np.arange(1.0, 101.0)  # no censoring, follow-up to 100
    test_time = rng.uniform(1, 90, 40)
    test_event = rng.integers(0, 2, 40)
    risk = -test_time + rng.normal(0, 20, 40)
    uno = M.uno_c(train_time, np.ones(100), test_time, test_event, risk)
    assert uno == pytest.approx(M.harrell_c(test_time, test_event, risk))


def test_uno_test_beyond_training_follow_up_does_not_raise():
    train_time = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    train_event = np.array([1, 0, 1, 0, 0])  # last training time censored: G(5) = 0
    test_time = np.array([0.5, 1.5, 2.5, 6.0, 9.0])
    test_event = np.array([1, 1, 1, 1, 0])
    risk = -test_time
    value = M.uno_c(train_time, train_event, test_time, test_event, risk)
    assert value == pytest.approx(1.0)  # only pairs whose earlier time is < tau = 5 count
    assert M.uno_c(train_time, train_event, test_time, test_event, risk, tau=50.0) == value
    assert M.uno_c(train_time, train_event, test_time, test_event, -risk) == pytest.approx(0.0)


def test_classification_metrics_values():
    y = ["a", "b", "a", "b"]
    prob = np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [0.7, 0.3]])
    # positive class b: scores 0.1, 0.8, 0.6, 0.3; pairs (b, a): (0.8>0.1, 0.8>0.6, 0.3>0.1,
    # 0.3<0.6) -> 3/4
    assert M.auc(y, prob, classes=["a", "b"]) == pytest.approx(0.75)
    y3 = ["a", "b", "c", "a", "b", "c"]
    prob3 = np.array(
        [
            [0.6, 0.3, 0.1],
            [0.2, 0.5, 0.3],
            [0.3, 0.3, 0.4],
            [0.2, 0.7, 0.1],
            [0.5, 0.2, 0.3],
            [0.1, 0.1, 0.8],
        ]
    )
    expected = roc_auc_score(y3, prob3, multi_class="ovr", average="macro", labels=["a", "b", "c"])
    assert M.auc(y3, prob3, classes=["a", "b", "c"]) == pytest.approx(expected)
    assert np.isnan(M.auc(["a", "a"], prob[:2], classes=["a", "b"]))
    pred = ["a", "b", "b", "b"]  # recall a = 1/2, b = 1; F1 a = 2/3, b = 4/5
    assert M.balanced_accuracy(y, pred) == pytest.approx(0.75)
    assert M.f1(y, pred) == pytest.approx((2 / 3 + 4 / 5) / 2)
    assert 0.0 < M.average_precision(y, prob, classes=["a", "b"]) <= 1.0


# ---------------------------------------------------------------------------------------------
# evaluate_predictions


def _cohort(n: int = 40, seed: int = 0):
    """Patients with rnaseq (all) and wsi (every third missing), two folds, a true risk."""
    rng = np.random.default_rng(seed)
    ids = [f"P{i:03d}" for i in range(n)]
    true_risk = rng.normal(size=n)
    time = rng.exponential(20 * np.exp(-true_risk)) + 0.5
    event = (rng.uniform(size=n) < 0.7).astype(int)
    patients = pd.DataFrame({"patient_id": ids, "time": time, "event": event})
    has_wsi = np.arange(n) % 3 != 0
    splits = {}
    for k in range(2):
        role = np.where(np.arange(n) % 2 == k, "val", "train")
        role[(np.arange(n) % 2 != k) & (np.arange(n) % 5 == 0)] = "tune"
        splits[k] = pd.DataFrame({"patient_id": ids, "role": role})
    oracle = pd.DataFrame({"patient_id": ids, "true_risk": true_risk})
    return patients, has_wsi, splits, oracle, rng


def _write_predictions(tmp_path, patients, has_wsi, splits, rng):
    """Three models: rnaseq (all), wsi (wsi patients), merge (all, uses what each has)."""
    files = {}
    risk_base = -np.log(patients["time"].to_numpy())
    for k in splits:
        # every patient is written, train ones too: evaluation must score only the val ones
        for model in ("rnaseq", "wsi", "merge"):
            keep = has_wsi if model == "wsi" else np.ones(len(patients), bool)
            if model == "rnaseq":
                mods = ["rnaseq"] * len(patients)
            elif model == "wsi":
                mods = ["wsi"] * len(patients)
            else:
                mods = ["rnaseq+wsi" if h else "rnaseq" for h in has_wsi]
            df = patients.assign(
                risk=risk_base + rng.normal(0, 1.0, len(patients)), modalities=mods
            )[keep]
            path = tmp_path / "predictions" / model / f"fold{k}.tsv"
            write_tsv(df, path)
            files[(model, k)] = path
    assert all(split["role"].isin({"train", "tune", "val"}).all() for split in splits.values())
    return files


def test_evaluate_survival_complete_set_and_oracle(tmp_path):
    patients, has_wsi, splits, oracle, rng = _cohort()
    files = _write_predictions(tmp_path, patients, has_wsi, splits, rng)
    assert find_prediction_files(tmp_path / "predictions") == files
    train = train_outcomes_from_splits(patients, splits)
    metrics = evaluate_predictions(
        files,
        task="survival",
        train_outcomes=train,
        modalities=["rnaseq", "wsi"],
        oracle=oracle,
        splits=splits,
    )
    assert list(metrics.columns) == ["model", "fold", "metric", "value"]
    assert set(metrics["model"]) == {"rnaseq", "wsi", "merge", ORACLE_MODEL}
    wide = metrics.pivot_table(index=["model", "fold"], columns="metric", values="value")
    for k, split in splits.items():
        val = set(split.loc[split["role"] == "val", "patient_id"])
        complete = sorted(
            p for p, h in zip(patients["patient_id"], has_wsi, strict=True) if h and p in val
        )
        # same complete-patient count for every model (and the oracle) in this fold
        counts = wide.xs(k, level="fold")["n_patients_complete"]
        assert (counts == len(complete)).all()
        assert wide.loc[("rnaseq", k), "n_patients"] == len(val)
        assert wide.loc[("wsi", k), "n_patients"] == len(complete)
        for model in ("rnaseq", "wsi", "merge"):
            pred = read_predictions(files[(model, k)], task="survival").set_index("patient_id")
            sub = pred.loc[complete]
            expected = M.harrell_c(sub["time"], sub["event"], sub["risk"])
            assert wide.loc[(model, k), "c_index_complete"] == pytest.approx(expected)
            vpred = pred.loc[sorted(val & set(pred.index))]
            assert wide.loc[(model, k), "c_index"] == pytest.approx(
                M.harrell_c(vpred["time"], vpred["event"], vpred["risk"])
            )
            assert wide.loc[(model, k), "n_events"] == vpred["event"].sum()
        # oracle: Harrell's c of the true risk on this fold's val patients
        truth = oracle.set_index("patient_id").loc[sorted(val), "true_risk"]
        outcome = patients.set_index("patient_id").loc[sorted(val)]
        assert wide.loc[(ORACLE_MODEL, k), "c_index"] == pytest.approx(
            M.harrell_c(outcome["time"], outcome["event"], truth)
        )
        assert np.isfinite(wide.loc[(ORACLE_MODEL, k), "c_index_uno"])


def test_complete_patients_intersects_models():
    a = pd.DataFrame({"patient_id": ["1", "2", "3"], "modalities": ["x", "x", "x"]})
    b = pd.DataFrame({"patient_id": ["1", "2"], "modalities": ["y", "y"]})
    c = pd.DataFrame({"patient_id": ["1", "3"], "modalities": ["x+y", "x"]})
    assert complete_patients({"a": a, "b": b, "c": c}, ["x", "y"]) == {"1"}


def test_fold_without_events_gives_nan_and_summary_skips_it(tmp_path):
    ids = [f"Q{i}" for i in range(6)]
    files = {}
    for k, events in ((0, [1, 0, 1, 0, 1, 0]), (1, [0] * 6)):
        df = pd.DataFrame(
            {
                "patient_id": ids,
                "time": np.arange(1.0, 7.0),
                "event": events,
                "risk": -np.arange(1.0, 7.0),
                "modalities": "rnaseq",
            }
        )
        files[("m", k)] = tmp_path / f"fold{k}.tsv"
        write_tsv(df, files[("m", k)])
    metrics = evaluate_predictions(files, task="survival", modalities=["rnaseq"])
    c = metrics[metrics["metric"] == "c_index"].set_index("fold")["value"]
    assert c[0] == pytest.approx(1.0)
    assert np.isnan(c[1])
    assert "c_index_uno" not in set(metrics["metric"])  # no training outcomes given
    summary = summarise(metrics).set_index(["model", "metric"])
    assert summary.loc[("m", "c_index"), "n_folds"] == 1
    assert summary.loc[("m", "c_index"), "mean"] == pytest.approx(1.0)
    assert summary.loc[("m", "n_events"), "n_folds"] == 2


def test_summarise_mean_and_sd():
    metrics = pd.DataFrame(
        {
            "model": ["a", "a", "a", "b"],
            "fold": [0, 1, 2, 0],
            "metric": "c_index",
            "value": [0.6, 0.7, 0.8, 0.5],
        }
    )
    s = summarise(metrics).set_index("model")
    assert s.loc["a", "mean"] == pytest.approx(0.7)
    assert s.loc["a", "sd"] == pytest.approx(0.1)
    assert s.loc["a", "n_folds"] == 3
    assert np.isnan(s.loc["b", "sd"]) and s.loc["b", "n_folds"] == 1


def test_evaluate_classification(tmp_path):
    df = pd.DataFrame(
        {
            "patient_id": ["1", "2", "3", "4"],
            "label": ["a", "b", "a", "b"],
            "prob_a": [0.9, 0.2, 0.4, 0.7],
            "prob_b": [0.1, 0.8, 0.6, 0.3],
            "modalities": "wsi",
        }
    )
    write_tsv(df, tmp_path / "fold0.tsv")
    metrics = evaluate_predictions(
        {("clf", 0): tmp_path / "fold0.tsv"}, task="classification", modalities=["wsi"]
    )
    values = metrics.set_index("metric")["value"]
    assert values["auc"] == pytest.approx(0.75)
    # argmax predictions a, b, b, a: recall 1/2 for both classes, F1 1/2 for both
    assert values["balanced_accuracy"] == pytest.approx(0.5)
    assert values["f1"] == pytest.approx(0.5)
    assert values["n_patients"] == 4


def test_classification_scored_over_the_cohort_classes(tmp_path, caplog):
    """A model whose fold had no training patient of class c has no prob_c column: it is scored
    over the cohort's three classes (c at probability 0), as the models that saw c are, not as a
    binary model of b against the rest."""
    y = ["a", "b", "c", "a", "b", "c"]
    two = pd.DataFrame(
        {
            "patient_id": [str(i) for i in range(6)],
            "label": y,
            "prob_a": [0.7, 0.4, 0.2, 0.6, 0.3, 0.9],
            "prob_b": [0.3, 0.6, 0.8, 0.4, 0.7, 0.1],
            "modalities": "wsi",
        }
    )
    write_tsv(two, tmp_path / "fold0.tsv")
    with caplog.at_level(logging.WARNING):
        metrics = evaluate_predictions(
            {("clf", 0): tmp_path / "fold0.tsv"},
            task="classification",
            modalities=["wsi"],
            classes=["a", "b", "c"],
        )
    values = metrics.set_index("metric")["value"]
    prob = np.column_stack([two["prob_a"], two["prob_b"], np.zeros(6)])
    is_ = np.asarray(y)[:, None] == np.array(["a", "b", "c"])[None, :]  # (6, 3)
    expected = np.mean([roc_auc_score(is_[:, j], prob[:, j]) for j in range(3)])
    assert values["auc"] == pytest.approx(expected)
    assert values["auc"] != pytest.approx(roc_auc_score(is_[:, 1], prob[:, 1]))
    # argmax a, b, b, a, b, a: recall a 2/2, b 2/2, c 0/2
    assert values["balanced_accuracy"] == pytest.approx(2 / 3)
    assert "no probability for class(es) ['c']" in caplog.text
    # without the cohort's classes a file is scored over its own columns (as before)
    own = evaluate_predictions(
        {("clf", 0): tmp_path / "fold0.tsv"}, task="classification", modalities=["wsi"]
    )
    assert own.set_index("metric")["value"]["auc"] == pytest.approx(
        roc_auc_score(is_[:, 1], prob[:, 1])
    )


def test_classification_class_outside_the_cohort_is_an_error(tmp_path):
    df = pd.DataFrame(
        {"patient_id": ["1", "2"], "label": ["a", "b"], "prob_a": [0.6, 0.3], "prob_b": [0.4, 0.7]}
    )
    with pytest.raises(ValueError, match=r"class\(es\) \['b'\], which are not among"):
        classification_metrics(df, classes=["a", "c"])
    with pytest.raises(ValueError, match=r"label\(s\) \['b'\] are not among"):
        classification_metrics(df.drop(columns="prob_b"), classes=["a", "c"])
    assert cohort_classes([2, "10", "b a", 2]) == ["10", "2", "b a"]


def test_bad_prediction_file_names_file_and_column(tmp_path):
    path = tmp_path / "fold0.tsv"
    write_tsv(pd.DataFrame({"patient_id": ["1"], "time": [1.0], "event": [1]}), path)
    with pytest.raises(
        ValueError, match=r"fold0\.tsv: missing column\(s\) \['risk', 'modalities'\]"
    ):
        read_predictions(path, task="survival")
    with pytest.raises(ValueError, match="needs the splits"):
        evaluate_predictions(
            {("m", 0): path}, task="survival", modalities=["x"], oracle=pd.DataFrame()
        )


# ---------------------------------------------------------------------------------------------
# curve metrics: integrated Brier score and time-dependent AUC


def _uncensored(seed: int = 4, n: int = 30):
    """Training and test outcomes without censoring (the censoring weights are all 1)."""
    rng = np.random.default_rng(seed)
    train_time = np.arange(1.0, 41.0)  # follow-up to 40, no censoring
    time = rng.uniform(1.5, 30.0, n)
    return train_time, np.ones(40, int), time, np.ones(n, int), rng


def test_integrated_brier_matches_hand_computation_without_censoring():
    train_time, train_event, time, event, rng = _uncensored()
    times = np.array([5.0, 10.0, 20.0])
    surv = rng.uniform(0, 1, (len(time), 3))
    # no censoring: BS(t) = mean_i (1{T_i > t} - S_i(t))^2, integrated by the trapezoid rule
    bs = ((time[:, None] > times[None, :]).astype(float) - surv) ** 2
    bs = bs.mean(axis=0)
    expected = np.trapezoid(bs, times) / (times[-1] - times[0])
    value = M.integrated_brier(train_time, train_event, time, event, surv, times)
    assert value == pytest.approx(expected)
    perfect = (time[:, None] > times[None, :]).astype(float)
    assert M.integrated_brier(train_time, train_event, time, event, perfect, times) == 0.0


def test_integrated_brier_restricts_to_valid_times(caplog):
    train_time, train_event, time, event, rng = _uncensored()
    times = np.array([0.5, 5.0, 10.0, 20.0, 35.0])  # 0.5 before and 35 after the test follow-up
    assert M.valid_times(train_time, time, times).tolist() == [False, True, True, True, False]
    surv = rng.uniform(0, 1, (len(time), 5))
    inner = M.integrated_brier(train_time, train_event, time, event, surv[:, 1:4], times[1:4])
    assert M.integrated_brier(train_time, train_event, time, event, surv, times) == inner
    with caplog.at_level(logging.WARNING, logger="mmlego.evaluation.metrics"):
        value = M.integrated_brier(
            train_time, train_event, time, event, surv[:, [0, 1]], times[[0, 1]]
        )
    assert np.isnan(value)
    assert "need 2" in caplog.text
    with pytest.raises(ValueError, match=r"surv must have shape \(n_patients, n_times\)"):
        M.integrated_brier(train_time, train_event, time, event, surv[:, :2], times)
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        M.integrated_brier(train_time, train_event, time, event, surv * 2, times)
    with pytest.raises(ValueError, match="strictly increasing"):
        M.integrated_brier(train_time, train_event, time, event, surv, times[::-1])


def test_curve_metrics_with_test_patients_beyond_training_follow_up():
    from sksurv.metrics import cumulative_dynamic_auc, integrated_brier_score

    train_time = np.array([2.0, 4.0, 6.0, 8.0, 10.0, 12.0])
    times = np.array([3.0, 5.0, 7.0])
    time = np.array([1.0, 2.5, 4.5, 6.5, 9.0, 15.0, 20.0])  # two beyond training (12)
    event = np.array([1, 1, 1, 1, 0, 1, 1])
    risk = -time
    surv = np.exp(-np.outer(1 / time, times))  # (7, 3)

    def y(e, t):
        return np.array(list(zip(e.astype(bool), t, strict=True)), [("e", bool), ("t", float)])

    # last training time an event: raw scikit-survival refuses test times beyond it
    ev_last = np.array([1, 0, 1, 0, 1, 1])
    with pytest.raises(ValueError, match="largest observed time"):
        integrated_brier_score(y(ev_last, train_time), y(event, time), surv, times)
    # last training time censored: the censoring survival is 0 there, IPCW weights undefined
    ev_cens = np.array([1, 0, 1, 0, 1, 0])
    with pytest.raises(ValueError, match="censoring survival function is zero"):
        cumulative_dynamic_auc(y(ev_cens, train_time), y(event, time), risk, times)
    for train_event in (ev_last, ev_cens):
        ibs = M.integrated_brier(train_time, train_event, time, event, surv, times)
        auc = M.td_auc(train_time, train_event, time, event, risk, times)
        assert np.isfinite(ibs)
        assert auc == pytest.approx(1.0)  # risk orders every case before every control
        # the two long-followed patients are controls at every time <= 7: moving them (and
        # censoring them) anywhere after 7 changes nothing
        moved_t = np.where(time > 7, 11.0, time)
        moved_e = np.where(time > 7, 0, event)
        assert ibs == pytest.approx(
            M.integrated_brier(train_time, train_event, moved_t, moved_e, surv, times)
        )


def test_td_auc_hand_computed_and_undefined(caplog):
    train_time, train_event, _, event, _ = _uncensored(n=6)
    time = np.array([2.0, 4.0, 6.0, 12.0, 14.0, 16.0])
    risk = np.array([0.9, 0.2, 0.7, 0.8, 0.1, 0.0])
    # t = 10: cases 2, 4, 6 (risks .9 .2 .7), controls 12, 14, 16 (.8 .1 0): of the 9 pairs
    # the case ranks higher in 7 (0.2 < 0.8 fails, 0.7 < 0.8 fails) -> 7/9
    assert M.td_auc(train_time, train_event, time, event, risk, [10.0]) == pytest.approx(7 / 9)
    assert M.td_auc(train_time, train_event, time, event, -time, [3.0, 10.0]) == pytest.approx(1)
    with caplog.at_level(logging.WARNING, logger="mmlego.evaluation.metrics"):
        value = M.td_auc(train_time, train_event, time, np.zeros(6, int), risk, [10.0])
    assert np.isnan(value) and "cases and controls" in caplog.text


# ---------------------------------------------------------------------------------------------
# bootstrap intervals and paired differences


def test_bootstrap_ci_percentile_of_resampled_means():
    values = [0.6, 0.7, 0.8, 0.65, np.nan, 0.72]
    low, high = M.bootstrap_ci(values, n_boot=2000, seed=1)
    finite = np.array([0.6, 0.7, 0.8, 0.65, 0.72])
    idx = np.random.default_rng(1).integers(0, 5, size=(2000, 5))
    expected = np.quantile(finite[idx].mean(axis=1), [0.025, 0.975])
    assert (low, high) == pytest.approx(tuple(expected))
    assert 0.6 <= low < finite.mean() < high <= 0.8
    assert M.bootstrap_ci(values, n_boot=2000, seed=1) == (low, high)  # seeded
    assert M.bootstrap_ci([0.5, 0.5, 0.5], seed=0) == (0.5, 0.5)
    assert all(np.isnan(M.bootstrap_ci([0.5, np.nan], seed=0)))
    with pytest.raises(ValueError, match="level"):
        M.bootstrap_ci([1.0, 2.0], level=95)


def _table(rows):
    return pd.DataFrame(rows, columns=["model", "fold", "metric", "value"])


def _paired_metrics():
    rows = []
    values = {
        "block_wsi": [0.60, 0.62, 0.58],
        "coxnet": [0.65, 0.66, np.nan],  # the best non-Lego mean (0.655)
        "lego_merge": [0.70, 0.64, 0.66],
        "lego_fuse": [0.72, 0.70, 0.75],
        "disjoint_lego_merge": [0.90, 0.90, 0.90],  # a Lego model, never the baseline
        ORACLE_MODEL: [0.95, 0.95, 0.95],
    }
    for model, vals in values.items():
        for fold, v in enumerate(vals):
            rows += [(model, fold, "c_index", v), (model, fold, "ibs", 0.3 - v / 10)]
            rows.append((model, fold, "n_patients", 10.0))
    return _table(rows)


def test_best_baseline_and_paired_differences():
    metrics = _paired_metrics()
    assert best_baseline(metrics, metric="c_index") == "coxnet"
    assert best_baseline(metrics, metric="ibs") == "coxnet"  # lowest IBS
    diffs = paired_differences(metrics, metric="c_index", baseline="coxnet")
    assert list(diffs.columns) == ["model", "baseline", "metric", "fold", "diff"]
    assert ORACLE_MODEL not in set(diffs["model"]) and "coxnet" not in set(diffs["model"])
    merge = diffs[diffs["model"] == "lego_merge"]
    assert merge["fold"].tolist() == [0, 1]  # fold 2: the baseline has no value
    assert merge["diff"].tolist() == pytest.approx([0.05, -0.02])
    summary = summarise_differences(diffs).set_index("model")
    assert summary.loc["lego_merge", "mean_diff"] == pytest.approx(0.015)
    assert summary.loc["lego_merge", "sd_diff"] == pytest.approx(np.std([0.05, -0.02], ddof=1))
    assert summary.loc["lego_merge", "n_wins"] == 1
    assert summary.loc["lego_fuse", "n_wins"] == 2 and summary.loc["lego_fuse", "n_folds"] == 2
    assert summary.loc["block_wsi", "n_wins"] == 0
    # IBS: lower is better, so a negative difference wins
    ibs = summarise_differences(paired_differences(metrics, metric="ibs", baseline="coxnet"))
    assert ibs.set_index("model").loc["lego_fuse", "n_wins"] == 2
    with pytest.raises(ValueError, match="baseline 'nope' has no 'c_index' values"):
        paired_differences(metrics, metric="c_index", baseline="nope")


def test_paired_table_uses_best_baseline_for_all_metrics():
    metrics = _paired_metrics()
    table = paired_table(metrics, task="survival")
    assert set(table["baseline"]) == {"coxnet"}
    assert set(table["metric"]) == {"c_index", "ibs"}  # the PAIRED_METRICS present
    only_lego = metrics[metrics["model"].str.contains("lego")]
    assert paired_table(only_lego, task="survival").empty


def test_summarise_has_seeded_bootstrap_interval():
    metrics = _paired_metrics()
    s = summarise(metrics, n_boot=500, seed=3).set_index(["model", "metric"])
    row = s.loc[("lego_fuse", "c_index")]
    assert (row["ci_low"], row["ci_high"]) == M.bootstrap_ci([0.72, 0.70, 0.75], n_boot=500, seed=3)
    assert row["ci_low"] <= row["mean"] <= row["ci_high"]
    assert np.isnan(s.loc[("lego_fuse", "n_patients"), "ci_low"])  # no interval for counts
    assert s.loc[("coxnet", "c_index"), "n_folds"] == 2
    pd.testing.assert_frame_equal(summarise(metrics, n_boot=500, seed=3), s.reset_index())


# ---------------------------------------------------------------------------------------------
# evaluation with predicted survival curves


def test_evaluate_adds_ibs_and_td_auc_from_curves(tmp_path):
    patients, _, splits, oracle, rng = _cohort(n=60, seed=5)
    times = [8.0, 15.0, 25.0]
    files = {}
    for k in splits:
        val = patients[splits[k]["role"].to_numpy() == "val"]
        base = -np.log(val["time"].to_numpy()) + rng.normal(0, 0.5, len(val))
        curve = np.exp(-np.outer(np.exp(base), times) / 20)  # (n, 3), decreasing in t
        with_curve = val.assign(risk=base, modalities="rnaseq")
        for j, t in enumerate(times):
            with_curve[f"surv_at_{t:g}"] = curve[:, j]
        files[("fused", k)] = tmp_path / "fused" / f"fold{k}.tsv"
        write_tsv(with_curve, files[("fused", k)])
        files[("linear", k)] = tmp_path / "linear" / f"fold{k}.tsv"  # risk only, no curve
        write_tsv(val.assign(risk=-base, modalities="rnaseq"), files[("linear", k)])
    train = train_outcomes_from_splits(patients, splits)
    metrics = evaluate_predictions(
        files,
        task="survival",
        train_outcomes=train,
        modalities=["rnaseq"],
        oracle=oracle,
        splits=splits,
    )
    wide = metrics.pivot_table(index=["model", "fold"], columns="metric", values="value")
    for k in splits:
        pred = read_predictions(files[("fused", k)], task="survival")
        tr = train[k]
        args = (tr["time"], tr["event"], pred["time"], pred["event"])
        surv = pred[[f"surv_at_{t:g}" for t in times]].to_numpy()
        assert wide.loc[("fused", k), "ibs"] == pytest.approx(
            M.integrated_brier(*args, surv, times)
        )
        assert wide.loc[("fused", k), "td_auc"] == pytest.approx(
            M.td_auc(*args, pred["risk"], times)
        )
        # a risk-only model gets td_auc at the fold's curve times (its risk is reversed)
        assert wide.loc[("linear", k), "td_auc"] == pytest.approx(
            M.td_auc(*args, -pred["risk"], times)
        )
        assert 0.0 < wide.loc[("fused", k), "ibs"] < 0.5
        assert np.isfinite(wide.loc[(ORACLE_MODEL, k), "td_auc"])
    assert metrics.query("model == 'linear' and metric == 'ibs'").empty
    assert metrics.query(f"model == '{ORACLE_MODEL}' and metric == 'ibs'").empty
    assert (wide.xs("fused", level="model")["td_auc"] > 0.5).all()


def test_bad_curve_column_names_file_and_patient(tmp_path):
    path = tmp_path / "fold3.tsv"
    df = pd.DataFrame(
        {
            "patient_id": ["A", "B"],
            "time": [1.0, 2.0],
            "event": [1, 0],
            "risk": [0.2, 0.1],
            "modalities": "x",
            "surv_at_1": [0.9, 1.2],
        }
    )
    write_tsv(df, path)
    with pytest.raises(ValueError, match=r"fold3\.tsv: surv_at_<t> values .* patient\(s\) \['B'\]"):
        read_predictions(path, task="survival")
    write_tsv(df.assign(surv_at_1=0.5).rename(columns={"surv_at_1": "surv_at_x"}), path)
    with pytest.raises(ValueError, match=r"fold3\.tsv: column 'surv_at_x' is not surv_at_<time>"):
        read_predictions(path, task="survival")
