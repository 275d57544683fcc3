"""Snakemake entry point: score every model on every fold's validation patients."""

from mmlego.evaluation.evaluate import (
    cohort_classes,
    evaluate_predictions,
    paired_table,
    summarise,
)
from mmlego.io import read_tsv, write_tsv
from mmlego.pipeline import Paths
from mmlego.pipeline.fold import DEVELOPMENT_ROLES, patients_in
from mmlego.runlog import job_logging

sm = snakemake  # noqa: F821
with job_logging(sm.log[0]):
    folds = sm.params.folds
    pred_files = {Paths.parse_predictions(p): p for p in sm.input.predictions}
    splits = {fold: read_tsv(path) for fold, path in zip(folds, sm.input.splits, strict=True)}
    patients = read_tsv(sm.input.patients).set_index("patient_id")
    train_outcomes = {
        fold: patients.loc[patients_in(s, DEVELOPMENT_ROLES)] for fold, s in splits.items()
    }
    metrics = evaluate_predictions(
        pred_files,
        task=sm.params.task,
        train_outcomes=train_outcomes if sm.params.task == "survival" else None,
        modalities=sm.params.modalities,
        oracle=read_tsv(sm.input.truth[0]) if sm.input.truth else None,
        splits=splits,
        classes=cohort_classes(patients["label"]) if sm.params.task == "classification" else None,
    )
    write_tsv(metrics, sm.output.metrics)
    write_tsv(summarise(metrics, seed=sm.params.seed), sm.output.summary)
    write_tsv(paired_table(metrics, task=sm.params.task), sm.output.paired)
