"""Snakemake entry point: write the synthetic demo cohort's whole-slide images (pyramidal
Aperio-style TIFFs), one process per thread of the job."""

from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from mmlego.config import demo_config
from mmlego.demo.cohort import design
from mmlego.demo.slides import write_synthetic_slide
from mmlego.runlog import job_logging

sm = snakemake  # noqa: F821
with job_logging(sm.log[0], threads=sm.threads):
    slides = design(demo_config(sm.config)).slides.set_index("slide_id")
    with ProcessPoolExecutor(max_workers=sm.threads) as pool:
        jobs = [
            pool.submit(
                write_synthetic_slide,
                out,
                seed=int(slides.loc[Path(out).stem, "slide_seed"]),
                factor=float(slides.loc[Path(out).stem, "factor"]),
                width=sm.params.width,
                height=sm.params.height,
            )
            for out in sm.output
        ]
        for job in jobs:
            job.result()  # a failed slide fails the job, naming its error
