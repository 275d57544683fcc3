"""Snakemake entry point: patch features of one slide's tiles."""

from mmlego.runlog import job_logging
from mmlego.wsi.features import extract_features

sm = snakemake  # noqa: F821
with job_logging(sm.log[0], threads=sm.threads) as log:
    n = extract_features(
        sm.input.slide,
        sm.input.coords,
        sm.output[0],
        encoder=sm.params.encoder,
        batch_size=sm.params.batch_size,
        encoder_options=sm.params.encoder_options,
        num_workers=sm.params.num_workers,
        fail_fast=sm.params.fail_fast,
        max_bad_tile_fraction=sm.params.max_bad_tile_fraction,
    )
    log.info("%s: %d tiles encoded with %s", sm.wildcards.slide, n, sm.params.encoder)
