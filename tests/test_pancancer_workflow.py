"""Real Snakemake runs of the pan-cancer workflow on a folder of 2 small synthetic cohorts."""

from __future__ import annotations

import shutil
import subprocess
from collections import defaultdict
from pathlib import Path

import pandas as pd
import pytest
from pancancer_data import synthetic_cohort, write_cohort
from test_cluster import GPU_RULES, job_blocks, profile_env, resources
from workflow_utils import SNAKEMAKE, jobs_by_rule, make_working_copy, run_snakemake

from mmlego.cohort.pancancer import workflow_rules
from mmlego.pipeline.models import model_names

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "tests" / "configs" / "pancancer_tiny.yaml"
PANCANCER = ["-s", "workflow/pancancer.smk", "--configfile", "pancancer_tiny.yaml"]
# cohort -> the modalities it should get (tiny config: min_columns 4)
EXPECTED = {"tcga_aaa": ["clinical", "rnaseq"], "tcga_bbb": ["clinical", "mut"]}


def pancancer_copy(work: Path) -> Path:
    """A working copy with the tiny pan-cancer config, the cluster profile and a data folder:
    tcga_aaa (given 2-fold splits; 2 CNV columns, too few; no mutations), tcga_bbb (no
    splits: the workflow makes them; no RNA-seq; 4 CNV columns, 1 constant: too few; is_female
    constant, 2 ages missing) and tcga_ccc (RNA-seq only, no clinical columns: nothing to merge
    or fuse, so left out of the run)."""
    make_working_copy(work)
    (work / "cluster").symlink_to(ROOT / "cluster")
    shutil.copy(CONFIG, work / "pancancer_tiny.yaml")
    data = work / "data"
    write_cohort(data, "tcga_aaa", synthetic_cohort(40, {"_rnaseq": 8, "_cnv": 2}, seed=1), folds=2)
    bbb = synthetic_cohort(
        40, {"_cnv": 4, "_mut": 6}, seed=2, constant=["is_female", "G3_cnv"], missing_age=2
    )
    write_cohort(data, "tcga_bbb", bbb)
    ccc = synthetic_cohort(40, {"_rnaseq": 8}, seed=3).drop(columns=["age", "is_female"])
    write_cohort(data, "tcga_ccc", ccc)
    return work


@pytest.fixture(scope="module")
def pancancer_run(tmp_path_factory) -> Path:
    """The tiny pan-cancer run, done once; its pan-cancer results folder."""
    work = pancancer_copy(tmp_path_factory.mktemp("pancancer"))
    run_snakemake(*PANCANCER, "--cores", "2", cwd=work, timeout=1800)
    return work / "results" / "pancancer"


@pytest.mark.slow
def test_pancancer_report_has_every_cohort_and_model(pancancer_run):
    for name in ("report.html", "cindex.tsv", "paired.tsv", "modalities.tsv"):
        assert (pancancer_run / name).is_file(), name
    cindex = pd.read_csv(pancancer_run / "cindex.tsv", sep="\t")
    for cohort, mods in EXPECTED.items():
        assert (pancancer_run / cohort / "metrics.tsv").is_file()
        assert (pancancer_run / cohort / "report.html").is_file()
        expected = set(model_names(task="survival", modalities=mods, experiments={}))
        got = set(cindex.loc[cindex["cohort"] == cohort, "model"])
        assert got == expected, (cohort, got ^ expected)
        assert (cindex.loc[cindex["cohort"] == cohort, "n"] == 2).all()  # 2 folds each
    pooled = cindex[cindex["cohort"] == "mean_over_cohorts"].set_index("model")
    assert pooled.loc["lego_fuse", "n"] == 2 and pooled.loc["block_rnaseq", "n"] == 1
    paired = pd.read_csv(pancancer_run / "paired.tsv", sep="\t")
    pairs = {
        (m, b) for m in ("lego_fuse", "lego_merge") for b in ("coxnet", "rsf", "e2e_concat_fusion")
    }
    for scope in [*EXPECTED, "mean_over_cohorts"]:
        part = paired[paired["scope"] == scope]
        assert set(zip(part["model"], part["baseline"], strict=True)) == pairs, scope
        assert (part["wins"] + part["ties"] + part["losses"] <= part["n"]).all()
    html = (pancancer_run / "report.html").read_text()
    assert "tcga_aaa" in html and "tcga_bbb" in html and "nearly empty" in html


@pytest.mark.slow
def test_pancancer_report_says_which_groups_were_left_out_and_why(pancancer_run):
    groups = pd.read_csv(pancancer_run / "modalities.tsv", sep="\t")
    kept = groups[groups["kept"]].groupby("cohort")["modality"].apply(sorted).to_dict()
    assert kept == EXPECTED
    why = groups.set_index(["cohort", "modality"])["reason"]
    assert why[("tcga_aaa", "cnv")].startswith("nearly empty")
    assert why[("tcga_aaa", "mut")].startswith("absent")
    assert why[("tcga_bbb", "rnaseq")].startswith("absent")
    assert "is_female constant" in why[("tcga_bbb", "clinical")]
    assert "3 usable of 4" in why[("tcga_bbb", "cnv")]
    # the cohort without split files got folds made by the workflow, and the report says so
    assert (pancancer_run / "tcga_bbb" / "splits" / "fold1.tsv").is_file()
    # the cohort with one usable group is left out of the run, and the report says why
    assert not (pancancer_run / "tcga_ccc").exists()
    assert why[("tcga_ccc", "rnaseq")].startswith("usable, but the cohort is left out")
    html = (pancancer_run / "report.html").read_text()
    assert "Left out of the run, with fewer than 2 usable column groups" in html
    assert "tcga_ccc" in html and "none: cohort left out" in html
    assert "<td>given in splits/tcga_aaa/</td>" in html
    assert "<td>made by the workflow</td>" in html
    cindex = pd.read_csv(pancancer_run / "cindex.tsv", sep="\t")
    assert "tcga_ccc" not in set(cindex["cohort"])


