"""Snakemake entry point: score every model on every fold's validation patients."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821

from mmlego.evaluation.evaluate import evaluate_predictions, paired_table, summarise
from mmlego.io import read_tsv, write_tsv
from mmlego.runlog import job_logging

sm = snakemake  # noqa: F821
with job_logging(sm.log[0]):
    folds = sm.params.folds
    # predictions/<model>/fold<k>.tsv
    pred_files = {(Path(p).parent.name, int(Path(p).stem[4:])): p for p in sm.input.predictions}
    splits = {fold: read_tsv(path) for fold, path in zip(folds, sm.input.splits, strict=True)}
    patients = read_tsv(sm.input.patients).set_index("patient_id")
    train_outcomes = {
        fold: patients.loc[s.loc[s["role"] != "val", "patient_id"]] for fold, s in splits.items()
    }
    metrics = evaluate_predictions(
        pred_files,
        task=sm.params.task,
        train_outcomes=train_outcomes if sm.params.task == "survival" else None,
        modalities=sm.params.modalities,
        oracle=read_tsv(sm.input.truth[0]) if sm.input.truth else None,
        splits=splits,
    )
    write_tsv(metrics, sm.output.metrics)
    write_tsv(summarise(metrics, seed=sm.params.seed), sm.output.summary)
    write_tsv(paired_table(metrics, task=sm.params.task), sm.output.paired)
