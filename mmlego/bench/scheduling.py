"""``python -m mmlego.bench.scheduling``: the CPU that Snakemake's own process spends planning a
run of many short jobs, under each set of scheduling options.

A run of the pan-cancer benchmark has hundreds of jobs ready at once; Snakemake plans a round
(checks the inputs of the ready jobs, picks some) whenever a job ends, and, while its job-rate
limit (``--max-jobs-per-timespan N/T``) is on, again T after every round: each round arms a new
timer, so every job that ends starts a chain of rounds, one per T, that lasts until the run
ends. With a short T the rounds pile up over a long run and take a core from the jobs.

This benchmark writes a Snakefile of ``--jobs`` independent jobs that each sleep ``--sleep``
seconds (no CPU of their own) and one job that gathers them, runs it with ``--cores`` cores under
each variant, and prints per variant the run's wall-clock seconds and the CPU seconds (user +
system) of Snakemake's process tree, which is almost all Snakemake's own; then each variant's
CPU as a ratio of the first's. Variants: Snakemake's defaults (ILP scheduler, 100 jobs per 1 s)
and the options of the cluster profile, which ``make pancancer`` reads
(:func:`profile_scheduling`).

The timers are not daemon threads: Snakemake exits only when the last one has fired, up to one
window after the run's last job, so a longer window is not free either.
"""

from __future__ import annotations

import argparse
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROFILE = ROOT / "cluster" / "config.yaml"
SCHEDULING_KEYS = ("max-jobs-per-timespan", "scheduler", "scheduler-subsample")


def profile_scheduling(profile: Path = PROFILE) -> list[str]:
    """The scheduling options of the cluster profile as command-line arguments (what the
    Makefile's ``pancancer`` target passes)."""
    out = []
    for line in profile.read_text().splitlines():
        m = re.match(r"^([a-z-]+): *([^ #]+)", line)
        if m and m.group(1) in SCHEDULING_KEYS:
            out += [f"--{m.group(1)}", m.group(2)]
    return out


SNAKEFILE = """\
N = {jobs}


rule all:
    input:
        expand("done/{{i}}.txt", i=range(N)),
    output:
        "all.txt",
    shell:
        "cat {{input}} > {{output}}"


rule job:
    output:
        "done/{{i}}.txt",
    shell:
        "sleep {sleep} && echo {{wildcards.i}} > {{output}}"
"""


def run_variant(workdir: Path, options: list[str], *, cores: int) -> tuple[float, float]:
    """(wall s, CPU s of the process tree) of one run of the Snakefile in ``workdir``."""
    for stale in ("done", "all.txt", ".snakemake"):
        subprocess.run(["rm", "-rf", str(workdir / stale)], check=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "snakemake", "--cores", str(cores), "--quiet", "all", *options],
        cwd=workdir,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=300)
    ap.add_argument("--sleep", type=float, default=0.3)
    ap.add_argument("--cores", type=int, default=2)
    args = ap.parse_args(argv)
    variants = {"snakemake defaults": [], "cluster profile": profile_scheduling()}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "Snakefile").write_text(SNAKEFILE.format(jobs=args.jobs, sleep=args.sleep))
        print(f"{args.jobs} jobs of {args.sleep} s on {args.cores} cores")
        first = None
        for name, options in variants.items():
            wall, cpu = run_variant(work, options, cores=args.cores)
            first = first or cpu
            print(
                f"{name:20s} {' '.join(options) or '-':75s} wall {wall:7.1f} s  "
                f"Snakemake CPU {cpu:7.1f} s  ({cpu / first:.2f}x)"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
