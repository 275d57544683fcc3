# Omics stage: per-fold preprocessing with every statistic fitted on the fold's training patients.


rule preprocess_omics:
    input:
        table=lambda wc: INPUTS["tables"][wc.modality],
        split=PATHS.split(),
        patients=INPUTS["patients"],
        signatures=lambda wc: (
            [INPUTS["signatures"]]
            if uses_signatures(config["modalities"][wc.modality])
            else []
        ),
    output:
        PATHS.omics(),
    log:
        PATHS.log("preprocess_omics", "{modality}_fold{fold}"),
    benchmark:
        PATHS.benchmark("preprocess_omics", "{modality}_fold{fold}")
    conda:
        "../envs/omics.yaml"
    params:
        preprocess=lambda wc: config["modalities"][wc.modality].get("preprocess", {}),
        task=config["task"],
        code=code("preprocess_omics.py"),
    script:
        "../scripts/preprocess_omics.py"


rule omics:
    input:
        expand(
            PATHS.omics("{modality}", "{fold}"), modality=TABLE_MODALITIES, fold=FOLDS
        ),


BENCHMARKS += expand(
    PATHS.benchmark("preprocess_omics", "{modality}_fold{fold}"),
    modality=TABLE_MODALITIES,
    fold=FOLDS,
)
