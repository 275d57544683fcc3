# Omics stage: per-fold preprocessing with every statistic fitted on the fold's training patients.


rule preprocess_omics:
    input:
        table=lambda wc: INPUTS["tables"][wc.modality],
        split=f"{RESULTS}/splits/fold{{fold}}.tsv",
        patients=INPUTS["patients"],
        signatures=lambda wc: (
            [INPUTS["signatures"]]
            if uses_signatures(config["modalities"][wc.modality])
            else []
        ),
    output:
        f"{RESULTS}/omics/{{modality}}/fold{{fold}}.npz",
    log:
        f"{LOGS}/preprocess_omics/{{modality}}_fold{{fold}}.log",
    benchmark:
        f"{BENCH}/preprocess_omics/{{modality}}_fold{{fold}}.tsv"
    conda:
        "../envs/omics.yaml"
    params:
        preprocess=lambda wc: config["modalities"][wc.modality].get("preprocess", {}),
    script:
        "../scripts/preprocess_omics.py"


rule omics:
    input:
        expand(
            f"{RESULTS}/omics/{{modality}}/fold{{fold}}.npz",
            modality=TABLE_MODALITIES,
            fold=FOLDS,
        ),
