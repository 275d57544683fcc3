"""``python -m mmlego.bench.dag``: how long Snakemake takes to plan the workflow of a large cohort.

Generates a placeholder cohort in a temporary folder (``--workdir`` to keep it): ``--patients``
patients (survival times and events), ``--slides`` slides, all symbolic links to one small
generated slide, and RNA-seq and CNV tables of ``--rnaseq`` and ``--cnv`` columns; then runs
``snakemake -n`` (a dry run: the whole DAG is built, nothing is computed) on it, in a working
copy of this checkout's workflow, and prints

- ``jobs``: the jobs of the dry run (Snakemake's job stats), and ``wsi jobs``: those of the WSI
  stage (shard jobs, patient bags, QC table), with the number of shards;
- ``wall s``: the dry run's wall-clock seconds (Snakemake's start-up included);
- ``peak RSS MB``: the Snakemake process's peak resident memory (``ru_maxrss`` of the child).

``--profile FILE`` runs Snakemake under :mod:`cProfile` and writes its statistics there (the
wall time then includes the profiler's overhead). ``--json FILE`` also writes the figures.
Defaults: 11,000 patients, 30,000 slides, 200 and 100 columns (a TCGA-wide cohort); the goal on
a 2-core machine is at most 60 s and 2 GB.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from mmlego.io import write_json

ROOT = Path(__file__).resolve().parents[2]
WSI_RULES = ("wsi_shard", "import_shard", "patient_bags", "wsi_qc")
SHARD_RULES = ("wsi_shard", "import_shard")


def write_cohort(
    folder: Path, *, patients: int, slides: int, rnaseq: int, cnv: int, seed: int = 0
) -> dict[str, Any]:
    """The placeholder cohort's sheets and tables under ``folder``; the config's ``inputs``."""
    from mmlego.demo.slides import write_synthetic_slide

    if patients < 1 or slides < patients:
        raise ValueError(f"need 1 <= patients <= slides, got {patients} and {slides}")
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    ids = [f"P{i:06d}" for i in range(patients)]
    pd.DataFrame(
        {
            "patient_id": ids,
            "time": np.round(rng.uniform(1.0, 120.0, patients), 2),
            "event": rng.integers(0, 2, patients),
        }
    ).to_csv(folder / "patients.tsv", sep="\t", index=False)

    real = folder / "slide.tiff"
    if not real.is_file():
        write_synthetic_slide(real, seed=seed, factor=0.0, width=1024, height=768)
    links = folder / "slides"
    links.mkdir(exist_ok=True)
    slide_ids = [f"{ids[i % patients]}-S{i // patients}" for i in range(slides)]
    for sid in slide_ids:
        link = links / f"{sid}.tiff"
        if not link.is_symlink():
            link.symlink_to(real)
    pd.DataFrame(
        {
            "patient_id": [ids[i % patients] for i in range(slides)],
            "slide_id": slide_ids,
            "path": [f"slides/{s}.tiff" for s in slide_ids],
        }
    ).to_csv(folder / "slides.tsv", sep="\t", index=False)

    tables = {}
    for name, width in (("rnaseq", rnaseq), ("cnv", cnv)):
        values = rng.normal(size=(patients, width)).round(4)
        table = pd.DataFrame(values, columns=[f"G{j}_{name}" for j in range(width)])
        table.insert(0, "patient_id", ids)
        table.to_csv(folder / f"{name}.tsv", sep="\t", index=False)
        tables[name] = str(folder / f"{name}.tsv")
    return {
        "patients": str(folder / "patients.tsv"),
        "slides": str(folder / "slides.tsv"),
        "tables": tables,
    }


def working_copy(work: Path) -> Path:
    """A working directory with this checkout's workflow code linked and its config copied."""
    work.mkdir(parents=True, exist_ok=True)
    for name in ("workflow", "rules", "scripts", "envs", "mmlego", "config"):
        if not (work / name).exists():
            (work / name).symlink_to(ROOT / name)
    return work


