"""Cohort sheets (loading and validation) and patient-level splits."""

from __future__ import annotations

import gzip
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mmlego.cohort import (
    CohortError,
    SplitError,
    check_folds,
    load_cohort,
    load_cohort_folder,
    make_folds,
    read_split_files,
    write_folds,
)
from mmlego.config import ConfigError
from mmlego.demo.cohort import DemoConfig, design, write_tables
from mmlego.io import read_tsv


@pytest.fixture(scope="module")
def demo_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("demo")
    write_tables(folder, DemoConfig(n_patients=40, seed=1))
    return folder


@pytest.fixture
def cohort_copy(demo_folder, tmp_path) -> Path:
    """A writable copy of the small demo cohort's sheets."""
    for src in demo_folder.rglob("*.tsv"):
        dest = tmp_path / src.relative_to(demo_folder)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(src.read_bytes())
    return tmp_path


def _edit(path: Path, fn: Callable[[pd.DataFrame], pd.DataFrame]) -> None:
    df = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    fn(df).to_csv(path, sep="\t", index=False)


def _set(row: int, col: str, value: str) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def fn(df):
        df.loc[row, col] = value
        return df

    return fn


def _dup_conflicting(df):
    extra = df.iloc[[2]].copy()
    extra["time"] = "999.0"
    return pd.concat([df, extra], ignore_index=True)


def _add_row(pid: str) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def fn(df):
        extra = df.iloc[[0]].copy()
        extra["patient_id"] = pid
        if "slide_id" in extra:
            extra["slide_id"] = pid + "-S1"
        return pd.concat([df, extra], ignore_index=True)

    return fn


# (file to edit, edit, substrings the error message must contain)
BAD_INPUTS = {
    "missing_event_column": ("patients.tsv", lambda df: df.drop(columns="event"), ["'event'"]),
    "duplicate_patient": ("patients.tsv", _dup_conflicting, ["SYN-0003", "conflicting"]),
    "zero_time": ("patients.tsv", _set(4, "time", "0"), ["'time'", "SYN-0005"]),
    "negative_time": ("patients.tsv", _set(5, "time", "-3.5"), ["'time'", "SYN-0006"]),
    "empty_time": ("patients.tsv", _set(6, "time", ""), ["'time'", "SYN-0007"]),
    "text_time": ("patients.tsv", _set(6, "time", "12,5"), ["'time'", "SYN-0007", "12,5"]),
    "event_2": ("patients.tsv", _set(7, "event", "2"), ["'event'", "SYN-0008"]),
    "unsafe_patient_id": ("patients.tsv", _set(0, "patient_id", "SYN 0001/x"), ["SYN 0001/x"]),
    "text_feature": ("omics/rnaseq.tsv", _set(3, "SYNGENE0005", "high"), ["SYNGENE0005", "high"]),
    "nan_feature": ("omics/rnaseq.tsv", _set(3, "SYNGENE0007", ""), ["SYNGENE0007", "missing"]),
    "inf_feature": ("omics/cnv.tsv", _set(2, "SYNSEG010", "inf"), ["SYNSEG010", "infinite"]),
    "omics_unknown_patient": ("omics/cnv.tsv", _add_row("SYN-9999"), ["1 patient_id", "SYN-9999"]),
    "slides_unknown_patient": ("slides.tsv", _add_row("SYN-8888"), ["1 patient_id", "SYN-8888"]),
    "duplicate_slide": ("slides.tsv", _set(1, "slide_id", "SYN-0001-S1"), ["SYN-0001-S1"]),
    "bad_mpp": ("slides.tsv", _set(1, "mpp", "-0.5"), ["'mpp'"]),
    "implausible_mpp": ("slides.tsv", _set(1, "mpp", "352.78"), ["'mpp'", "352.78", "0.05 to 20"]),
    "omics_duplicate_patient": (
        "omics/rnaseq.tsv",
        lambda df: pd.concat([df, df.iloc[[4]]], ignore_index=True),
        ["repeated"],
    ),
}


