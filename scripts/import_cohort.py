"""Snakemake entry point: import the user's cohort (MCAT CSV or sheets) into the cohort folder."""

from pathlib import Path

from mmlego.cohort.mcat import load_mcat
from mmlego.cohort.sheets import ColumnGroup, load_cohort, write_cohort_folder
from mmlego.runlog import job_logging

sm = snakemake  # noqa: F821
p = sm.params
with job_logging(sm.log[0]) as log:
    groups = {m: ColumnGroup.from_config(spec) for m, spec in p.columns.items()}
    slide_modality = p.slide_modality or "wsi"
    if p.source == "mcat":
        cohort = load_mcat(
            sm.input.mcat_csv,
            modalities=groups,
            task=p.task,
            label_column=p.label_column,
            classes=p.classes,
            slide_dir=p.slide_dir if p.slide_modality else None,
            missing_slides=p.missing_slides,
            allow_missing_features=p.allow_missing,
            slide_modality=slide_modality,
        )
    else:
        cohort = load_cohort(
            patients=sm.input.patients,
            slides=sm.input.get("slides") if p.slide_modality else None,
            omics={m: sm.input[f"table_{m}"] for m in p.tables if m not in groups},
            column_groups=groups,
            task=p.task,
            slide_modality=slide_modality,
            allow_missing_features=p.allow_missing,
            label_column=p.label_column or "label",
            classes=p.classes,
        )
    write_cohort_folder(cohort, Path(sm.output.patients).parent)
    log.info(
        "cohort: %d patient(s), %d excluded; modalities: %s",
        len(cohort.patients),
        len(cohort.excluded),
        cohort.availability().sum().to_dict(),
    )
    if p.task == "classification":
        log.info("classes (patients): %s", cohort.patients["label"].value_counts().to_dict())
