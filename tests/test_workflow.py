"""Real Snakemake runs of the workflow: dry run of the default config, a tiny end-to-end run,
a partial rerun by target, and the linter."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml
from workflow_utils import (  # noqa: F401
    ROOT,
    TINY_EXPERIMENTS,
    jobs_by_rule,
    make_working_copy,
    private_copy,
    run_snakemake,
)

STAGE_RULES = {
    "demo_tables", "demo_slides", "wsi_shard", "patient_bags", "splits",
    "preprocess_omics", "train_block", "merge", "fuse", "late_fusion", "evaluate", "report",
    "check_cohort",
}  # fmt: skip


@pytest.fixture(scope="module")
def project(tiny_project):
    return tiny_project


def test_dry_run_of_default_config_lists_every_stage(tmp_path):
    out = run_snakemake("-n", "--cores", "2", cwd=make_working_copy(tmp_path)).stdout
    counts = jobs_by_rule(out)
    assert STAGE_RULES <= set(counts), STAGE_RULES - set(counts)
    assert counts["train_block"] == 3 * 5  # wsi, rnaseq, cnv x 5 folds
    assert counts["merge"] == counts["fuse"] == 5


@pytest.mark.slow
def test_tiny_end_to_end_outputs(tiny_run):
    metrics = pd.read_csv(tiny_run / "metrics.tsv", sep="\t")
    assert list(metrics.columns) == ["model", "fold", "metric", "value"]
    models = set(metrics["model"])
    expected = {
        "block_wsi",
        "block_rnaseq",
        "block_cnv",
        "late_fusion_mean_risk",
        "lego_merge",
        "lego_fuse",
    }
    assert expected <= models
    cidx = metrics[metrics["metric"] == "c_index"]
    assert set(cidx["fold"]) == {0, 1}
    assert cidx["value"].between(0, 1).all()
    # the oracle uses the synthetic true risk, which no model reads: it must be clearly informative
    oracle = cidx[cidx["model"] == "oracle_synthetic_true_risk"]["value"]
    assert len(oracle) == 2 and oracle.mean() > 0.7
    html = (tiny_run / "report.html").read_text()
    assert "synthetic" in html.lower() and "lego_fuse" in html
    # every validation patient with some modality gets a LegoMerge prediction
    for fold in (0, 1):
        split = pd.read_csv(tiny_run / "splits" / f"fold{fold}.tsv", sep="\t")
        preds = pd.read_csv(tiny_run / "predictions" / "lego_merge" / f"fold{fold}.tsv", sep="\t")
        assert set(preds["patient_id"]) == set(split.loc[split["role"] == "val", "patient_id"])
        assert preds["risk"].notna().all()


@pytest.mark.slow
def test_imbalance_experiments_added_to_a_finished_run(tiny_project, tiny_run, tmp_path):
    """Switching the modality-imbalance experiments on runs their jobs, then the evaluation and
    the report, and nothing the run already has; their models are scored and plotted."""
    work = private_copy(tiny_project, tmp_path / "wf")
    (work / "experiments.yaml").write_text(yaml.safe_dump({"experiments": TINY_EXPERIMENTS}))
    proc = run_snakemake(
        "--cores", "2", "--configfile", "tiny.yaml", "experiments.yaml", cwd=work
    )  # fmt: skip
    counts = jobs_by_rule(proc.stdout + proc.stderr)
    assert counts["train_block_disjoint"] == 3 * 2 and counts["fuse_budget"] == 2 * 2, counts
    assert counts["merge_disjoint"] == counts["fuse_disjoint"] == 2, counts
    assert not {"train_block", "merge", "fuse", "wsi_shard", "preprocess_omics"} & set(counts)
    res = work / "results" / "demo"
    metrics = pd.read_csv(res / "metrics.tsv", sep="\t")
    scored = set(metrics.loc[metrics["metric"] == "c_index", "model"])
    expected = {"lego_fuse_paired0", "lego_fuse_paired50", "disjoint_lego_merge"}
    assert expected | {"disjoint_lego_fuse", "disjoint_block_wsi", "lego_fuse"} <= scored
    assert "paired-data budget curve of LegoFuse" in (res / "report.html").read_text()


@pytest.mark.slow
def test_the_demo_runs_as_a_classification_task(tiny_project, tiny_run, tmp_path):
    """`task: classification` on the demo predicts its synthetic subtype: every model is scored
    by AUC, and the true risk (a survival oracle) is left out of the evaluation."""
    work = private_copy(tiny_project, tmp_path / "wf")
    proc = run_snakemake(
        "--cores", "2", "--configfile", "tiny.yaml", "--config", "task=classification", cwd=work
    )  # fmt: skip
    counts = jobs_by_rule(proc.stdout + proc.stderr)
    assert counts["train_block"] == 3 * 2 and "wsi_shard" not in counts, counts
    metrics = pd.read_csv(work / "results" / "demo" / "metrics.tsv", sep="\t")
    auc = metrics[metrics["metric"] == "auc"]
    scored = set(auc["model"])
    assert {"lego_fuse", "lego_merge", "block_wsi", "logistic_enet", "random_forest"} <= scored
    assert auc["value"].between(0, 1).all() and "c_index" not in set(metrics["metric"])
    assert "oracle_synthetic_true_risk" not in set(metrics["model"])


@pytest.mark.slow
def test_nothing_to_do_after_a_complete_run(tiny_run, project):
    out = run_snakemake("-n", "--cores", "2", "--configfile", "tiny.yaml", cwd=project).stdout
    assert "Nothing to be done" in out


@pytest.mark.slow
def test_partial_rerun_by_target(tiny_run, project, tmp_path):
    project = private_copy(project, tmp_path / "wf")
    target = "results/demo/merge/fold0.pt"
    (project / target).unlink()
    before = {p: p.stat().st_mtime_ns for p in (project / "results/demo/blocks").rglob("*.pt")}
    proc = run_snakemake(target, "--cores", "2", "--configfile", "tiny.yaml", cwd=project)
    out = proc.stdout + proc.stderr
    assert (project / target).is_file()
    after = {p: p.stat().st_mtime_ns for p in (project / "results/demo/blocks").rglob("*.pt")}
    assert before == after  # no block retrained
    assert jobs_by_rule(out) == {"merge": 1}


def test_lint_is_clean(project):
    proc = run_snakemake("--lint", cwd=project, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Lints for" not in proc.stdout + proc.stderr
