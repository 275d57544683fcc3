"""Snakemake entry point: end-to-end concatenation fusion baseline on paired patients."""

from mmlego.pipeline.fold import Fold
from mmlego.runlog import job_logging
from mmlego.training.combine import train_concat_fusion

sm = snakemake  # noqa: F821
specs = sm.params.specs
with job_logging(sm.log[0], threads=sm.threads):
    train_concat_fusion(
        specs=specs,
        data={m: (specs[m]["type"], sm.input[f"data_{m}"]) for m in sorted(specs)},
        fold=Fold.read(
            split=sm.input.split, patients=sm.input.patients, index=int(sm.wildcards.fold)
        ),
        settings=sm.params.settings,
        out_model=sm.output.model,
        out_history=sm.output.history,
        out_predictions=sm.output.predictions,
    )