def _load(folder: Path, **kw):
    return load_cohort(
        patients=folder / "patients.tsv",
        slides=folder / "slides.tsv",
        omics={"rnaseq": folder / "omics/rnaseq.tsv", "cnv": folder / "omics/cnv.tsv"},
        **kw,
    )


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_is_named(cohort_copy, case):
    rel, edit, expected = BAD_INPUTS[case]
    _edit(cohort_copy / rel, edit)
    with pytest.raises(CohortError) as err:
        _load(cohort_copy)
    message = str(err.value)
    assert str(cohort_copy / rel) in message
    for part in expected:
        assert part in message, message


def test_survival_times_in_days_are_warned_of(cohort_copy, caplog):
    _edit(cohort_copy / "patients.tsv", _set(4, "time", "3650"))
    cohort = _load(cohort_copy)
    assert cohort.patients.loc["SYN-0005", "time"] == 3650
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("'time'" in m and "SYN-0005=3650" in m and "days" in m for m in warned), warned


def test_valid_demo_cohort_loads(demo_folder):
    cohort = _load(demo_folder)
    des = design(DemoConfig(n_patients=40, seed=1))
    pts = des.patients.set_index("patient_id")
    assert list(cohort.patients.index) == list(pts.index)
    assert cohort.patients["event"].dtype == np.int64
    assert cohort.modality_names == ["cnv", "rnaseq", "wsi"]
    avail = cohort.availability()
    assert avail["wsi"].to_dict() == (pts["n_slides"] > 0).to_dict()
    assert avail["rnaseq"].to_dict() == pts["has_omics"].to_dict()
    assert avail["cnv"].equals(avail["rnaseq"])
    omics_only = pts.index[pts["n_slides"] == 0][0]
    slides_only = pts.index[~pts["has_omics"]][0]
    assert cohort.modalities_of(omics_only) == ("cnv", "rnaseq")
    assert cohort.modalities_of(slides_only) == ("wsi",)
    assert set(cohort.slides["path"]) == {
        str((demo_folder / "slides" / f"{s}.tiff").resolve()) for s in des.slides["slide_id"]
    }
    assert cohort.slides["mpp"].isna().all()
    assert cohort.omics["rnaseq"].dtypes.eq("float64").all()
    assert len(cohort.slides_of(des.slides["patient_id"].iloc[0])) >= 1
    with pytest.raises(KeyError, match="SYN-7777"):
        cohort.modalities_of("SYN-7777")
    # The folder loader finds the same sheets.
    folder_cohort = load_cohort_folder(demo_folder)
    assert folder_cohort.modality_names == cohort.modality_names
    pd.testing.assert_frame_equal(folder_cohort.omics["cnv"], cohort.omics["cnv"])


def test_missing_values_allowed_on_request(cohort_copy):
    _edit(cohort_copy / "omics/rnaseq.tsv", _set(3, "SYNGENE0007", ""))
    cohort = _load(cohort_copy, allow_missing_features=True)
    assert cohort.omics["rnaseq"]["SYNGENE0007"].isna().sum() == 1


def test_missing_file_and_slide_files(cohort_copy):
    with pytest.raises(CohortError, match=r"nothere\.tsv.*does not exist"):
        load_cohort(patients=cohort_copy / "nothere.tsv")
    with pytest.raises(CohortError, match=r"slide file\(s\) do not exist"):
        _load(cohort_copy, check_slide_files=True)


def test_classification_needs_label(cohort_copy):
    _edit(cohort_copy / "patients.tsv", lambda df: df.drop(columns="label"))
    assert "label" not in _load(cohort_copy).patients.columns
    with pytest.raises(CohortError, match="'label'"):
        _load(cohort_copy, task="classification")


def test_comma_separated_sheet_gets_a_hint(cohort_copy):
    df = read_tsv(cohort_copy / "patients.tsv")
    df.to_csv(cohort_copy / "patients.tsv", index=False)
    with pytest.raises(CohortError, match="comma-separated"):
        _load(cohort_copy)


# ---------------------------------------------------------------- splits


@pytest.fixture(scope="module")
def patients() -> pd.DataFrame:
    """120 patients with outcomes from the demo generator."""
    rng = np.random.default_rng(0)
    n = 120
    return pd.DataFrame(
        {
            "time": rng.exponential(30, n).round(1) + 0.1,
            "event": (rng.uniform(size=n) < 0.58).astype(int),
            "label": rng.choice(["a", "b", "c"], n),
        },
        index=pd.Index([f"P{i:03d}" for i in range(n)], name="patient_id"),
    )


