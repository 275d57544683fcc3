"""Run the workflow on a real cohort in a scratch working copy and summarise its metrics.

A working copy links the project's code (``workflow``, ``rules``, ``scripts``, ``envs``,
``mmlego``, ``config``) into a scratch folder, so results never land in the checkout. The cohort's
files are given to the shipped config (whose paths point at the documented ``data/tcga/``
location) by a generated override file.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
"""The project checkout."""

CODE = ("workflow", "rules", "scripts", "envs", "mmlego", "config")

__all__ = [
    "ROOT",
    "RunResult",
    "parse_assignment",
    "run_workflow",
    "shared_data",
    "summarise_metrics",
    "working_copy",
]


def parse_assignment(text: str) -> tuple[str, Any]:
    """A benchmark's command-line setting ``"key=value"`` -> ``("key", value)``, the value read
    as YAML (``8`` is a number, ``[x, y]`` a list, ``cpu`` a string)."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise ValueError(f"expected KEY=VALUE, got {text!r}")
    return key, yaml.safe_load(raw)


def json_child(
    script: str, args: Mapping[str, Any], *, env: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Run ``script`` (Python source taking ``args`` as JSON in ``sys.argv[1]``) in a fresh
    interpreter that imports this checkout's mmlego; return its last stdout line as JSON.
    A separate process gives a peak RSS of its own to measure."""
    child_env = {**os.environ, **(env or {})}
    child_env["PYTHONPATH"] = os.pathsep.join([str(ROOT), child_env.get("PYTHONPATH", "")])
    child_env["PYTHONPATH"] = child_env["PYTHONPATH"].rstrip(os.pathsep)
    proc = subprocess.run(
        [sys.executable, "-c", script, json.dumps(dict(args))],
        capture_output=True,
        text=True,
        env=child_env,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark child failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def shared_data(data: str | os.PathLike | None = None) -> Path | None:
    """The TCGA data folder: ``data`` if given, else ``$MMLEGO_TCGA_DATA``, else
    ``<checkout>/../shared/data/tcga`` (where CI keeps it); ``None`` if it does not exist."""
    candidates = [data] if data else [os.environ.get("MMLEGO_TCGA_DATA")]
    candidates.append(ROOT.parent / "shared" / "data" / "tcga")
    for c in candidates:
        if c and Path(c).is_dir():
            return Path(c).resolve()
    return None


def working_copy(workdir: str | os.PathLike) -> Path:
    """Link the project's code into ``workdir`` (created if needed); return it."""
    work = Path(workdir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    for name in CODE:
        link = work / name
        if link.is_symlink() or link.exists():
            if link.is_symlink() and link.resolve() == (ROOT / name).resolve():
                continue
            raise FileExistsError(f"{link} exists and is not a link to the project's {name}")
        link.symlink_to(ROOT / name)
    return work


@dataclass(frozen=True)
class RunResult:
    """What a workflow run left: its folder, the metrics and how long it took."""

    workdir: Path
    results: Path
    metrics: pd.DataFrame
    seconds: float


def run_workflow(
    workdir: Path,
    *,
    configfiles: Sequence[str | os.PathLike],
    overrides: Mapping[str, Any],
    cohort: str,
    cores: int = 2,
    extra_args: Sequence[str] = (),
    quiet: bool = True,
) -> RunResult:
    """Run Snakemake in ``workdir`` with the config files and an override file; read metrics.

    Parameters
    ----------
    workdir
        A working copy (:func:`working_copy`).
    configfiles
        Config files, relative to ``workdir`` or absolute (e.g. ``config/tcga_blca.yaml``).
    overrides
        Keys merged over them (written to ``workdir/overrides.yaml``).
    cohort
        The cohort name the configs give (results go to ``results/<cohort>``).
    cores
        Snakemake ``--cores``.
    extra_args
        Further Snakemake arguments.
    quiet
        Keep Snakemake's output in ``workdir/snakemake.out`` instead of the terminal.

    Raises
    ------
    RuntimeError
        If Snakemake fails (naming its output file).
    """
    override_file = workdir / "overrides.yaml"
    override_file.write_text(yaml.safe_dump(dict(overrides), sort_keys=False))
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "--cores",
        str(cores),
        "--configfile",
        *[str(c) for c in configfiles],
        str(override_file),
        *extra_args,
    ]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    out_path = workdir / "snakemake.out"
    start = time.perf_counter()
    with out_path.open("w") as out:
        proc = subprocess.run(
            cmd,
            cwd=workdir,
            env=env,
            stdout=out if quiet else None,
            stderr=subprocess.STDOUT if quiet else None,
        )
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        tail = out_path.read_text()[-3000:] if quiet else ""
        raise RuntimeError(f"snakemake failed (exit {proc.returncode}); see {out_path}\n{tail}")
    results = workdir / "results" / cohort
    metrics = pd.read_csv(results / "metrics.tsv", sep="\t")
    return RunResult(workdir=workdir, results=results, metrics=metrics, seconds=seconds)


def summarise_metrics(metrics: pd.DataFrame, *, metric: str) -> pd.DataFrame:
    """Mean, sample SD and number of folds of ``metric`` per model, best mean first."""
    rows = metrics[metrics["metric"] == metric]
    out = rows.groupby("model")["value"].agg(mean="mean", sd=lambda v: v.std(ddof=1), n="count")
    return out.sort_values("mean", ascending=False).reset_index()
