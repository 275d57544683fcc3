# Tabular baselines on the same folds: a penalised linear model (Coxnet for survival,
# elastic-net logistic regression for classification; penalty chosen by inner CV over the fold's
# training patients) and a random (survival) forest, both on the per-fold tables and the
# patients' mean-pooled slide features (z-scored with the fold's training patients).

SLIDE_MEANS = [PATHS.slide_means] if SLIDE_MODALITIES else []


rule slide_means:
    input:
        bags=PATHS.patient_bags,
    output:
        PATHS.slide_means,
    log:
        PATHS.log("slide_means"),
    benchmark:
        PATHS.benchmark("slide_means")
    conda:
        "../envs/wsi.yaml"
    params:
        code=code("slide_means.py"),
    script:
        "../scripts/slide_means.py"


rule linear_baseline:
    input:
        data=expand(PATHS.omics(fold="{{fold}}"), modality=TABLE_MODALITIES),
        slide_means=SLIDE_MEANS,
        patients=INPUTS["patients"],
        split=PATHS.split(),
    output:
        predictions=PATHS.predictions(BASELINE),
        cv=PATHS.cv(BASELINE),
    log:
        PATHS.log("linear_baseline", "fold{fold}"),
    benchmark:
        PATHS.benchmark("linear_baseline", "fold{fold}")
    conda:
        "../envs/evaluation.yaml"
    params:
        tables=TABLE_MODALITIES,
        slides=SLIDE_MODALITIES,
        task=config["task"],
        seed=config["seed"],
        baselines=config["baselines"],
        code=code("linear_baseline.py"),
    script:
        "../scripts/linear_baseline.py"


rule forest_baseline:
    input:
        data=expand(PATHS.omics(fold="{{fold}}"), modality=TABLE_MODALITIES),
        slide_means=SLIDE_MEANS,
        patients=INPUTS["patients"],
        split=PATHS.split(),
    output:
        predictions=PATHS.predictions(FOREST),
    log:
        PATHS.log("forest_baseline", "fold{fold}"),
    benchmark:
        PATHS.benchmark("forest_baseline", "fold{fold}")
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
        baselines=config["baselines"],
        code=code("forest_baseline.py"),
    script:
        "../scripts/forest_baseline.py"


BENCHMARKS += expand(
    PATHS.benchmark("{step}", "fold{fold}"),
    step=["linear_baseline", "forest_baseline"],
    fold=FOLDS,
) + ([PATHS.benchmark("slide_means")] if SLIDE_MODALITIES else [])
