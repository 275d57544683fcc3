# WSI stage: tissue detection and tiling (OpenSlide), patch features, per-patient bags; or,
# with wsi.features_from, each slide's features imported from the user's CLAM/TRIDENT files.

FAIL_FAST = config["wsi"].get("fail_fast", False)
N_WORKERS = config["wsi"].get("num_workers", 0)
# per-slide features: extracted from the slide, or imported from wsi.features_from
FEATURE_FILES = expand(
    f"{RESULTS}/wsi/{{kind}}/{{slide}}.h5",
    kind="imported" if FEATURES_FROM else "features",
    slide=SLIDE_IDS,
)


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
        tissue=config["wsi"].get("tissue", {}),
        mpp=slide_mpp,
        seed=config["seed"],
        fail_fast=FAIL_FAST,
        coarser_slides=config["wsi"].get("coarser_slides", "skip"),
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
    threads: max(N_WORKERS, 1) + 1  # the tile reader(s) and the encoder
    params:
        encoder=config["wsi"]["encoder"],
        encoder_options=config["wsi"].get("encoder_options", {}),
        batch_size=config["wsi"]["batch_size"],
        num_workers=N_WORKERS,
        fail_fast=FAIL_FAST,
        max_bad_tile_fraction=config["wsi"].get("max_bad_tile_fraction", 0.1),
    script:
        "../scripts/extract_features.py"


rule import_features:
    input:
        # the slide's file when it exists (a change reruns the job); a missing one is recorded
        lambda wc: byo_feature_file(FEATURES_FROM, wc.slide),
    output:
        f"{RESULTS}/wsi/imported/{{slide}}.h5",
    log:
        f"{LOGS}/import_features/{{slide}}.log",
    benchmark:
        f"{BENCH}/import_features/{{slide}}.tsv"
    conda:
        "../envs/wsi.yaml"
    params:
        folder=FEATURES_FROM,
        fail_fast=FAIL_FAST,
    script:
        "../scripts/import_features.py"


rule patient_bags:
    input:
        features=FEATURE_FILES,
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
        coords=(
            []
            if FEATURES_FROM
            else expand(f"{RESULTS}/wsi/coords/{{slide}}.h5", slide=SLIDE_IDS)
        ),
        features=FEATURE_FILES,
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


BENCHMARKS += [PATHS.benchmark("patient_bags")] if SLIDE_IDS else []
BENCHMARKS += expand(
    PATHS.benchmark("{step}", "{slide}"),
    step=["import_features"] if FEATURES_FROM else ["tile_slide", "extract_features"],
    slide=SLIDE_IDS,
)
