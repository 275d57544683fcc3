"""Snakemake entry point: late-fusion baseline (mean of the unimodal blocks' scores)."""

from mmlego.runlog import job_logging
from mmlego.training.baselines import late_fusion

sm = snakemake  # noqa: F821
with job_logging(sm.log[0]):
    late_fusion(block_predictions=list(sm.input), task=sm.params.task, out_predictions=sm.output[0])
