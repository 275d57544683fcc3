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
    complete_patients,
    evaluate_predictions,
    find_prediction_files,
    read_predictions,
    summarise,
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
