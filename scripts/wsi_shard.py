"""Snakemake entry point: tile and encode the slides of one shard (mmlego.wsi.shards)."""

from mmlego.runlog import job_logging
from mmlego.wsi.shards import run_feature_shard

sm = snakemake  # noqa: F821
with job_logging(sm.log[0], threads=sm.threads) as log:
    table = run_feature_shard(
        sm.params.slides,
        wsi_dir=sm.params.wsi_dir,
        manifest=sm.output[0],
        tiling=sm.params.tiling,
        tissue=sm.params.tissue,
        seed=sm.params.seed,
        encoder=sm.params.encoder,
        encoder_options=sm.params.encoder_options,
        batch_size=sm.params.batch_size,
        num_workers=sm.params.num_workers,
        fail_fast=sm.params.fail_fast,
        coarser_slides=sm.params.coarser_slides,
        max_bad_tile_fraction=sm.params.max_bad_tile_fraction,
    )
    log.info(
        "shard %s: %d slides, by status %s, by action %s",
        sm.wildcards.shard,
        len(table),
        table["status"].value_counts().to_dict(),
        table["action"].value_counts().to_dict(),
    )
