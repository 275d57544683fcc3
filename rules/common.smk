import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir).parent))

from mmlego.config import (  # noqa: E402
    check_config,
    cohort_inputs,
    drop_null_modalities,
    features_from,
    missing_slides,
    slide_sheet,
    split_files,
    uses_signatures,
)
from mmlego.training.baselines import baseline_name  # noqa: E402
from mmlego.wsi.byo import existing_feature_file  # noqa: E402

# `wsi: null` in a user's config file removes a default modality
drop_null_modalities(config)
check_config(config)

RESULTS = f"results/{config['cohort']}"
LOGS = f"{RESULTS}/logs"
BENCH = f"{RESULTS}/benchmarks"
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
# Models scored by the evaluation: one unimodal block per modality, the late-fusion baseline,
# LegoMerge (no training), LegoFuse (fine-tuned on paired training patients) and the tabular
# baselines on the tables + mean-pooled slide features (rules/baselines.smk): a penalised linear
# model (Coxnet for survival, elastic-net logistic regression for classification) and a forest
# (random survival forest, random forest classifier).
BASELINE = baseline_name(config["task"])
FOREST = baseline_name(config["task"], kind="forest")
MODELS = [f"block_{m}" for m in MODALITIES] + [
    "late_fusion_mean_risk",
    "lego_merge",
    "lego_fuse",
    BASELINE,
    FOREST,
]


wildcard_constraints:
    fold=r"\d+",
    slide=r"[A-Za-z0-9._-]+",
    modality="|".join(MODALITIES),


def slide_path(wildcards):
    return SLIDES.loc[SLIDES["slide_id"] == wildcards.slide, "path"].iloc[0]


def slide_mpp(wildcards):
    mpp = SLIDES.loc[SLIDES["slide_id"] == wildcards.slide, "mpp"].iloc[0]
    return None if mpp != mpp or mpp in ("", None) else float(mpp)


def modality_inputs(wildcards):
    """What training a block of one modality in one fold needs."""
    kind = config["modalities"][wildcards.modality]["type"]
    if kind == "slides":
        return f"{RESULTS}/wsi/patient_bags.h5"
    return f"{RESULTS}/omics/{wildcards.modality}/fold{wildcards.fold}.npz"


def all_modality_inputs(wildcards):
    return {
        f"data_{m}": (
            f"{RESULTS}/wsi/patient_bags.h5"
            if config["modalities"][m]["type"] == "slides"
            else f"{RESULTS}/omics/{m}/fold{wildcards.fold}.npz"
        )
        for m in MODALITIES
    }


def byo_feature_file(folder, slide):
    """The slide's feature file under ``folder`` as an input list (empty when there is none:
    the import job records the slide as failed)."""
    found = existing_feature_file(folder, slide)
    return [str(found)] if found else []
