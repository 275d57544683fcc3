"""``wsi.features_from`` in a real workflow run: a user cohort whose slide features come from a
folder of CLAM-style files is imported without tiling, and a slide without a file is recorded."""

from __future__ import annotations

import shutil

import h5py
import numpy as np
import pandas as pd
import pytest
import yaml
from workflow_utils import jobs_by_rule, make_working_copy, run_snakemake

pytestmark = pytest.mark.slow


def test_features_from_imports_clam_files_instead_of_tiling(tiny_run, tmp_path):
    cohort = tiny_run / "cohort"
    slides = pd.read_csv(cohort / "slides.tsv", sep="\t", dtype=str)
    # the slide files are not read: point the sheet at paths that do not exist
    slides["path"] = [f"/nonexistent/{s}.svs" for s in slides["slide_id"]]
    slides["mpp"] = ""
    sheet = tmp_path / "slides.tsv"
    slides.to_csv(sheet, sep="\t", index=False)

    # CLAM layout: <folder>/h5_files/<slide_id>.h5 with features + coords; one slide missing
    folder = tmp_path / "features_hed" / "h5_files"
    folder.mkdir(parents=True)
    missing = slides["slide_id"].iloc[0]
    for slide in slides["slide_id"].iloc[1:]:
        with (
            h5py.File(tiny_run / "wsi" / "features" / f"{slide}.h5") as src,
            h5py.File(folder / f"{slide}.h5", "w") as dst,
        ):
            dst.create_dataset("features", data=src["features"][()])
            dst.create_dataset("coords", data=src["coords"][()])

    work = make_working_copy(tmp_path / "wf")
    tiny = yaml.safe_load((work / "tiny.yaml").read_text())
    config = {
        **tiny,
        "cohort": "byo",
        "inputs": {
            "patients": str(cohort / "patients.tsv"),
            "slides": str(sheet),
            "tables": {m: str(cohort / "omics" / f"{m}.tsv") for m in ("rnaseq", "cnv")},
        },
        # shards of 8 slides: 4 import jobs for the 30 slides
        "wsi": {**tiny["wsi"], "features_from": str(tmp_path / "features_hed"), "shard_size": 8},
    }
    (work / "byo.yaml").write_text(yaml.safe_dump(config))
    targets = ["results/byo/wsi/patient_bags.h5", "results/byo/wsi/qc.tsv"]
    proc = run_snakemake(*targets, "--cores", "2", "--configfile", "byo.yaml", cwd=work)
    jobs = jobs_by_rule(proc.stdout + proc.stderr)
    assert jobs["import_shard"] == -(-len(slides) // 8)
    assert "wsi_shard" not in jobs
    manifests = sorted((work / "results/byo/wsi/shards/imported").glob("*.tsv"))
    imported = pd.concat([pd.read_csv(m, sep="\t", dtype=str) for m in manifests])
    assert sorted(imported["slide_id"]) == sorted(slides["slide_id"])  # each slide in one shard

    qc = pd.read_csv(work / "results/byo/wsi/qc.tsv", sep="\t", dtype={"reason": str})
    failed = qc[qc["status"] != "ok"]
    assert failed["slide_id"].tolist() == [missing]
    assert missing in failed["reason"].iloc[0] and "h5_files" in failed["reason"].iloc[0]

    lost = slides.loc[slides["slide_id"] == missing, "patient_id"].iloc[0]
    with (
        h5py.File(work / "results/byo/wsi/patient_bags.h5") as got,
        h5py.File(tiny_run / "wsi" / "patient_bags.h5") as ref,
    ):
        others = [p for p in ref if p != lost]
        assert lost not in got and sorted(got) == sorted(others)
        for p in others:
            np.testing.assert_array_equal(got[p]["features"][()], ref[p]["features"][()])

    # nothing to do on a rerun; a new file for the missing slide reruns its shard, which
    # imports that slide only
    again = run_snakemake(*targets, "--cores", "2", "--configfile", "byo.yaml", cwd=work)
    assert "Nothing to be done" in again.stdout + again.stderr
    shutil.copy(folder / f"{slides['slide_id'].iloc[1]}.h5", folder / f"{missing}.h5")
    dry = run_snakemake(*targets, "-n", "--configfile", "byo.yaml", cwd=work)
    assert jobs_by_rule(dry.stdout + dry.stderr)["import_shard"] == 1
    before = {m: m.stat().st_mtime_ns for m in manifests}
    run_snakemake(*targets, "--cores", "2", "--configfile", "byo.yaml", cwd=work)
    changed = [m for m in manifests if m.stat().st_mtime_ns != before[m]]
    assert len(changed) == 1, changed
    redone = pd.read_csv(changed[0], sep="\t", dtype=str)
    assert redone.loc[redone["action"] != "reused", "slide_id"].tolist() == [missing]
