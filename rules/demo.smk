# The synthetic demo cohort: patient tables, omics tables and real pyramidal slides.


rule demo_tables:
    output:
        patients=f"{RESULTS}/cohort/patients.tsv",
        slides=f"{RESULTS}/cohort/slides.tsv",
        tables=[f"{RESULTS}/cohort/omics/{m}.tsv" for m in ("rnaseq", "cnv")],
        truth=f"{RESULTS}/cohort/synthetic_true_risk.tsv",
    log:
        f"{LOGS}/demo_tables.log",
    conda:
        "../envs/demo.yaml"
    params:
        outdir=lambda wildcards, output: str(Path(output.patients).parent),
    script:
        "../scripts/demo_tables.py"


rule demo_slide:
    output:
        f"{RESULTS}/cohort/slides/{{slide}}.tiff",
    log:
        f"{LOGS}/demo_slide/{{slide}}.log",
    benchmark:
        f"{BENCH}/demo_slide/{{slide}}.tsv"
    conda:
        "../envs/demo.yaml"
    params:
        width=config.get("demo", {}).get("slide_width", 4096),
        height=config.get("demo", {}).get("slide_height", 3072),
    script:
        "../scripts/demo_slide.py"
