# WSI stage: tissue detection and tiling (OpenSlide), patch features, per-patient bags; or,
# with wsi.features_from, each slide's features imported from the user's CLAM/TRIDENT files.
# Slides are processed in shards of wsi.shard_size (mmlego/wsi/shards.py): one job per shard
# writes its slides' files (wsi/coords/, wsi/qc/, wsi/features/ or wsi/imported/<slide>.*) and
# a manifest, wsi/shards/<features|imported>/<shard>.tsv, its only declared output.
from mmlego.wsi.shards import ShardPlan, feature_file_index  # noqa: E402

FAIL_FAST = config["wsi"]["fail_fast"]
N_WORKERS = config["wsi"]["num_workers"]
# the slide sheet as look-ups built once (a job's inputs and params are then O(shard size))
PLAN = ShardPlan.from_sheet(SLIDES, config["wsi"]["shard_size"])
WSI_KIND = "imported" if FEATURES_FROM else "features"
SHARD_DIR = f"{RESULTS}/wsi/shards/{WSI_KIND}"
# wsi.features_from: each slide's feature file, found with one listing of the folder
BYO_SOURCES = feature_file_index(FEATURES_FROM, SLIDE_IDS) if FEATURES_FROM else {}
# a shard job asks for a GPU only when its patch encoder runs on one (hed_texture does not)
SHARD_GPUS = shard_gpus()


rule wsi_shard:
    input:
        lambda wc: PLAN.paths(wc.shard),
    output:
        f"{RESULTS}/wsi/shards/features/{{shard}}.tsv",
    log:
        PATHS.log("wsi_shard", "{shard}"),
    benchmark:
        PATHS.benchmark("wsi_shard", "{shard}")
    wildcard_constraints:
        shard=r"\d+",
    conda:
        "../envs/wsi.yaml"
    threads: max(N_WORKERS, 1) + 1  # the tile reader(s) and the encoder
    resources:
        gpu=SHARD_GPUS,
    params:
        slides=lambda wc: PLAN.slides(wc.shard),
        # the per-slide files go to <wsi_dir>/{coords,qc,features,imported}/<slide>.*
        wsi_dir=lambda wc, output: str(Path(output[0]).parents[2]),
        tiling={
            k: config["wsi"][k]
            for k in ("target_mpp", "tile_size", "min_tissue", "max_tiles")
        },
        tissue=config["wsi"]["tissue"],
        seed=config["seed"],
        encoder=config["wsi"]["encoder"],
        encoder_options=config["wsi"]["encoder_options"],
        batch_size=config["wsi"]["batch_size"],
        num_workers=N_WORKERS,
        fail_fast=FAIL_FAST,
        coarser_slides=config["wsi"]["coarser_slides"],
        max_bad_tile_fraction=config["wsi"]["max_bad_tile_fraction"],
        code=code("wsi_shard.py"),
    script:
        "../scripts/wsi_shard.py"


rule import_shard:
    input:
        # the slides' files that exist (a change reruns the shard); a missing one is recorded
        lambda wc: [BYO_SOURCES[s] for s in PLAN.shards[wc.shard] if s in BYO_SOURCES],
    output:
        f"{RESULTS}/wsi/shards/imported/{{shard}}.tsv",
    log:
        PATHS.log("import_shard", "{shard}"),
    benchmark:
        PATHS.benchmark("import_shard", "{shard}")
    wildcard_constraints:
        shard=r"\d+",
    conda:
        "../envs/wsi.yaml"
    params:
        slides=lambda wc: PLAN.slides(wc.shard),
        sources=lambda wc: {s: BYO_SOURCES.get(s) for s in PLAN.shards[wc.shard]},
        folder=FEATURES_FROM,
        # the per-slide files go to <wsi_dir>/{coords,qc,features,imported}/<slide>.*
        wsi_dir=lambda wc, output: str(Path(output[0]).parents[2]),
        fail_fast=FAIL_FAST,
        code=code("import_shard.py"),
    script:
        "../scripts/import_shard.py"


rule patient_bags:
    input:
        manifests=PLAN.manifests(SHARD_DIR),
    output:
        PATHS.patient_bags,
    log:
        PATHS.log("patient_bags"),
    benchmark:
        PATHS.benchmark("patient_bags")
    conda:
        "../envs/wsi.yaml"
    params:
        patient_of=PLAN.patient_of(),
        code=code("patient_bags.py"),
    script:
        "../scripts/patient_bags.py"


rule wsi_qc:
    input:
        manifests=PLAN.manifests(SHARD_DIR),
    output:
        PATHS.wsi_qc,
    log:
        PATHS.log("wsi_qc"),
    conda:
        "../envs/wsi.yaml"
    params:
        patient_of=PLAN.patient_of(),
        code=code("wsi_qc.py"),
    script:
        "../scripts/wsi_qc.py"


rule features:
    input:
        rules.patient_bags.output,
        rules.wsi_qc.output,


BENCHMARKS += [PATHS.benchmark("patient_bags")] if SLIDE_IDS else []
BENCHMARKS += expand(
    PATHS.benchmark("import_shard" if FEATURES_FROM else "wsi_shard", "{shard}"),
    shard=sorted(PLAN.shards),
)
