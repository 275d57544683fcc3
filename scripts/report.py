"""Snakemake entry point: the cohort's self-contained HTML benchmark report."""

from mmlego.config import DEMO
from mmlego.io import read_tsv
from mmlego.pipeline import Paths
from mmlego.report.html import render_report
from mmlego.report.provenance import collect_provenance
from mmlego.runlog import job_logging

sm = snakemake  # noqa: F821
paths = Paths(sm.params.results)
with job_logging(sm.log[0]):
    inputs = sm.params.inputs
    input_files = [inputs["patients"], *inputs["tables"].values()]
    if inputs.get("slides"):
        input_files.append(inputs["slides"])
    benchmarks: dict[str, list[str]] = {}
    for path in sorted(sm.input.benchmarks):
        benchmarks.setdefault(paths.parse_benchmark(path), []).append(path)
    render_report(
        out_html=sm.output[0],
        cohort_name=sm.params.cohort,
        metrics=read_tsv(sm.input.metrics),
        patients=read_tsv(sm.input.patients).set_index("patient_id"),
        availability=read_tsv(sm.input.availability).set_index("patient_id"),
        predictions={paths.parse_predictions(p): read_tsv(p) for p in sm.input.predictions},
        benchmarks=dict(sorted(benchmarks.items())),
        qc_images=list(sm.params.qc_images),
        provenance=collect_provenance(
            config=sm.params.config, inputs=input_files, seeds={"seed": sm.params.config["seed"]}
        ),
        synthetic=sm.params.cohort == DEMO,
        training_logs={m: [read_tsv(p) for p in ps] for m, ps in sm.params.histories.items()},
        selections={m: [read_tsv(p) for p in ps] for m, ps in sm.params.selections.items()},
        paired=read_tsv(sm.input.paired),
        bootstrap_seed=sm.params.config["seed"],
        task=sm.params.config["task"],
        wsi_qc=read_tsv(sm.input.wsi_qc[0]) if sm.input.wsi_qc else None,
        excluded=read_tsv(sm.input.excluded[0]) if sm.input.excluded else None,
    )
