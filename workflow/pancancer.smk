# The pan-cancer benchmark: the survival protocol of workflow/Snakefile on every cohort of a
# folder of MCAT/PORPOISE CSVs, as one run (one DAG), and one report over the cohorts.
#
#   snakemake -s workflow/pancancer.smk --cores 2 [--configfile my_pancancer.yaml]
#
# Each cohort is a module of workflow/Snakefile with its own configuration (mmlego.cohort.
# pancancer: the column groups it has, its CSV and split files); its rules are named
# <cohort>_<rule> and its outputs go to <pancancer.results>/<cohort>/.
from contextlib import nullcontext
from pathlib import Path

import yaml
from snakemake.logging import logger
from snakemake.utils import min_version, validate

from mmlego.cohort.pancancer import (
    groups_table,
    plan_cohorts,
    prefixed_settings,
    workflow_rules,
)
from mmlego.pipeline.code import code_version
from mmlego.runlog import forward_logging

min_version("9.0")


configfile: "config/pancancer.yaml"


validate(config, "../config/schemas/pancancer.schema.yaml")

PAN = config["pancancer"]
RESULTS = PAN["results"].rstrip("/")
DEFAULTS = yaml.safe_load(
    (Path(workflow.basedir).parent / "config" / "config.yaml").read_text()
)
# the plan's messages (files not read, folds made, groups and cohorts left out) in the output
# of the run, not again in the log of every cluster job (each parses the workflow); each cohort
# gets a copy of every rule of the Snakefile, whose names must not clash; each cohort's checks
# are kept in <results>/.plan/ for the next plan (cluster jobs plan the run again)
with forward_logging(logger) if workflow.is_main_process else nullcontext():
    PLANS = plan_cohorts(
        config,
        DEFAULTS,
        rules=workflow_rules(Path(workflow.basedir) / "Snakefile"),
        taken=workflow_rules(workflow.main_snakefile),
        cache=f"{RESULTS}/.plan",
    )
# the cohorts run; one with fewer than two usable column groups is left out (the report says why)
COHORTS = [c for c in PLANS if c.runs]

# A profile's per-rule resources and threads (set-resources, set-threads) name the rules of
# workflow/Snakefile: give each cohort's prefixed copies the same ones. (A profile's `groups`
# reach the workflow only after it is parsed, so they do not apply to the prefixed rules.)
_res = workflow.resource_settings
_prefixes = [c.prefix for c in COHORTS]
_res.overwrite_resources = prefixed_settings(_res.overwrite_resources, _prefixes)
_res.overwrite_threads = prefixed_settings(_res.overwrite_threads, _prefixes)
for _cached in ("_parsed_overwrite_resources", "_parsed_overwrite_threads"):
    _res.__dict__.pop(_cached, None)

for _plan in COHORTS:
    _cohort = _plan.name
    _prefix = _plan.prefix

    module:
        name: _cohort
        snakefile:
            "Snakefile"
        config:
            _plan.config

    use rule * from _cohort as _prefix*


rule pancancer_report:
    input:
        metrics=[f"{RESULTS}/{c.name}/metrics.tsv" for c in COHORTS],
        reports=[f"{RESULTS}/{c.name}/report.html" for c in COHORTS],
    output:
        html=f"{RESULTS}/report.html",
        cindex=f"{RESULTS}/cindex.tsv",
        paired=f"{RESULTS}/paired.tsv",
        groups=f"{RESULTS}/modalities.tsv",
    log:
        f"{RESULTS}/logs/pancancer_report.log",
    benchmark:
        f"{RESULTS}/benchmarks/pancancer_report.tsv"
    conda:
        "../envs/evaluation.yaml"
    params:
        pancancer=PAN,
        cohorts=[c.name for c in COHORTS],
        groups=groups_table([g for c in PLANS for g in c.checks]).to_dict("records"),
        cohort_reports={c.name: f"{c.name}/report.html" for c in COHORTS},
        folds={c.name: c.folds for c in COHORTS},
        csvs=[c.source.csv for c in COHORTS],
        seed=config.get("seed", 0),
        config=config,
        code=code_version(
            Path(workflow.basedir).parent / "scripts" / "pancancer_report.py"
        ),
    script:
        "../scripts/pancancer_report.py"


rule all:
    default_target: True
    input:
        rules.pancancer_report.output,
