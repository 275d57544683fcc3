"""Checks of the workflow configuration beyond its JSON schema, and where a cohort's inputs live.

The schema (config/schemas/config.schema.yaml) checks types, ranges and unknown keys; the checks
here need several keys at once (a table modality needs a table file, a demo cohort can only have
the modalities the demo generates, ...). Both run before any job.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from mmlego.io import read_tsv

DEMO = "demo"
DEMO_TABLES = ("rnaseq", "cnv")


class ConfigError(ValueError):
    """A configuration value is wrong; the message names the key."""


def check_config(config: dict[str, Any]) -> None:
    """Raise :class:`ConfigError` naming the key if the configuration is inconsistent."""
    mods = config["modalities"]
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
    if config["cohort"] == DEMO:
        unknown = [m for m, s in mods.items() if s["type"] == "table" and m not in DEMO_TABLES]
        if unknown:
            raise ConfigError(
                f"modalities: the synthetic demo cohort has tables {list(DEMO_TABLES)} only, "
                f"not {unknown}"
            )
        return
    inputs = config.get("inputs", {})
    if not inputs.get("patients"):
        raise ConfigError(f"inputs.patients: required for cohort {config['cohort']!r}")
    if slide_mods and not inputs.get("slides"):
        raise ConfigError(f"inputs.slides: required by the slides modality {slide_mods[0]!r}")
    tables = inputs.get("tables", {})
    for name, spec in mods.items():
        if spec["type"] == "table" and name not in tables:
            raise ConfigError(f"inputs.tables.{name}: required by table modality {name!r}")
    for key, path in [("patients", inputs["patients"]), ("slides", inputs.get("slides"))] + [
        (f"tables.{k}", v) for k, v in tables.items()
    ]:
        if path and not Path(path).is_file():
            raise ConfigError(f"inputs.{key}: file {path!r} does not exist")


def cohort_inputs(config: dict[str, Any], *, results: str) -> dict[str, Any]:
    """Paths of the cohort sheets: the generated synthetic cohort's, or the user's."""
    if config["cohort"] == DEMO:
        base = f"{results}/cohort"
        return {
            "patients": f"{base}/patients.tsv",
            "slides": f"{base}/slides.tsv",
            "tables": {m: f"{base}/omics/{m}.tsv" for m in DEMO_TABLES},
            "truth": f"{base}/synthetic_true_risk.tsv",
        }
    inputs = config["inputs"]
    return {
        "patients": inputs["patients"],
        "slides": inputs.get("slides") or None,
        "tables": dict(inputs.get("tables", {})),
        "truth": None,
    }


def slide_sheet(config: dict[str, Any], *, results: str) -> pd.DataFrame:
    """The slides to process (patient_id, slide_id, path, mpp), known before any job runs.

    For the demo the slide ids come from the cohort's pure design function, so that the DAG
    is complete at parse time (a dry run lists every job); for a user cohort from its sheet.
    """
    if config["cohort"] == DEMO:
        from mmlego.demo.cohort import design

        slides = design(demo_config(config)).slides
        return pd.DataFrame(
            {
                "patient_id": slides["patient_id"],
                "slide_id": slides["slide_id"],
                "path": [f"{results}/cohort/slides/{s}.tiff" for s in slides["slide_id"]],
                "mpp": None,
            }
        )
    path = Path(config["inputs"]["slides"])
    sheet = read_tsv(path)
    missing = {"patient_id", "slide_id", "path"} - set(sheet.columns)
    if missing:
        raise ConfigError(f"{path}: slide sheet lacks column(s) {sorted(missing)}")
    if "mpp" not in sheet.columns:
        sheet["mpp"] = None
    bad = ~sheet["slide_id"].astype(str).str.fullmatch(r"[A-Za-z0-9._-]+")
    if bad.any():
        raise ConfigError(
            f"{path}: slide_id must use only letters, digits, '.', '_' and '-' "
            f"(they become file names); offending: {sheet.loc[bad, 'slide_id'].head(5).tolist()}"
        )
    dup = sheet["slide_id"].duplicated()
    if dup.any():
        raise ConfigError(
            f"{path}: duplicate slide_id {sheet.loc[dup, 'slide_id'].head(5).tolist()}"
        )
    sheet["path"] = [
        str(p if Path(p).is_absolute() else (path.parent / p)) for p in sheet["path"].astype(str)
    ]
    return sheet[["patient_id", "slide_id", "path", "mpp"]]


def demo_config(config: dict[str, Any]):
    """The :class:`mmlego.demo.cohort.DemoConfig` for this workflow configuration."""
    from mmlego.demo.cohort import DemoConfig

    demo = config.get("demo", {})
    return DemoConfig(n_patients=demo.get("n_patients", 120), seed=config["seed"])
