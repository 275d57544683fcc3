"""Partial reruns after a complete run of the tiny config: a changed parameter reruns the rules
that use it and what follows them, nothing upstream (Snakemake's params rerun trigger).

Each test dry-runs (``-n``) the finished workflow with an extra config file on top of the tiny
one, and compares the jobs with those that forcing the rules whose params changed would run
(those rules and everything downstream of them, from the DAG itself).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import yaml
from test_cluster import job_blocks
from workflow_utils import jobs_by_rule, private_copy, run_snakemake, tiny_fold0_predictions

UPSTREAM_OF_FUSE = {"train_block", "merge", "wsi_shard", "preprocess_omics"}


@pytest.fixture(scope="module")
def finished(tiny_project, tiny_run, tmp_path_factory) -> Path:
    """A private, complete run of the tiny config."""
    return private_copy(tiny_project, tmp_path_factory.mktemp("reruns") / "wf")


def dry_run(work: Path, *args: str, override: dict | None = None) -> tuple[dict[str, int], str]:
    """Jobs (rule -> count) and the output of a dry run, with ``override`` as a config file."""
    configs = ["tiny.yaml"]
    if override is not None:
        (work / "override.yaml").write_text(yaml.safe_dump(override))
        configs.append("override.yaml")
    proc = run_snakemake("-n", "--cores", "2", *args, "--configfile", *configs, cwd=work)
    output = proc.stdout + proc.stderr
    counts = {rule: n for rule, n in jobs_by_rule(output).items() if rule != "all"}
    return counts, output


def params_changed(output: str) -> set[str]:
    """The rules whose jobs a dry run reruns because their params changed."""
    return {
        rule
        for rule, fields in job_blocks(output)
        if "Params have changed" in fields.get("reason", "")
    }


def test_changing_a_fuse_parameter_reruns_only_fuse_and_what_follows(finished):
    counts, output = dry_run(finished, override={"fuse": {"epochs": 2}})
    changed = params_changed(output)
    assert "fuse" in changed and not changed & UPSTREAM_OF_FUSE, changed
    downstream, _ = dry_run(finished, "--forcerun", *sorted(changed))
    assert counts == downstream, output
    assert counts["fuse"] == 2  # both folds
    assert {"evaluate", "report"} <= set(counts)
    assert not UPSTREAM_OF_FUSE & set(counts), counts


def test_changing_the_tile_size_reruns_the_wsi_stage_and_everything_downstream(finished):
    counts, output = dry_run(finished, override={"wsi": {"tile_size": 32}})
    assert params_changed(output) == {"wsi_shard"}
    downstream, _ = dry_run(finished, "--forcerun", "wsi_shard")
    assert counts == downstream, output
    assert counts["wsi_shard"] == 1  # the one shard of the 30 slides (each slide: test_wsi_shards)
    assert {"patient_bags", "merge", "fuse", "evaluate", "report"} <= set(counts)
    retrained = {f["wildcards"] for rule, f in job_blocks(output) if rule == "train_block"}
    assert retrained == {"modality=wsi, fold=0", "modality=wsi, fold=1"}  # not rnaseq or cnv
    assert not {"demo_slides", "demo_tables", "splits", "preprocess_omics"} & set(counts)


def test_an_override_with_unchanged_values_reruns_nothing(finished):
    """The control: the extra config file by itself triggers nothing."""
    counts, output = dry_run(finished, override={"fuse": {"epochs": 1}})  # tiny's own value
    assert counts == {}, output
    assert "Nothing to be done" in output


def test_rerun_triggers_mtime_ignores_parameter_changes(finished):
    """The README's advice for runs during which the code or config may change."""
    counts, output = dry_run(
        finished, "--rerun-triggers", "mtime", override={"wsi": {"tile_size": 32}}
    )
    assert counts == {}, output


FOLD0_PREDICTIONS = tiny_fold0_predictions(
    [
        "block_wsi",
        "block_rnaseq",
        "block_cnv",
        "lego_merge",
        "lego_fuse",
        "late_fusion_mean_risk",
        "late_fusion_concat",
        "rsf",
    ]
)


@pytest.mark.slow
def test_same_seed_same_results_whether_jobs_run_in_parallel_or_one_at_a_time(
    tiny_project, tiny_run, tmp_path
):
    """Determinism on CPU: the reference run ran two jobs at a time (``--cores 2``); fold 0's
    blocks, LegoMerge, LegoFuse, the late fusions and the random survival forest retrained one
    job at a time (``--cores 1``) predict exactly the same numbers."""
    work = tmp_path / "wf"
    shutil.copytree(tiny_project, work, symlinks=True)
    shutil.rmtree(work / ".snakemake" / "locks", ignore_errors=True)
    before = {p: (work / p).stat().st_mtime_ns for p in FOLD0_PREDICTIONS}
    proc = run_snakemake(
        "--cores", "1", "--forcerun", "train_block", "forest_baseline",
        "--configfile", "tiny.yaml", "--", *FOLD0_PREDICTIONS, cwd=work,
    )  # fmt: skip
    counts = jobs_by_rule(proc.stdout + proc.stderr)
    assert counts["train_block"] == 3 and counts["merge"] == counts["fuse"] == 1, counts
    assert counts["forest_baseline"] == 1, counts
    for p in FOLD0_PREDICTIONS:
        assert (work / p).stat().st_mtime_ns != before[p], p  # really recomputed
        again = pd.read_csv(work / p, sep="\t")
        reference = pd.read_csv(tiny_project / p, sep="\t")
        assert again["risk"].notna().all() and len(again) > 0, p
        pd.testing.assert_frame_equal(again, reference, check_exact=True, obj=p)


@pytest.mark.slow
def test_one_slide_is_recomputed_by_its_shard_target(tiny_project, tiny_run, tmp_path):
    """config/README.md's recipe: delete a slide's files, force its shard's manifest; only that
    slide is recomputed (the same result), and the rest of the workflow then follows."""
    work = private_copy(tiny_project, tmp_path / "wf")
    wsi = work / "results" / "demo" / "wsi"
    manifest = "results/demo/wsi/shards/features/0000.tsv"
    slides = pd.read_csv(work / manifest, sep="\t")["slide_id"].tolist()
    slide = slides[3]
    kinds = (("coords", "h5"), ("qc", "png"), ("features", "h5"))
    files = {kind: wsi / kind / f"{slide}.{ext}" for kind, ext in kinds}
    with h5py.File(files["features"]) as f:
        features = f["features"][()]
    for path in files.values():
        path.unlink()
    # the other slides' files (wsi/{coords,qc,features}/<slide>.*)
    others = {p: p.stat().st_mtime_ns for p in wsi.glob("*/*.*") if slide not in p.name}
    assert len(others) == 3 * (len(slides) - 1)

    args = ("--cores", "2", "-f", "--configfile", "tiny.yaml", "--", manifest)
    proc = run_snakemake(*args, cwd=work)
    assert jobs_by_rule(proc.stdout + proc.stderr) == {"wsi_shard": 1}
    actions = pd.read_csv(work / manifest, sep="\t").set_index("slide_id")["action"]
    assert actions[slide] == "tiled+encoded" and set(actions.drop(slide)) == {"reused"}
    assert all(p.is_file() for p in files.values())
    with h5py.File(files["features"]) as f:
        np.testing.assert_array_equal(f["features"][()], features)
    assert {p: p.stat().st_mtime_ns for p in others} == others
    counts, _ = dry_run(work)
    assert {"patient_bags", "wsi_qc", "report"} <= set(counts) and "wsi_shard" not in counts
