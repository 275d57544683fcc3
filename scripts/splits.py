"""Snakemake entry point: patient-level K-fold splits with a tune subset of training patients."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821

from mmlego.cohort.splits import make_folds, write_folds
from mmlego.io import read_tsv
from mmlego.runlog import job_logging

sm = snakemake  # noqa: F821
with job_logging(sm.log[0]):
    patients = read_tsv(sm.input.patients).set_index("patient_id")
    folds = make_folds(
        patients,
        k=sm.params.k,
        seed=sm.params.seed,
        tune_fraction=sm.params.tune_fraction,
        by="label" if sm.params.task == "classification" else "survival",
    )
    write_folds(folds, str(Path(sm.output[0]).parent))
