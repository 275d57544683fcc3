# The MM-Lego paper's modality-imbalance experiments, scored with the other models:
# - disjoint: blocks trained on non-overlapping patients (each training patient serves one
#   modality), then merged (no paired data) and fused on a small share of paired patients;
# - paired budget: LegoFuse fine-tuned on 0..100 % of the paired training patients.
EXPERIMENTS = config.get("experiments", {})
BUDGET = [int(p) for p in EXPERIMENTS.get("paired_budget", [])]
DISJOINT = bool(EXPERIMENTS.get("disjoint", False))
EXPERIMENT_MODELS = [f"lego_fuse_paired{p}" for p in BUDGET]
if DISJOINT:
    EXPERIMENT_MODELS += [f"disjoint_block_{m}" for m in MODALITIES] + [
        "disjoint_lego_merge",
        "disjoint_lego_fuse",
    ]


wildcard_constraints:
    pct=r"\d+",


rule train_block_disjoint:
    input:
        unpack(all_modality_inputs),
        data=modality_inputs,
        patients=INPUTS["patients"],
        split=f"{RESULTS}/splits/fold{{fold}}.tsv",
    output:
        model=f"{RESULTS}/experiments/disjoint/blocks/{{modality}}/fold{{fold}}.pt",
        history=f"{RESULTS}/experiments/disjoint/blocks/{{modality}}/fold{{fold}}.history.tsv",
        predictions=f"{RESULTS}/predictions/disjoint_block_{{modality}}/fold{{fold}}.tsv",
    log:
        f"{LOGS}/train_block_disjoint/{{modality}}_fold{{fold}}.log",
    benchmark:
        f"{BENCH}/train_block_disjoint/{{modality}}_fold{{fold}}.tsv"
    conda:
        "../envs/training.yaml"
    threads: 1
    resources:
        gpu=1,
        mem_mb=4000,
        runtime=60,
    params:
        modality=lambda wc: config["modalities"][wc.modality],
        settings={
            k: config[k] for k in ("task", "seed", "model", "survival", "training")
        },
        disjoint=True,
    script:
        "../scripts/train_block.py"


rule merge_disjoint:
    input:
        unpack(all_modality_inputs),
        blocks=expand(
            f"{RESULTS}/experiments/disjoint/blocks/{{modality}}/fold{{{{fold}}}}.pt",
            modality=MODALITIES,
        ),
        patients=INPUTS["patients"],
        split=f"{RESULTS}/splits/fold{{fold}}.tsv",
    output:
        model=f"{RESULTS}/experiments/disjoint/merge/fold{{fold}}.pt",
        predictions=f"{RESULTS}/predictions/disjoint_lego_merge/fold{{fold}}.tsv",
    log:
        f"{LOGS}/merge_disjoint/fold{{fold}}.log",
    benchmark:
        f"{BENCH}/merge_disjoint/fold{{fold}}.tsv"
    conda:
        "../envs/training.yaml"
    params:
        settings={k: config[k] for k in ("task", "seed", "survival", "merge")},
    script:
        "../scripts/merge.py"


rule fuse_disjoint:
    input:
        unpack(all_modality_inputs),
        blocks=expand(
            f"{RESULTS}/experiments/disjoint/blocks/{{modality}}/fold{{{{fold}}}}.pt",
            modality=MODALITIES,
        ),
        patients=INPUTS["patients"],
        split=f"{RESULTS}/splits/fold{{fold}}.tsv",
    output:
        model=f"{RESULTS}/experiments/disjoint/fuse/fold{{fold}}.pt",
        history=f"{RESULTS}/experiments/disjoint/fuse/fold{{fold}}.history.tsv",
        predictions=f"{RESULTS}/predictions/disjoint_lego_fuse/fold{{fold}}.tsv",
    log:
        f"{LOGS}/fuse_disjoint/fold{{fold}}.log",
    benchmark:
        f"{BENCH}/fuse_disjoint/fold{{fold}}.tsv"
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
        paired_fraction=EXPERIMENTS.get("disjoint_paired_fraction", 0.1),
    script:
        "../scripts/fuse.py"


rule fuse_budget:
    input:
        unpack(all_modality_inputs),
        blocks=expand(
            f"{RESULTS}/blocks/{{modality}}/fold{{{{fold}}}}.pt", modality=MODALITIES
        ),
        patients=INPUTS["patients"],
        split=f"{RESULTS}/splits/fold{{fold}}.tsv",
    output:
        model=f"{RESULTS}/experiments/budget/paired{{pct}}/fold{{fold}}.pt",
        history=f"{RESULTS}/experiments/budget/paired{{pct}}/fold{{fold}}.history.tsv",
        predictions=f"{RESULTS}/predictions/lego_fuse_paired{{pct}}/fold{{fold}}.tsv",
    log:
        f"{LOGS}/fuse_budget/paired{{pct}}_fold{{fold}}.log",
    benchmark:
        f"{BENCH}/fuse_budget/paired{{pct}}_fold{{fold}}.tsv"
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
        paired_fraction=lambda wc: int(wc.pct) / 100,
    script:
        "../scripts/fuse.py"


rule experiments:
    input:
        expand(
            f"{RESULTS}/predictions/{{model}}/fold{{fold}}.tsv",
            model=EXPERIMENT_MODELS,
            fold=FOLDS,
        ),
