"""Snakemake entry point: fit one omics table's preprocessing on a fold's training patients."""

from mmlego.io import read_tsv
from mmlego.omics.preprocess import (
    OmicsParams,
    fit_transform_fold,
    read_signatures,
    task_outcomes,
)
from mmlego.pipeline.fold import FIT_ROLES, patients_in
from mmlego.runlog import job_logging

sm = snakemake  # noqa: F821
with job_logging(sm.log[0]) as log:
    table = read_tsv(sm.input.table).set_index("patient_id")
    split = read_tsv(sm.input.split)
    train = patients_in(split, FIT_ROLES).tolist()
    fold = fit_transform_fold(
        table,
        train,
        OmicsParams.from_config(sm.params.preprocess),
        name=sm.wildcards.modality,
        fold=int(sm.wildcards.fold),
        signatures=read_signatures(sm.input.signatures[0]) if sm.input.signatures else None,
        # only the training patients' rows are read (for outcome_top_k)
        outcomes=task_outcomes(read_tsv(sm.input.patients), sm.params.task).set_index("patient_id"),
    )
    fold.save(sm.output[0])
    log.info("%s fold %s: %s", sm.wildcards.modality, sm.wildcards.fold, fold.X.shape)
