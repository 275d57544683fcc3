"""Snakemake entry point: import the user's feature files of one shard's slides
(wsi.features_from; mmlego.wsi.shards)."""

from mmlego.runlog import job_logging
from mmlego.wsi.shards import run_import_shard

sm = snakemake  # noqa: F821
with job_logging(sm.log[0]) as log:
    table = run_import_shard(
        sm.params.slides,
        folder=sm.params.folder,
        wsi_dir=sm.params.wsi_dir,
        manifest=sm.output[0],
        sources=sm.params.sources,
        fail_fast=sm.params.fail_fast,
    )
    log.info(
        "shard %s: %d slides imported from %s, by status %s, by action %s",
        sm.wildcards.shard,
        len(table),
        sm.params.folder,
        table["status"].value_counts().to_dict(),
        table["action"].value_counts().to_dict(),
    )
