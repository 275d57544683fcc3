# LegoMerge (no training, no paired data) and LegoFuse (brief fine-tuning, fuse.patients).


rule merge:
    input:
        unpack(all_modality_inputs),
        blocks=fold_blocks(),
        patients=INPUTS["patients"],
        split=PATHS.split(),
    output:
        model=PATHS.model_file("lego_merge"),
        predictions=PATHS.predictions("lego_merge"),
        selection=PATHS.selection("lego_merge"),
    log:
        PATHS.log("merge", "fold{fold}"),
    benchmark:
        PATHS.benchmark("merge", "fold{fold}")
    conda:
        "../envs/training.yaml"
    params:
        settings=stage_settings(config, "merge"),
        code=code("merge.py"),
    script:
        "../scripts/merge.py"


rule fuse:
    input:
        unpack(all_modality_inputs),
        blocks=fold_blocks(),
        patients=INPUTS["patients"],
        split=PATHS.split(),
    output:
        model=PATHS.model_file("lego_fuse"),
        history=PATHS.history("lego_fuse"),
        predictions=PATHS.predictions("lego_fuse"),
        selection=PATHS.selection("lego_fuse"),
    log:
        PATHS.log("fuse", "fold{fold}"),
    benchmark:
        PATHS.benchmark("fuse", "fold{fold}")
    conda:
        "../envs/training.yaml"
    threads: 1
    resources:
        gpu=1,
        mem_mb=4000,
        runtime=60,
    params:
        settings=stage_settings(config, "fuse"),
        code=code("fuse.py"),
    script:
        "../scripts/fuse.py"


rule late_fusion:
    input:
        expand(PATHS.predictions("block_{modality}", "{{fold}}"), modality=MODALITIES),
    output:
        PATHS.predictions("late_fusion_mean_risk"),
    log:
        PATHS.log("late_fusion", "fold{fold}"),
    conda:
        "../envs/evaluation.yaml"
    params:
        task=config["task"],
        code=code("late_fusion.py"),
    script:
        "../scripts/late_fusion.py"


rule merged:
    input:
        expand(PATHS.model_file("lego_merge", "{fold}"), fold=FOLDS),


rule fused:
    input:
        expand(PATHS.model_file("lego_fuse", "{fold}"), fold=FOLDS),


# Baselines trained on the same folds: end-to-end concatenation fusion on paired patients, and
# late fusion of the frozen blocks' concatenated embeddings (penalised Coxnet / logistic model;
# train_block writes the embeddings).


rule concat_fusion:
    input:
        unpack(all_modality_inputs),
        patients=INPUTS["patients"],
        split=PATHS.split(),
    output:
        model=PATHS.model_file("e2e_concat_fusion"),
        history=PATHS.history("e2e_concat_fusion"),
        predictions=PATHS.predictions("e2e_concat_fusion"),
    log:
        PATHS.log("concat_fusion", "fold{fold}"),
    benchmark:
        PATHS.benchmark("concat_fusion", "fold{fold}")
    conda:
        "../envs/training.yaml"
    threads: 1
    resources:
        gpu=1,
        mem_mb=4000,
        runtime=60,
    params:
        settings=stage_settings(config, "concat_fusion"),
        specs=config["modalities"],
        code=code("concat_fusion.py"),
    script:
        "../scripts/concat_fusion.py"


rule late_fusion_concat:
    input:
        embeddings=expand(PATHS.embeddings(fold="{{fold}}"), modality=MODALITIES),
        patients=INPUTS["patients"],
        split=PATHS.split(),
    output:
        predictions=PATHS.predictions("late_fusion_concat"),
        cv=PATHS.cv("late_fusion_concat"),
    log:
        PATHS.log("late_fusion_concat", "fold{fold}"),
    benchmark:
        PATHS.benchmark("late_fusion_concat", "fold{fold}")
    conda:
        "../envs/evaluation.yaml"
    params:
        modalities=MODALITIES,
        task=config["task"],
        seed=config["seed"],
        baselines=config["baselines"],
        code=code("late_fusion_concat.py"),
    script:
        "../scripts/late_fusion_concat.py"


BENCHMARKS += expand(
    PATHS.benchmark("{step}", "fold{fold}"),
    step=["merge", "fuse", "concat_fusion", "late_fusion_concat"],
    fold=FOLDS,
)
