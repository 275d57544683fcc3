"""Failure isolation in the WSI stage: bad slides are recorded in the QC table with a reason,
the other slides and the rest of the workflow go on, and the patient counts as missing slides."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import yaml
from workflow_utils import make_working_copy, run_snakemake

from mmlego.demo.slides import write_aperio_tiff, write_synthetic_slide
from mmlego.wsi.features import extract_features
from mmlego.wsi.slide import SlideError
from mmlego.wsi.tiling import tile_slide
from mmlego.wsi.tissue import TissueParams

TILING = {"target_mpp": 1.0, "tile_size": 64, "tissue": TissueParams()}


def bad_slides(folder: Path) -> dict[str, Path]:
    """A truncated slide, a file that is not a slide, a slide without MPP, a blank slide."""
    folder.mkdir(parents=True, exist_ok=True)
    good = folder / "good.tiff"
    write_synthetic_slide(good, seed=1, factor=0.0, width=1024, height=768)
    truncated = folder / "truncated.tiff"
    data = good.read_bytes()
    truncated.write_bytes(data[: len(data) // 3])
    notaslide = folder / "notaslide.svs"
    notaslide.write_text("this is not a slide\n")
    nompp = folder / "nompp.tiff"
    write_synthetic_slide(nompp, seed=2, factor=0.0, width=1024, height=768, mpp=None)
    blank = folder / "blank.tiff"
    write_aperio_tiff(blank, np.full((768, 1024, 3), 242, np.uint8), mpp=0.5)
    return {
        "good": good,
        "truncated": truncated,
        "notaslide": notaslide,
        "nompp": nompp,
        "blank": blank,
    }


def test_bad_slides_are_recorded_not_raised(tmp_path):
    slides = bad_slides(tmp_path / "slides")
    results = {}
    for name, path in slides.items():
        out = tmp_path / f"{name}.h5"
        res = tile_slide(path, out, **TILING, qc_png=tmp_path / f"{name}.png", fail_fast=False)
        feats = tmp_path / f"{name}.feat.h5"
        n = extract_features(path, out, feats, fail_fast=False)
        results[name] = (res, n, h5py.File(feats, "r").attrs.get("status"))
        assert (tmp_path / f"{name}.png").stat().st_size > 0  # a QC picture for every slide
    assert results["good"][0].status == "ok" and results["good"][1] > 0
    assert results["blank"][0].status == "no_tissue" and results["blank"][1] == 0
    for name in ("truncated", "notaslide", "nompp"):
        res, n, status = results[name]
        assert n == 0 and (res.status == "failed" or status == "failed"), name
    assert "no resolution" in results["nompp"][0].reason
    assert "notaslide.svs" in results["notaslide"][0].reason


def test_fail_fast_raises_naming_the_slide(tmp_path):
    slides = bad_slides(tmp_path / "slides")
    with pytest.raises(SlideError, match=r"notaslide\.svs"):
        tile_slide(slides["notaslide"], tmp_path / "x.h5", **TILING)
    with pytest.raises(SlideError, match=r"nompp\.tiff.*no resolution"):
        tile_slide(slides["nompp"], tmp_path / "y.h5", **TILING)


@pytest.mark.slow
def test_workflow_goes_on_past_bad_slides(tmp_path, tiny_run):
    """A user cohort (the tiny demo's tables) where four slides are broken: the run completes,
    the QC table names each broken slide with its reason, and those patients are scored
    without slides."""
    work = make_working_copy(tmp_path / "wf")
    cohort = tmp_path / "cohort"
    shutil.copytree(tiny_run / "cohort", cohort)
    sheet = pd.read_csv(cohort / "slides.tsv", sep="\t")
    broken = bad_slides(tmp_path / "bad")
    victims = {}
    for name, row in zip(
        ("truncated", "notaslide", "nompp", "blank"), sheet.itertuples(), strict=False
    ):
        dest = cohort / row.path
        shutil.copy(broken[name], dest)
        victims[row.slide_id] = (name, row.patient_id)
    config = yaml.safe_load((work / "tiny.yaml").read_text())
    config.update(
        cohort="user",
        inputs={
            "patients": str(cohort / "patients.tsv"),
            "slides": str(cohort / "slides.tsv"),
            "tables": {m: str(cohort / "omics" / f"{m}.tsv") for m in ("rnaseq", "cnv")},
        },
    )
    (work / "user.yaml").write_text(yaml.safe_dump(config))
    run_snakemake("--cores", "2", "--configfile", "user.yaml", cwd=work)

    qc = pd.read_csv(work / "results/user/wsi/qc.tsv", sep="\t").set_index("slide_id")
    for slide, (name, _) in victims.items():
        expected = "no_tissue" if name == "blank" else "failed"
        assert qc.loc[slide, "status"] == expected, (slide, name, qc.loc[slide].to_dict())
        assert qc.loc[slide, "n_tiles"] == 0
    assert (qc.drop(index=list(victims))["status"] == "ok").all()
    assert (
        "no resolution" in qc.loc[next(s for s, v in victims.items() if v[0] == "nompp"), "reason"]
    )
    with h5py.File(work / "results/user/wsi/patient_bags.h5", "r") as f:
        for _, patient in victims.values():
            assert patient not in f or f[patient]["features"].shape[0] > 0
    metrics = pd.read_csv(work / "results/user/metrics.tsv", sep="\t")
    assert {"lego_merge", "lego_fuse", "block_wsi"} <= set(metrics["model"])
    assert "Slides without tiles" in (work / "results/user/report.html").read_text()
