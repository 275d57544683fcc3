"""Snakemake entry point: embeddings of one frozen LegoBlock for the patients of its fold."""

from mmlego.pipeline.fold import Fold
from mmlego.runlog import job_logging
from mmlego.training.embeddings import write_block_embeddings

sm = snakemake  # noqa: F821
with job_logging(sm.log[0], threads=sm.threads):
    write_block_embeddings(
        name=sm.wildcards.modality,
        modality_spec=sm.params.modality,
        data_path=sm.input.data,
        block_path=sm.input.block,
        fold=Fold.read(
            split=sm.input.split, patients=sm.input.patients, index=int(sm.wildcards.fold)
        ),
        out_tsv=sm.output[0],
    )
