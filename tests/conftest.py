"""Session fixtures shared by the tests that run the real workflow.

The test command runs the suite on several workers (pytest-xdist, one file per worker at a
time). The tiny workflow run is made once for all of them: the first worker that needs it runs
it in a folder every worker of the session shares, under a file lock; the others wait for it
and reuse it. Tests read it and never change it: a test that reruns or deletes anything works
on its own copy (:func:`workflow_utils.private_copy`).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from workflow_utils import locked, make_working_copy, run_snakemake


@pytest.fixture(scope="session")
def shared_tmp(tmp_path_factory) -> Path:
    """A folder shared by every worker of this test session (the session's own without xdist)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session")
def tiny_project(shared_tmp) -> Path:
    """A working copy of the workflow (code linked, results private to the session)."""
    work = shared_tmp / "tiny_wf"
    with locked(shared_tmp / "tiny_wf.lock"):
        if not work.exists():
            make_working_copy(work)
    return work


@pytest.fixture(scope="session")
def tiny_run(tiny_project, shared_tmp) -> Path:
    """The tiny config run to completion once per session (2 parallel jobs); its results."""
    done = shared_tmp / "tiny_run.done"
    with locked(shared_tmp / "tiny_run.lock"):
        if not done.exists():
            run_snakemake("--cores", "2", "--configfile", "tiny.yaml", cwd=tiny_project)
            done.touch()
    return tiny_project / "results" / "demo"