def test_folds_partition_patients(patients):
    folds = make_folds(patients, k=5, seed=0, tune_fraction=0.2)
    assert len(folds) == 5
    val_of = {}
    for i, fold in enumerate(folds):
        assert list(fold.columns) == ["patient_id", "role"]
        assert sorted(fold["patient_id"]) == sorted(patients.index)  # each patient one role
        for pid in fold.loc[fold["role"] == "val", "patient_id"]:
            assert pid not in val_of
            val_of[pid] = i
        n_train_all = (fold["role"] != "val").sum()
        assert abs((fold["role"] == "tune").sum() - 0.2 * n_train_all) <= 2
    assert set(val_of) == set(patients.index)
    sizes = [int((f["role"] == "val").sum()) for f in folds]
    assert max(sizes) - min(sizes) <= 1
    check_folds(folds, patient_ids=patients.index)  # no error


def test_folds_are_stratified(patients):
    folds = make_folds(patients, k=5, seed=3)
    overall = patients["event"].mean()
    med = patients["time"].median()
    for fold in folds:
        for role in ("val", "tune"):
            ids = fold.loc[fold["role"] == role, "patient_id"]
            assert abs(patients.loc[ids, "event"].mean() - overall) < 0.08, role
        val = patients.loc[fold.loc[fold["role"] == "val", "patient_id"]]
        # Each time quartile within each event group is spread over the folds.
        assert 0.35 < (val["time"] > med).mean() < 0.65


def test_folds_depend_on_seed_only(patients):
    a = make_folds(patients, k=4, seed=1)
    b = make_folds(patients, k=4, seed=1)
    c = make_folds(patients, k=4, seed=2)
    assert all(x.equals(y) for x, y in zip(a, b, strict=True))
    assert not all(x.equals(y) for x, y in zip(a, c, strict=True))


def test_folds_by_label(patients):
    folds = make_folds(patients, k=3, seed=0, by="label")
    for fold in folds:
        val = patients.loc[fold.loc[fold["role"] == "val", "patient_id"]]
        counts = val["label"].value_counts()
        total = patients["label"].value_counts()
        assert ((counts - total / 3).abs() <= 1).all()


def test_a_class_of_one_patient_is_warned_of(patients, caplog):
    make_folds(patients, k=3, seed=0, by="label")
    assert not [r for r in caplog.records if r.levelname == "WARNING"]
    rare = patients.copy()
    rare.loc[rare.index[0], "label"] = "rare"
    make_folds(rare, k=3, seed=0, by="label")
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warned) == 1 and f"rare ({rare.index[0]})" in warned[0], warned
    assert "inputs.classes" in warned[0]


def test_a_large_tune_fraction_leaves_every_event_group_and_class_in_training(patients):
    """The tune set never takes the last training patient of an event group or class: with 5
    deaths over 5 folds a fold trains on one death, which a tune fraction of 0.9 moved away."""
    few = patients.iloc[:30].assign(event=[1] * 5 + [0] * 25)
    for by, column in (("survival", "event"), ("label", "label")):
        for fold in make_folds(few, k=5, seed=0, tune_fraction=0.9, by=by):
            train = few.loc[fold.loc[fold["role"] == "train", "patient_id"], column]
            rest = few.loc[fold.loc[fold["role"] != "val", "patient_id"], column]
            assert set(train) == set(rest), (by, fold)
            assert (fold["role"] == "tune").sum() >= 0.8 * len(rest) - 3


def test_fold_argument_errors(patients):
    with pytest.raises(SplitError, match=r"splits\.k"):
        make_folds(patients, k=1, seed=0)
    with pytest.raises(SplitError, match="tune_fraction"):
        make_folds(patients, k=5, seed=0, tune_fraction=1.0)
    with pytest.raises(SplitError, match=r"\['event'\]"):
        make_folds(patients.drop(columns="event"), k=5, seed=0)


def test_write_and_read_split_files(patients, tmp_path):
    folds = make_folds(patients, k=3, seed=0)
    paths = write_folds(folds, tmp_path / "splits")
    assert [p.name for p in paths] == ["fold0.tsv", "fold1.tsv", "fold2.tsv"]
    back = read_split_files(paths, patient_ids=patients.index, partition=True)
    for x, y in zip(folds, back, strict=True):
        pd.testing.assert_frame_equal(x.reset_index(drop=True), y)


