"""Session fixtures shared by the tests that run the real workflow."""

from __future__ import annotations

from pathlib import Path

import pytest
from workflow_utils import make_working_copy, run_snakemake


@pytest.fixture(scope="session")
def tiny_project(tmp_path_factory) -> Path:
    """A private working copy of the workflow (code linked, results private to the session)."""
    return make_working_copy(tmp_path_factory.mktemp("wf"))


@pytest.fixture(scope="session")
def tiny_run(tiny_project) -> Path:
    """The tiny config run to completion once (2 parallel jobs); its results folder."""
    run_snakemake("--cores", "2", "--configfile", "tiny.yaml", cwd=tiny_project)
    return tiny_project / "results" / "demo"
