"""Faults: a run killed with SIGKILL during feature extraction and again during training
completes on rerun, no partial file is ever taken for a complete one (every output is written
atomically; a write killed midway leaves nothing under the final name), the results equal an
uninterrupted run's, and with ``--keep-going`` a slide that fails (``wsi.fail_fast``) stops only
what depends on it."""

from __future__ import annotations

import ast
import inspect
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import pandas as pd
import pytest
import torch
import yaml
from workflow_utils import (
    SNAKEMAKE,
    jobs_by_rule,
    make_working_copy,
    run_snakemake,
    snakemake_env,
    tiny_fold0_predictions,
)

from mmlego.demo.slides import write_synthetic_slide
from mmlego.omics.preprocess import OmicsFold

RUN = ("--cores", "2", "--configfile", "tiny.yaml")
# fold 0 of the tiny run up to LegoFuse: the WSI stage, the omics tables, the splits, the blocks,
# LegoMerge and LegoFuse (what is interrupted below); the other folds and models run the same way
FOLD0_LEGO = tiny_fold0_predictions(
    ["block_wsi", "block_rnaseq", "block_cnv", "lego_merge", "lego_fuse"]
)


def run_until(work: Path, done, *, timeout: float = 300) -> None:
    """Start (or resume) fold 0 of the tiny run and SIGKILL its process group as soon as
    ``done()`` holds.

    Jobs that were running when a run was killed are marked incomplete by Snakemake;
    ``--rerun-incomplete`` (what a user passes after a crash) redoes them.
    """
    log = work / "killed_run.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [*SNAKEMAKE, *RUN, "--rerun-incomplete", "--", *FOLD0_LEGO],
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

    # 3. resume to the targets: the same predictions as the uninterrupted run, nothing left to do
    run_snakemake(*RUN, "--rerun-incomplete", "--", *FOLD0_LEGO, cwd=work)
    for target in FOLD0_LEGO:
        resumed = pd.read_csv(work / target, sep="\t")
        reference = pd.read_csv(tiny_run.parents[1] / target, sep="\t")
        pd.testing.assert_frame_equal(resumed, reference, check_exact=True, obj=target)
    out = run_snakemake("-n", *RUN, "--", *FOLD0_LEGO, cwd=work).stdout
    assert "Nothing to be done" in out


# --- atomic writes ---------------------------------------------------------------------------

WRITES_TO_FILES = {"to_csv", "savez", "savez_compressed", "save", "savefig", "write_text",
                   "write_bytes", "to_parquet", "to_json", "dump", "to_hdf"}  # fmt: skip
# writes that are atomic inside the callee (checked below), and the benchmark harness, whose
# files are its own reports in its own work folder, never inputs of a workflow job
ATOMIC_INSIDE = {("scripts/preprocess_omics.py", "fold.save")}
NOT_PIPELINE = ("mmlego/bench/",)