def test_read_split_files_errors(patients, tmp_path):
    folds = make_folds(patients, k=3, seed=0)
    paths = write_folds(folds, tmp_path)
    bad = folds[1].copy()
    bad.loc[0, "role"] = "test"
    bad.to_csv(paths[1], sep="\t", index=False)
    with pytest.raises(SplitError, match=re.escape(str(paths[1])) + ".*'test'.*P000"):
        read_split_files(paths)
    folds[1].to_csv(paths[1], sep="\t", index=False)
    with pytest.raises(SplitError, match=r"not in the cohort.*P000"):
        read_split_files(paths, patient_ids=patients.index[1:])
    with pytest.raises(SplitError, match="never val"):
        read_split_files(paths[:2], partition=True)
    with pytest.raises(SplitError, match="does not exist"):
        read_split_files([tmp_path / "fold9.tsv"])


# ---------------------------------------------------------------- column groups and classes


def test_column_groups_from_the_patient_sheet_and_class_selection(cohort_copy, tmp_path):
    from mmlego.cohort.sheets import ColumnGroup, write_cohort_folder

    def add_clinical(df):
        df["age"] = [str(40 + i % 30) for i in range(len(df))]
        df["is_female"] = [str(i % 2) for i in range(len(df))]
        df["subtype"] = df["label"]
        df.loc[:2, "subtype"] = "rare"  # three patients of a class to leave out
        return df.drop(columns="label")

    _edit(cohort_copy / "patients.tsv", add_clinical)
    pts = read_tsv(cohort_copy / "patients.tsv")
    classes = sorted(set(pts["subtype"]) - {"rare"})

    def load(**kw):
        return load_cohort(
            patients=cohort_copy / "patients.tsv",
            slides=cohort_copy / "slides.tsv",
            omics={"rnaseq": cohort_copy / "omics/rnaseq.tsv"},
            task="classification",
            label_column="subtype",
            **kw,
        )

    with pytest.raises(CohortError, match=r"class\(es\) \['nope'\] requested"):
        load(classes=[classes[0], "nope"])
    cohort = load(
        classes=classes, column_groups={"clinical": ColumnGroup(names=("age", "is_female"))}
    )
    assert list(cohort.omics["clinical"].columns) == ["age", "is_female"]
    assert cohort.omics["clinical"]["age"].dtype == np.float64
    assert set(cohort.patients["label"]) == set(classes)
    # the class left out: its patients, slides and omics rows leave the cohort, with the reason
    gone = set(pts["patient_id"][:3])
    assert set(cohort.excluded["patient_id"]) == gone
    assert cohort.excluded["reason"].str.contains("'rare' not in classes").all()
    assert not gone & set(cohort.patients.index) and not gone & set(cohort.slides["patient_id"])
    assert not gone & set(cohort.omics["rnaseq"].index)
    assert not gone & set(cohort.omics["clinical"].index)
    written = write_cohort_folder(cohort, tmp_path / "out")
    assert set(read_tsv(written["excluded"])["patient_id"]) == gone
    back = load_cohort_folder(tmp_path / "out", task="classification")
    assert list(back.patients.index) == list(cohort.patients.index)
    pd.testing.assert_frame_equal(back.omics["clinical"], cohort.omics["clinical"])


# ---------------------------------------------------------------- file variations


def _table_text(ids=("P00", "P01", "P02")) -> str:
    rows = [f"{pid}\t{i + 0.5}\t{2 * i}" for i, pid in enumerate(ids)]
    return "\n".join(["patient_id\tG0\tG1", *rows]) + "\n"


def _patients_file(folder: Path) -> Path:
    path = folder / "patients.tsv"
    path.write_text("patient_id\ttime\tevent\nP00\t12\t1\nP01\t5\t0\nP02\t7\t1\n")
    return path


def _write(path: Path, text: str) -> Path:
    data = text.encode("utf-8")
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


