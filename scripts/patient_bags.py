"""Snakemake entry point: gather the slides' features into one bag per patient."""

from mmlego.runlog import job_logging
from mmlego.wsi.bags import write_patient_bags
from mmlego.wsi.shards import manifest_files

sm = snakemake  # noqa: F821
with job_logging(sm.log[0]):
    write_patient_bags(
        feature_files=manifest_files(sm.input.manifests, "features"),
        patient_of=sm.params.patient_of,
        out_h5=sm.output[0],
    )
