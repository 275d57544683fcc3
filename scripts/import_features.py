"""Snakemake entry point: one slide's features from a CLAM/TRIDENT file (wsi.features_from)."""

from mmlego.runlog import job_logging
from mmlego.wsi.byo import import_slide_features

sm = snakemake  # noqa: F821
with job_logging(sm.log[0]) as log:
    n = import_slide_features(
        sm.params.folder, sm.wildcards.slide, sm.output[0], fail_fast=sm.params.fail_fast
    )
    log.info("%s: %d feature rows imported from %s", sm.wildcards.slide, n, sm.params.folder)
