"""MCAT/PORPOISE-format cohorts (small synthetic CSVs written here), given split files, the
linear baselines and the configuration checks of a user cohort."""

from __future__ import annotations

import gzip
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mmlego.cohort import CohortError, SplitError
from mmlego.cohort.mcat import load_mcat, mcat_slide_sheet
from mmlego.cohort.sheets import ColumnGroup, load_cohort_folder, write_cohort_folder
from mmlego.cohort.splits import add_tune, make_folds, read_given_splits, strata
from mmlego.config import (
    ConfigError,
    check_config,
    drop_null_modalities,
    missing_slides,
    slide_sheet,
    split_files,
)
from mmlego.omics.preprocess import OmicsParams, fit_transform_fold
from mmlego.training.baselines import BaselineParams, fit_coxnet, linear_baseline_fold

GROUPS = {
    "rnaseq": ColumnGroup(suffix="_rnaseq"),
    "cnv": ColumnGroup(suffix="_cnv"),
    "clinical": ColumnGroup(names=("age", "is_female")),
}


def mcat_frame(n_cases: int = 12, *, seed: int = 0) -> pd.DataFrame:
    """An MCAT-format table: one row per slide; every third case has two slides."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_cases):
        case = f"TCGA-XX-{i:04d}"
        patient = {
            "case_id": case,
            "site": f"S{i % 3}",
            "is_female": i % 2,
            "oncotree_code": ["UEC", "USC", "UCEC"][i % 3],
            "age": 50 + i,
            "survival_months": round(float(rng.uniform(1, 100)), 2),
            "censorship": int(i % 4 == 0),
            "train": 1.0,
            "TP53_rnaseq": float(rng.normal()),
            "EGFR_rnaseq": float(rng.normal()),
            "TP53_cnv": int(rng.integers(-2, 3)),
            "MYC_cnv": int(rng.integers(-2, 3)),
            "KRAS": int(rng.integers(0, 2)),  # a mutation column without suffix
            "PTEN": int(rng.integers(0, 2)),
        }
        for s in range(2 if i % 3 == 0 else 1):
            rows.append({"slide_id": f"{case}-01Z-00-DX{s + 1}.ABC.svs", **patient})
    df = pd.DataFrame(rows)
    first = ["case_id", "slide_id", "site", "is_female", "oncotree_code", "age"]
    return df[first + [c for c in df.columns if c not in first]]


def write_csv(df: pd.DataFrame, path: Path) -> Path:
    df.to_csv(path)  # with MCAT's unnamed index column
    return path


@pytest.fixture
def csv(tmp_path) -> Path:
    return write_csv(mcat_frame(), tmp_path / "tcga_xx_all_clean.csv.gz")


def test_valid_csv_gives_one_row_per_patient(csv, tmp_path):
    cohort = load_mcat(csv, modalities=GROUPS)
    raw = mcat_frame()
    assert len(cohort.patients) == 12 and cohort.patients.index.is_unique
    assert cohort.patients.loc["TCGA-XX-0000", "n_slides"] == 2
    first = raw.drop_duplicates("case_id").set_index("case_id")
    np.testing.assert_allclose(cohort.patients["time"], first["survival_months"])
    np.testing.assert_array_equal(cohort.patients["event"], 1 - first["censorship"])
    assert list(cohort.omics["rnaseq"].columns) == ["TP53_rnaseq", "EGFR_rnaseq"]
    assert list(cohort.omics["cnv"].columns) == ["TP53_cnv", "MYC_cnv"]
    assert list(cohort.omics["clinical"].columns) == ["age", "is_female"]
    assert cohort.excluded.empty and cohort.slides is None
    # written in the standard layout, it loads back as the same cohort
    write_cohort_folder(cohort, tmp_path / "cohort")
    back = load_cohort_folder(tmp_path / "cohort", task="survival")
    pd.testing.assert_frame_equal(back.omics["cnv"], cohort.omics["cnv"])
    assert list(back.patients.index) == list(cohort.patients.index)


def test_unsuffixed_group_takes_suffix_free_features_but_not_metadata(csv):
    cohort = load_mcat(csv, modalities={"mut": ColumnGroup(unsuffixed=True)})
    assert list(cohort.omics["mut"].columns) == ["KRAS", "PTEN"]  # not 'train', 'age', ...


def _with(edit) -> pd.DataFrame:
    df = mcat_frame()
    edit(df)
    return df


BAD = {
    "conflicting_outcome": (
        lambda df: df.__setitem__(
            "survival_months", df["survival_months"].where(df.index != 1, 7.0)
        ),
        ["conflicting outcomes", "'survival_months'", "TCGA-XX-0000"],
    ),
    "conflicting_omics": (
        lambda df: df.__setitem__("MYC_cnv", df["MYC_cnv"].where(df.index != 1, 9)),
        ["conflicting omics values", "'MYC_cnv'", "TCGA-XX-0000"],
    ),
    "censorship_2": (
        lambda df: df.__setitem__("censorship", df["censorship"].where(df.index != 2, 2)),
        ["'censorship'", "0 (death observed) or 1 (censored)", "TCGA-XX-0001=2"],
    ),
    "negative_time": (
        lambda df: df.__setitem__(
            "survival_months", df["survival_months"].where(df.index != 3, -4.0)
        ),
        ["'survival_months'", "TCGA-XX-0002=-4.0"],
    ),
    "missing_time": (
        lambda df: df.__setitem__(
            "survival_months", df["survival_months"].where(df.index != 3, np.nan)
        ),
        ["'survival_months'", "TCGA-XX-0002=missing"],
    ),
    "text_feature": (
        lambda df: df.__setitem__(
            "EGFR_rnaseq", df["EGFR_rnaseq"].astype(object).where(df.index != 4, "high")
        ),
        ["'EGFR_rnaseq'", "non-numeric", "'high'", "TCGA-XX-0003"],
    ),
    "unsafe_case_id": (
        lambda df: df.__setitem__("case_id", df["case_id"].where(df.index != 4, "TCGA XX/3")),
        ["'case_id'", "TCGA XX/3"],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_csv_is_named(tmp_path, case):
    edit, expected = BAD[case]
    path = write_csv(_with(edit), tmp_path / "bad.csv")
    with pytest.raises(CohortError) as err:
        load_mcat(path, modalities=GROUPS)
    message = str(err.value)
    assert str(path) in message
    for part in expected:
        assert part in message, message


def test_bad_survival_values_are_reported_together_once_per_patient(tmp_path):
    """Both columns in one error; a patient with two slides (cases 0, 3, 6) is named once."""
    df = mcat_frame()
    case = df["case_id"]
    df.loc[case == "TCGA-XX-0000", "survival_months"] = np.nan
    df.loc[case == "TCGA-XX-0003", "survival_months"] = -1.5
    df.loc[case == "TCGA-XX-0001", "censorship"] = np.nan
    df.loc[case == "TCGA-XX-0006", "censorship"] = 2
    path = write_csv(df, tmp_path / "bad.csv")
    with pytest.raises(CohortError) as err:
        load_mcat(path, modalities=GROUPS)
    assert str(err.value) == (
        f"{path}: bad survival values for 4 patient(s) (case_id): column 'survival_months' must "
        "be a number > 0, not so for 2 patient(s): 'TCGA-XX-0000=missing', "
        "'TCGA-XX-0003=-1.5'; column 'censorship' must be 0 (death observed) or 1 (censored), "
        "not so for 2 patient(s): 'TCGA-XX-0001=missing', 'TCGA-XX-0006=2.0'"
    )
    df["survival_months"] = 0.0
    df["censorship"] = "yes"
    path = write_csv(df, tmp_path / "bad.csv")
    with pytest.raises(CohortError) as err:
        load_mcat(path, modalities=GROUPS)
    assert str(err.value) == (
        f"{path}: bad survival values for 12 patient(s) (case_id): column 'survival_months' must "
        "be a number > 0, not so for 12 patient(s): "
        + ", ".join(f"'TCGA-XX-000{i}=0.0'" for i in range(5))
        + ", ... (12 in all); column 'censorship' must be 0 (death observed) or 1 (censored), "
        "not so for 12 patient(s): "
        + ", ".join(f"'TCGA-XX-000{i}=yes'" for i in range(5))
        + ", ... (12 in all)"
    )


def test_missing_columns_and_bad_groups(tmp_path, csv):
    path = write_csv(mcat_frame().drop(columns="censorship"), tmp_path / "x.csv")
    with pytest.raises(CohortError, match=r"\['censorship'\].*survival outcome"):
        load_mcat(path, modalities=GROUPS)
    with pytest.raises(CohortError, match=r"modality 'mut'.*'_mut'.*none"):
        load_mcat(csv, modalities={"mut": ColumnGroup(suffix="_mut")})
    with pytest.raises(CohortError, match=r"'TP53_cnv' is chosen by two modalities"):
        load_mcat(csv, modalities={"a": GROUPS["cnv"], "b": ColumnGroup(names=("TP53_cnv",))})
    with pytest.raises(CohortError, match=r"modality 'c'.*\['smoker'\] not found"):
        load_mcat(csv, modalities={"c": ColumnGroup(names=("age", "smoker"))})
    with pytest.raises(ValueError, match="exactly one"):
        ColumnGroup(suffix="_cnv", unsuffixed=True)
    with pytest.raises(CohortError, match="does not exist"):
        load_mcat(tmp_path / "absent.csv", modalities=GROUPS)


def test_missing_feature_values_need_permission_and_empty_groups_mean_absent(tmp_path):
    df = mcat_frame()
    df.loc[df["case_id"] == "TCGA-XX-0004", "age"] = np.nan
    df.loc[df["case_id"] == "TCGA-XX-0005", ["TP53_rnaseq", "EGFR_rnaseq"]] = np.nan
    path = write_csv(df, tmp_path / "gaps.csv")
    with pytest.raises(CohortError, match=r"missing.*'age'.*TCGA-XX-0004.*allow_missing"):
        load_mcat(path, modalities=GROUPS)
    cohort = load_mcat(path, modalities=GROUPS, allow_missing_features=["clinical"])
    assert np.isnan(cohort.omics["clinical"].loc["TCGA-XX-0004", "age"])
    avail = cohort.availability()
    assert not avail.loc["TCGA-XX-0005", "rnaseq"] and avail.loc["TCGA-XX-0005", "cnv"]
    assert avail["rnaseq"].sum() == 11


def test_classes_are_kept_and_the_rest_excluded_with_reasons(csv):
    groups = {"mut": ColumnGroup(unsuffixed=True)}
    cohort = load_mcat(
        csv,
        modalities=groups,
        task="classification",
        label_column="oncotree_code",
        classes=["UEC", "USC"],
    )
    assert set(cohort.patients["label"]) == {"UEC", "USC"} and len(cohort.patients) == 8
    assert len(cohort.excluded) == 4
    assert cohort.excluded["reason"].str.contains("'UCEC' not in classes").all()
    assert set(cohort.omics["mut"].index) == set(cohort.patients.index)
    with pytest.raises(CohortError, match=r"class\(es\) \['LUAD'\] requested"):
        load_mcat(csv, modalities=groups, task="classification", label_column="oncotree_code",
                  classes=["UEC", "LUAD"])  # fmt: skip
    with pytest.raises(CohortError, match="label_column"):
        load_mcat(csv, modalities=groups, task="classification")


def test_class_label_that_looks_like_a_number_stays_as_written(tmp_path):
    """A grade column 01 / 02 / 03 with an empty cell (read as numbers: 1.0, 2.0): the classes
    are found as written, for the cohort and for the slide sheet."""
    df = mcat_frame()
    cases = list(dict.fromkeys(df["case_id"]))
    grade = {c: ["01", "02", "03"][i % 3] for i, c in enumerate(cases)}
    grade[cases[0]] = ""
    df["grade"] = df["case_id"].map(grade)
    path = write_csv(df, tmp_path / "grade.csv")
    kw = {"label_column": "grade", "classes": ["01", "02"]}
    groups = {"mut": ColumnGroup(unsuffixed=True)}
    cohort = load_mcat(path, modalities=groups, task="classification", **kw)
    assert sorted(set(cohort.patients["label"])) == ["01", "02"]
    assert len(cohort.patients) == sum(v in ("01", "02") for v in grade.values())
    sheet = mcat_slide_sheet(path, slide_dir=tmp_path, missing_slides="keep", **kw)
    assert set(sheet["patient_id"]) == set(cohort.patients.index)


def test_slides_joined_by_case_id(csv, tmp_path):
    raw = mcat_frame()
    slide_dir = tmp_path / "slides"
    slide_dir.mkdir()
    for name in raw["slide_id"].iloc[:-1]:
        (slide_dir / name).write_bytes(b"")
    with pytest.raises(CohortError, match=r"1 of 16 slide\(s\) are not in.*missing_slides"):
        load_mcat(csv, modalities=GROUPS, slide_dir=slide_dir)
    cohort = load_mcat(csv, modalities=GROUPS, slide_dir=slide_dir, missing_slides="drop")
    assert len(cohort.slides) == 15
    assert cohort.slides["slide_id"].iloc[0] == "TCGA-XX-0000-01Z-00-DX1.ABC"  # extension gone
    assert cohort.slides["path"].iloc[0] == str(slide_dir.resolve() / raw["slide_id"].iloc[0])
    assert len(cohort.slides_of("TCGA-XX-0000")) == 2
    sheet = mcat_slide_sheet(csv, slide_dir=slide_dir, missing_slides="drop")
    pd.testing.assert_frame_equal(sheet, cohort.slides)
    # features imported (wsi.features_from): every slide is kept, the files are not looked for
    kept = mcat_slide_sheet(csv, slide_dir=tmp_path / "nowhere", missing_slides="keep")
    assert len(kept) == 16 and kept["slide_id"].iloc[0] == "TCGA-XX-0000-01Z-00-DX1.ABC"


def test_features_from_replaces_the_slide_folder(tmp_path, csv):
    cfg = _user_config(tmp_path, csv)
    cfg["modalities"]["wsi"] = {"type": "slides", "encoder": {"kind": "abmil"}}
    with pytest.raises(ConfigError, match=r"inputs\.slide_dir: required .* wsi\.features_from"):
        check_config(cfg)
    cfg["wsi"] = {"features_from": str(tmp_path / "missing")}
    with pytest.raises(ConfigError, match=r"wsi\.features_from: folder .*missing.* not exist"):
        check_config(cfg)
    (tmp_path / "feats").mkdir()
    cfg["wsi"] = {"features_from": str(tmp_path / "feats")}
    check_config(cfg)
    assert missing_slides(cfg) == "keep"
    assert len(slide_sheet(cfg, results=str(tmp_path / "results"))) == 16


# ------------------------------------------------------------------------------ splits


def _mcat_split(tmp_path: Path, name: str, train: list[str], val: list[str]) -> Path:
    n = max(len(train), len(val))
    df = pd.DataFrame(
        {"train": train + [None] * (n - len(train)), "val": val + [None] * (n - len(val))}
    )
    path = tmp_path / name
    df.to_csv(path)
    return path


def test_given_mcat_splits_and_tune_from_training_patients_only(tmp_path):
    cohort = load_mcat(write_csv(mcat_frame(40), tmp_path / "c.csv"), modalities=GROUPS)
    ids = list(cohort.patients.index)
    paths = [
        _mcat_split(tmp_path, f"splits_{k}.csv", ids[:k * 20] + ids[k * 20 + 20:],
                    ids[k * 20: k * 20 + 20])
        for k in range(2)
    ]  # fmt: skip
    folds = read_given_splits(paths, patient_ids=ids)
    assert [sorted(f.loc[f["role"] == "val", "patient_id"]) for f in folds] == [
        sorted(ids[:20]),
        sorted(ids[20:]),
    ]
    tuned = add_tune(folds[0], cohort.patients, fraction=0.25, seed=3, index=0)
    assert (tuned["role"] == "tune").sum() == 5  # 0.25 of 20 training patients
    val_before = set(folds[0].loc[folds[0]["role"] == "val", "patient_id"])
    assert set(tuned.loc[tuned["role"] == "val", "patient_id"]) == val_before
    tune = set(tuned.loc[tuned["role"] == "tune", "patient_id"])
    assert tune <= set(folds[0].loc[folds[0]["role"] == "train", "patient_id"])
    again = add_tune(folds[0], cohort.patients, fraction=0.25, seed=3, index=0)
    pd.testing.assert_frame_equal(tuned, again)  # deterministic


def test_given_split_errors_name_file_ids_and_counts(tmp_path):
    ids = [f"P{i}" for i in range(10)]
    bad = _mcat_split(tmp_path, "s0.csv", [*ids[:6], "Q1", "Q2"], ids[6:])
    with pytest.raises(SplitError, match=r"s0\.csv: 2 id\(s\) are not patients.*'Q1', 'Q2'"):
        read_given_splits([bad], patient_ids=ids)
    both = _mcat_split(tmp_path, "s1.csv", ids[:7], ids[6:])
    with pytest.raises(SplitError, match=r"1 id\(s\) are in both 'train' and 'val'.*'P6'"):
        read_given_splits([both], patient_ids=ids)
    # excluded patients (a class left out) are dropped, not an error
    folds = read_given_splits([bad], patient_ids=ids, excluded=["Q1", "Q2"])
    assert set(folds[0]["patient_id"]) == set(ids)
    other = tmp_path / "s2.csv"
    pd.DataFrame({"case": ids}).to_csv(other, index=False)
    with pytest.raises(SplitError, match="needs columns 'train' and 'val'"):
        read_given_splits([other], patient_ids=ids)
    # a file that is not a text table: empty, compressed, malformed
    unreadable = {
        "empty.csv": b"",
        "packed.csv": gzip.compress(b"train,val\nP0,P1\n"),
        "quote.csv": b'train,val\n"P0,P1\n',
    }
    for name, data in unreadable.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(SplitError, match=rf"{re.escape(name)}: cannot read the split file"):
            read_given_splits([tmp_path / name], patient_ids=ids)


def test_folds_stratified_by_site_on_request():
    rng = np.random.default_rng(0)
    n = 90
    patients = pd.DataFrame(
        {
            "time": rng.exponential(30, n) + 0.1,
            "event": rng.integers(0, 2, n),
            "site": np.repeat(["A", "B", "C"], [60, 20, 10]),
        },
        index=pd.Index([f"P{i:02d}" for i in range(n)], name="patient_id"),
    )
    assert strata(patients, site=True).str.startswith("sA_").sum() == 60
    folds = make_folds(patients, k=5, seed=0, site=True)
    for fold in folds:
        val = patients.loc[fold.loc[fold["role"] == "val", "patient_id"]]
        counts = val["site"].value_counts()
        assert abs(counts["A"] - 12) <= 2 and abs(counts["B"] - 4) <= 1 and counts["C"] == 2


# ------------------------------------------------------------------------------ baselines


def _survival_data(n: int, p: int, seed: int):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p))  # (n, p)
    risk = X[:, 0] - X[:, 1]
    time = rng.exponential(np.exp(-risk) * 20) + 0.1
    cens = rng.exponential(40, n)
    return X, np.minimum(time, cens), (time <= cens).astype(int)


def test_coxnet_finds_the_signal_and_chooses_its_penalty_on_training_data():
    from sksurv.metrics import concordance_index_censored

    X, t, e = _survival_data(260, 30, seed=0)
    params = BaselineParams(n_alphas=10, inner_folds=3)
    model, alpha, cv = fit_coxnet(X[:200], t[:200], e[:200], params=params, seed=0)
    assert cv["chosen"].sum() == 1 and alpha == cv.loc[cv["chosen"], "alpha"].item()
    risk = model.predict(X[200:], alpha=alpha)
    c = concordance_index_censored(e[200:].astype(bool), t[200:], risk)[0]
    assert c > 0.7
    coef = model.coef_[:, list(model.alphas_).index(alpha)]
    assert coef[0] > 0 > coef[1]  # risk up with X0, down with X1


def test_linear_baseline_never_looks_at_validation_outcomes(tmp_path):
    X, t, e = _survival_data(120, 12, seed=1)
    ids = [f"P{i:03d}" for i in range(120)]
    table = pd.DataFrame(X, index=pd.Index(ids, name="patient_id"))
    table.columns = [f"G{j}" for j in range(12)]
    roles = np.array(["train"] * 70 + ["tune"] * 20 + ["val"] * 30)
    split = pd.DataFrame({"patient_id": ids, "role": roles})
    npz = tmp_path / "rna.npz"
    fit_transform_fold(table, np.array(ids)[roles == "train"], OmicsParams(), name="rna").save(npz)
    outcomes = pd.DataFrame({"time": t, "event": e}, index=pd.Index(ids, name="patient_id"))
    params = BaselineParams(n_alphas=8, inner_folds=3)
    runs = []
    for k, out in enumerate((outcomes, outcomes.assign(event=np.where(roles == "val", 1, e)))):
        runs.append(
            linear_baseline_fold(
                data={"rna": str(npz)},
                split=split,
                outcomes=out,
                task="survival",
                params=params,
                seed=0,
                out_predictions=str(tmp_path / f"p{k}.tsv"),
                out_cv=str(tmp_path / f"cv{k}.tsv"),
            )
        )
    assert list(runs[0]["patient_id"]) == ids[90:]
    np.testing.assert_array_equal(runs[0]["risk"], runs[1]["risk"])
    assert (tmp_path / "cv0.tsv").read_text() == (tmp_path / "cv1.tsv").read_text()
    assert set(runs[0]["modalities"]) == {"rna"}


# ------------------------------------------------------------------------------ config


def _user_config(tmp_path: Path, csv: Path, **inputs) -> dict:
    return {
        "cohort": "xx",
        "task": "survival",
        "inputs": {"mcat_csv": str(csv), **inputs},
        "modalities": {
            "wsi": None,
            "rnaseq": {"type": "table", "columns": {"suffix": "_rnaseq"},
                       "encoder": {"kind": "snn"}},
            "clinical": {"type": "table", "columns": {"names": ["age"]},
                         "encoder": {"kind": "mlp"}},
        },
        "splits": {"k": 2},
    }  # fmt: skip


def test_config_checks_of_a_user_cohort(tmp_path, csv):
    cfg = _user_config(tmp_path, csv)
    assert drop_null_modalities(cfg) == ["wsi"]
    assert list(cfg["modalities"]) == ["rnaseq", "clinical"]
    check_config(cfg)  # fine
    (tmp_path / "s_0.csv").write_text("train,val\n")
    (tmp_path / "s_1.csv").write_text("train,val\n")
    pattern = str(tmp_path / "s_{fold}.csv")
    assert split_files({**cfg, "inputs": {"split_files": pattern}}) == [
        str(tmp_path / "s_0.csv"),
        str(tmp_path / "s_1.csv"),
    ]
    with pytest.raises(ConfigError, match=re.escape("1 file(s) given but splits.k is 2")):
        check_config({**cfg, "inputs": {**cfg["inputs"], "split_files": [pattern]}})
    three = {**cfg, "splits": {"k": 3}, "inputs": {**cfg["inputs"], "split_files": pattern}}
    with pytest.raises(ConfigError, match=r"do not exist.*s_2\.csv"):
        check_config(three)
    bare = {"type": "table", "encoder": {"kind": "snn"}}  # no columns
    no_cols = {**cfg, "modalities": {**cfg["modalities"], "rnaseq": bare}}
    with pytest.raises(ConfigError, match=r"modalities\.rnaseq\.columns: required"):
        check_config(no_cols)
    with pytest.raises(ConfigError, match="either mcat_csv or patients"):
        check_config({**cfg, "inputs": {**cfg["inputs"], "patients": "p.tsv"}})
    with pytest.raises(ConfigError, match=r"inputs\.label_column"):
        check_config({**cfg, "task": "classification"})
    sig = {**cfg, "modalities": {**cfg["modalities"],
                                 "rnaseq": {**cfg["modalities"]["rnaseq"],
                                            "preprocess": {"signatures": "append"}}}}  # fmt: skip
    with pytest.raises(ConfigError, match=r"inputs\.signatures"):
        check_config(sig)


# ------------------------------------------------------------------------------ workflow


def test_sheets_cohort_imported_and_preprocessed_by_the_workflow(tmp_path):
    """A user cohort given as sheets: the import rule (with a clinical column group taken from
    the patient sheet), the checks, the folds, fold-safe preprocessing and the Coxnet baseline
    run for real through Snakemake (no neural network training)."""
    import os
    import subprocess
    import sys

    import yaml

    from mmlego.bench.runner import working_copy
    from mmlego.demo.cohort import DemoConfig, write_tables
    from mmlego.io import read_tsv

    data = tmp_path / "data"
    write_tables(data, DemoConfig(n_patients=40, seed=3))
    pts = read_tsv(data / "patients.tsv")
    pts["age"] = np.arange(len(pts)) % 37 + 40
    pts.to_csv(data / "patients.tsv", sep="\t", index=False)
    work = working_copy(tmp_path / "wf")
    cfg = {
        "cohort": "sheets",
        "inputs": {"patients": str(data / "patients.tsv"),
                   "tables": {"rnaseq": str(data / "omics" / "rnaseq.tsv")}},
        "modalities": {
            "wsi": None,
            "cnv": None,
            "clinical": {"type": "table", "columns": {"names": ["age"]},
                         "encoder": {"kind": "mlp"}},
            "rnaseq": {"preprocess": {"variance_top_k": 50, "outcome_top_k": 8}},
        },
        "splits": {"k": 2},
        "baselines": {"n_alphas": 4, "inner_folds": 2},
    }  # fmt: skip
    (work / "user.yaml").write_text(yaml.safe_dump(cfg))
    res = "results/sheets"
    targets = [f"{res}/omics/{m}/fold{k}.npz" for m in ("rnaseq", "clinical") for k in (0, 1)]
    targets.append(f"{res}/predictions/coxnet/fold0.tsv")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", "2", *targets, "--configfile", "user.yaml"],
        cwd=work, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    cohort = work / res / "cohort"
    clinical = read_tsv(cohort / "omics" / "clinical.tsv")
    assert list(clinical.columns) == ["patient_id", "age"] and len(clinical) == 40
    npz = np.load(work / res / "omics" / "rnaseq" / "fold0.npz")
    assert npz["X"].shape[1] == 8  # 50 most variable, then the 8 most outcome-associated
    split = read_tsv(work / res / "splits" / "fold0.tsv")
    train = set(split.loc[split["role"] == "train", "patient_id"])
    assert set(npz["train_ids"]) == train & set(npz["patient_ids"])
    preds = read_tsv(work / res / "predictions" / "coxnet" / "fold0.tsv")
    assert set(preds["patient_id"]) == set(split.loc[split["role"] == "val", "patient_id"])
    assert set(preds["modalities"]) <= {"clinical", "clinical+rnaseq"}
