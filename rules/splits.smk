# Patient-level K-fold splits, stratified by event and time; `tune` patients come from training.


rule splits:
    input:
        patients=INPUTS["patients"],
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
