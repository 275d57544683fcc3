"""Snakemake entry point: patient-level folds (made here, or given) with a tune subset of
training patients."""

from pathlib import Path

from mmlego.cohort.splits import (
    add_tune,
    check_fold_events,
    make_folds,
    read_given_splits,
    write_folds,
)
from mmlego.io import read_tsv
from mmlego.runlog import job_logging

sm = snakemake  # noqa: F821
p = sm.params
by = "label" if p.task == "classification" else "survival"
with job_logging(sm.log[0]) as log:
    patients = read_tsv(sm.input.patients).set_index("patient_id")
    if sm.input.given:
        excluded = read_tsv(sm.input.excluded[0])["patient_id"] if sm.input.excluded else []
        given = read_given_splits(
            list(sm.input.given), patient_ids=patients.index, excluded=excluded
        )
        folds = [
            add_tune(fold, patients, fraction=p.tune_fraction, seed=p.seed, index=i, by=by)
            if not (fold["role"] == "tune").any()
            else fold
            for i, fold in enumerate(given)
        ]
        if p.task == "survival":
            check_fold_events(
                folds, patients, names=list(sm.input.given), hint="check the split files"
            )
        log.info("folds from %s", list(sm.input.given))
    else:
        folds = make_folds(
            patients,
            k=p.k,
            seed=p.seed,
            tune_fraction=p.tune_fraction,
            by=by,
            site=p.stratify_site,
        )
    for i, fold in enumerate(folds):
        log.info("fold %d: %s", i, fold["role"].value_counts().to_dict())
    write_folds(folds, str(Path(sm.output[0]).parent))