def test_the_rule_names_the_plan_checks_include_every_rule_snakemake_defines(tmp_path):
    """The clash check reads the rule names from the Snakefile's text; Snakemake's own list of
    the rules of the demo configuration is among them (some rules exist only in other
    configurations)."""
    work = make_working_copy(tmp_path / "work")
    proc = run_snakemake("--list-rules", cwd=work, timeout=300)
    defined = set(proc.stdout.split())
    assert len(defined) > 20
    assert defined <= set(workflow_rules(ROOT / "workflow" / "Snakefile"))


def test_pancancer_dry_run_under_the_cluster_profile_sizes_the_prefixed_rules(tmp_path):
    """The profile's per-rule resources reach every cohort's prefixed rules."""
    work = pancancer_copy(tmp_path / "wf")
    proc = subprocess.run(
        [*SNAKEMAKE, *PANCANCER, "--profile", "cluster", "-n"],
        cwd=work,
        env=profile_env(partition="cpu_q", gpu_partition="gpu_q"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "Using profile cluster" in out
    counts = jobs_by_rule(out)
    assert counts["tcga_aaa_train_block"] == 4 and counts["tcga_bbb_train_block"] == 4
    by_rule: dict[str, list[dict[str, str]]] = defaultdict(list)
    for rule, fields in job_blocks(out):
        if "resources" in fields:
            by_rule[rule].append(resources(fields))
    for rule, jobs in by_rule.items():
        base = next(
            (rule[len(p) :] for p in ("tcga_aaa_", "tcga_bbb_") if rule.startswith(p)), rule
        )
        for res in jobs:
            if base in GPU_RULES:
                assert res["gpu"] == "1" and res["cpus_per_gpu"] == "2", (rule, res)
                assert res["slurm_partition"] == "gpu_q", (rule, res)
            else:
                assert "gpu" not in res and res["slurm_partition"] == "cpu_q", (rule, res)
    # the profile's sizes, not the defaults: e.g. train_block's 16 GB
    assert {r["mem_mb"] for r in by_rule["tcga_aaa_train_block"]} == {"16000"}


def test_pancancer_plan_is_told_when_the_workflow_is_parsed(tmp_path):
    """The plan's messages reach Snakemake's output: files not read, each cohort's modalities
    and groups left out, where its folds come from (tcga_aaa's split files moved to MCAT's
    splits/5foldcv/ layout), the cohorts left out."""
    work = pancancer_copy(tmp_path / "wf")
    data = work / "data"
    (data / "tcga_ddd_all_clean.CSV.GZ").write_bytes(b"")
    (data / "splits" / "5foldcv").mkdir()
    (data / "splits" / "tcga_aaa").rename(data / "splits" / "5foldcv" / "tcga_aaa")
    proc = run_snakemake(*PANCANCER, "-n", "--quiet", cwd=work, timeout=300)
    out = proc.stdout + proc.stderr
    assert (
        "pancancer.folder: data: ignored 1 item(s) not named <cohort>_all_clean.csv.gz or "
        "<cohort>_all_clean.csv (lower-case extension): 'tcga_ddd_all_clean.CSV.GZ'"
    ) in out
    assert (
        "cohort 'tcga_aaa': modalities rnaseq, clinical; 2 folds given in "
        "splits/5foldcv/tcga_aaa/; left out: cnv (nearly empty: 2 usable of 2 column(s), fewer "
        "than min_columns = 4), mut (absent: no columns ending with '_mut')"
    ) in out
    assert "cohort 'tcga_bbb': modalities mut, clinical; 2 folds made by the workflow; " in out
    assert (
        "cohort 'tcga_ccc' (data/tcga_ccc_all_clean.csv.gz) is left out of the run: 1 usable "
        "column group(s) ['rnaseq']"
    ) in out


def test_pancancer_cohorts_whose_rule_names_clash_stop_the_plan(tmp_path):
    """Not Snakemake's bare error on a rule defined twice: the plan names both files."""
    work = pancancer_copy(tmp_path / "wf")
    data = work / "data"
    write_cohort(data, "kidney", synthetic_cohort(40, {"_rnaseq": 8, "_cnv": 6}, seed=1))
    write_cohort(data, "kidney_preprocess", synthetic_cohort(40, {"_rnaseq": 8, "_cnv": 6}))
    proc = run_snakemake(*PANCANCER, "-n", "--quiet", cwd=work, check=False, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "is already used by another rule" not in out
    assert (
        "cohorts 'kidney' (data/kidney_all_clean.csv.gz) and 'kidney_preprocess' "
        "(data/kidney_preprocess_all_clean.csv.gz) would both have a rule named "
        "'kidney_preprocess_omics'"
    ) in out
