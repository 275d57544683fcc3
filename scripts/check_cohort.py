"""Snakemake entry point: validate the cohort's sheets and record each patient's modalities."""

from mmlego.cohort.sheets import load_cohort
from mmlego.io import write_tsv
from mmlego.runlog import job_logging

sm = snakemake  # noqa: F821
with job_logging(sm.log[0]) as log:
    cohort = load_cohort(
        patients=sm.input.patients,
        slides=sm.input.slides[0] if sm.input.slides else None,
        omics=sm.params.tables,
        task=sm.params.task,
        slide_modality=sm.params.slide_modality or "wsi",
        check_slide_files=sm.params.check_slide_files,
        allow_missing_features=sm.params.allow_missing,
    )
    availability = cohort.availability()
    log.info("modality availability:\n%s", availability.sum().to_string())
    write_tsv(availability.reset_index(), sm.output[0])
