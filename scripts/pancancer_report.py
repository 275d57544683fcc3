"""Snakemake entry point: the pan-cancer report (HTML page and TSVs) from every cohort's metrics."""

import pandas as pd

from mmlego.io import atomic_path
from mmlego.report.pancancer import (
    cindex_table,
    paired_pancancer,
    read_cohort_metrics,
    render_pancancer_report,
)
from mmlego.report.provenance import collect_provenance
from mmlego.runlog import job_logging

sm = snakemake  # noqa: F821


def write_tsv(table: pd.DataFrame, path: str) -> None:
    with atomic_path(path) as tmp:
        table.to_csv(tmp, sep="\t", index=False, float_format="%.6g")


with job_logging(sm.log[0]):
    pan = sm.params.pancancer
    metrics = read_cohort_metrics(dict(zip(sm.params.cohorts, sm.input.metrics, strict=True)))
    groups = pd.DataFrame(sm.params.groups)
    cindex = cindex_table(metrics)
    per_fold, paired = paired_pancancer(
        metrics,
        models=pan["lego_models"],
        baselines=pan["baselines"],
        tie=pan["tie"],
        seed=sm.params.seed,
    )
    write_tsv(cindex, sm.output.cindex)
    write_tsv(paired, sm.output.paired)
    write_tsv(groups, sm.output.groups)
    render_pancancer_report(
        out_html=sm.output.html,
        metrics=metrics,
        groups=groups,
        cindex=cindex,
        per_fold=per_fold,
        paired=paired,
        lego=pan["lego_models"],
        baselines=pan["baselines"],
        tie=pan["tie"],
        min_columns=pan["min_columns"],
        cohort_reports=sm.params.cohort_reports,
        folds=sm.params.folds,
        provenance=collect_provenance(
            config=sm.params.config, inputs=sm.params.csvs, seeds={"seed": sm.params.seed}
        ),
    )
