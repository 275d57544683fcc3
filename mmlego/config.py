"""Checks of the workflow configuration beyond its JSON schema, and where a cohort's inputs live.

The schema (config/schemas/config.schema.yaml) checks types, ranges and unknown keys; the checks
here need several keys at once (a table modality needs a table file or a column group, a demo
cohort can only have the modalities the demo generates, given split files must match
``splits.k``, ...). Both run before any job.

A user's cohort comes either as an MCAT/PORPOISE CSV (``inputs.mcat_csv``: one row per slide,
modalities chosen by ``modalities.<m>.columns``) or as sheets (``inputs.patients`` + ``slides``
+ ``tables``); either way the ``import_cohort`` rule writes the standard cohort folder
``results/<cohort>/cohort/`` that every later stage reads (:func:`cohort_inputs`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pandas as pd

from mmlego.cohort.mcat import mcat_slide_sheet
from mmlego.cohort.sheets import CohortError, ColumnGroup, kept_patients, read_slide_sheet
from mmlego.demo.cohort import DemoConfig, design

DEMO = "demo"
DEMO_TABLES = ("rnaseq", "cnv")
MIN_MODALITIES = 2
"""Fewest modalities of a run: LegoMerge and LegoFuse combine two or more LegoBlocks."""


class ConfigError(ValueError):
    """A configuration value is wrong; the message names the key."""


def drop_null_modalities(config: dict[str, Any]) -> list[str]:
    """Remove the modalities set to ``null`` (in place); return their names.

    A configuration file given with ``--configfile`` is merged over ``config/config.yaml`` key
    by key, so a cohort without slides removes the default ``wsi`` block with ``wsi: null``.
    """
    mods = config.get("modalities", {})
    dropped = sorted(m for m, spec in mods.items() if spec is None)
    for m in dropped:
        del mods[m]
    if not mods:
        raise ConfigError("modalities: every modality is null; at least one is needed")
    return dropped


def check_config(config: dict[str, Any]) -> None:
    """Raise :class:`ConfigError` naming the key if the configuration is inconsistent."""
    mods = config["modalities"]
    nulls = sorted(m for m, spec in mods.items() if spec is None)
    if nulls:
        raise ConfigError(f"modalities.{nulls[0]}: null; call drop_null_modalities first")
    if len(mods) < MIN_MODALITIES:
        raise ConfigError(
            f"modalities: MM-Lego merges and fuses {MIN_MODALITIES} or more modalities, but "
            f"this configuration has only {sorted(mods)}"
        )
    slide_mods = [m for m, spec in mods.items() if spec["type"] == "slides"]
    if len(slide_mods) > 1:
        raise ConfigError(
            f"modalities: only one modality may have type 'slides', got {sorted(slide_mods)}"
        )
    for name, spec in mods.items():
        if spec["type"] == "slides" and spec["encoder"]["kind"] != "abmil":
            raise ConfigError(
                f"modalities.{name}.encoder.kind: a slides modality needs a bag encoder "
                f"('abmil'), got {spec['encoder']['kind']!r}"
            )
        if spec["type"] == "slides" and ("columns" in spec or "preprocess" in spec):
            raise ConfigError(
                f"modalities.{name}: 'columns' and 'preprocess' are for table modalities"
            )
        if "columns" in spec:
            try:
                ColumnGroup.from_config(spec["columns"])
            except ValueError as err:
                raise ConfigError(f"modalities.{name}.columns: {err}") from None
    inputs = config.get("inputs", {})
    if config["cohort"] == DEMO:
        unknown = [m for m, s in mods.items() if s["type"] == "table" and m not in DEMO_TABLES]
        if unknown:
            raise ConfigError(
                f"modalities: the synthetic demo cohort has tables {list(DEMO_TABLES)} only, "
                f"not {unknown}"
            )
        grouped = [m for m, s in mods.items() if "columns" in s]
        if grouped:
            raise ConfigError(
                f"modalities.{grouped[0]}.columns: the synthetic demo cohort has fixed tables"
            )
        if features_from(config):
            raise ConfigError(
                "wsi.features_from: the synthetic demo cohort makes its own slides; feature "
                "files are imported for a user cohort"
            )
        _check_signatures(config)
        split_files(config)
        return
    source = cohort_source(config)
    tables = inputs.get("tables", {})
    if source == "mcat":
        if inputs.get("patients") or tables or inputs.get("slides"):
            raise ConfigError(
                "inputs: give either mcat_csv or patients (+ slides, tables), not both"
            )
        if slide_mods and not inputs.get("slide_dir") and not features_from(config):
            raise ConfigError(
                f"inputs.slide_dir: required by the slides modality {slide_mods[0]!r} "
                "(the folder of the slides named in the CSV's slide_id column), unless "
                "wsi.features_from gives their feature files"
            )
        if config["task"] == "classification" and not inputs.get("label_column"):
            raise ConfigError(
                "inputs.label_column: the classification task needs the CSV column holding "
                "the class (e.g. oncotree_code)"
            )
        for name, spec in mods.items():
            if spec["type"] == "table" and "columns" not in spec:
                raise ConfigError(
                    f"modalities.{name}.columns: required with inputs.mcat_csv (which column "
                    "group makes this modality: suffix, names or unsuffixed)"
                )
        files = [("mcat_csv", inputs["mcat_csv"])]
        if slide_mods and inputs.get("slide_dir"):
            if not Path(inputs["slide_dir"]).is_dir():
                raise ConfigError(
                    f"inputs.slide_dir: folder {inputs['slide_dir']!r} does not exist"
                    f"{relative_to_workdir(inputs['slide_dir'])}"
                )
    else:
        if not inputs.get("patients"):
            raise ConfigError(
                f"inputs.patients or inputs.mcat_csv: required for cohort {config['cohort']!r}"
            )
        if slide_mods and not inputs.get("slides"):
            raise ConfigError(f"inputs.slides: required by the slides modality {slide_mods[0]!r}")
        table_mods = [m for m, spec in mods.items() if spec["type"] == "table"]
        unused = sorted(set(tables) - set(table_mods))  # a misspelt name, or a modality removed
        for name in table_mods:
            if name in tables and "columns" in mods[name]:
                raise ConfigError(
                    f"modalities.{name}: has both a table (inputs.tables.{name}) and columns"
                )
            if name not in tables and "columns" not in mods[name]:
                raise ConfigError(
                    f"inputs.tables.{name}: required by table modality {name!r} (or give "
                    f"modalities.{name}.columns to take it from the patient sheet)"
                    + (f"; inputs.tables has {unused}, which no modality uses" if unused else "")
                )
        files = [("patients", inputs["patients"]), ("slides", inputs.get("slides"))] + [
            (f"tables.{k}", v) for k, v in tables.items()
        ]
    for key, path in files:
        if path and not Path(path).is_file():
            raise ConfigError(
                f"inputs.{key}: file {path!r} does not exist{relative_to_workdir(path)}"
            )
    if source != "mcat":
        # the patients' outcomes (survival times and events, or labels) are checked now, as
        # the cohort import checks them, so that a dry run shows a bad sheet before any job
        sheet_patients(config, task=config["task"])
    folder = features_from(config)
    if folder and not Path(folder).is_dir():
        raise ConfigError(
            f"wsi.features_from: folder {folder!r} does not exist{relative_to_workdir(folder)}"
        )
    _check_signatures(config)
    split_files(config)


def relative_to_workdir(path: str | os.PathLike) -> str:
    """For a message about a path that does not exist: where a relative one was looked for.
    The workflow reads the config's relative paths from its working directory (where snakemake
    runs), not from the config file's folder."""
    if Path(path).is_absolute():
        return ""
    return (
        f" (a relative path is read from the working directory {Path.cwd()}, not from the "
        "config file's folder; give it from there or as an absolute path)"
    )


