"""Snakemake entry point: LegoFuse of one fold's blocks, fine-tuned on its training patients."""

from mmlego.pipeline.fold import Fold
from mmlego.runlog import job_logging
from mmlego.training.combine import fuse_blocks

sm = snakemake  # noqa: F821
names = sorted(sm.config["modalities"])
with job_logging(sm.log[0], threads=sm.threads):
    fuse_blocks(
        block_paths=list(sm.input.blocks),
        names=names,
        data={m: (sm.config["modalities"][m]["type"], sm.input[f"data_{m}"]) for m in names},
        fold=Fold.read(
            split=sm.input.split, patients=sm.input.patients, index=int(sm.wildcards.fold)
        ),
        settings=sm.params.settings,
        out_model=sm.output.model,
        out_history=sm.output.history,
        out_predictions=sm.output.predictions,
        out_selection=sm.output.selection,
        paired_fraction=sm.params.get("paired_fraction", 1.0),
    )
