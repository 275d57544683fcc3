"""Snakemake entry point: the WSI stage's per-slide QC table (status, reason, tiles)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821

from mmlego.io import write_tsv
from mmlego.runlog import job_logging
from mmlego.wsi.bags import qc_table
from mmlego.wsi.shards import manifest_files

sm = snakemake  # noqa: F821
with job_logging(sm.log[0]) as log:
    table = qc_table(
        coords_files=manifest_files(sm.input.manifests, "coords"),
        feature_files=manifest_files(sm.input.manifests, "features"),
        patient_of=sm.params.patient_of,
    )
    write_tsv(table, sm.output[0])
    log.info("slides by status: %s", table["status"].value_counts().to_dict())
