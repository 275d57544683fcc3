"""Snakemake entry point: patient-level folds (made here, or given) with a tune subset of
training patients."""

from pathlib import Path

from mmlego.cohort.splits import cohort_folds, write_folds
from mmlego.io import read_tsv
from mmlego.runlog import job_logging

sm = snakemake  # noqa: F821
p = sm.params
with job_logging(sm.log[0]) as log:
    patients = read_tsv(sm.input.patients).set_index("patient_id")
    folds = cohort_folds(
        patients,
        given=list(sm.input.given),
        excluded=read_tsv(sm.input.excluded[0])["patient_id"] if sm.input.excluded else (),
        k=p.k,
        seed=p.seed,
        tune_fraction=p.tune_fraction,
        task=p.task,
        stratify_site=p.stratify_site,
    )
    log.info("folds from %s", list(sm.input.given) or "the cohort (made here)")
    for i, fold in enumerate(folds):
        log.info("fold %d: %s", i, fold["role"].value_counts().to_dict())
    write_folds(folds, str(Path(sm.output[0]).parent))
