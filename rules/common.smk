from pathlib import Path

from mmlego.config import (
    DEMO,
    ConfigError,
    check_config,
    cohort_inputs,
    drop_null_modalities,
    features_from,
    missing_slides,
    slide_sheet,
    split_files,
    uses_signatures,
)
from mmlego.pipeline import Paths
from mmlego.pipeline.code import code_version
from mmlego.pipeline.config import check_selection
from mmlego.pipeline.models import (
    history_models,
    model_for,
    model_names,
    selecting_models,
    spec_of,
)
from mmlego.pipeline.stages import stage_settings
from mmlego.wsi.encoders import encoder_gpus

# `wsi: null` in a user's config file removes a default modality
drop_null_modalities(config)
check_config(config)
check_selection(config)

PATHS = Paths.for_cohort(config["cohort"], root=config["results"])
RESULTS = PATHS.results
FOLDS = list(range(config["splits"]["k"]))
MODALITIES = sorted(config["modalities"])
TABLE_MODALITIES = [m for m in MODALITIES if config["modalities"][m]["type"] == "table"]
SLIDE_MODALITIES = [
    m for m in MODALITIES if config["modalities"][m]["type"] == "slides"
]
INPUTS = cohort_inputs(config, results=RESULTS)
SLIDES = slide_sheet(config, results=RESULTS) if SLIDE_MODALITIES else None
SLIDE_IDS = list(SLIDES["slide_id"]) if SLIDES is not None else []
SPLIT_FILES = split_files(config)
FEATURES_FROM = features_from(config)
EXPERIMENTS = config["experiments"]
# Every model the evaluation scores (mmlego.pipeline.models: the one list of models)
MODELS = model_names(
    task=config["task"], modalities=MODALITIES, experiments=EXPERIMENTS
)
# The tabular baselines' names for this task (coxnet / logistic_enet, rsf / random_forest)
BASELINE = model_for("linear_baseline", config["task"])
FOREST = model_for("forest_baseline", config["task"])


# The benchmark files of the jobs after the cohort stage, appended by each rules file: the
# report's run-time and compute-cost tables read them (declared inputs, so the report reruns
# when they change). The cohort stage's own are left out: a cohort folder brought in from
# elsewhere must not make its jobs run again for their benchmark files.
BENCHMARKS = []


def shard_gpus():
    """A slide shard job's GPUs: one when its patch encoder runs on one (hed_texture does
    not). An unknown encoder stops the workflow here, before any job."""
    if not SLIDE_MODALITIES or FEATURES_FROM:
        return 0
    try:
        return encoder_gpus(config["wsi"]["encoder"], config["wsi"]["encoder_options"])
    except ValueError as err:
        raise ConfigError(f"wsi.encoder: {err}") from None


def fold_blocks(model="block_{modality}"):
    """The fold's trained blocks, one per modality (a wildcard {fold} kept)."""
    return expand(PATHS.model_file(model, "{{fold}}"), modality=MODALITIES)


def predictions_of(models):
    """The prediction files of ``models`` in every fold."""
    return [PATHS.predictions(m, f) for m in models for f in FOLDS]


def histories_of(models):
    """The training histories of those of ``models`` that write one, in every fold."""
    return [PATHS.history(m, f) for m in history_models(models) for f in FOLDS]


def selections_of(models):
    """The selection tables of those of ``models`` that choose settings, in every fold."""
    return [PATHS.selection(m, f) for m in selecting_models(models) for f in FOLDS]


def code(script):
    """The version of the mmlego code a script runs: a changed library reruns its jobs."""
    return code_version(Path(workflow.basedir).parent / "scripts" / script)


wildcard_constraints:
    fold=r"\d+",
    slide=r"[A-Za-z0-9._-]+",
    modality="|".join(MODALITIES),


def modality_data(modality, fold):
    """The input of one modality in one fold: the patient bags, or the preprocessed table."""
    if config["modalities"][modality]["type"] == "slides":
        return PATHS.patient_bags
    return PATHS.omics(modality, fold)


def modality_inputs(wildcards):
    """What training a block of one modality in one fold needs."""
    return modality_data(wildcards.modality, wildcards.fold)


def all_modality_inputs(wildcards):
    return {f"data_{m}": modality_data(m, wildcards.fold) for m in MODALITIES}
