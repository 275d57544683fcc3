# One LegoBlock per modality and fold, trained on the fold's training patients that have it;
# the same job writes the block's embeddings of the fold's patients (late_fusion_concat).


rule train_block:
    input:
        data=modality_inputs,
        patients=INPUTS["patients"],
        split=PATHS.split(),
    output:
        model=PATHS.model_file("block_{modality}"),
        history=PATHS.history("block_{modality}"),
        predictions=PATHS.predictions("block_{modality}"),
        selection=PATHS.selection("block_{modality}"),
        embeddings=PATHS.embeddings(),
    log:
        PATHS.log("train_block", "{modality}_fold{fold}"),
    benchmark:
        PATHS.benchmark("train_block", "{modality}_fold{fold}")
    conda:
        "../envs/training.yaml"
    threads: 1
    resources:
        gpu=1,
        mem_mb=4000,
        runtime=60,
    params:
        modality=lambda wc: config["modalities"][wc.modality],
        settings=stage_settings(config, "block"),
        code=code("train_block.py"),
    script:
        "../scripts/train_block.py"


rule blocks:
    input:
        expand(
            PATHS.model_file("block_{modality}", "{fold}"),
            modality=MODALITIES,
            fold=FOLDS,
        ),


BENCHMARKS += expand(
    PATHS.benchmark("train_block", "{modality}_fold{fold}"),
    modality=MODALITIES,
    fold=FOLDS,
)
