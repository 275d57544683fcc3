# WSI stage: tissue detection and tiling (OpenSlide), patch features, per-patient bags.


rule tile_slide:
    input:
        slide_path,
    output:
        coords=f"{RESULTS}/wsi/coords/{{slide}}.h5",
        qc=f"{RESULTS}/wsi/qc/{{slide}}.png",
    log:
        f"{LOGS}/tile_slide/{{slide}}.log",
    benchmark:
        f"{BENCH}/tile_slide/{{slide}}.tsv"
    conda:
        "../envs/wsi.yaml"
    params:
        tiling={
            k: config["wsi"][k]
            for k in ("target_mpp", "tile_size", "min_tissue", "max_tiles")
        },
        mpp=slide_mpp,
        seed=config["seed"],
        fail_fast=config["wsi"].get("fail_fast", False),
    script:
        "../scripts/tile_slide.py"


rule extract_features:
    input:
        slide=slide_path,
        coords=f"{RESULTS}/wsi/coords/{{slide}}.h5",
    output:
        f"{RESULTS}/wsi/features/{{slide}}.h5",
    log:
        f"{LOGS}/extract_features/{{slide}}.log",
    benchmark:
        f"{BENCH}/extract_features/{{slide}}.tsv"
    conda:
        "../envs/wsi.yaml"
    params:
        encoder=config["wsi"]["encoder"],
        batch_size=config["wsi"]["batch_size"],
        fail_fast=config["wsi"].get("fail_fast", False),
    script:
        "../scripts/extract_features.py"


rule patient_bags:
    input:
        features=expand(f"{RESULTS}/wsi/features/{{slide}}.h5", slide=SLIDE_IDS),
    output:
        f"{RESULTS}/wsi/patient_bags.h5",
    log:
        f"{LOGS}/patient_bags.log",
    benchmark:
        f"{BENCH}/patient_bags.tsv"
    conda:
        "../envs/wsi.yaml"
    params:
        patient_of=dict(zip(SLIDE_IDS, SLIDES["patient_id"])) if SLIDE_IDS else {},
    script:
        "../scripts/patient_bags.py"


rule wsi_qc:
    input:
        coords=expand(f"{RESULTS}/wsi/coords/{{slide}}.h5", slide=SLIDE_IDS),
        features=expand(f"{RESULTS}/wsi/features/{{slide}}.h5", slide=SLIDE_IDS),
    output:
        f"{RESULTS}/wsi/qc.tsv",
    log:
        f"{LOGS}/wsi_qc.log",
    conda:
        "../envs/wsi.yaml"
    params:
        patient_of=dict(zip(SLIDE_IDS, SLIDES["patient_id"])) if SLIDE_IDS else {},
    script:
        "../scripts/wsi_qc.py"


rule features:
    input:
        rules.patient_bags.output,
        rules.wsi_qc.output,
