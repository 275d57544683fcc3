"""Faults: a run killed with SIGKILL during feature extraction and again during training
completes on rerun, no partial file is ever taken for a complete one, and the results equal an
uninterrupted run's."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import h5py
import pandas as pd
import pytest
import torch
from workflow_utils import SNAKEMAKE, make_working_copy, run_snakemake, snakemake_env

RUN = ("--cores", "2", "--configfile", "tiny.yaml")


def run_until(work: Path, done, *, timeout: float = 300) -> None:
    """Start (or resume) the tiny run and SIGKILL its process group as soon as ``done()`` holds.

    Jobs that were running when a run was killed are marked incomplete by Snakemake;
    ``--rerun-incomplete`` (what a user passes after a crash) redoes them.
    """
    log = work / "killed_run.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [*SNAKEMAKE, *RUN, "--rerun-incomplete"],
            cwd=work,
            env=snakemake_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deadline = time.monotonic() + timeout
    try:
        while not done():
            if proc.poll() is not None:
                pytest.fail(f"the run ended before the kill point:\n{log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail("kill point not reached in time")
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def finished(folder: Path, pattern: str) -> list[Path]:
    """Files under their final name (a killed job's temporary files are hidden: '.name.*')."""
    return (
        [p for p in folder.glob(pattern) if not p.name.startswith(".")] if folder.is_dir() else []
    )


@pytest.mark.slow
def test_killed_runs_resume_to_the_uninterrupted_result(tmp_path, tiny_run):
    work = make_working_copy(tmp_path / "wf")
    res = work / "results" / "demo"

    # 1. kill -9 while patch features are being extracted
    run_until(work, lambda: len(finished(res / "wsi" / "features", "*.h5")) >= 3)
    for path in finished(res / "wsi" / "features", "*.h5"):  # what is there is complete
        with h5py.File(path, "r") as f:
            assert f["features"].shape[0] == f["coords"].shape[0]
    run_snakemake("--unlock", *RUN, cwd=work)

    # 2. resume, and kill -9 again once block training has started
    run_until(work, lambda: len(finished(res / "blocks", "*/fold*.pt")) >= 1)
    for path in finished(res / "blocks", "*/fold*.pt"):  # a checkpoint on disk loads
        torch.load(path, weights_only=True)
    run_snakemake("--unlock", *RUN, cwd=work)

    # 3. resume to the end: identical metrics to the uninterrupted run, nothing left to do
    run_snakemake(*RUN, "--rerun-incomplete", cwd=work)
    resumed = pd.read_csv(res / "metrics.tsv", sep="\t")
    reference = pd.read_csv(tiny_run / "metrics.tsv", sep="\t")
    pd.testing.assert_frame_equal(resumed, reference)
    out = run_snakemake("-n", *RUN, cwd=work).stdout
    assert "Nothing to be done" in out
