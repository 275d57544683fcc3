"""Real TCGA files in the MCAT format (``../shared/data/tcga`` beside the checkout, as in CI):
the loader on them, MCAT's splits, and short real runs of the shipped configs via Snakemake."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from mmlego.bench.runner import shared_data, working_copy
from mmlego.bench.tcga import (
    BLCA,
    UCEC_SUBTYPE,
    format_seed_table,
    inner_split_files,
    main,
    run_benchmark,
    run_seeds,
    seed_table,
)
from mmlego.cohort.mcat import load_mcat
from mmlego.cohort.sheets import ColumnGroup
from mmlego.cohort.splits import check_folds, read_given_splits
from mmlego.io import read_tsv

DATA = shared_data()
needs_data = pytest.mark.skipif(
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


@needs_data
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


@needs_data
def test_inner_folds_never_contain_outer_validation_patients(tmp_path):
    files = inner_split_files(BLCA, DATA, tmp_path, k=2, seed=0, tune_fraction=0.2)
    for i, path in enumerate(files):
        inner = pd.read_csv(path, sep="\t")
        outer = pd.read_csv(_splits(BLCA)[i])
        assert not set(inner["patient_id"]) & set(outer["val"].dropna())
        assert set(inner["patient_id"]) == set(outer["train"].dropna())
        assert abs((inner["role"] == "val").mean() - 0.2) < 0.01


@needs_data
@pytest.mark.slow
def test_blca_short_runs_under_two_seeds_score_every_model(tmp_path, capsys):
    quick = tmp_path / "quick.yaml"
    quick.write_text(
        yaml.safe_dump({**QUICK, "modalities": {"rnaseq": {"preprocess": {"variance_top_k": 64}}}})
    )
    work = tmp_path / "blca"
    argv = ["--data", str(DATA), "--workdir", str(work), "--folds", "2", "--seeds", "0", "1"]
    assert main(BLCA, [*argv, "--configfile", str(quick)]) == 0
    expected = {
        "block_rnaseq",
        "block_cnv",
        "block_clinical",
        "late_fusion_mean_risk",
        "lego_merge",
        "lego_fuse",
        "coxnet",
    }
    results = {seed: work / f"seed{seed}" / "results" / "tcga_blca" for seed in (0, 1)}
    for seed, results_dir in results.items():
        metrics = read_tsv(results_dir / "metrics.tsv")
        cidx = metrics[metrics["metric"] == "c_index"]
        assert expected <= set(cidx["model"]), expected - set(cidx["model"])
        assert set(cidx["fold"]) == {0, 1} and cidx["value"].between(0, 1).all()
        assert yaml.safe_load((work / f"seed{seed}" / "overrides.yaml").read_text())["seed"] == seed
    # the folds are MCAT's: their val patients, tune carved from their training patients; the
    # master seed draws the tune patients, not the validation folds
    for i in (0, 1):
        mcat = pd.read_csv(_splits(BLCA)[i])
        roles = {}
        for seed, results_dir in results.items():
            split = read_tsv(results_dir / "splits" / f"fold{i}.tsv")
            roles[seed] = split.groupby("role")["patient_id"].apply(set)
            assert roles[seed]["val"] == set(mcat["val"].dropna())
            assert roles[seed]["tune"] | roles[seed]["train"] == set(mcat["train"].dropna())
        assert roles[0]["tune"] != roles[1]["tune"]
    # each seed's comparison beside MCAT's published figures, then the figures over the seeds
    out = capsys.readouterr().out
    assert "MCAT [published]" in out and "0.624" in out
    assert "under 2 master seeds" in out and "lego_fuse: " in out
    table = read_tsv(work / "seeds.tsv").set_index("model")
    for seed in (0, 1):
        compared = read_tsv(work / f"seed{seed}" / "comparison.tsv").set_index("model")
        assert table[f"seed {seed}"].to_dict() == pytest.approx(
            compared.loc[table.index, "mean"].to_dict()
        )
    lego_fuse = table.loc["lego_fuse"]
    assert lego_fuse["mean"] == pytest.approx((lego_fuse["seed 0"] + lego_fuse["seed 1"]) / 2)
    assert "MCAT [published]" not in table.index


@needs_data
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


def _comparison(means: dict[str, float], targets: dict[str, float]) -> pd.DataFrame:
    """A comparison table as one run gives it: measured rows, then a published one."""
    rows = [
        {"model": m, "mean": v, "sd": 0.01, "n": 5, "source": "this run", "target": targets.get(m)}
        for m, v in means.items()
    ]
    rows.append(
        {"model": "MCAT [published]", "mean": 0.624, "sd": 0.034, "n": None, "source": "MCAT"}
    )
    return pd.DataFrame(rows)


def test_seed_table_summarises_each_model_over_the_seeds():
    targets = {"lego_fuse": 0.65}
    tables = {
        0: _comparison({"lego_fuse": 0.62, "coxnet": 0.61, "block_cnv": 0.55}, targets),
        1: _comparison({"lego_fuse": 0.60, "coxnet": 0.59}, targets),
        3: _comparison({"lego_fuse": 0.61, "coxnet": 0.62, "block_cnv": 0.47}, targets),
    }
    table = seed_table(tables)
    assert list(table["model"]) == ["lego_fuse", "coxnet", "block_cnv"]  # best mean first
    assert list(table.columns[1:4]) == ["seed 0", "seed 1", "seed 3"]
    row = table.set_index("model").loc["lego_fuse"]
    assert row["mean"] == pytest.approx(0.61) and row["sd"] == pytest.approx(0.01)
    assert (row["min"], row["max"], row["target"]) == (0.60, 0.62, 0.65)
    cnv = table.set_index("model").loc["block_cnv"]  # missing under seed 1
    assert pd.isna(cnv["seed 1"]) and cnv["mean"] == pytest.approx(0.51)
    assert pd.isna(cnv["target"])
    text = format_seed_table(BLCA, table)
    assert "under 3 master seeds" in text
    assert "lego_fuse: 0.610 over the seeds; above coxnet under 2 of 3 seeds" in text
    assert "target 0.65 reached under 0" in text


def test_run_seeds_refuses_repeated_or_no_seeds(tmp_path):
    for seeds in ([], [0, 0]):
        with pytest.raises(ValueError, match="distinct seeds"):
            run_seeds(BLCA, seeds, workdir=tmp_path, data=tmp_path)