def features_from(config: dict[str, Any]) -> str | None:
    """The folder of the user's CLAM/TRIDENT feature files (``wsi.features_from``), or None.

    With it the workflow imports each slide's features from there instead of tiling and
    encoding the slide, so the slide files themselves need not exist.
    """
    return config.get("wsi", {}).get("features_from") or None


def missing_slides(config: dict[str, Any]) -> str:
    """What to do with slide files that do not exist: ``inputs.missing_slides`` (error or
    drop), or ``keep`` when the slides are not read (``wsi.features_from``)."""
    if features_from(config):
        return "keep"
    return config.get("inputs", {}).get("missing_slides", "error")


def cohort_source(config: dict[str, Any]) -> str:
    """Where the cohort comes from: ``"demo"``, ``"mcat"`` (inputs.mcat_csv) or ``"sheets"``."""
    if config["cohort"] == DEMO:
        return DEMO
    return "mcat" if config.get("inputs", {}).get("mcat_csv") else "sheets"


def uses_signatures(spec: dict[str, Any]) -> bool:
    """Whether a modality's preprocessing scores gene-family signatures."""
    return spec.get("preprocess", {}).get("signatures", "none") != "none"


def _check_signatures(config: dict[str, Any]) -> None:
    users = [m for m, spec in config["modalities"].items() if uses_signatures(spec)]
    if not users:
        return
    path = config.get("inputs", {}).get("signatures")
    if not path:
        raise ConfigError(
            f"inputs.signatures: modalities.{users[0]}.preprocess.signatures needs the gene "
            "families file (e.g. MCAT's signatures.csv)"
        )
    if not Path(path).is_file():
        raise ConfigError(
            f"inputs.signatures: file {path!r} does not exist{relative_to_workdir(path)}"
        )