def _non_atomic_writes(path: Path, root: Path) -> list[str]:
    """File writes in ``path`` outside a ``with atomic_path(...)`` block."""
    tree = ast.parse(path.read_text())
    buffers = {  # names bound to in-memory buffers (io.BytesIO())
        t.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign)
        and isinstance(node.value, ast.Call)
        and ast.unparse(node.value.func) in ("io.BytesIO", "io.StringIO", "BytesIO", "StringIO")
        for t in node.targets
        if isinstance(t, ast.Name)
    }
    rel = path.relative_to(root).as_posix()
    found = []

    def visit(node: ast.AST, atomic: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inside = atomic or (
                isinstance(child, ast.With)
                and any(
                    isinstance(i.context_expr, ast.Call)
                    and ast.unparse(i.context_expr.func).endswith("atomic_path")
                    for i in child.items
                )
            )
            if isinstance(child, ast.Call) and not inside:
                func = child.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                mode = [a for a in child.args[1:2] if isinstance(a, ast.Constant)] + [
                    k.value for k in child.keywords if k.arg == "mode"
                ]
                writes_mode = name in ("open", "File") and any(
                    isinstance(m, ast.Constant) and set(str(m.value)) & set("wax") for m in mode
                )
                target = child.args[0] if child.args else None
                to_buffer = isinstance(target, ast.Name) and target.id in buffers
                if (name in WRITES_TO_FILES or writes_mode) and not to_buffer:
                    if (rel, ast.unparse(func)) not in ATOMIC_INSIDE:
                        found.append(f"{rel}:{child.lineno}: {ast.unparse(child)[:80]}")
            visit(child, inside)

    visit(tree, False)
    return found


def test_every_output_is_written_atomically():
    """Every file the pipeline's code writes goes through mmlego.io.atomic_path (a temporary
    file renamed into place when complete), so a killed job leaves no file under its final
    name."""
    root = Path(__file__).resolve().parents[1]
    files = [
        p
        for d in ("mmlego", "scripts")
        for p in sorted((root / d).rglob("*.py"))
        if not p.relative_to(root).as_posix().startswith(NOT_PIPELINE)
    ]
    assert len(files) > 40
    offenders = [w for p in files for w in _non_atomic_writes(p, root)]
    assert not offenders, offenders
    assert "atomic_path" in inspect.getsource(OmicsFold.save)  # the ATOMIC_INSIDE entry


def test_the_atomic_write_scan_catches_a_plain_write(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text(
        "import io\nfrom mmlego.io import atomic_path\n"
        "df.to_csv(path, sep='\\t')\n"  # caught
        "with atomic_path(path) as tmp:\n    df.to_csv(tmp)\n"  # fine
        "buf = io.BytesIO()\nfig.savefig(buf)\n"  # fine: memory
        "with h5py.File(path, 'w') as f:\n    pass\n"  # caught
    )
    found = _non_atomic_writes(bad, tmp_path)
    assert [f.split(":")[1] for f in found] == ["3", "8"], found


def test_a_write_killed_midway_leaves_no_file_under_its_final_name(tmp_path):
    """SIGKILL a process in the middle of writing an output through atomic_path."""
    dest = tmp_path / "out" / "table.tsv"
    code = (
        "import sys, time\n"
        "from mmlego.io import atomic_path\n"
        "with atomic_path(sys.argv[1]) as tmp, open(tmp, 'w') as fh:\n"
        "    fh.write('patient_id\\trisk\\n' * 1000); fh.flush()\n"
        "    print('writing', flush=True); time.sleep(60)\n"
    )
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(dest)], stdout=subprocess.PIPE, text=True, env=env
    )
    assert proc.stdout.readline().strip() == "writing"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not dest.exists()
    partial = list(dest.parent.iterdir())
    assert len(partial) == 1 and partial[0].name.startswith(".table.tsv.")  # hidden, temporary
    assert partial[0].stat().st_size > 0
    assert finished(dest.parent, "*.tsv") == []


# --- --keep-going: one slide fails with wsi.fail_fast, the other branches finish -------------


def keep_going_cohort(folder: Path, *, bad: str) -> dict:
    """A user cohort of 4 slides (synthetic, small), slide ``bad`` not a slide at all."""
    ids = [f"K{i}" for i in range(8)]
    folder.mkdir(parents=True)
    pd.DataFrame(
        {"patient_id": ids, "time": [float(3 + 5 * i) for i in range(8)], "event": [1, 0] * 4}
    ).to_csv(folder / "patients.tsv", sep="\t", index=False)
    slides = pd.DataFrame(
        {"patient_id": ids[:4], "slide_id": [f"{p}-S" for p in ids[:4]], "path": ""}
    )
    slides["path"] = [f"{s}.tiff" for s in slides["slide_id"]]
    slides.to_csv(folder / "slides.tsv", sep="\t", index=False)
    for i, slide in enumerate(slides["slide_id"]):
        if slide == bad:
            (folder / f"{slide}.tiff").write_text("not a slide\n")
        else:
            write_synthetic_slide(
                folder / f"{slide}.tiff", seed=i, factor=0.0, width=1024, height=768
            )
    pd.DataFrame({"patient_id": ids, "G1": range(8), "G2": [1.0, 3.0] * 4}).to_csv(
        folder / "rnaseq.tsv", sep="\t", index=False
    )
    return {
        "cohort": "kg",
        "inputs": {
            "patients": str(folder / "patients.tsv"),
            "slides": str(folder / "slides.tsv"),
            "tables": {"rnaseq": str(folder / "rnaseq.tsv")},
        },
        "modalities": {"cnv": None},
        "wsi": {"fail_fast": True},
    }


