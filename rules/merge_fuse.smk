# LegoMerge (no training, no paired data) and LegoFuse (brief fine-tuning on paired patients).


rule merge:
    input:
        unpack(all_modality_inputs),
        blocks=expand(
            f"{RESULTS}/blocks/{{modality}}/fold{{{{fold}}}}.pt", modality=MODALITIES
        ),
        patients=INPUTS["patients"],
        split=f"{RESULTS}/splits/fold{{fold}}.tsv",
    output:
        model=f"{RESULTS}/merge/fold{{fold}}.pt",
        predictions=f"{RESULTS}/predictions/lego_merge/fold{{fold}}.tsv",
    log:
        f"{LOGS}/merge/fold{{fold}}.log",
    benchmark:
        f"{BENCH}/merge/fold{{fold}}.tsv"
    conda:
        "../envs/training.yaml"
    params:
        settings={k: config[k] for k in ("task", "seed", "survival", "merge")},
    script:
        "../scripts/merge.py"


rule fuse:
    input:
        unpack(all_modality_inputs),
        blocks=expand(
            f"{RESULTS}/blocks/{{modality}}/fold{{{{fold}}}}.pt", modality=MODALITIES
        ),
        patients=INPUTS["patients"],
        split=f"{RESULTS}/splits/fold{{fold}}.tsv",
    output:
        model=f"{RESULTS}/fuse/fold{{fold}}.pt",
        history=f"{RESULTS}/fuse/fold{{fold}}.history.tsv",
        predictions=f"{RESULTS}/predictions/lego_fuse/fold{{fold}}.tsv",
    log:
        f"{LOGS}/fuse/fold{{fold}}.log",
    benchmark:
        f"{BENCH}/fuse/fold{{fold}}.tsv"
    conda:
        "../envs/training.yaml"
    threads: 1
    resources:
        gpu=1,
        mem_mb=4000,
        runtime=60,
    params:
        settings={
            k: config[k] for k in ("task", "seed", "survival", "training", "fuse")
        },
    script:
        "../scripts/fuse.py"


rule late_fusion:
    input:
        expand(
            f"{RESULTS}/predictions/block_{{modality}}/fold{{{{fold}}}}.tsv",
            modality=MODALITIES,
        ),
    output:
        f"{RESULTS}/predictions/late_fusion_mean_risk/fold{{fold}}.tsv",
    log:
        f"{LOGS}/late_fusion/fold{{fold}}.log",
    conda:
        "../envs/training.yaml"
    params:
        task=config["task"],
    script:
        "../scripts/late_fusion.py"


rule merged:
    input:
        expand(f"{RESULTS}/merge/fold{{fold}}.pt", fold=FOLDS),


rule fused:
    input:
        expand(f"{RESULTS}/fuse/fold{{fold}}.pt", fold=FOLDS),


# Baselines trained on the same folds: end-to-end concatenation fusion on paired patients, and
# late fusion of the frozen blocks' concatenated embeddings (penalised Coxnet / logistic model).
FUSION_BASELINES = ["e2e_concat_fusion", "late_fusion_concat"]


rule concat_fusion:
    input:
        unpack(all_modality_inputs),
        patients=INPUTS["patients"],
        split=f"{RESULTS}/splits/fold{{fold}}.tsv",
    output:
        model=f"{RESULTS}/baselines/e2e_concat_fusion/fold{{fold}}.pt",
        history=f"{RESULTS}/baselines/e2e_concat_fusion/fold{{fold}}.history.tsv",
        predictions=f"{RESULTS}/predictions/e2e_concat_fusion/fold{{fold}}.tsv",
    log:
        f"{LOGS}/concat_fusion/fold{{fold}}.log",
    benchmark:
        f"{BENCH}/concat_fusion/fold{{fold}}.tsv"
    conda:
        "../envs/training.yaml"
    threads: 1
    resources:
        gpu=1,
        mem_mb=4000,
        runtime=60,
    params:
        settings={k: config[k] for k in ("task", "seed", "survival", "training")},
        specs=config["modalities"],
    script:
        "../scripts/concat_fusion.py"


rule block_embeddings:
    input:
        block=f"{RESULTS}/blocks/{{modality}}/fold{{fold}}.pt",
        data=modality_inputs,
        patients=INPUTS["patients"],
        split=f"{RESULTS}/splits/fold{{fold}}.tsv",
    output:
        f"{RESULTS}/baselines/embeddings/{{modality}}/fold{{fold}}.tsv",
    log:
        f"{LOGS}/block_embeddings/{{modality}}_fold{{fold}}.log",
    benchmark:
        f"{BENCH}/block_embeddings/{{modality}}_fold{{fold}}.tsv"
    conda:
        "../envs/training.yaml"
    threads: 1
    # inference only: a CPU job (on a GPU node it uses the GPU)
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        modality=lambda wc: config["modalities"][wc.modality],
    script:
        "../scripts/block_embeddings.py"


rule late_fusion_concat:
    input:
        embeddings=expand(
            f"{RESULTS}/baselines/embeddings/{{modality}}/fold{{{{fold}}}}.tsv",
            modality=MODALITIES,
        ),
        patients=INPUTS["patients"],
        split=f"{RESULTS}/splits/fold{{fold}}.tsv",
    output:
        predictions=f"{RESULTS}/predictions/late_fusion_concat/fold{{fold}}.tsv",
        cv=f"{RESULTS}/baselines/late_fusion_concat/fold{{fold}}.cv.tsv",
    log:
        f"{LOGS}/late_fusion_concat/fold{{fold}}.log",
    benchmark:
        f"{BENCH}/late_fusion_concat/fold{{fold}}.tsv"
    conda:
        "../envs/evaluation.yaml"
    params:
        modalities=MODALITIES,
        task=config["task"],
        seed=config["seed"],
        baselines=config.get("baselines", {}),
    script:
        "../scripts/late_fusion_concat.py"
