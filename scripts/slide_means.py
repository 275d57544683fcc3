"""Snakemake entry point: mean-pooled slide features per patient (for the tabular baselines)."""

from mmlego.runlog import job_logging
from mmlego.training.slide_means import write_slide_means

sm = snakemake  # noqa: F821
with job_logging(sm.log[0]):
    write_slide_means(bags_h5=sm.input.bags, out_tsv=sm.output[0])
