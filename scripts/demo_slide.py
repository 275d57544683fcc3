"""Snakemake entry point: write one synthetic whole-slide image (pyramidal Aperio-style TIFF)."""

from mmlego.config import demo_config
from mmlego.demo.cohort import design
from mmlego.demo.slides import write_synthetic_slide
from mmlego.runlog import job_logging

sm = snakemake  # noqa: F821
with job_logging(sm.log[0]):
    slides = design(demo_config(sm.config)).slides.set_index("slide_id")
    row = slides.loc[sm.wildcards.slide]
    write_synthetic_slide(
        sm.output[0],
        seed=int(row["slide_seed"]),
        factor=float(row["factor"]),
        width=sm.params.width,
        height=sm.params.height,
    )
