# Patient-level K-fold splits, stratified by event and time (or given split files, e.g. MCAT's);
# `tune` patients are always carved from the fold's training patients.


rule splits:
    input:
        patients=INPUTS["patients"],
        availability=PATHS.availability,
        given=SPLIT_FILES,
        excluded=[INPUTS["excluded"]] if INPUTS["excluded"] else [],
    output:
        expand(PATHS.split("{fold}"), fold=FOLDS),
    log:
        PATHS.log("splits"),
    conda:
        "../envs/omics.yaml"
    params:
        k=config["splits"]["k"],
        tune_fraction=config["splits"]["tune_fraction"],
        stratify_site=config["splits"]["stratify_site"],
        seed=config["seed"],
        task=config["task"],
        code=code("splits.py"),
    script:
        "../scripts/splits.py"


rule check_cohort:
    input:
        patients=INPUTS["patients"],
        slides=[INPUTS["slides"]] if SLIDE_MODALITIES else [],
        tables=[INPUTS["tables"][m] for m in TABLE_MODALITIES],
    output:
        PATHS.availability,
    log:
        PATHS.log("check_cohort"),
    conda:
        "../envs/omics.yaml"
    params:
        task=config["task"],
        tables={m: INPUTS["tables"][m] for m in TABLE_MODALITIES},
        slide_modality=SLIDE_MODALITIES[0] if SLIDE_MODALITIES else None,
        # the demo's slides are made by the DAG itself; a user's must exist before it starts,
        # unless their features are imported (wsi.features_from)
        check_slide_files=config["cohort"] != DEMO and not FEATURES_FROM,
        allow_missing=config["inputs"]["allow_missing_features"],
        code=code("check_cohort.py"),
    script:
        "../scripts/check_cohort.py"
