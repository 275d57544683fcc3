"""Real TCGA files in the MCAT format (``../shared/data/tcga`` beside the checkout, as in CI):
the loader on them, MCAT's splits, and short real runs of the shipped configs via Snakemake."""

from __future__ import annotations

import pandas as pd
import pytest

from mmlego.bench.runner import shared_data, working_copy
from mmlego.bench.tcga import (
    BLCA,
    UCEC_SUBTYPE,
    comparison_table,
    format_table,
    inner_split_files,
    run_benchmark,
)
from mmlego.cohort.mcat import load_mcat
from mmlego.cohort.sheets import ColumnGroup
from mmlego.cohort.splits import check_folds, read_given_splits

DATA = shared_data()
pytestmark = pytest.mark.skipif(
    DATA is None, reason="TCGA data not found (../shared/data/tcga beside the checkout)"
)

# CI-sized runs: 2 of MCAT's folds, 1 epoch, few genes, a short Coxnet path.
QUICK = {
    "training": {"epochs": 1, "patience": 1, "members": 1},
    "fuse": {"epochs": 1},
    "baselines": {"n_alphas": 4, "inner_folds": 2},
    "model": {"latent_channels": 8, "latent_dim": 16},
    "experiments": {"paired_budget": [], "disjoint": False},
    "selection": {"candidates": 2},
}


def _splits(bench, k: int = 5) -> list[str]:
    return [str(DATA / bench.splits.replace("{fold}", str(i))) for i in range(k)]


def test_blca_one_row_per_patient_and_mcat_splits():
    cohort = load_mcat(
        DATA / BLCA.csv,
        modalities={
            "rnaseq": ColumnGroup(suffix="_rnaseq"),
            "cnv": ColumnGroup(suffix="_cnv"),
            "clinical": ColumnGroup(names=("age", "is_female")),
        },
    )
    assert len(cohort.patients) == 373 and cohort.patients["n_slides"].sum() == 437
    assert {k: v.shape[1] for k, v in cohort.omics.items()} == {
        "clinical": 2,
        "cnv": 248,
        "rnaseq": 2814,
    }
    assert cohort.availability().all().all() and cohort.excluded.empty
    assert 0.4 < cohort.patients["event"].mean() < 0.5
    folds = read_given_splits(_splits(BLCA), patient_ids=cohort.patients.index)
    check_folds(folds, patient_ids=cohort.patients.index, partition=True)  # MCAT's partition
    assert [int((f["role"] == "val").sum()) for f in folds] == [75, 75, 75, 74, 74]


def test_inner_folds_never_contain_outer_validation_patients(tmp_path):
    files = inner_split_files(BLCA, DATA, tmp_path, k=2, seed=0, tune_fraction=0.2)
    for i, path in enumerate(files):
        inner = pd.read_csv(path, sep="\t")
        outer = pd.read_csv(_splits(BLCA)[i])
        assert not set(inner["patient_id"]) & set(outer["val"].dropna())
        assert set(inner["patient_id"]) == set(outer["train"].dropna())
        assert abs((inner["role"] == "val").mean() - 0.2) < 0.01


@pytest.mark.slow
def test_blca_short_run_scores_every_model(tmp_path):
    work = working_copy(tmp_path / "blca")
    overrides = {
        **QUICK,
        "modalities": {"rnaseq": {"preprocess": {"variance_top_k": 64}}},
    }
    result = run_benchmark(BLCA, data=DATA, workdir=work, folds=2, overrides=overrides)
    metrics = result.metrics
    cidx = metrics[metrics["metric"] == "c_index"]
    expected = {
        "block_rnaseq",
        "block_cnv",
        "block_clinical",
        "late_fusion_mean_risk",
        "lego_merge",
        "lego_fuse",
        "coxnet",
    }
    assert expected <= set(cidx["model"]), expected - set(cidx["model"])
    assert set(cidx["fold"]) == {0, 1} and cidx["value"].between(0, 1).all()
    # the folds are MCAT's: their val patients, tune carved from their training patients
    for i in (0, 1):
        split = pd.read_csv(result.results / "splits" / f"fold{i}.tsv", sep="\t")
        mcat = pd.read_csv(_splits(BLCA)[i])
        by_role = split.groupby("role")["patient_id"].apply(set)
        assert by_role["val"] == set(mcat["val"].dropna())
        assert by_role["tune"] | by_role["train"] == set(mcat["train"].dropna())
    table = comparison_table(BLCA, result, DATA)
    assert "MCAT [published]" in set(table["model"])
    text = format_table(BLCA, table, result)
    assert "lego_fuse" in text and "0.624" in text


@pytest.mark.slow
def test_ucec_subtype_short_run_gives_auc_per_fold(tmp_path):
    work = working_copy(tmp_path / "ucec")
    overrides = {
        **QUICK,
        "modalities": {
            "mut": {"preprocess": {"variance_top_k": 64}},
            "cnv": {"preprocess": {"variance_top_k": 64}},
        },
    }
    result = run_benchmark(UCEC_SUBTYPE, data=DATA, workdir=work, folds=2, overrides=overrides)
    auc = result.metrics[result.metrics["metric"] == "auc"]
    expected = {
        "block_cnv",
        "block_mut",
        "late_fusion_mean_risk",
        "lego_merge",
        "lego_fuse",
        "logistic_enet",
    }
    assert expected <= set(auc["model"]), expected - set(auc["model"])
    assert set(auc["fold"]) == {0, 1} and auc["value"].between(0, 1).all()
    patients = pd.read_csv(result.results / "cohort" / "patients.tsv", sep="\t")
    excluded = pd.read_csv(result.results / "cohort" / "excluded.tsv", sep="\t")
    assert set(patients["label"]) == {"UEC", "USC"} and len(patients) == 458
    assert len(excluded) == 22 and excluded["reason"].str.contains("UCEC").all()
    preds = pd.read_csv(result.results / "predictions" / "lego_merge" / "fold0.tsv", sep="\t")
    assert {"prob_UEC", "prob_USC"} <= set(preds.columns)
