# Tabular baselines on the same folds: a penalised linear model (Coxnet for survival,
# elastic-net logistic regression for classification; penalty chosen by inner CV over the fold's
# training patients) and a random (survival) forest, both on the per-fold tables and the
# patients' mean-pooled slide features (z-scored with the fold's training patients).

SLIDE_MEANS = [f"{RESULTS}/baselines/slide_means.tsv"] if SLIDE_MODALITIES else []


rule slide_means:
    input:
        bags=f"{RESULTS}/wsi/patient_bags.h5",
    output:
        f"{RESULTS}/baselines/slide_means.tsv",
    log:
        f"{LOGS}/slide_means.log",
    benchmark:
        f"{BENCH}/slide_means.tsv"
    conda:
        "../envs/wsi.yaml"
    script:
        "../scripts/slide_means.py"


rule linear_baseline:
    input:
        data=expand(
            f"{RESULTS}/omics/{{modality}}/fold{{{{fold}}}}.npz",
            modality=TABLE_MODALITIES,
        ),
        slide_means=SLIDE_MEANS,
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
        tables=TABLE_MODALITIES,
        slides=SLIDE_MODALITIES,
        task=config["task"],
        seed=config["seed"],
        baselines=config.get("baselines", {}),
    script:
        "../scripts/linear_baseline.py"


rule forest_baseline:
    input:
        data=expand(
            f"{RESULTS}/omics/{{modality}}/fold{{{{fold}}}}.npz",
            modality=TABLE_MODALITIES,
        ),
        slide_means=SLIDE_MEANS,
        patients=INPUTS["patients"],
        split=f"{RESULTS}/splits/fold{{fold}}.tsv",
    output:
        predictions=f"{RESULTS}/predictions/{FOREST}/fold{{fold}}.tsv",
    log:
        f"{LOGS}/forest_baseline/fold{{fold}}.log",
    benchmark:
        f"{BENCH}/forest_baseline/fold{{fold}}.tsv"
    conda:
        "../envs/evaluation.yaml"
    threads: 4
    resources:
        mem_mb=4000,
        runtime=60,
    params:
        tables=TABLE_MODALITIES,
        slides=SLIDE_MODALITIES,
        task=config["task"],
        seed=config["seed"],
        n_bins=config["survival"]["n_bins"],
        baselines=config.get("baselines", {}),
    script:
        "../scripts/forest_baseline.py"