def split_files(config: dict[str, Any]) -> list[str]:
    """The given split files, one per fold (``[]``: folds are made by the workflow).

    ``inputs.split_files`` is a list of ``splits.k`` files or one pattern with ``{fold}``
    (0-based), e.g. ``data/tcga/splits/tcga_blca/splits_{fold}.csv``.
    """
    given = config.get("inputs", {}).get("split_files") or []
    k = config["splits"]["k"]
    if isinstance(given, str):
        if "{fold}" not in given:
            raise ConfigError(
                f"inputs.split_files: a single pattern must contain '{{fold}}', got {given!r}"
            )
        files = [given.replace("{fold}", str(i)) for i in range(k)]
    else:
        files = [str(f) for f in given]
        if files and len(files) != k:
            raise ConfigError(
                f"inputs.split_files: {len(files)} file(s) given but splits.k is {k}; give one "
                "file per fold"
            )
    absent = [f for f in files if not Path(f).is_file()]
    if absent:
        raise ConfigError(
            f"inputs.split_files: file(s) do not exist: {absent[:3]}"
            f"{relative_to_workdir(absent[0])}"
        )
    return files


def cohort_inputs(config: dict[str, Any], *, results: str) -> dict[str, Any]:
    """Paths of the cohort folder the workflow's stages read.

    The demo generates its folder; a user's cohort (MCAT CSV or sheets) is imported into
    ``<results>/cohort/`` by the ``import_cohort`` rule (one row per patient, validated).
    ``user`` holds the user's own files that the import reads.
    """
    base = f"{results}/cohort"
    mods = config["modalities"]
    tables = [m for m, s in mods.items() if s["type"] == "table"]
    inputs = config.get("inputs", {})
    if config["cohort"] == DEMO:
        return {
            "source": DEMO,
            "patients": f"{base}/patients.tsv",
            "slides": f"{base}/slides.tsv",
            "tables": {m: f"{base}/omics/{m}.tsv" for m in DEMO_TABLES},
            # the true risk scores survival only (the oracle model)
            "truth": f"{base}/synthetic_true_risk.tsv" if config["task"] == "survival" else None,
            "excluded": None,
            "signatures": inputs.get("signatures") or None,
            "user": {},
        }
    source = cohort_source(config)
    if source == "mcat":
        user = {"mcat_csv": inputs["mcat_csv"]}
    else:
        user = {"patients": inputs["patients"]}
        if inputs.get("slides"):
            user["slides"] = inputs["slides"]
        user |= {f"table_{m}": p for m, p in inputs.get("tables", {}).items() if m in tables}
    has_slides = any(s["type"] == "slides" for s in mods.values())
    return {
        "source": source,
        "patients": f"{base}/patients.tsv",
        "slides": f"{base}/slides.tsv" if has_slides else None,
        "tables": {m: f"{base}/omics/{m}.tsv" for m in tables},
        "truth": None,
        "excluded": f"{base}/excluded.tsv",
        "signatures": inputs.get("signatures") or None,
        "user": user,
    }


def slide_sheet(config: dict[str, Any], *, results: str) -> pd.DataFrame:
    """The slides to process (patient_id, slide_id, path, mpp), known before any job runs.

    For the demo the slide ids come from the cohort's pure design function, so that the DAG
    is complete at parse time (a dry run lists every job); for a user cohort from its sheet.
    """
    if config["cohort"] == DEMO:
        slides = design(demo_config(config)).slides
        return pd.DataFrame(
            {
                "patient_id": slides["patient_id"],
                "slide_id": slides["slide_id"],
                "path": [f"{results}/cohort/slides/{s}.tiff" for s in slides["slide_id"]],
                "mpp": None,
            }
        )
    inputs = config["inputs"]
    classes = inputs.get("classes") or None
    if cohort_source(config) == "mcat":
        try:
            return mcat_slide_sheet(
                inputs["mcat_csv"],
                slide_dir=inputs.get("slide_dir") or features_from(config),
                label_column=inputs.get("label_column") or None,
                classes=classes,
                missing_slides=missing_slides(config),
            )
        except ValueError as err:
            raise ConfigError(f"inputs.mcat_csv: {err}") from None
    try:
        sheet = read_slide_sheet(inputs["slides"])
    except CohortError as err:
        raise ConfigError(f"inputs.slides: {err}") from None
    if classes:
        # slides of patients of other classes are left out of the cohort: do not process them
        keep = sheet_patients(config)
        sheet = sheet[sheet["patient_id"].astype(str).isin(set(keep))]
    return sheet[["patient_id", "slide_id", "path", "mpp"]].reset_index(drop=True)


def sheet_patients(config: dict[str, Any], *, task: str | None = None) -> list[str]:
    """The patients that the import of a sheets cohort keeps (``inputs.classes``), its patient
    sheet read and checked as the import reads it (with ``task``: the outcome columns)."""
    inputs = config["inputs"]
    try:
        return kept_patients(
            inputs["patients"],
            task=task,
            label_column=inputs.get("label_column") or "label",
            classes=inputs.get("classes") or None,
        )
    except CohortError as err:
        raise ConfigError(f"inputs.patients: {err}") from None


def demo_config(config: dict[str, Any]) -> DemoConfig:
    """The :class:`mmlego.demo.cohort.DemoConfig` for this workflow configuration (validated:
    ``demo.n_patients`` has its schema default)."""
    return DemoConfig(n_patients=config["demo"]["n_patients"], seed=config["seed"])
