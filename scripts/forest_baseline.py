"""Snakemake entry point: random (survival) forest baseline of one fold on the tables and the
mean-pooled slide features."""

from mmlego.io import read_tsv
from mmlego.runlog import job_logging
from mmlego.training.baselines import BaselineParams
from mmlego.training.forests import forest_baseline_fold

sm = snakemake  # noqa: F821
with job_logging(sm.log[0], threads=sm.threads):
    forest_baseline_fold(
        data=dict(zip(sm.params.tables, sm.input.data, strict=True)),
        slide_means=sm.input.slide_means[0] if sm.params.slides else None,
        slide_modalities=sm.params.slides,
        split=read_tsv(sm.input.split),
        outcomes=read_tsv(sm.input.patients).set_index("patient_id"),
        task=sm.params.task,
        params=BaselineParams.from_config(sm.params.baselines),
        seed=sm.params.seed,
        n_bins=sm.params.n_bins,
        n_jobs=sm.threads,
        out_predictions=sm.output.predictions,
    )
