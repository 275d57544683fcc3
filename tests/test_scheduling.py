"""Local scheduling: the ILP scheduler (PuLP with CBC) runs the workflow, and
``--resources gpu=1`` keeps the GPU rules (train_block, fuse) to one at a time while CPU rules
run beside them.

Job start and end times come from Snakemake's own metadata (.snakemake/metadata): a job's
start is when Snakemake marked its outputs incomplete (as it launched it), its end the time its
last output was written. Both runs retrain the blocks of fold 0 and what follows them (LegoMerge,
LegoFuse, late fusion) in a private copy of a finished tiny run.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from pathlib import Path

import pulp
import pytest
from workflow_utils import private_copy, run_snakemake

GPU_RULES = {"train_block", "fuse"}
# fold 0's three blocks (GPU), then LegoFuse (GPU), LegoMerge and late fusion (CPU)
TARGETS = [
    "results/demo/fuse/fold0.pt",
    "results/demo/merge/fold0.pt",
    "results/demo/predictions/late_fusion_mean_risk/fold0.tsv",
]


def job_intervals(work: Path, *, since: float) -> list[tuple[str, float, float]]:
    """(rule, start, end) of every job that started after ``since``, from the metadata (one
    record per output file; the records of one job share its ``job_hash``)."""
    jobs: dict[int, list[dict]] = defaultdict(list)
    for path in (work / ".snakemake" / "metadata").iterdir():
        record = json.loads(path.read_text())
        if (record.get("starttime") or 0) >= since:
            jobs[record["job_hash"]].append(record)
    intervals = [
        (
            records[0]["rule"],
            min(r["starttime"] for r in records),
            max(r["endtime"] for r in records),
        )
        for records in jobs.values()
    ]
    return sorted(intervals, key=lambda job: job[1])


def overlapping(a: tuple[str, float, float], b: tuple[str, float, float]) -> bool:
    return a[1] < b[2] and b[1] < a[2]


def run_fold0(work: Path, *args: str) -> tuple[list[tuple[str, float, float]], str]:
    """Retrain fold 0's blocks and what follows; the jobs' intervals and Snakemake's output."""
    since = time.time()
    proc = run_snakemake(
        "--cores", "2", *args, "--forcerun", "train_block", "--configfile", "tiny.yaml",
        "--", *TARGETS, cwd=work,
    )  # fmt: skip
    return job_intervals(work, since=since), proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def work(tiny_project, tiny_run, tmp_path_factory) -> Path:
    return private_copy(tiny_project, tmp_path_factory.mktemp("scheduling") / "wf")


def test_cbc_solver_is_available_to_pulp():
    assert "PULP_CBC_CMD" in pulp.listSolvers(onlyAvailable=True)


@pytest.mark.slow
def test_ilp_with_one_gpu_runs_gpu_rules_one_at_a_time_and_cpu_rules_beside(work):
    jobs, output = run_fold0(work, "--scheduler", "ilp", "--resources", "gpu=1")
    assert "falling back to greedy" not in output.lower(), output
    rules = [rule for rule, _, _ in jobs]
    assert rules.count("train_block") == 3 and rules.count("fuse") == 1, jobs
    assert {"merge", "late_fusion"} <= set(rules), jobs
    gpu = [job for job in jobs if job[0] in GPU_RULES]
    cpu = [job for job in jobs if job[0] not in GPU_RULES]
    clashes = [(a, b) for i, a in enumerate(gpu) for b in gpu[i + 1 :] if overlapping(a, b)]
    assert not clashes, f"GPU jobs ran at the same time: {clashes}"
    beside = [(c, g) for c in cpu for g in gpu if overlapping(c, g)]
    assert beside, f"no CPU job ran beside a GPU job: {jobs}"


@pytest.mark.slow
def test_without_the_gpu_limit_gpu_rules_do_run_together(work):
    """The control: the same jobs with two cores and no gpu limit overlap."""
    jobs, _ = run_fold0(work, "--scheduler", "ilp")
    gpu = [job for job in jobs if job[0] in GPU_RULES]
    assert any(overlapping(a, b) for i, a in enumerate(gpu) for b in gpu[i + 1 :]), jobs
