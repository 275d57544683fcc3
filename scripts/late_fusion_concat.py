"""Snakemake entry point: late fusion of the frozen blocks' concatenated embeddings (penalised
Coxnet / logistic regression) on one fold."""

from mmlego.io import read_tsv
from mmlego.runlog import job_logging
from mmlego.training.baselines import BaselineParams, late_fusion_concat_fold

sm = snakemake  # noqa: F821
with job_logging(sm.log[0], threads=sm.threads):
    late_fusion_concat_fold(
        embeddings=dict(zip(sm.params.modalities, sm.input.embeddings, strict=True)),
        split=read_tsv(sm.input.split),
        outcomes=read_tsv(sm.input.patients).set_index("patient_id"),
        task=sm.params.task,
        params=BaselineParams.from_config(sm.params.baselines),
        seed=sm.params.seed,
        out_predictions=sm.output.predictions,
        out_cv=sm.output.cv,
    )