TABLE_VARIANTS = {
    "byte_order_mark": ("t.tsv", lambda t: "\ufeff" + t),
    "windows_line_ends": ("t.tsv", lambda t: t.replace("\n", "\r\n")),
    "gzip": ("t.tsv.gz", lambda t: t),
    "tab_at_each_line_end": ("t.tsv", lambda t: t.replace("\n", "\t\n")),
    "tab_at_each_row_end": ("t.tsv", lambda t: t.replace("\n", "\t\n").replace("G1\t\n", "G1\n")),
    "row_names_without_header": (
        "t.tsv",
        lambda t: (
            "\n".join(line if i == 0 else f"{i}\t{line}" for i, line in enumerate(t.splitlines()))
            + "\n"
        ),
    ),
}


@pytest.mark.parametrize("case", sorted(TABLE_VARIANTS))
def test_table_file_variations_load_as_the_plain_table(tmp_path, case):
    name, edit = TABLE_VARIANTS[case]
    patients = _patients_file(tmp_path)
    plain = load_cohort(patients=patients, omics={"m": _write(tmp_path / "p.tsv", _table_text())})
    variant = load_cohort(
        patients=patients, omics={"m": _write(tmp_path / name, edit(_table_text()))}
    )
    pd.testing.assert_frame_equal(variant.omics["m"], plain.omics["m"])


def test_a_column_without_a_name_but_with_values_is_refused(tmp_path):
    """A table written with its row numbers (pandas' index) would give them as a feature."""
    patients = _patients_file(tmp_path)
    text = "\tpatient_id\tG0\n0\tP00\t1.5\n1\tP01\t2.5\n"
    path = _write(tmp_path / "t.tsv", text)
    with pytest.raises(CohortError, match=r"without a name .* position\(s\) \[1\]") as err:
        load_cohort(patients=patients, omics={"m": path})
    assert str(err.value).startswith(f"{path}: ")


def test_a_truncated_compressed_table_is_named(tmp_path):
    patients = _patients_file(tmp_path)
    data = gzip.compress(_table_text().encode())
    path = tmp_path / "t.tsv.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CohortError, match="truncated or corrupt") as err:
        load_cohort(patients=patients, omics={"m": path})
    assert str(err.value).startswith(f"{path}: cannot read the omics table 'm'")


def test_a_repeated_name_among_many_gene_columns_is_named(tmp_path):
    patients = _patients_file(tmp_path)
    names = [f"GENE{j}" for j in range(20_000)] + ["GENE7"]
    row = "\t".join(["P00", *["1"] * len(names)])
    path = _write(tmp_path / "t.tsv", "\t".join(["patient_id", *names]) + "\n" + row + "\n")
    with pytest.raises(CohortError, match=r"duplicate column name.*'GENE7'"):
        load_cohort(patients=patients, omics={"m": path})


def test_spaces_around_ids_labels_and_names_are_ignored(tmp_path):
    """Spaces around a cell (a spreadsheet's padding) do not make another patient or class."""
    patients = _write(
        tmp_path / "patients.tsv",
        "patient_id\ttime \tevent\tlabel\nP00 \t12\t1\ta\n P01\t5\t0\tb \nP02\t7\t1\tb\n"
        "P03\t9\t0\t a\n",
    )
    table = _write(tmp_path / "t.tsv", _table_text(ids=("P00", "P01 ", "P02")))
    cohort = load_cohort(patients=patients, omics={"m": table}, task="classification")
    assert list(cohort.patients.index) == ["P00", "P01", "P02", "P03"]
    assert list(cohort.patients["label"]) == ["a", "b", "b", "a"]
    assert list(cohort.patients["time"]) == [12.0, 5.0, 7.0, 9.0]
    assert list(cohort.omics["m"].index) == ["P00", "P01", "P02"]


def test_classes_written_in_several_ways_are_warned_of(tmp_path, caplog):
    """'Luminal A', 'luminal a' and 'luminal_A' stay three classes, but the import names them
    as probably one; 'Basal' and 'HER2' are not alike."""
    patients = _write(
        tmp_path / "patients.tsv",
        "patient_id\tlabel\nP00\tLuminal A\nP01\tluminal a\nP02\tBasal\nP03\tluminal_A\n"
        "P04\tHER2\nP05\tLuminal A\n",
    )
    table = _write(tmp_path / "t.tsv", _table_text(ids=("P00", "P01", "P02")))
    with caplog.at_level("WARNING"):
        cohort = load_cohort(patients=patients, omics={"m": table}, task="classification")
    assert cohort.patients["label"].nunique() == 5
    assert "'Luminal A' (2) / 'luminal a' (1) / 'luminal_A' (1) differ only in case" in caplog.text
    assert "Basal" not in caplog.text and "HER2" not in caplog.text


