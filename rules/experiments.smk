# The MM-Lego paper's modality-imbalance experiments, scored with the other models:
# - disjoint: blocks trained on non-overlapping patients (each training patient serves one
#   modality), then merged (no paired data) and fused on a small share of paired patients;
# - paired budget: LegoFuse fine-tuned on 0..100 % of the paired training patients.
# Which of them run is decided by model_names (mmlego.pipeline.models) from `experiments`.
EXPERIMENT_MODELS = [m for m in MODELS if spec_of(m)[0].experiment]


wildcard_constraints:
    pct=r"\d+",


rule train_block_disjoint:
    input:
        unpack(all_modality_inputs),
        data=modality_inputs,
        patients=INPUTS["patients"],
        split=PATHS.split(),
    output:
        model=PATHS.model_file("disjoint_block_{modality}"),
        history=PATHS.history("disjoint_block_{modality}"),
        predictions=PATHS.predictions("disjoint_block_{modality}"),
        selection=PATHS.selection("disjoint_block_{modality}"),
    log:
        PATHS.log("train_block_disjoint", "{modality}_fold{fold}"),
    benchmark:
        PATHS.benchmark("train_block_disjoint", "{modality}_fold{fold}")
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
        disjoint=True,
        code=code("train_block.py"),
    script:
        "../scripts/train_block.py"


rule merge_disjoint:
    input:
        unpack(all_modality_inputs),
        blocks=fold_blocks("disjoint_block_{modality}"),
        patients=INPUTS["patients"],
        split=PATHS.split(),
    output:
        model=PATHS.model_file("disjoint_lego_merge"),
        predictions=PATHS.predictions("disjoint_lego_merge"),
        selection=PATHS.selection("disjoint_lego_merge"),
    log:
        PATHS.log("merge_disjoint", "fold{fold}"),
    benchmark:
        PATHS.benchmark("merge_disjoint", "fold{fold}")
    conda:
        "../envs/training.yaml"
    params:
        settings=stage_settings(config, "merge"),
        code=code("merge.py"),
    script:
        "../scripts/merge.py"


rule fuse_disjoint:
    input:
        unpack(all_modality_inputs),
        blocks=fold_blocks("disjoint_block_{modality}"),
        patients=INPUTS["patients"],
        split=PATHS.split(),
    output:
        model=PATHS.model_file("disjoint_lego_fuse"),
        history=PATHS.history("disjoint_lego_fuse"),
        predictions=PATHS.predictions("disjoint_lego_fuse"),
        selection=PATHS.selection("disjoint_lego_fuse"),
    log:
        PATHS.log("fuse_disjoint", "fold{fold}"),
    benchmark:
        PATHS.benchmark("fuse_disjoint", "fold{fold}")
    conda:
        "../envs/training.yaml"
    threads: 1
    resources:
        gpu=1,
        mem_mb=4000,
        runtime=60,
    params:
        settings=stage_settings(config, "fuse"),
        paired_fraction=EXPERIMENTS["disjoint_paired_fraction"],
        code=code("fuse.py"),
    script:
        "../scripts/fuse.py"


rule fuse_budget:
    input:
        unpack(all_modality_inputs),
        blocks=fold_blocks(),
        patients=INPUTS["patients"],
        split=PATHS.split(),
    output:
        model=PATHS.model_file("lego_fuse_paired{pct}"),
        history=PATHS.history("lego_fuse_paired{pct}"),
        predictions=PATHS.predictions("lego_fuse_paired{pct}"),
        selection=PATHS.selection("lego_fuse_paired{pct}"),
    log:
        PATHS.log("fuse_budget", "paired{pct}_fold{fold}"),
    benchmark:
        PATHS.benchmark("fuse_budget", "paired{pct}_fold{fold}")
    conda:
        "../envs/training.yaml"
    threads: 1
    resources:
        gpu=1,
        mem_mb=4000,
        runtime=60,
    params:
        settings=stage_settings(config, "fuse"),
        paired_fraction=lambda wc: int(wc.pct) / 100,
        code=code("fuse.py"),
    script:
        "../scripts/fuse.py"


rule experiments:
    input:
        predictions_of(EXPERIMENT_MODELS),


BENCHMARKS += expand(
    PATHS.benchmark("fuse_budget", "{model}_fold{fold}"),
    model=[m.removeprefix("lego_fuse_") for m in EXPERIMENT_MODELS if "_paired" in m],
    fold=FOLDS,
)
if any(m.startswith("disjoint_") for m in EXPERIMENT_MODELS):
    BENCHMARKS += expand(
        PATHS.benchmark("train_block_disjoint", "{modality}_fold{fold}"),
        modality=MODALITIES,
        fold=FOLDS,
    ) + expand(
        PATHS.benchmark("{step}", "fold{fold}"),
        step=["merge_disjoint", "fuse_disjoint"],
        fold=FOLDS,
    )
