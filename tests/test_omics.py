"""Fold-safe omics preprocessing: statistics from training patients only, save/load."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mmlego.cohort import make_folds
from mmlego.demo.cohort import DemoConfig, write_tables
from mmlego.io import read_tsv
from mmlego.omics.preprocess import (
    OmicsParams,
    fit_transform_fold,
    load_omics_fold,
    outcome_association,
    read_signatures,
    task_outcomes,
)
from mmlego.pipeline.models import OUTCOME_COLUMNS

FITTED = ("feature_names", "input_features", "impute_values", "selected", "mean", "std")


def _table(n: int = 60, p: int = 30, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    X = np.exp(rng.normal(2.0, 1.0, size=(n, p))) * rng.uniform(0.2, 3.0, size=p)  # (n, p)
    return pd.DataFrame(
        X,
        index=pd.Index([f"P{i:03d}" for i in range(n)], name="patient_id"),
        columns=[f"G{j:02d}" for j in range(p)],
    )


def test_changing_val_patients_leaves_train_transform_unchanged():
    table = _table()
    train = list(table.index[:40])
    val = table.index[40:]
    params = OmicsParams(log1p=True, variance_top_k=10, zscore=True, clip=3.0)
    a = fit_transform_fold(table, train, params, name="rnaseq")
    changed = table.copy()
    rng = np.random.default_rng(1)
    # Val patients get wildly different values (and some missing ones): high variance in
    # features that are flat for train, extreme values, NaNs.
    changed.loc[val] = rng.exponential(1e4, size=(len(val), table.shape[1]))
    changed.loc[val[:5], "G03"] = np.nan
    b = fit_transform_fold(changed, train, params, name="rnaseq")
    for attr in FITTED:
        np.testing.assert_array_equal(getattr(a, attr), getattr(b, attr), err_msg=attr)
    is_train = np.isin(a.patient_ids, train)
    np.testing.assert_array_equal(a.X[is_train], b.X[is_train])
    assert not np.array_equal(a.X[~is_train], b.X[~is_train])  # the change did reach val rows
    # The fitted transform re-applied to the changed table gives the same as refitting.
    np.testing.assert_array_equal(a.transform(changed), b.X)


def test_statistics_come_from_train_patients():
    table = _table(p=6)
    train = list(table.index[::2])
    fold = fit_transform_fold(table, train, OmicsParams(clip=None))
    is_train = np.isin(fold.patient_ids, train)
    np.testing.assert_allclose(fold.X[is_train].mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(fold.X[is_train].std(axis=0), 1, atol=1e-5)
    np.testing.assert_allclose(fold.mean, table.loc[train].mean().to_numpy())
    assert not np.allclose(fold.X[~is_train].mean(axis=0), 0, atol=1e-3)
    assert fold.X.dtype == np.float32 and fold.X.shape == (60, 6)
    assert list(fold.patient_ids) == list(table.index)
    assert sorted(fold.train_ids) == sorted(train)


def test_variance_selection_uses_train_variance_and_drops_constants():
    table = _table(p=8)
    train = table.index[:40]
    table.loc[train, "G00"] = 5.0  # constant over train, varies in val
    table.loc[table.index[40:], "G00"] = np.linspace(0, 1e6, 20)
    table["G01"] *= 1000.0  # highest variance over train
    fold = fit_transform_fold(table, train, OmicsParams(variance_top_k=3))
    train_var = table.loc[train].var(ddof=0).drop("G00")
    assert list(fold.feature_names) == sorted(train_var.nlargest(3).index)
    assert "G01" in fold.feature_names and "G00" not in fold.feature_names
    everything = fit_transform_fold(table, train, OmicsParams())
    assert list(everything.feature_names) == [f"G{j:02d}" for j in range(1, 8)]


def test_imputation_with_train_median():
    table = _table(p=4)
    train = list(table.index[:40])
    table.loc["P050", "G02"] = np.nan  # a val patient
    table.loc["P001", "G02"] = np.nan  # a train patient
    fold = fit_transform_fold(table, train, OmicsParams(clip=None))
    median = np.nanmedian(table.loc[train, "G02"])
    assert fold.impute_values[2] == pytest.approx(median)
    frame = fold.frame()
    expected = (median - fold.mean[2]) / fold.std[2]
    assert frame.loc["P050", "G02"] == pytest.approx(expected, rel=1e-5)
    assert frame.loc["P001", "G02"] == pytest.approx(expected, rel=1e-5)
    assert np.isfinite(fold.X).all()


def test_clip_and_no_zscore():
    table = _table(p=3)
    table.loc["P059", "G00"] = 1e9
    fold = fit_transform_fold(table, table.index[:40], OmicsParams(clip=2.5))
    assert fold.X.max() == pytest.approx(2.5) and fold.X.min() >= -2.5
    raw = fit_transform_fold(table, table.index[:40], OmicsParams(zscore=False, clip=None))
    np.testing.assert_allclose(raw.X, table.to_numpy(np.float32), rtol=1e-6)


def test_errors_are_clear():
    table = _table(p=3)
    with pytest.raises(ValueError, match=r"'cnv'.*only 0 of this fold's 2 training"):
        fit_transform_fold(table, ["X1", "X2"], OmicsParams(), name="cnv")
    flat = table.copy()
    flat[:] = 1.0
    with pytest.raises(ValueError, match=r"all 3 feature\(s\) are constant"):
        fit_transform_fold(flat, table.index[:10], OmicsParams(), name="cnv")
    neg = table.copy()
    neg.loc["P007", "G01"] = -2.0
    with pytest.raises(ValueError, match=r"log1p.*'G01'.*'P007'"):
        fit_transform_fold(neg, table.index[:10], OmicsParams(log1p=True), name="rnaseq")
    # a small negative value (log1p would not fail on it) means the table is not counts either
    neg.loc["P007", "G01"] = -0.3
    with pytest.raises(ValueError, match=r"log1p is for counts.*'G01' is -0.3.*'P007'"):
        fit_transform_fold(neg, table.index[:10], OmicsParams(log1p=True), name="rnaseq")
    with pytest.raises(ValueError, match="unknown key"):
        OmicsParams.from_config({"log1p": True, "topk": 3})
    with pytest.raises(ValueError, match="variance_top_k"):
        OmicsParams(variance_top_k=0)


def test_save_and_load_roundtrip(tmp_path):
    table = _table()
    table.loc["P045", "G04"] = np.nan
    fold = fit_transform_fold(
        table, table.index[:40], OmicsParams.from_config({"log1p": True, "variance_top_k": 12})
    )
    path = tmp_path / "rnaseq" / "fold0.npz"
    fold.save(path)
    assert [p.name for p in path.parent.iterdir()] == ["fold0.npz"]  # no temporary left over
    with np.load(path, allow_pickle=False) as z:
        assert z["X"].dtype == np.float32 and z["X"].shape == (60, 12)
        assert z["patient_ids"].dtype.kind == "U"
    back = load_omics_fold(path)
    assert back.params == fold.params and back.name == fold.name
    for attr in (*FITTED, "X", "patient_ids", "train_ids"):
        np.testing.assert_array_equal(getattr(back, attr), getattr(fold, attr), err_msg=attr)
    np.testing.assert_array_equal(back.transform(table), fold.X)


def test_demo_cohort_folds(tmp_path):
    write_tables(tmp_path, DemoConfig(n_patients=60, seed=2))
    patients = read_tsv(tmp_path / "patients.tsv")
    rna = read_tsv(tmp_path / "omics" / "rnaseq.tsv").set_index("patient_id")
    folds = make_folds(patients, k=3, seed=0)
    params = OmicsParams(log1p=True, variance_top_k=100)
    for fold in folds:
        train = fold.loc[fold["role"] == "train", "patient_id"]
        out = fit_transform_fold(rna, train, params, name="rnaseq")
        assert out.X.shape == (len(rna), 100)
        assert set(out.train_ids) == set(train) & set(rna.index)
        assert np.abs(out.X).max() <= 5.0


# ------------------------------------------------------------------ gene-family signatures

FAMILIES = {"Oncogenes": ("G00", "G01", "G02", "G03"), "Kinases": ("G04", "G05", "G06", "XX")}


def _suffixed(table: pd.DataFrame) -> pd.DataFrame:
    return table.rename(columns=lambda c: f"{c}_rnaseq")


def test_signature_scores_are_fitted_on_train_patients_only():
    table = _suffixed(_table(p=12))
    train = list(table.index[:40])
    val = table.index[40:]
    params = OmicsParams(log1p=True, variance_top_k=5, signatures="append", clip=None)
    a = fit_transform_fold(table, train, params, name="rnaseq", signatures=FAMILIES)
    assert list(a.feature_names[-2:]) == ["signature:Oncogenes", "signature:Kinases"]
    assert a.X.shape == (60, 5 + 2)
    # the score is the mean of the members' training z-scores (every member, not only the
    # top-k ones), itself z-scored on the training patients
    logged = np.log1p(table)
    z = (logged - logged.loc[train].mean()) / logged.loc[train].std(ddof=0)
    raw = z[[f"{g}_rnaseq" for g in FAMILIES["Oncogenes"]]].mean(axis=1)
    expected = (raw - raw.loc[train].mean()) / raw.loc[train].std(ddof=0)
    np.testing.assert_allclose(a.frame()["signature:Oncogenes"], expected, rtol=1e-4, atol=1e-5)
    # changing the validation patients' values changes nothing that was fitted
    changed = table.copy()
    changed.loc[val] = np.random.default_rng(5).exponential(1e3, size=(len(val), 12))
    b = fit_transform_fold(changed, train, params, name="rnaseq", signatures=FAMILIES)
    for attr in (*FITTED, "sig_names", "sig_center", "sig_scale", "sig_weights", "sig_mean"):
        np.testing.assert_array_equal(getattr(a, attr), getattr(b, attr), err_msg=attr)
    is_train = np.isin(a.patient_ids, train)
    np.testing.assert_array_equal(a.X[is_train], b.X[is_train])
    np.testing.assert_array_equal(a.transform(changed), b.X)


def test_signatures_only_roundtrip_and_errors(tmp_path):
    table = _suffixed(_table(p=8))
    params = OmicsParams(signatures="only", signature_min_genes=4)
    fold = fit_transform_fold(table, table.index[:40], params, name="rna", signatures=FAMILIES)
    assert list(fold.feature_names) == ["signature:Oncogenes"]  # Kinases: 3 genes < 4
    path = tmp_path / "fold0.npz"
    fold.save(path)
    back = load_omics_fold(path)
    np.testing.assert_array_equal(back.sig_weights, fold.sig_weights)
    np.testing.assert_array_equal(back.transform(table), fold.X)
    with pytest.raises(ValueError, match="needs gene families"):
        fit_transform_fold(table, table.index[:40], params, name="rna")
    with pytest.raises(ValueError, match="no gene family has 4 or more"):
        fit_transform_fold(table, table.index[:40], params, signatures={"A": ("G00", "ZZ")})
    with pytest.raises(ValueError, match=r"preprocess\.signatures: .sum. is not one of"):
        OmicsParams(signatures="sum")


def test_read_signatures(tmp_path):
    path = tmp_path / "signatures.csv"
    path.write_text("Oncogenes,Kinases\nG00,G04\nG01,G05\n,G04\n")
    assert read_signatures(path) == {"Oncogenes": ("G00", "G01"), "Kinases": ("G04", "G05")}


# ------------------------------------------------------------------ outcome-based selection


def _cox_score_z(x: np.ndarray, time: np.ndarray, event: np.ndarray) -> float:
    """Brute-force univariate Cox score test |U| / sqrt(I) at beta = 0 (Breslow)."""
    U = info = 0.0
    for i in np.flatnonzero(event):
        risk = x[time >= time[i]]
        U += x[i] - risk.mean()
        info += risk.var()
    return abs(U) / np.sqrt(info)


def test_outcome_selection_uses_training_outcomes_only():
    table = _table(n=80, p=20, seed=3)
    rng = np.random.default_rng(4)
    signal = np.log(table["G07"].to_numpy())
    time = np.round(rng.exponential(np.exp(-1.5 * (signal - signal.mean())) * 20), 0) + 1
    event = (rng.uniform(size=80) < 0.7).astype(int)
    outcomes = pd.DataFrame({"time": time, "event": event}, index=table.index)
    train = list(table.index[:50])
    score = outcome_association(np.log1p(table.loc[train].to_numpy()), outcomes.loc[train])
    brute = [
        _cox_score_z(np.log1p(table.loc[train, c].to_numpy()), time[:50], event[:50])
        for c in table.columns
    ]
    np.testing.assert_allclose(score, brute, rtol=1e-8)  # ties in time included
    params = OmicsParams(log1p=True, outcome_top_k=3)
    a = fit_transform_fold(table, train, params, outcomes=outcomes)
    assert "G07" in a.feature_names and len(a.feature_names) == 3
    flipped = outcomes.copy()
    flipped.loc[table.index[50:], "time"] = flipped["time"].max() + 1 - time[50:]  # val only
    b = fit_transform_fold(table, train, params, outcomes=flipped)
    np.testing.assert_array_equal(a.selected, b.selected)
    np.testing.assert_array_equal(a.X, b.X)
    labels = pd.DataFrame({"label": np.where(signal > np.median(signal), "hi", "lo")},
                          index=table.index)  # fmt: skip
    c = fit_transform_fold(table, train, OmicsParams(outcome_top_k=1), outcomes=labels)
    assert list(c.feature_names) == ["G07"]
    with pytest.raises(ValueError, match="outcome_top_k needs"):
        fit_transform_fold(table, train, params)


def test_outcome_top_k_of_a_classification_cohort_with_survival_columns():
    """Patients with a class and a survival time (an MCAT cohort's subtype): with the
    classification task the features are chosen by their class, not by survival."""
    table = _table(n=60, p=6, seed=3)
    rng = np.random.default_rng(5)
    by_class = table.columns[1]
    by_time = table.columns[4]
    label = np.where(table[by_class] > table[by_class].median(), "x", "y")
    time = np.exp(-table[by_time].to_numpy()) * 20 + rng.uniform(0, 0.1, 60)
    patients = pd.DataFrame(
        {"patient_id": table.index, "time": time, "event": 1, "label": label, "age": 50}
    )
    train = list(table.index[:40])
    params = OmicsParams(outcome_top_k=1)
    chosen = {}
    for task in ("classification", "survival"):
        outcomes = task_outcomes(patients, task)
        assert list(outcomes.columns) == ["patient_id", *OUTCOME_COLUMNS[task]]
        fold = fit_transform_fold(table, train, params, outcomes=outcomes.set_index("patient_id"))
        chosen[task] = list(fold.feature_names)
    assert chosen == {"classification": [by_class], "survival": [by_time]}
    with pytest.raises(ValueError, match="task must be one of"):
        task_outcomes(patients, "regression")
