"""Snakemake entry point: the cohort's self-contained HTML benchmark report."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent))  # noqa: F821

from mmlego.io import read_tsv
from mmlego.report.html import render_report
from mmlego.report.provenance import collect_provenance
from mmlego.runlog import job_logging

sm = snakemake  # noqa: F821
with job_logging(sm.log[0]):
    inputs = sm.params.inputs
    input_files = [inputs["patients"], *inputs["tables"].values()]
    if inputs.get("slides"):
        input_files.append(inputs["slides"])
    benchmarks = {
        rule.name: sorted(rule.glob("*.tsv")) if rule.is_dir() else [rule]
        for rule in sorted(Path(sm.params.benchmarks).iterdir())
    }
    benchmarks = {k.removesuffix(".tsv"): v for k, v in benchmarks.items()}
    render_report(
        out_html=sm.output[0],
        cohort_name=sm.params.cohort,
        metrics=read_tsv(sm.input.metrics),
        patients=read_tsv(sm.input.patients).set_index("patient_id"),
        availability=read_tsv(sm.input.availability).set_index("patient_id"),
        predictions={
            (Path(p).parent.name, int(Path(p).stem[4:])): read_tsv(p) for p in sm.input.predictions
        },
        benchmarks=benchmarks,
        qc_images=list(sm.params.qc_images),
        provenance=collect_provenance(
            config=sm.params.config, inputs=input_files, seeds={"seed": sm.params.config["seed"]}
        ),
        synthetic=sm.params.cohort == "demo",
        training_logs={
            **{
                f"block_{m}": [
                    read_tsv(p) for p in sm.input.block_histories if Path(p).parent.name == m
                ]
                for m in sm.params.modalities
            },
            "lego_fuse": [read_tsv(p) for p in sm.input.histories],
            "e2e_concat_fusion": [read_tsv(p) for p in sm.input.e2e_histories],
        },
        paired=read_tsv(sm.input.paired),
        bootstrap_seed=sm.params.config["seed"],
        task=sm.params.config["task"],
        wsi_qc=read_tsv(sm.input.wsi_qc[0]) if sm.input.wsi_qc else None,
    )
