"""The pan-cancer benchmark's library: cohort discovery, column-group detection, configs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from pancancer_data import synthetic_cohort, write_cohort

from mmlego.cohort.pancancer import (
    check_groups,
    cohort_checks,
    cohort_config,
    deep_merge,
    discover_cohorts,
    groups_table,
    plan_cohorts,
    rule_prefix,
    usable_columns,
    workflow_rules,
)
from mmlego.cohort.sheets import CohortError

ROOT = Path(__file__).resolve().parents[1]
GROUPS = {
    "rnaseq": {"suffix": "_rnaseq"},
    "cnv": {"suffix": "_cnv"},
    "mut": {"suffix": "_mut"},
    "clinical": {"names": ["age", "is_female"]},
}


def by_modality(checks):
    return {c.modality: c for c in checks}


def test_usable_columns_drop_constant_and_all_missing_columns():
    df = pd.DataFrame(
        {"a": [1, 2, 3], "b": [1, 1, 1], "c": [np.nan] * 3, "d": [np.nan, 0, 1], "e": list("xyz")}
    )
    assert usable_columns(df) == ["a", "d"]


def test_absent_and_nearly_empty_groups_are_left_out_with_the_reason():
    df = synthetic_cohort(30, {"_rnaseq": 20, "_cnv": 4}, constant=["G0_rnaseq"])
    checks = by_modality(check_groups(df, GROUPS, cohort="x", min_columns=5))
    assert checks["rnaseq"].kept and checks["rnaseq"].n_usable == 19
    assert checks["rnaseq"].columns == {"suffix": "_rnaseq"}
    cnv = checks["cnv"]
    assert not cnv.kept and (cnv.n_columns, cnv.n_usable) == (4, 4)
    assert cnv.reason.startswith("nearly empty") and "min_columns = 5" in cnv.reason
    assert not checks["mut"].kept and checks["mut"].reason.startswith("absent")
    assert checks["mut"].n_columns == 0
    assert checks["clinical"].kept and checks["clinical"].reason == ""
    # the threshold decides: with 4 the CNV group stays
    assert by_modality(check_groups(df, GROUPS, cohort="x", min_columns=4))["cnv"].kept


def test_constant_columns_do_not_count_towards_min_columns():
    df = synthetic_cohort(30, {"_cnv": 6}, constant=["G0_cnv", "G1_cnv", "G2_cnv"])
    cnv = by_modality(check_groups(df, GROUPS, cohort="x", min_columns=4))["cnv"]
    assert not cnv.kept and (cnv.n_columns, cnv.n_usable) == (6, 3)


def test_named_group_keeps_its_usable_columns_and_says_what_it_dropped():
    df = synthetic_cohort(30, {"_rnaseq": 20}, constant=["is_female"], missing_age=2)
    clinical = by_modality(check_groups(df, GROUPS, cohort="x", min_columns=5))["clinical"]
    assert clinical.kept and clinical.columns == {"names": ["age"]}
    assert "is_female constant or empty" in clinical.reason
    assert clinical.has_missing
    df = df.drop(columns=["age"])
    clinical = by_modality(check_groups(df, GROUPS, cohort="x", min_columns=5))["clinical"]
    assert not clinical.kept and "age absent" in clinical.reason


def test_groups_table_lists_every_decision():
    df = synthetic_cohort(30, {"_rnaseq": 20, "_cnv": 2})
    table = groups_table(check_groups(df, GROUPS, cohort="c1", min_columns=5))
    assert list(table["modality"]) == list(GROUPS)
    assert list(table["kept"]) == [True, False, False, True]
    assert set(table["cohort"]) == {"c1"}


def test_discover_cohorts_finds_csvs_and_their_splits(tmp_path):
    write_cohort(tmp_path, "tcga_aaa", synthetic_cohort(20, {"_rnaseq": 3}), folds=3)
    df = synthetic_cohort(20, {"_cnv": 3}, seed=1)
    df.to_csv(tmp_path / "tcga_bbb_all_clean.csv", index=False)
    (tmp_path / "notes.csv").write_text("x\n")
    found = discover_cohorts(tmp_path)
    assert [c.name for c in found] == ["tcga_aaa", "tcga_bbb"]
    assert [Path(f).name for f in found[0].split_files] == [f"splits_{k}.csv" for k in range(3)]
    assert found[1].split_files == ()  # no splits: the workflow makes the folds
    assert [c.name for c in discover_cohorts(tmp_path, only=["tcga_bbb"])] == ["tcga_bbb"]
    with pytest.raises(CohortError, match="tcga_zzz"):
        discover_cohorts(tmp_path, only=["tcga_zzz"])


def test_files_that_are_not_cohorts_are_named_in_a_warning(tmp_path, caplog):
    write_cohort(tmp_path, "tcga_aaa", synthetic_cohort(20, {"_rnaseq": 3}), folds=2)
    for name in ("Upper_all_clean.CSV.GZ", "tcga_x.csv.gz", "zipped_all_clean.csv.zip"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "slides").mkdir()
    (tmp_path / ".hidden").write_text("")
    with caplog.at_level("WARNING", logger="mmlego.cohort.pancancer"):
        assert [c.name for c in discover_cohorts(tmp_path)] == ["tcga_aaa"]
    (record,) = caplog.records
    assert record.levelname == "WARNING"
    assert record.getMessage() == (
        f"pancancer.folder: {tmp_path}: ignored 4 item(s) not named <cohort>_all_clean.csv.gz "
        "or <cohort>_all_clean.csv (lower-case extension): 'Upper_all_clean.CSV.GZ', 'slides/', "
        "'tcga_x.csv.gz', 'zipped_all_clean.csv.zip'"
    )
    caplog.clear()
    (tmp_path / "slides").rmdir()
    for name in ("Upper_all_clean.CSV.GZ", "tcga_x.csv.gz", "zipped_all_clean.csv.zip"):
        (tmp_path / name).unlink()
    discover_cohorts(tmp_path)
    assert not caplog.records  # the split folder and hidden files are no news


def test_discover_cohorts_errors_name_the_folder_or_file(tmp_path):
    with pytest.raises(CohortError, match="is not a folder"):
        discover_cohorts(tmp_path / "nope")
    with pytest.raises(CohortError, match=r"has no cohort file .*; it holds no other file"):
        discover_cohorts(tmp_path)
    (tmp_path / "tcga_aaa.csv.gz").write_bytes(b"")
    (tmp_path / "TCGA_BBB_ALL_CLEAN.CSV").write_bytes(b"")
    with pytest.raises(
        CohortError,
        match=r"_all_clean.csv .*; it holds 'TCGA_BBB_ALL_CLEAN.CSV', 'tcga_aaa.csv.gz'$",
    ):
        discover_cohorts(tmp_path)
    for path in tmp_path.iterdir():
        path.unlink()
    write_cohort(tmp_path, "tcga_aaa", synthetic_cohort(20, {"_rnaseq": 3}), folds=3)
    (tmp_path / "splits" / "tcga_aaa" / "splits_1.csv").unlink()
    with pytest.raises(CohortError, match=r"splits_0.csv .* found folds \[0, 2\]"):
        discover_cohorts(tmp_path)


def test_split_files_in_mcat_scheme_folders_are_given_folds(tmp_path, caplog):
    """MCAT's and PORPOISE's repositories keep them in splits/5foldcv/<cohort>/."""
    df = synthetic_cohort(30, {"_rnaseq": 8, "_cnv": 6})
    write_cohort(tmp_path, "tcga_aaa", df, folds=3, scheme="5foldcv")
    write_cohort(tmp_path, "tcga_bbb", df, folds=2)
    write_cohort(tmp_path, "tcga_ccc", df)
    (tmp_path / "splits" / "5foldcv" / "tcga_zzz").mkdir()  # of no cohort
    (tmp_path / "splits" / "tcga_ccc").mkdir()  # no split file in it
    defaults = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    with caplog.at_level("INFO", logger="mmlego.cohort.pancancer"):
        aaa, bbb, ccc = plan_cohorts(pan_config(tmp_path), defaults)
    assert [Path(f).relative_to(tmp_path).as_posix() for f in aaa.source.split_files] == [
        f"splits/5foldcv/tcga_aaa/splits_{k}.csv" for k in range(3)
    ]
    assert aaa.config["splits"]["k"] == 3 and len(aaa.config["inputs"]["split_files"]) == 3
    assert (aaa.folds, bbb.folds) == (
        "given in splits/5foldcv/tcga_aaa/",
        "given in splits/tcga_bbb/",
    )
    assert ccc.source.split_files == () and ccc.folds == "made by the workflow"
    messages = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert (
        "WARNING",
        f"pancancer.folder: {tmp_path}: ignored 1 split folder(s) of no cohort (split files go "
        "to splits/<cohort>/ or splits/<scheme>/<cohort>/): 'splits/5foldcv/tcga_zzz/'",
    ) in messages
    assert (
        "WARNING",
        f"{tmp_path / 'splits' / 'tcga_ccc'}: no split file splits_<k>.csv for cohort "
        "'tcga_ccc': its folds are made by the workflow",
    ) in messages
    assert (aaa.summary, ccc.summary) == (
        "cohort 'tcga_aaa': modalities rnaseq, cnv, clinical; 3 folds given in "
        "splits/5foldcv/tcga_aaa/; left out: mut (absent: no columns ending with '_mut')",
        "cohort 'tcga_ccc': modalities rnaseq, cnv, clinical; 5 folds made by the workflow; "
        "left out: mut (absent: no columns ending with '_mut')",
    )
    assert ("INFO", aaa.summary) in messages and ("INFO", ccc.summary) in messages
    write_cohort(tmp_path, "tcga_aaa", df, folds=2)  # now in both places
    with pytest.raises(
        CohortError,
        match=r"'tcga_aaa' has split files in 2 folders, \['splits/5foldcv/tcga_aaa', "
        r"'splits/tcga_aaa'\]; keep those of one",
    ):
        discover_cohorts(tmp_path)


@pytest.mark.parametrize(
    ("damage", "why"),
    [
        (lambda data: data[: len(data) // 2], "EOFError: Compressed file ended"),
        (lambda data: b"case_id,slide_id\n" + data, "BadGzipFile: Not a gzipped file"),
    ],
    ids=["truncated", "not_gzip"],
)
def test_a_damaged_gzip_is_an_error_naming_the_file(tmp_path, damage, why):
    write_cohort(tmp_path, "tcga_aaa", synthetic_cohort(30, {"_rnaseq": 8, "_cnv": 6}))
    path = write_cohort(tmp_path, "tcga_bbb", synthetic_cohort(30, {"_rnaseq": 8, "_cnv": 6}))
    path.write_bytes(damage(path.read_bytes()))
    defaults = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    with pytest.raises(CohortError) as err:
        plan_cohorts(pan_config(tmp_path), defaults)
    message = str(err.value)
    assert message.startswith(f"{path}: cannot read the MCAT cohort CSV ({why}"), message
    assert "truncated or corrupt" in message


def test_cohort_config_is_a_valid_workflow_config(tmp_path):
    from snakemake.utils import validate

    from mmlego.config import check_config

    df = synthetic_cohort(30, {"_rnaseq": 20}, missing_age=1)
    write_cohort(tmp_path, "tcga_aaa", df, folds=2)
    (source,) = discover_cohorts(tmp_path)
    checks = cohort_checks(source, GROUPS, min_columns=5)
    defaults = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    shared = {
        "pancancer": {"folder": str(tmp_path)},
        "training": {"epochs": 1},
        "modalities": {m: {"type": "table", "encoder": {"kind": "snn"}} for m in GROUPS},
    }
    config = cohort_config(defaults, shared, source, checks, results="results/pancancer")
    assert sorted(config["modalities"]) == ["clinical", "rnaseq"]
    assert config["modalities"]["rnaseq"]["preprocess"]["log1p"] is True  # default inherited
    assert config["modalities"]["clinical"]["columns"] == {"names": ["age", "is_female"]}
    assert config["inputs"]["allow_missing_features"] is True  # one patient has no age
    assert config["splits"]["k"] == 2 and config["training"]["epochs"] == 1
    assert config["training"]["lr"] == defaults["training"]["lr"]
    assert (config["cohort"], config["results"]) == ("tcga_aaa", "results/pancancer")
    assert "pancancer" not in config and "modalities" not in shared["modalities"]
    validate(config, str(ROOT / "config" / "schemas" / "config.schema.yaml"))
    check_config(config)


def test_a_cohort_without_two_usable_groups_cannot_be_configured(tmp_path):
    write_cohort(tmp_path, "tcga_aaa", synthetic_cohort(30, {"_cnv": 2}).drop(columns="age"))
    (source,) = discover_cohorts(tmp_path)
    checks = cohort_checks(source, {"cnv": {"suffix": "_cnv"}}, min_columns=5)
    with pytest.raises(CohortError, match=r"tcga_aaa.*0 usable column group.*cnv: nearly empty"):
        cohort_config({}, {}, source, checks, results="r")


def pan_config(folder: Path) -> dict:
    return {
        "pancancer": {"folder": str(folder), "min_columns": 4, "results": "r"},
        "modalities": {m: {"type": "table", "columns": c} for m, c in GROUPS.items()},
    }


def test_a_cohort_with_one_usable_group_is_left_out_and_its_groups_say_why(tmp_path, caplog):
    defaults = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    aaa_sheet = synthetic_cohort(30, {"_rnaseq": 8, "_cnv": 2}, constant=["is_female"])
    write_cohort(tmp_path, "tcga_aaa", aaa_sheet)
    one = synthetic_cohort(30, {"_rnaseq": 8}).drop(columns=["age", "is_female"])
    bbb_csv = write_cohort(tmp_path, "tcga_bbb", one)
    with caplog.at_level("INFO", logger="mmlego.cohort.pancancer"):
        aaa, bbb = plan_cohorts(pan_config(tmp_path), defaults)
    # the plan says so when it is made, at once, not only in the report at the end
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        (
            "INFO",
            "cohort 'tcga_aaa': modalities rnaseq, clinical; 5 folds made by the workflow; "
            "left out: cnv (nearly empty: 2 usable of 2 column(s), fewer than min_columns = 4), "
            "mut (absent: no columns ending with '_mut'); clinical: left out of the group: "
            "is_female constant or empty",
        ),
        (
            "WARNING",
            f"cohort 'tcga_bbb' ({bbb_csv}) is left out of the run: 1 usable column group(s) "
            "['rnaseq'], fewer than the 2 that LegoMerge and LegoFuse combine (cnv: absent: no "
            "columns ending with '_cnv'; mut: absent: no columns ending with '_mut'; clinical: "
            "absent or constant: none of ['age', 'is_female'] is usable (age absent, is_female "
            "absent))",
        ),
    ]
    assert aaa.runs and sorted(aaa.config["modalities"]) == ["clinical", "rnaseq"]
    assert not bbb.runs and bbb.config == {}
    assert "1 usable column group(s) ['rnaseq'], fewer than the 2" in bbb.left_out
    checks = by_modality(bbb.checks)
    assert not any(c.kept for c in bbb.checks)
    assert checks["rnaseq"].reason.startswith("usable, but the cohort is left out")
    assert checks["clinical"].reason.startswith("absent or constant")
    table = groups_table([*aaa.checks, *bbb.checks])
    assert set(table.loc[table["kept"], "cohort"]) == {"tcga_aaa"}


def test_the_plan_keeps_each_cohorts_checks_until_its_csv_or_groups_change(tmp_path, monkeypatch):
    """Every cluster job plans the run again: the checks of a cohort whose CSV, candidate groups
    and min_columns are unchanged come from the cache, without reading the CSV."""
    import mmlego.cohort.pancancer as pancancer

    defaults = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    folder, cache = tmp_path / "cohorts", tmp_path / "cache"
    write_cohort(folder, "tcga_aaa", synthetic_cohort(30, {"_rnaseq": 8, "_cnv": 6}))
    bbb = write_cohort(folder, "tcga_bbb", synthetic_cohort(30, {"_rnaseq": 8}, seed=1))
    read = []
    original = pancancer.read_mcat_csv

    def counting(path, **kwargs):
        read.append(Path(path).name)
        return original(path, **kwargs)

    monkeypatch.setattr(pancancer, "read_mcat_csv", counting)
    first = plan_cohorts(pan_config(folder), defaults, cache=cache)
    assert sorted(read) == ["tcga_aaa_all_clean.csv.gz", "tcga_bbb_all_clean.csv.gz"]
    assert sorted(p.name for p in cache.iterdir()) == ["tcga_aaa.json", "tcga_bbb.json"]
    read.clear()
    again = plan_cohorts(pan_config(folder), defaults, cache=cache)
    assert read == [] and again == first
    # a changed CSV is read again; so is every cohort when the groups or min_columns change
    write_cohort(folder, "tcga_bbb", synthetic_cohort(31, {"_rnaseq": 8}, seed=1))
    plan_cohorts(pan_config(folder), defaults, cache=cache)
    assert read == [bbb.name]
    read.clear()
    fewer = pan_config(folder)
    fewer["pancancer"]["min_columns"] = 7
    plan_cohorts(fewer, defaults, cache=cache)
    assert len(read) == 2
    # a check that fails is not kept: it fails again from the cache's folder
    none = synthetic_cohort(30, {"_rnaseq": 8, "_cnv": 6}, seed=2).assign(censorship=1)
    write_cohort(folder, "tcga_aaa", none)
    for _ in range(2):
        with pytest.raises(CohortError, match="has 0 events"):
            cohort_checks(pancancer.discover_cohorts(folder)[0], GROUPS, min_columns=4, cache=cache)


def test_a_cohort_without_events_stops_the_plan_naming_cohort_and_file(tmp_path):
    defaults = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    write_cohort(tmp_path, "tcga_aaa", synthetic_cohort(30, {"_rnaseq": 8, "_cnv": 6}))
    none = synthetic_cohort(30, {"_rnaseq": 8, "_cnv": 6}, seed=1).assign(censorship=1)
    path = write_cohort(tmp_path, "tcga_bbb", none)
    with pytest.raises(CohortError) as err:
        plan_cohorts(pan_config(tmp_path), defaults)
    assert str(err.value) == (
        f"{path} (cohort 'tcga_bbb') has 0 events (every patient is censored), so its survival "
        "cannot be evaluated with any number of folds: check how the outcome is coded (an MCAT "
        "CSV's censorship: 1 = censored, 0 = death observed; a patients sheet's event: 1 = death "
        "observed), or leave the cohort out (run the others: list them in pancancer.cohorts, or "
        "move its file away)"
    )
    only = pan_config(tmp_path)
    only["pancancer"]["cohorts"] = ["tcga_aaa"]
    assert [p.name for p in plan_cohorts(only, defaults)] == ["tcga_aaa"]
    # a missing censorship is the import's error to name, not taken for a censored patient
    none.loc[0, "censorship"] = np.nan
    write_cohort(tmp_path, "tcga_bbb", none)
    assert len(plan_cohorts(pan_config(tmp_path), defaults)) == 2


def test_a_folder_where_no_cohort_can_run_is_an_error_naming_each_file(tmp_path):
    defaults = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    one = synthetic_cohort(30, {"_mut": 8}).drop(columns=["age", "is_female"])
    write_cohort(tmp_path, "tcga_bbb", one)
    with pytest.raises(CohortError, match=r"no cohort can be run .*tcga_bbb_all_clean.*\['mut'\]"):
        plan_cohorts(pan_config(tmp_path), defaults)


def test_workflow_rules_are_those_of_the_snakefile_and_its_includes():
    rules = workflow_rules(ROOT / "workflow" / "Snakefile")
    assert {"all", "import_cohort", "demo_tables", "omics", "preprocess_omics"} <= set(rules)
    assert workflow_rules(ROOT / "workflow" / "pancancer.smk") == ["all", "pancancer_report"]


@pytest.mark.parametrize(
    ("names", "message"),
    [
        (
            ["pancancer", "tcga_aaa"],
            r"cohort 'pancancer' \(\S+/pancancer_all_clean.csv.gz\) would name its copy of rule "
            r"'report' 'pancancer_report', a rule of the pan-cancer workflow itself: rename its "
            r"file, e.g. to pancancer_cohort_all_clean.csv.gz",
        ),
        (
            ["kidney", "kidney_preprocess"],
            r"cohorts 'kidney' \(\S+/kidney_all_clean.csv.gz\) and 'kidney_preprocess' "
            r"\(\S+/kidney_preprocess_all_clean.csv.gz\) would both have a rule named "
            r"'kidney_preprocess_omics', their copies of rules 'preprocess_omics' and 'omics': "
            r"rename the file of one of them",
        ),
        (
            ["tcga-x", "tcga_x"],
            r"cohorts 'tcga-x' \(\S+/tcga-x_all_clean.csv.gz\), 'tcga_x' \(\S+\) give their "
            r"rules the same names \(prefix 'tcga_x_'\)",
        ),
    ],
    ids=["workflow_rule", "two_cohorts", "same_prefix"],
)
def test_cohorts_whose_rule_names_clash_are_an_error_naming_their_files(tmp_path, names, message):
    defaults = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
    for name in names:
        write_cohort(tmp_path, name, synthetic_cohort(30, {"_rnaseq": 8, "_cnv": 6}))
    rules = workflow_rules(ROOT / "workflow" / "Snakefile")
    taken = workflow_rules(ROOT / "workflow" / "pancancer.smk")
    with pytest.raises(CohortError, match=f"^pancancer.folder: {message}"):
        plan_cohorts(pan_config(tmp_path), defaults, rules=rules, taken=taken)


def test_deep_merge_and_rule_prefix():
    base = {"a": {"b": 1, "c": 2}, "d": [1]}
    assert deep_merge(base, {"a": {"b": 3}, "d": [2]}) == {"a": {"b": 3, "c": 2}, "d": [2]}
    assert base == {"a": {"b": 1, "c": 2}, "d": [1]}
    assert rule_prefix("tcga_blca") == "tcga_blca_"
    assert rule_prefix("tcga-x.1") == "tcga_x_1_"
    assert rule_prefix("3ab") == "c3ab_"


def long_metrics(values: dict[tuple[str, str], list[float]]) -> pd.DataFrame:
    """(cohort, model) -> per-fold c-index as the cohorts' long metrics table."""
    rows = [
        {"cohort": c, "model": m, "fold": k, "metric": "c_index", "value": v}
        for (c, m), vs in values.items()
        for k, v in enumerate(vs)
    ]
    return pd.DataFrame(rows)


