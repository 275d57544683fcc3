# One LegoBlock per modality and fold, trained on the fold's training patients that have it.


rule train_block:
    input:
        data=modality_inputs,
        patients=INPUTS["patients"],
        split=f"{RESULTS}/splits/fold{{fold}}.tsv",
    output:
        model=f"{RESULTS}/blocks/{{modality}}/fold{{fold}}.pt",
        history=f"{RESULTS}/blocks/{{modality}}/fold{{fold}}.history.tsv",
        predictions=f"{RESULTS}/predictions/block_{{modality}}/fold{{fold}}.tsv",
    log:
        f"{LOGS}/train_block/{{modality}}_fold{{fold}}.log",
    benchmark:
        f"{BENCH}/train_block/{{modality}}_fold{{fold}}.tsv"
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
    script:
        "../scripts/train_block.py"


rule blocks:
    input:
        expand(
            f"{RESULTS}/blocks/{{modality}}/fold{{fold}}.pt",
            modality=MODALITIES,
            fold=FOLDS,
        ),
