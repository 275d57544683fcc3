# Penalised linear baseline on the table modalities (Coxnet for survival, elastic-net logistic
# regression for classification); penalty chosen by inner CV over the fold's training patients.


rule linear_baseline:
    input:
        data=expand(
            f"{RESULTS}/omics/{{modality}}/fold{{{{fold}}}}.npz",
            modality=TABLE_MODALITIES,
        ),
        patients=INPUTS["patients"],
        split=f"{RESULTS}/splits/fold{{fold}}.tsv",
    output:
        predictions=f"{RESULTS}/predictions/{BASELINE}/fold{{fold}}.tsv",
        cv=f"{RESULTS}/baselines/{BASELINE}/fold{{fold}}.cv.tsv",
    log:
        f"{LOGS}/linear_baseline/fold{{fold}}.log",
    benchmark:
        f"{BENCH}/linear_baseline/fold{{fold}}.tsv"
    conda:
        "../envs/evaluation.yaml"
    params:
        modalities=TABLE_MODALITIES,
        task=config["task"],
        seed=config["seed"],
        baselines=config.get("baselines", {}),
    script:
        "../scripts/linear_baseline.py"
