"""Snakemake entry point: write the synthetic demo cohort's tables."""

from mmlego.config import demo_config
from mmlego.demo.cohort import write_tables
from mmlego.runlog import job_logging

sm = snakemake  # noqa: F821
with job_logging(sm.log[0]):
    write_tables(sm.params.outdir, demo_config(sm.config))
