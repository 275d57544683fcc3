"""Failure isolation in the WSI stage: bad slides are recorded in the QC table with a reason,
the other slides and the rest of the workflow go on, and the patient counts as missing slides."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import tifffile
import yaml
from workflow_utils import make_working_copy, run_snakemake

from mmlego.demo.slides import _render, write_aperio_tiff, write_synthetic_slide
from mmlego.pipeline import Paths
from mmlego.report.html import render_report
from mmlego.wsi.bags import qc_table
from mmlego.wsi.features import extract_features
from mmlego.wsi.qc import add_slide_notes
from mmlego.wsi.slide import SlideError
from mmlego.wsi.tiling import tile_slide
from mmlego.wsi.tissue import TissueParams

TILING = {"target_mpp": 1.0, "tile_size": 64, "tissue": TissueParams()}


def bad_slides(folder: Path) -> dict[str, Path]:
    """A truncated slide, a file that is not a slide, a slide without MPP, a blank slide, a
    slide scanned coarser (2 µm/px) than ``TILING``'s 1 µm/px, and a slide with one tissue
    tile's JPEG data destroyed."""
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
    coarse = folder / "coarse.tiff"
    write_synthetic_slide(coarse, seed=3, factor=0.0, width=512, height=384, mpp=2.0)
    damaged = folder / "damaged.tiff"  # TIFF tiles of 128 px: one per 64 px tile at 1 µm/px
    write_synthetic_slide(damaged, seed=4, factor=0.0, width=1024, height=768, tile=128)
    tile_slide(damaged, folder / "damaged.h5", **TILING)
    with h5py.File(folder / "damaged.h5") as f:
        x, y = f["coords"][len(f["coords"]) // 2]
    corrupt_tiles(damaged, [int(y // 128 * 8 + x // 128)])
    return {
        "good": good,
        "truncated": truncated,
        "notaslide": notaslide,
        "nompp": nompp,
        "blank": blank,
        "coarse": coarse,
        "damaged": damaged,
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
    res, n, status = results["damaged"]
    assert status == "ok" and n == res.n_tiles - 1  # one unreadable tile skipped, not the slide
    assert "coarser than the target" in results["coarse"][0].reason
    for name in ("truncated", "notaslide", "nompp", "coarse"):
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


def test_a_truncated_slides_diagnosis_logs_no_tiff_reader_errors(tmp_path, caplog):
    """The reason in the QC table says what is wrong; the TIFF reader's own complaints about
    the damaged file, read to find that reason, are held back."""
    truncated = bad_slides(tmp_path / "slides")["truncated"]
    res = tile_slide(truncated, tmp_path / "t.h5", **TILING, fail_fast=False)
    assert "truncated TIFF" in res.reason
    assert not [r for r in caplog.records if r.name.startswith("tifffile")]


@pytest.mark.slow
def test_workflow_goes_on_past_bad_slides(tmp_path, tiny_run):
    """A user cohort (the tiny demo's tables) where six slides are broken: the WSI stage
    completes, the QC table names each broken slide with its reason, the models of a fold that
    use the slides are trained and score every validation patient (those with broken slides
    without slides), and the report lists the slides without tiles."""
    work = make_working_copy(tmp_path / "wf")
    cohort = tmp_path / "cohort"
    shutil.copytree(tiny_run / "cohort", cohort)
    sheet = pd.read_csv(cohort / "slides.tsv", sep="\t")
    broken = bad_slides(tmp_path / "bad")
    victims = {}
    for name, row in zip(
        ("truncated", "notaslide", "nompp", "blank", "coarse", "damaged"),
        sheet.itertuples(),
        strict=False,
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
        selection={"candidates": 1},  # what this test is about ends with the models trained
    )
    (work / "user.yaml").write_text(yaml.safe_dump(config))
    # the WSI stage and the slide-using models of one fold (the other models and folds do the
    # same with the same bags; the shared tiny run covers them)
    paths = Paths.for_cohort("user", root="results")
    models = ("block_wsi", "lego_merge", "lego_fuse")
    targets = [paths.wsi_qc, paths.patient_bags, *(paths.predictions(m, 0) for m in models)]
    run_snakemake(*targets, "--cores", "2", "--configfile", "user.yaml", cwd=work)

    qc = pd.read_csv(work / paths.wsi_qc, sep="\t").set_index("slide_id")
    for slide, (name, _) in victims.items():
        if name == "damaged":  # kept, less its unreadable tile, which the table counts
            assert qc.loc[slide, "status"] == "ok" and qc.loc[slide, "n_tiles"] > 0
            assert qc.loc[slide, "n_unreadable_tiles"] == 1
            assert "1 of" in qc.loc[slide, "note"] and "unreadable" in qc.loc[slide, "note"]
            continue
        expected = "no_tissue" if name == "blank" else "failed"
        assert qc.loc[slide, "status"] == expected, (slide, name, qc.loc[slide].to_dict())
        assert qc.loc[slide, "n_tiles"] == 0
    assert (qc.drop(index=list(victims))["status"] == "ok").all()
    coarse = next(s for s, v in victims.items() if v[0] == "coarse")
    assert "coarser than the target" in qc.loc[coarse, "reason"]
    assert (
        "no resolution" in qc.loc[next(s for s, v in victims.items() if v[0] == "nompp"), "reason"]
    )
    with h5py.File(work / paths.patient_bags, "r") as f:  # no empty bag is written
        with_tiles = {p for p in f if f[p]["features"].shape[0] > 0}
        assert with_tiles == set(f)
    # patients whose only slides were broken
    without = {p for _, p in victims.values()} - with_tiles
    with_tables = set().union(
        *(pd.read_csv(t, sep="\t").iloc[:, 0] for t in (cohort / "omics").glob("*.tsv"))
    )
    split = pd.read_csv(work / paths.split(0), sep="\t")
    val = set(split.loc[split["role"] == "val", "patient_id"])
    assert without & val & with_tables, "fold 0 validates no patient with only broken slides"
    for model in models:
        pred = pd.read_csv(work / paths.predictions(model, 0), sep="\t").set_index("patient_id")
        assert pred["risk"].notna().all(), model
        if model == "block_wsi":  # the slide block scores the patients with tiles only
            assert set(pred.index) <= with_tiles
        else:  # the multimodal models score them too, from their tables (if they have any)
            assert set(pred.index) == val & (with_tables | with_tiles), model
            assert (
                not pred.loc[sorted(without & val & with_tables), "modalities"]
                .str.contains("wsi")
                .any()
            )
    report = render_report(
        out_html=tmp_path / "report.html",
        cohort_name="user",
        metrics=pd.read_csv(tiny_run / "metrics.tsv", sep="\t"),
        patients=pd.read_csv(cohort / "patients.tsv", sep="\t"),
        availability=None,
        predictions={},
        benchmarks=None,
        qc_images=[],
        provenance={},
        synthetic=False,
        wsi_qc=qc.reset_index(),
    ).read_text()
    assert "Slides without tiles" in report
    for slide, (name, _) in victims.items():
        assert (slide in report) == (name != "damaged"), slide


# --- a 20x slide in a run at 0.25 µm/px ---------------------------------------------------


def features_path(folder: Path, slide: str) -> Path:
    """Where the workflow would put a slide's features: named after the slide, beside no other
    file of that name (the QC table takes slide ids from file names)."""
    (folder / "features").mkdir(exist_ok=True)
    return folder / "features" / f"{slide}.h5"


@pytest.fixture(scope="module")
def coarse_slide(tmp_path_factory):
    """A 20x (0.5 µm/px) slide."""
    path = tmp_path_factory.mktemp("coarse") / "scan20x.tiff"
    write_synthetic_slide(path, seed=3, factor=0.0, width=1024, height=768, mpp=0.5)
    return path


def test_coarser_slide_is_recorded_and_the_run_goes_on(coarse_slide, tmp_path):
    out, png = tmp_path / "c.h5", tmp_path / "c.png"
    res = tile_slide(
        coarse_slide,
        out,
        target_mpp=0.25,
        tile_size=64,
        tissue=TissueParams(),
        qc_png=png,
        fail_fast=False,
    )
    assert res.status == "failed" and res.n_tiles == 0
    assert "scan20x.tiff" in res.reason and "coarser than the target 0.25" in res.reason
    assert png.stat().st_size > 0
    feats = features_path(tmp_path, "c")
    assert extract_features(coarse_slide, out, feats, fail_fast=False) == 0
    qc = qc_table(coords_files=[out], feature_files=[feats], patient_of={})
    assert len(qc) == 1
    row = qc.iloc[0]
    assert row["status"] == "failed" and "coarser than the target" in row["reason"]
    assert row["slide_mpp"] == 0.5  # the table shows the scan's resolution


def test_coarser_slide_with_fail_fast_raises_naming_the_file(coarse_slide, tmp_path):
    with pytest.raises(SlideError, match=r"scan20x\.tiff.*coarser than the target"):
        tile_slide(
            coarse_slide,
            tmp_path / "c.h5",
            target_mpp=0.25,
            tile_size=64,
            tissue=TissueParams(),
            fail_fast=True,
        )


def test_coarser_slide_upsampled_on_request(coarse_slide, tmp_path):
    out = tmp_path / "c.h5"
    res = tile_slide(
        coarse_slide,
        out,
        target_mpp=0.25,
        tile_size=64,
        tissue=TissueParams(),
        coarser_slides="upsample",
        fail_fast=False,
    )
    assert res.status == "ok" and res.n_tiles > 0 and "upsampled 2x" in res.reason
    with h5py.File(out, "r") as f:
        assert f.attrs["upsampled"] and f.attrs["upsample_factor"] == pytest.approx(2.0)
        assert f.attrs["patch_level"] == 0 and f.attrs["read_size"] == 32
        assert f.attrs["patch_size_level0"] == 32  # 64 px at 0.25 µm/px = 32 px at 0.5
    feats = features_path(tmp_path, "c")
    assert extract_features(coarse_slide, out, feats) == res.n_tiles
    qc = add_slide_notes(
        qc_table(coords_files=[out], feature_files=[feats], patient_of={}),
        coords_files=[out],
        feature_files=[feats],
    )
    assert len(qc) == 1 and qc.iloc[0]["status"] == "ok" and "upsampled 2x" in qc.iloc[0]["note"]


def test_implausible_resolution_is_not_upsampled(tmp_path):
    """A TIFF with an image tool's 72 dpi (352.8 µm/px) fails for its resolution, also with
    coarser_slides: upsample (which would otherwise make a tile of every pixel); the slide
    sheet's mpp column fixes it."""
    image = _render(seed=1, factor=0.0, width=1024, height=768, mpp=0.5)[0]
    slide = tmp_path / "dpi72.tif"
    tifffile.imwrite(
        slide,
        image,
        tile=(256, 256),
        photometric="rgb",
        compression="deflate",
        resolution=(72, 72),
        resolutionunit="INCH",
        metadata=None,
    )
    settings = {**TILING, "coarser_slides": "upsample"}
    res = tile_slide(
        slide, tmp_path / "c.h5", **settings, qc_png=tmp_path / "c.png", fail_fast=False
    )
    assert (res.status, res.n_grid, res.n_tiles) == ("failed", 0, 0)
    assert res.reason.startswith(f"{slide}: implausible resolution 352.778 µm/px"), res.reason
    with pytest.raises(SlideError, match=r"dpi72\.tif: implausible resolution"):
        tile_slide(slide, tmp_path / "c.h5", **settings)
    res = tile_slide(slide, tmp_path / "c.h5", **settings, mpp_override=0.5)
    assert res.status == "ok" and res.reason == "" and 0 < res.n_tiles < 200  # not upsampled


# --- a slide with some undecodable JPEG tiles ---------------------------------------------


def corrupt_tiles(path: Path, tiles: list[int]) -> np.ndarray:
    """Overwrite the JPEG data of some level-0 TIFF tiles with zeros (OpenSlide then fails
    with 'Not a JPEG file'); returns their level-0 x, y (k, 2)."""
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        offsets, counts, tw, th = (
            page.dataoffsets,
            page.databytecounts,
            page.tilewidth,
            page.tilelength,
        )
        per_row = -(-page.imagewidth // tw)
    with path.open("r+b") as fh:
        for k in tiles:
            fh.seek(offsets[k])
            fh.write(bytes(counts[k]))
    return np.array([[(k % per_row) * tw, (k // per_row) * th] for k in tiles], dtype=np.int64)


#: Tiles of 128 px at 0.5 µm/px on a 0.5 µm/px slide whose TIFF tiles are 128 px: each tile is
#: one TIFF tile; min_tissue 0 keeps the whole 8 x 6 grid (48 tiles).
GRID = {"target_mpp": 0.5, "tile_size": 128, "tissue": TissueParams(), "min_tissue": 0.0}


@pytest.fixture(scope="module")
def intact(tmp_path_factory):
    """A slide, its coordinates (48 tiles) and its features, before any damage."""
    d = tmp_path_factory.mktemp("tiles")
    write_synthetic_slide(d / "s.tiff", seed=5, factor=0.0, width=1024, height=768, tile=128)
    assert tile_slide(d / "s.tiff", d / "s.h5", **GRID).n_tiles == 48
    assert extract_features(d / "s.tiff", d / "s.h5", d / "s.feat.h5") == 48
    return d


def damaged(intact: Path, dest: Path, tiles: list[int]) -> tuple[Path, Path, np.ndarray]:
    """A copy of the intact slide with those TIFF tiles corrupted, and its coordinates file."""
    dest.mkdir(parents=True, exist_ok=True)
    slide = dest / "damaged.tiff"
    shutil.copy(intact / "s.tiff", slide)
    bad = corrupt_tiles(slide, tiles)
    coords, png = dest / "damaged.h5", dest / "damaged.png"
    # the tissue mask comes from a coarser level; the QC picture's level-0 read fails and falls
    # back to the mask image: tiling is untouched
    assert tile_slide(slide, coords, **GRID, qc_png=png).n_tiles == 48
    assert png.stat().st_size > 0
    return slide, coords, bad


@pytest.mark.parametrize("workers", [0, 1])
def test_unreadable_tiles_are_skipped_and_counted(intact, tmp_path, workers):
    slide, coords, bad = damaged(intact, tmp_path, [9, 20, 30])  # 3 of 48: under 10 %
    out = features_path(tmp_path, "damaged")
    n = extract_features(slide, coords, out, num_workers=workers, batch_size=8, fail_fast=True)
    assert n == 45
    with h5py.File(intact / "s.feat.h5") as f:
        all_coords, all_feats = f["coords"][:], f["features"][:]
    keep = ~(all_coords[:, None, :] == bad[None]).all(-1).any(1)  # (48,)
    with h5py.File(out) as f:
        assert f.attrs["status"] == "ok" and f.attrs["n_tiles"] == 45
        assert f.attrs["n_unreadable_tiles"] == 3
        assert "Not a JPEG file" in f.attrs["unreadable_first_error"]
        np.testing.assert_array_equal(f["unreadable_coords"][:], bad)
        np.testing.assert_array_equal(f["coords"][:], all_coords[keep])
        # each row still belongs to its tile: the readable tiles' features are unchanged
        np.testing.assert_allclose(f["features"][:], all_feats[keep], rtol=1e-6)
    qc = add_slide_notes(
        qc_table(coords_files=[coords], feature_files=[out], patient_of={}),
        coords_files=[coords],
        feature_files=[out],
    )
    assert len(qc) == 1
    row = qc.iloc[0]
    assert row["status"] == "ok" and row["n_tiles"] == 45 and row["n_unreadable_tiles"] == 3
    assert "3 of 48 tiles unreadable" in row["note"]


@pytest.mark.parametrize("workers", [0, 1])
def test_slide_with_too_many_unreadable_tiles_fails(intact, tmp_path, workers):
    slide, coords, _ = damaged(intact, tmp_path, [9, 12, 20, 27, 30, 36])  # 6 of 48: 12.5 %
    out = features_path(tmp_path, "damaged")
    n = extract_features(slide, coords, out, num_workers=workers, batch_size=8, fail_fast=False)
    assert n == 0
    with h5py.File(out) as f:
        assert f.attrs["status"] == "failed" and f["features"].shape[0] == 0
        assert f["coords"].shape == (0, 2)
        assert f.attrs["n_unreadable_tiles"] > 4  # counted until the slide was given up
    qc = add_slide_notes(
        qc_table(coords_files=[coords], feature_files=[out], patient_of={}),
        coords_files=[coords],
        feature_files=[out],
    )
    assert len(qc) == 1
    row = qc.iloc[0]
    assert row["status"] == "failed" and row["n_unreadable_tiles"] > 4
    assert "damaged.tiff" in row["reason"] and "max_bad_tile_fraction" in row["reason"]
    with pytest.raises(SlideError, match=r"damaged\.tiff.*Not a JPEG file"):
        extract_features(slide, coords, tmp_path / "x.h5", num_workers=workers, fail_fast=True)


def test_any_unreadable_tile_fails_the_slide_at_fraction_zero(intact, tmp_path):
    slide, coords, _ = damaged(intact, tmp_path, [20])
    with pytest.raises(SlideError, match=r"damaged\.tiff: cannot read tile at \(512, 256\)"):
        extract_features(slide, coords, tmp_path / "x.h5", max_bad_tile_fraction=0.0)
    assert extract_features(slide, coords, tmp_path / "y.h5", prefetch=0) == 47
