"""Snakemake entry point: tissue detection and tile coordinates of one slide."""

from mmlego.runlog import job_logging
from mmlego.wsi.tiling import tile_slide
from mmlego.wsi.tissue import tissue_params_from_config

sm = snakemake  # noqa: F821
with job_logging(sm.log[0]) as log:
    t = sm.params.tiling
    result = tile_slide(
        sm.input[0],
        sm.output.coords,
        target_mpp=t["target_mpp"],
        tile_size=t["tile_size"],
        tissue=tissue_params_from_config(sm.params.tissue),
        min_tissue=t["min_tissue"],
        max_tiles=t["max_tiles"],
        seed=sm.params.seed,
        mpp_override=sm.params.mpp,
        qc_png=sm.output.qc,
        slide_id=sm.wildcards.slide,
        fail_fast=sm.params.fail_fast,
        coarser_slides=sm.params.coarser_slides,
    )
    log.info("%s: %s", sm.wildcards.slide, result)
