# Evaluation of every model on every fold's validation patients, and the report.


rule evaluate:
    input:
        predictions=expand(
            f"{RESULTS}/predictions/{{model}}/fold{{fold}}.tsv",
            model=MODELS + FUSION_BASELINES + EXPERIMENT_MODELS,
            fold=FOLDS,
        ),
        splits=expand(f"{RESULTS}/splits/fold{{fold}}.tsv", fold=FOLDS),
        patients=INPUTS["patients"],
        truth=[INPUTS["truth"]] if INPUTS["truth"] else [],
    output:
        metrics=f"{RESULTS}/metrics.tsv",
        summary=report(
            f"{RESULTS}/metrics_summary.tsv",
            caption="../config/metrics_caption.rst",
            category="Metrics",
        ),
        paired=report(
            f"{RESULTS}/metrics_paired.tsv",
            caption="../config/metrics_caption.rst",
            category="Metrics",
        ),
    log:
        f"{LOGS}/evaluate.log",
    benchmark:
        f"{BENCH}/evaluate.tsv"
    conda:
        "../envs/evaluation.yaml"
    params:
        task=config["task"],
        folds=FOLDS,
        modalities=MODALITIES,
        seed=config["seed"],
    script:
        "../scripts/evaluate.py"


rule report:
    input:
        metrics=f"{RESULTS}/metrics.tsv",
        paired=f"{RESULTS}/metrics_paired.tsv",
        predictions=expand(
            f"{RESULTS}/predictions/{{model}}/fold{{fold}}.tsv",
            model=MODELS + FUSION_BASELINES + EXPERIMENT_MODELS,
            fold=FOLDS,
        ),
        patients=INPUTS["patients"],
        availability=f"{RESULTS}/availability.tsv",
        wsi_qc=[f"{RESULTS}/wsi/qc.tsv"] if SLIDE_IDS else [],
        # the shards writing the first slides' QC pictures (none when features are imported)
        qc_shards=[] if FEATURES_FROM else PLAN.manifests(SHARD_DIR, SLIDE_IDS[:6]),
        histories=expand(f"{RESULTS}/fuse/fold{{fold}}.history.tsv", fold=FOLDS),
        block_histories=expand(
            f"{RESULTS}/blocks/{{modality}}/fold{{fold}}.history.tsv",
            modality=MODALITIES,
            fold=FOLDS,
        ),
        e2e_histories=expand(
            f"{RESULTS}/baselines/e2e_concat_fusion/fold{{fold}}.history.tsv",
            fold=FOLDS,
        ),
    output:
        report(
            f"{RESULTS}/report.html",
            caption="../config/report_caption.rst",
            category="Benchmark report",
        ),
    log:
        f"{LOGS}/report.log",
    conda:
        "../envs/evaluation.yaml"
    params:
        config=config,
        cohort=config["cohort"],
        benchmarks=BENCH,
        inputs=INPUTS,
        modalities=MODALITIES,
        qc_images=(
            []
            if FEATURES_FROM
            else [f"{RESULTS}/wsi/qc/{s}.png" for s in SLIDE_IDS[:6]]
        ),
    script:
        "../scripts/report.py"
