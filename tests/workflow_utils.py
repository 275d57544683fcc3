"""Helpers for tests that run the real workflow with Snakemake in a private working copy."""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from mmlego.pipeline import Paths
from mmlego.pipeline.models import model_names

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake"]
TINY = ROOT / "tests" / "configs" / "tiny.yaml"
# the modality-imbalance experiments, which the tiny config leaves out (added by the tests that
# are about them, on top of it)
TINY_EXPERIMENTS = {"paired_budget": [0, 50], "disjoint": True, "disjoint_paired_fraction": 0.25}
TINY_MODALITIES = ("cnv", "rnaseq", "wsi")
APT_LOCK = Path("/tmp/mmlego-tests-apt.lock")
"""Held by every test that installs Debian packages (tests run in parallel; dpkg has one lock)."""


def tiny_fold0_predictions(models: Sequence[str] | None = None) -> list[str]:
    """The prediction files of fold 0 of the tiny run (relative to its working copy): of
    ``models``, or of every model it scores."""
    if models is None:
        models = model_names(task="survival", modalities=TINY_MODALITIES, experiments={})
    paths = Paths.for_cohort("demo", root="results")
    return [paths.predictions(m, 0) for m in models]


def snakemake_env() -> dict[str, str]:
    """The environment for Snakemake: this interpreter's bin first on PATH (its scripts' python)."""
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


def run_snakemake(
    *args: str, cwd: Path, check: bool = True, timeout: int = 900
) -> subprocess.CompletedProcess:
    """Run Snakemake in ``cwd``; raise with its whole output if it fails and ``check``."""
    proc = subprocess.run(
        [*SNAKEMAKE, *args],
        cwd=cwd,
        env=snakemake_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return proc


def jobs_by_rule(output: str) -> dict[str, int]:
    """Parse Snakemake's 'Job stats' table (rule name -> count) from its output."""
    if "Job stats:" not in output:
        return {}
    table = output.split("Job stats:", 1)[1]
    counts: dict[str, int] = {}
    for line in table.splitlines()[3:]:
        m = re.match(r"^(\S+)\s+(\d+)\s*$", line)
        if m and m.group(1) != "total":
            counts[m.group(1)] = int(m.group(2))
        elif counts and not line.strip():
            break
    return counts


def make_working_copy(work: Path) -> Path:
    """A working directory with the workflow's code linked and config copied; results private."""
    work.mkdir(parents=True, exist_ok=True)
    for name in ("workflow", "rules", "scripts", "envs", "mmlego"):
        (work / name).symlink_to(ROOT / name)
    shutil.copytree(ROOT / "config", work / "config")
    shutil.copy(TINY, work / "tiny.yaml")
    return work


def private_copy(project: Path, dest: Path) -> Path:
    """A copy of a finished working copy (code links, results, .snakemake metadata; file times
    kept) for a test that reruns or deletes something: the shared run stays as it is."""
    shutil.copytree(project, dest, symlinks=True)
    shutil.rmtree(dest / ".snakemake" / "locks", ignore_errors=True)
    out = run_snakemake("-n", "--cores", "2", "--configfile", "tiny.yaml", cwd=dest)
    assert "Nothing to be done" in out.stdout + out.stderr
    return dest


@contextmanager
def locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if missing) across processes."""
    with Path(path).open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