@pytest.mark.slow
def test_keep_going_finishes_the_other_slides_when_one_fails(tmp_path):
    """Shards of 2 slides: K0-S, K1-S | K2-S, K3-S; K3-S is not a slide."""
    work = make_working_copy(tmp_path / "wf")
    bad = "K3-S"
    config = keep_going_cohort(tmp_path / "c", bad=bad)
    config["wsi"]["shard_size"] = 2
    (work / "kg.yaml").write_text(yaml.safe_dump(config))
    res = work / "results" / "kg" / "wsi"
    target = ("results/kg/wsi/patient_bags.h5",)
    args = ("--cores", "2", "--configfile", "tiny.yaml", "kg.yaml")
    proc = run_snakemake(*args, "--keep-going", "--", *target, cwd=work, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    assert "Error in rule wsi_shard" in out and "shard=0001" in out, out
    # the other shard finished, and so did the bad slide's shard up to it (fail_fast: it stops
    # at the bad slide), completely
    good = [f"K{i}-S" for i in (0, 1, 2)]
    for slide in good:
        with h5py.File(res / "features" / f"{slide}.h5", "r") as f:
            assert f.attrs["status"] == "ok"
            assert f["features"].shape[0] == f["coords"].shape[0] > 0
    assert sorted(finished(res / "coords", "*.h5")) == [res / "coords" / f"{s}.h5" for s in good]
    assert sorted(finished(res / "features", "*.h5")) == [
        res / "features" / f"{s}.h5" for s in good
    ]
    assert finished(res / "shards" / "features", "*.tsv") == [
        res / "shards" / "features" / "0000.tsv"
    ]
    assert not (res / "patient_bags.h5").exists()  # what needs the failed slide did not run
    log = (work / "results" / "kg" / "logs" / "wsi_shard" / "0001.log").read_text()
    assert f"slide {bad}" in log, log
    assert f"{tmp_path / 'c' / bad}.tiff: OpenSlide cannot open this file" in log, log

    # the slide is replaced by a good one: the rerun does only what is left (one shard job,
    # which recomputes the one slide)
    write_synthetic_slide(
        tmp_path / "c" / f"{bad}.tiff", seed=9, factor=0.0, width=1024, height=768
    )
    kept = [*finished(res / "features", "*.h5"), *finished(res / "coords", "*.h5")]
    before = {p: p.stat().st_mtime_ns for p in kept}
    proc = run_snakemake(*args, "--", *target, cwd=work)
    counts = jobs_by_rule(proc.stdout + proc.stderr)
    assert counts == {"wsi_shard": 1, "patient_bags": 1}, counts
    assert {p: p.stat().st_mtime_ns for p in before} == before
    manifest = pd.read_csv(res / "shards" / "features" / "0001.tsv", sep="\t")
    assert manifest.set_index("slide_id")["action"].to_dict() == {
        "K2-S": "reused",
        bad: "tiled+encoded",
    }
    with h5py.File(res / "patient_bags.h5", "r") as f:
        assert sorted(f) == ["K0", "K1", "K2", "K3"]