def test_labels_that_look_like_numbers_stay_as_written(tmp_path):
    """Classes '01', '02', '10' are not the numbers 1, 2, 10: inputs.classes finds them, and the
    cohort folder (read back as every later stage reads it) keeps them as written."""
    patients = _write(
        tmp_path / "patients.tsv",
        "patient_id\tsubtype\nP00\t01\nP01\t02\nP02\t10\nP03\t01\nP04\t02\n",
    )
    table = _write(tmp_path / "t.tsv", _table_text(ids=("P00", "P01", "P02")))

    def load(sheet: Path):
        return load_cohort(
            patients=sheet,
            omics={"m": table},
            task="classification",
            label_column="subtype",
            classes=["01", "02"],
        )

    cohort = load(patients)
    assert list(cohort.patients["label"]) == ["01", "02", "01", "02"]
    # the same sheet with a tab at the end of each row (not of the header) is read alike
    lines = patients.read_text().splitlines()
    tabbed = _write(tmp_path / "tabbed.tsv", "\n".join([lines[0], *(f"{r}\t" for r in lines[1:])]))
    assert list(load(tabbed).patients["label"]) == ["01", "02", "01", "02"]
    from mmlego.cohort.sheets import write_cohort_folder

    write_cohort_folder(cohort, tmp_path / "out")
    assert list(read_tsv(tmp_path / "out" / "patients.tsv")["label"]) == ["01", "02", "01", "02"]
    back = load_cohort_folder(tmp_path / "out", task="classification")
    assert sorted(set(back.patients["label"])) == ["01", "02"]


def test_a_label_written_na_is_missing_and_the_error_says_so(tmp_path):
    """'NA' in a sheet is a missing value, as in R's tables: a patient whose class reads NA is
    named as missing one, with how to leave such patients out; with classes listed it is."""
    patients = _write(
        tmp_path / "patients.tsv", "patient_id\tlabel\nP00\ta\nP01\tNA\nP02\tb\nP03\tb\n"
    )
    table = _write(tmp_path / "t.tsv", _table_text(ids=("P00", "P01", "P02", "P03")))
    kw = {"patients": patients, "omics": {"m": table}, "task": "classification"}
    with pytest.raises(CohortError, match=r"'label' is missing \(empty, or NA.*'P01'.*classes"):
        load_cohort(**kw)
    cohort = load_cohort(**kw, classes=["a", "b"])
    assert list(cohort.excluded["patient_id"]) == ["P01"]


def test_the_slides_processed_are_those_of_the_patients_the_cohort_keeps(cohort_copy):
    """The workflow plans the slides of the classes kept by reading the patient sheet as the
    cohort import does: a label written ``b `` is class ``b`` for both, so its slides are tiled."""
    from mmlego.config import slide_sheet

    def spaced(df):
        df.loc[:4, "label"] = df.loc[:4, "label"] + " "
        df.loc[5, "patient_id"] = " " + df.loc[5, "patient_id"]
        return df

    _edit(cohort_copy / "patients.tsv", spaced)
    classes = sorted(set(read_tsv(cohort_copy / "patients.tsv")["label"].str.strip()))
    kw = {"patients": cohort_copy / "patients.tsv", "slides": cohort_copy / "slides.tsv"}
    cohort = load_cohort(**kw, task="classification", classes=classes[:2])
    config = {
        "cohort": "mine",
        "inputs": {**{k: str(v) for k, v in kw.items()}, "classes": classes[:2]},
    }
    planned = slide_sheet(config, results="results/mine")
    assert len(cohort.slides) > 0
    assert sorted(planned["slide_id"]) == sorted(cohort.slides["slide_id"])
    config["inputs"]["classes"] = [classes[0], "nope"]
    with pytest.raises(ConfigError, match=r"inputs\.patients: .*patients\.tsv.*\['nope'\]"):
        slide_sheet(config, results="results/mine")