def test_cindex_table_means_per_cohort_and_over_cohorts():
    from mmlego.report.pancancer import ALL_COHORTS, cindex_table

    table = cindex_table(
        long_metrics({("a", "coxnet"): [0.6, 0.7], ("b", "coxnet"): [0.5, 0.5, 0.5]})
    ).set_index(["cohort", "model"])
    assert table.loc[("a", "coxnet"), "mean"] == pytest.approx(0.65)
    assert table.loc[("a", "coxnet"), "sd"] == pytest.approx(np.std([0.6, 0.7], ddof=1))
    assert table.loc[("b", "coxnet"), "n"] == 3
    pooled = table.loc[(ALL_COHORTS, "coxnet")]
    assert pooled["mean"] == pytest.approx(0.575) and pooled["n"] == 2


def test_paired_differences_count_wins_ties_and_losses():
    from mmlego.report.pancancer import ALL_COHORTS, fold_wtl, paired_pancancer

    metrics = long_metrics(
        {
            ("a", "coxnet"): [0.60, 0.60],
            ("a", "lego_fuse"): [0.65, 0.605],  # +0.05 win, +0.005 tie
            ("b", "coxnet"): [0.70, 0.70],
            ("b", "lego_fuse"): [0.60, 0.69],  # -0.10 loss, -0.01 loss (|d| >= tie)
        }
    )
    per_fold, summary = paired_pancancer(
        metrics, models=["lego_fuse"], baselines=["coxnet"], tie=0.01, n_boot=200
    )
    assert len(per_fold) == 4
    s = summary.set_index("scope")
    assert (s.loc["a", "wins"], s.loc["a", "ties"], s.loc["a", "losses"]) == (1, 1, 0)
    assert (s.loc["b", "wins"], s.loc["b", "ties"], s.loc["b", "losses"]) == (0, 0, 2)
    pooled = s.loc[ALL_COHORTS]
    assert pooled["mean_diff"] == pytest.approx((0.0275 - 0.055) / 2)
    assert (pooled["wins"], pooled["ties"], pooled["losses"], pooled["n"]) == (1, 0, 1, 2)
    assert pooled["ci_low"] <= pooled["mean_diff"] <= pooled["ci_high"]
    folds = fold_wtl(per_fold, tie=0.01).iloc[0]
    assert (folds["wins"], folds["ties"], folds["losses"]) == (1, 1, 2)


def test_prefixed_settings_copy_each_rule_entry_to_its_prefixed_rules():
    from mmlego.cohort.pancancer import prefixed_settings

    settings = {"train_block": {"gpu": 1}, "a_train_block": {"gpu": 2}}
    out = prefixed_settings(settings, ["a_", "b_"])
    assert out["b_train_block"] == {"gpu": 1}
    assert out["a_train_block"] == {"gpu": 2}  # its own entry wins
    assert out["train_block"] == {"gpu": 1}
