# Patient-level K-fold splits, stratified by event and time; `tune` patients come from training.


rule splits:
    input:
        patients=INPUTS["patients"],
        availability=f"{RESULTS}/availability.tsv",
    output:
        expand(f"{RESULTS}/splits/fold{{fold}}.tsv", fold=FOLDS),
    log:
        f"{LOGS}/splits.log",
    conda:
        "../envs/omics.yaml"
    params:
        k=config["splits"]["k"],
        tune_fraction=config["splits"]["tune_fraction"],
        seed=config["seed"],
        task=config["task"],
    script:
        "../scripts/splits.py"


rule check_cohort:
    input:
        patients=INPUTS["patients"],
        slides=[INPUTS["slides"]] if SLIDE_MODALITIES else [],
        tables=[INPUTS["tables"][m] for m in TABLE_MODALITIES],
    output:
        f"{RESULTS}/availability.tsv",
    log:
        f"{LOGS}/check_cohort.log",
    conda:
        "../envs/omics.yaml"
    params:
        task=config["task"],
        tables={m: INPUTS["tables"][m] for m in TABLE_MODALITIES},
        slide_modality=SLIDE_MODALITIES[0] if SLIDE_MODALITIES else None,
        # the demo's slides are made by the DAG itself; a user's must exist before it starts
        check_slide_files=config["cohort"] != "demo",
    script:
        "../scripts/check_cohort.py"
