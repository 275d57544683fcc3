# Evaluation of every model on every fold's validation patients, and the report.


rule evaluate:
    input:
        predictions=predictions_of(MODELS),
        splits=expand(PATHS.split("{fold}"), fold=FOLDS),
        patients=INPUTS["patients"],
        truth=[INPUTS["truth"]] if INPUTS["truth"] else [],
    output:
        metrics=PATHS.metrics,
        summary=report(
            PATHS.metrics_summary,
            caption="../config/metrics_caption.rst",
            category="Metrics",
        ),
        paired=report(
            PATHS.metrics_paired,
            caption="../config/metrics_caption.rst",
            category="Metrics",
        ),
    log:
        PATHS.log("evaluate"),
    benchmark:
        PATHS.benchmark("evaluate")
    conda:
        "../envs/evaluation.yaml"
    params:
        task=config["task"],
        folds=FOLDS,
        modalities=MODALITIES,
        seed=config["seed"],
        code=code("evaluate.py"),
    script:
        "../scripts/evaluate.py"


BENCHMARKS.append(PATHS.benchmark("evaluate"))
# the report plots the training curves of the main models (not of the experiments)
REPORT_HISTORIES = [m for m in MODELS if not spec_of(m)[0].experiment]


rule report:
    input:
        metrics=PATHS.metrics,
        paired=PATHS.metrics_paired,
        predictions=predictions_of(MODELS),
        patients=INPUTS["patients"],
        availability=PATHS.availability,
        excluded=[INPUTS["excluded"]] if INPUTS["excluded"] else [],
        wsi_qc=[PATHS.wsi_qc] if SLIDE_IDS else [],
        # the shards writing the first slides' QC pictures (none when features are imported)
        qc_shards=[] if FEATURES_FROM else PLAN.manifests(SHARD_DIR, SLIDE_IDS[:6]),
        histories=histories_of(REPORT_HISTORIES),
        selections=selections_of(REPORT_HISTORIES),
        benchmarks=BENCHMARKS,
    output:
        report(
            PATHS.report,
            caption="../config/report_caption.rst",
            category="Benchmark report",
        ),
    log:
        PATHS.log("report"),
    conda:
        "../envs/evaluation.yaml"
    params:
        config=config,
        cohort=config["cohort"],
        # the cohort's results folder: the report's own folder
        results=lambda wildcards, output: str(Path(output[0]).parent),
        inputs=INPUTS,
        modalities=MODALITIES,
        histories={
            m: [PATHS.history(m, f) for f in FOLDS]
            for m in history_models(REPORT_HISTORIES)
        },
        selections={
            m: [PATHS.selection(m, f) for f in FOLDS]
            for m in selecting_models(REPORT_HISTORIES)
        },
        code=code("report.py"),
        qc_images=(
            []
            if FEATURES_FROM
            else [f"{RESULTS}/wsi/qc/{s}.png" for s in SLIDE_IDS[:6]]
        ),
    script:
        "../scripts/report.py"
