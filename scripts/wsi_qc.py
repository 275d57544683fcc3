"""Snakemake entry point: the WSI stage's per-slide QC table (status, reason, tiles)."""

from mmlego.io import write_tsv
from mmlego.runlog import job_logging
from mmlego.wsi.bags import qc_table
from mmlego.wsi.qc import add_slide_notes
from mmlego.wsi.shards import manifest_files

sm = snakemake  # noqa: F821
with job_logging(sm.log[0]) as log:
    coords_files = manifest_files(sm.input.manifests, "coords")
    feature_files = manifest_files(sm.input.manifests, "features")
    table = qc_table(
        coords_files=coords_files, feature_files=feature_files, patient_of=sm.params.patient_of
    )
    table = add_slide_notes(table, coords_files=coords_files, feature_files=feature_files)
    write_tsv(table, sm.output[0])
    log.info("slides by status: %s", table["status"].value_counts().to_dict())
