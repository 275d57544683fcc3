"""Snakemake entry point: train one LegoBlock on one modality of one fold."""

from mmlego.pipeline.fold import Fold
from mmlego.runlog import job_logging
from mmlego.training.blocks import train_block

sm = snakemake  # noqa: F821
with job_logging(sm.log[0], threads=sm.threads):
    train_block(
        name=sm.wildcards.modality,
        modality_spec=sm.params.modality,
        data_path=sm.input.data,
        fold=Fold.read(
            split=sm.input.split, patients=sm.input.patients, index=int(sm.wildcards.fold)
        ),
        settings=sm.params.settings,
        out_model=sm.output.model,
        out_history=sm.output.history,
        out_predictions=sm.output.predictions,
        out_selection=sm.output.selection,
        out_embeddings=sm.output.get("embeddings"),
        # the imbalance experiment: every training patient serves exactly one modality's block
        disjoint_with=(
            {
                m: (sm.config["modalities"][m]["type"], sm.input[f"data_{m}"])
                for m in sm.config["modalities"]
            }
            if sm.params.get("disjoint", False)
            else None
        ),
    )
