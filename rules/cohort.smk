# Cohort stage: the synthetic demo cohort, or the user's cohort (an MCAT/PORPOISE CSV, or sheets)
# imported into the standard cohort folder results/<cohort>/cohort/ that later stages read.


if INPUTS["source"] == DEMO:

    rule demo_tables:
        output:
            patients=f"{RESULTS}/cohort/patients.tsv",
            slides=f"{RESULTS}/cohort/slides.tsv",
            tables=[f"{RESULTS}/cohort/omics/{m}.tsv" for m in ("rnaseq", "cnv")],
            truth=f"{RESULTS}/cohort/synthetic_true_risk.tsv",
        log:
            PATHS.log("demo_tables"),
        conda:
            "../envs/demo.yaml"
        params:
            outdir=lambda wildcards, output: str(Path(output.patients).parent),
            code=code("demo_tables.py"),
        script:
            "../scripts/demo_tables.py"

    if SLIDE_IDS:

        # one job writes every slide (a few seconds each, in parallel processes); a missing or
        # stale slide regenerates them all, identically (each slide has its own seed)
        rule demo_slides:
            output:
                [f"{RESULTS}/cohort/slides/{s}.tiff" for s in SLIDE_IDS],
            log:
                PATHS.log("demo_slides"),
            benchmark:
                PATHS.benchmark("demo_slides")
            conda:
                "../envs/demo.yaml"
            threads: 4
            resources:
                mem_mb=4000,
                runtime=30,
            params:
                width=config["demo"]["slide_width"],
                height=config["demo"]["slide_height"],
                code=code("demo_slides.py"),
            script:
                "../scripts/demo_slides.py"

else:

    rule import_cohort:
        input:
            **INPUTS["user"],
        output:
            patients=INPUTS["patients"],
            excluded=INPUTS["excluded"],
            slides=[INPUTS["slides"]] if INPUTS["slides"] else [],
            tables=[INPUTS["tables"][m] for m in TABLE_MODALITIES],
        log:
            PATHS.log("import_cohort"),
        benchmark:
            PATHS.benchmark("import_cohort")
        conda:
            "../envs/omics.yaml"
        params:
            source=INPUTS["source"],
            task=config["task"],
            tables=TABLE_MODALITIES,
            columns={
                m: config["modalities"][m]["columns"]
                for m in TABLE_MODALITIES
                if "columns" in config["modalities"][m]
            },
            slide_modality=SLIDE_MODALITIES[0] if SLIDE_MODALITIES else None,
            slide_dir=config["inputs"]["slide_dir"] or FEATURES_FROM,
            missing_slides=missing_slides(config),
            label_column=config["inputs"]["label_column"] or None,
            classes=config["inputs"]["classes"] or None,
            allow_missing=config["inputs"]["allow_missing_features"],
            code=code("import_cohort.py"),
        script:
            "../scripts/import_cohort.py"
