"""Snakemake entry point: late-fusion baseline (mean of the unimodal blocks' scores)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821

from mmlego.runlog import job_logging
from mmlego.training.combine import late_fusion

sm = snakemake  # noqa: F821
with job_logging(sm.log[0]):
    late_fusion(block_predictions=list(sm.input), task=sm.params.task, out_predictions=sm.output[0])