def jobs_by_rule(output: str) -> dict[str, int]:
    """Snakemake's 'Job stats' table (rule -> jobs) from its output."""
    if "Job stats:" not in output:
        return {}
    counts: dict[str, int] = {}
    for line in output.split("Job stats:", 1)[1].splitlines()[3:]:
        m = re.match(r"^(\S+)\s+(\d+)\s*$", line)
        if m and m.group(1) != "total":
            counts[m.group(1)] = int(m.group(2))
        elif counts and not line.strip():
            break
    return counts


def dry_run(
    work: Path, configfile: Path, *, profile: Path | None = None, timeout: int = 1800
) -> dict[str, Any]:
    """``snakemake -n`` in ``work``: jobs by rule, wall seconds, the child's peak RSS (MB)."""
    cmd = [sys.executable]
    if profile is not None:
        cmd += ["-m", "cProfile", "-o", str(profile)]
    cmd += ["-m", "snakemake", "-n", "--cores", "2", "--configfile", str(configfile)]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    log = work / "dry_run.log"
    t0 = time.perf_counter()
    with log.open("w") as out:
        proc = subprocess.run(
            cmd, cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=timeout
        )
    wall = time.perf_counter() - t0
    # ru_maxrss of the largest child waited for so far: this process runs only Snakemake
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    text = log.read_text()
    if proc.returncode != 0:
        raise RuntimeError(f"snakemake -n failed (rc {proc.returncode}):\n{text[-5000:]}")
    counts = jobs_by_rule(text)
    return {
        "jobs": sum(counts.values()),
        "wsi_jobs": sum(counts.get(r, 0) for r in WSI_RULES),
        "shards": sum(counts.get(r, 0) for r in SHARD_RULES),
        "by_rule": counts,
        "wall_s": round(wall, 2),
        "peak_rss_mb": round(peak_mb, 1),
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="mmlego_dag_") as tmp:
        base = Path(args.workdir) if args.workdir else Path(tmp)
        inputs = write_cohort(
            base / "cohort",
            patients=args.patients,
            slides=args.slides,
            rnaseq=args.rnaseq,
            cnv=args.cnv,
        )
        work = working_copy(base / "wf")
        config: dict[str, Any] = {"cohort": "dagbench", "inputs": inputs}
        if args.shard_size:
            config["wsi"] = {"shard_size": args.shard_size}
        configfile = work / "dagbench.yaml"
        configfile.write_text(yaml.safe_dump(config))
        result = dry_run(work, configfile, profile=args.profile)
    result |= {
        "patients": args.patients,
        "slides": args.slides,
        "rnaseq_columns": args.rnaseq,
        "cnv_columns": args.cnv,
    }
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m mmlego.bench.dag", description=__doc__.split("\n")[0]
    )
    p.add_argument("--patients", type=int, default=11_000)
    p.add_argument("--slides", type=int, default=30_000)
    p.add_argument("--rnaseq", type=int, default=200, help="RNA-seq table columns")
    p.add_argument("--cnv", type=int, default=100, help="CNV table columns")
    p.add_argument("--shard-size", type=int, default=None, help="wsi.shard_size (config default)")
    p.add_argument("--workdir", default=None, help="keep the cohort and working copy here")
    p.add_argument("--profile", type=Path, default=None, help="cProfile statistics file")
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = p.parse_args(argv)
    r = run(args)
    print(
        f"cohort: {r['patients']} patients, {r['slides']} slides, "
        f"rnaseq {r['rnaseq_columns']} + cnv {r['cnv_columns']} columns"
    )
    print(f"jobs: {r['jobs']}")
    print(f"wsi jobs: {r['wsi_jobs']} ({r['shards']} shards)")
    print(f"wall s: {r['wall_s']:.1f}")
    print(f"peak RSS MB: {r['peak_rss_mb']:.0f}")
    if args.json:
        write_json(r, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
