"""The WSI stage in shards (mmlego.wsi.shards): membership, per-slide outputs equal to the
per-slide functions', one encoder load per shard, resume, failure isolation, BYO imports."""

from __future__ import annotations

import os
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
from test_wsi_failures import bad_slides

from mmlego.demo.slides import write_synthetic_slide
from mmlego.wsi import encoders
from mmlego.wsi.features import extract_features
from mmlego.wsi.shards import (
    SETTINGS_ATTR,
    ShardPlan,
    assign_shards,
    feature_file_index,
    manifest_files,
    read_manifests,
    run_feature_shard,
    run_import_shard,
    shard_of,
)
from mmlego.wsi.slide import SlideError
from mmlego.wsi.tiling import tile_slide
from mmlego.wsi.tissue import TissueParams

TILING = {"target_mpp": 1.0, "tile_size": 64, "min_tissue": 0.5, "max_tiles": 32}


def shard_args(tmp_path: Path, **kw) -> dict:
    return {
        "wsi_dir": tmp_path / "wsi",
        "manifest": tmp_path / "wsi" / "shards" / "0000.tsv",
        "tiling": TILING,
        "tissue": {},
        "seed": 3,
        "encoder": "hed_texture",
        "batch_size": 16,
        **kw,
    }


def tasks(paths: dict[str, Path]) -> list[dict]:
    return [
        {"slide_id": s, "patient_id": f"P{i}", "path": str(p), "mpp": None}
        for i, (s, p) in enumerate(paths.items())
    ]


@pytest.fixture(scope="module")
def slides(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("shard_slides")
    out = {}
    for i in range(3):
        out[f"S{i}"] = folder / f"S{i}.tiff"
        write_synthetic_slide(out[f"S{i}"], seed=i, factor=0.0, width=1024, height=768)
    return out


def test_shards_are_sorted_ids_in_chunks_whatever_the_sheet_order():
    ids = [f"s{i:03d}" for i in range(250)]
    shards = assign_shards(ids, 100)
    assert list(shards) == ["0000", "0001", "0002"]
    assert [len(v) for v in shards.values()] == [100, 100, 50]
    assert assign_shards(reversed(ids), 100) == shards
    assert [s for v in shards.values() for s in v] == ids
    assert shard_of(shards)["s150"] == "0001"
    assert assign_shards([], 100) == {}
    assert list(assign_shards(ids, 1))[-1] == "0249"
    assert len(assign_shards([f"s{i}" for i in range(10_001)], 1)) == 10_001  # 5 digits
    with pytest.raises(ValueError, match="shard_size"):
        assign_shards(ids, 0)
    with pytest.raises(ValueError, match=r"duplicate slide ids.*s001"):
        assign_shards(["s001", "s001"], 10)


def test_a_shard_writes_what_the_per_slide_functions_write(slides, tmp_path, monkeypatch):
    loads = []
    real = encoders.get_encoder

    def counting(spec, **kw):
        loads.append(spec)
        return real(spec, **kw)

    monkeypatch.setattr(encoders, "get_encoder", counting)
    table = run_feature_shard(tasks(slides), **shard_args(tmp_path))
    assert loads == ["hed_texture"]  # one encoder for the whole shard
    assert table["slide_id"].tolist() == list(slides)
    assert set(table["action"]) == {"tiled+encoded"} and set(table["status"]) == {"ok"}
    assert read_manifests([tmp_path / "wsi" / "shards" / "0000.tsv"]).equals(table)

    # the same files as tile_slide + extract_features one slide at a time
    for sid, path in slides.items():
        ref_c, ref_f = tmp_path / f"{sid}.c.h5", tmp_path / f"{sid}.f.h5"
        tile_slide(path, ref_c, **TILING, tissue=TissueParams(), seed=3, slide_id=sid)
        extract_features(path, ref_c, ref_f, encoder="hed_texture", batch_size=16)
        wsi = tmp_path / "wsi"
        pairs = ((wsi / "coords", ref_c, "coords"), (wsi / "features", ref_f, "features"))
        for ours, ref, key in pairs:
            with h5py.File(ours / f"{sid}.h5") as a, h5py.File(ref) as b:
                np.testing.assert_array_equal(a[key][()], b[key][()])
                np.testing.assert_array_equal(a["coords"][()], b["coords"][()])
                assert len(a.attrs[SETTINGS_ATTR]) == 16
        assert (wsi / "qc" / f"{sid}.png").stat().st_size > 0
    assert manifest_files([tmp_path / "wsi" / "shards" / "0000.tsv"], "features") == [
        str(tmp_path / "wsi" / "features" / f"{s}.h5") for s in slides
    ]


def test_a_rerun_recomputes_only_missing_or_stale_slides(slides, tmp_path, monkeypatch):
    args = shard_args(tmp_path)
    run_feature_shard(tasks(slides), **args)
    wsi = tmp_path / "wsi"
    mtimes = {p: p.stat().st_mtime_ns for p in wsi.rglob("S*.*")}

    loads = []
    real = encoders.get_encoder
    monkeypatch.setattr(encoders, "get_encoder", lambda s, **kw: loads.append(s) or real(s, **kw))
    again = run_feature_shard(tasks(slides), **args)
    assert set(again["action"]) == {"reused"} and loads == []  # no encoder needed
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes

    (wsi / "features" / "S1.h5").unlink()  # lost features: re-encode, do not retile
    (wsi / "qc" / "S2.png").unlink()  # lost QC picture: retile (and so re-encode)
    again = run_feature_shard(tasks(slides), **args)
    assert again.set_index("slide_id")["action"].to_dict() == {
        "S0": "reused",
        "S1": "encoded",
        "S2": "tiled+encoded",
    }
    assert (wsi / "coords" / "S1.h5").stat().st_mtime_ns == mtimes[wsi / "coords" / "S1.h5"]

    # a changed setting makes every slide stale, a changed slide file its slide
    again = run_feature_shard(tasks(slides), **{**args, "batch_size": 8})
    assert set(again["action"]) == {"encoded"}
    again = run_feature_shard(tasks(slides), **{**args, "tiling": {**TILING, "tile_size": 32}})
    assert set(again["action"]) == {"tiled+encoded"}
    os.utime(slides["S0"])
    again = run_feature_shard(tasks(slides), **{**args, "tiling": {**TILING, "tile_size": 32}})
    assert again.set_index("slide_id")["action"].to_dict() == {
        "S0": "tiled+encoded",
        "S1": "reused",
        "S2": "reused",
    }
    # a killed write leaves no file that looks finished: only the temporary, which is removed
    assert not [p for p in wsi.rglob(".*") if p.is_file()]


def test_coarser_slides_redoes_only_the_slides_it_applies_to(slides, tmp_path):
    """wsi.coarser_slides changes the tiling of a slide coarser than the target only: switching
    it redoes that slide (both ways) and reuses the others."""
    coarse = tmp_path / "coarse.tiff"  # 2 µm/px, the target 1 µm/px
    write_synthetic_slide(coarse, seed=7, factor=0.0, width=512, height=384, mpp=2.0)
    paths = {"S0": slides["S0"], "coarse": coarse}

    def run(option: str) -> pd.DataFrame:
        args = shard_args(tmp_path, coarser_slides=option)
        return run_feature_shard(tasks(paths), **args).set_index("slide_id")

    table = run("skip")
    assert table["status"].to_dict() == {"S0": "ok", "coarse": "failed"}
    for option, status in (("upsample", "ok"), ("skip", "failed"), ("upsample", "ok")):
        table = run(option)
        assert table["action"].to_dict() == {"S0": "reused", "coarse": "tiled+encoded"}, option
        assert table.loc["coarse", "status"] == status, option
    assert set(run("upsample")["action"]) == {"reused"}  # an upsampled slide is finished


def test_bad_slides_are_recorded_and_the_shard_goes_on(tmp_path):
    paths = bad_slides(tmp_path / "slides")
    table = run_feature_shard(tasks(paths), **shard_args(tmp_path)).set_index("slide_id")
    assert table.loc["good", "status"] == "ok" and table.loc["good", "n_tiles"] > 0
    assert table.loc["blank", "status"] == "no_tissue"
    for name in ("truncated", "notaslide", "nompp"):
        assert table.loc[name, "status"] == "failed", name
        assert str(paths[name]) in table.loc[name, "reason"], table.loc[name, "reason"]
        assert (tmp_path / "wsi" / "qc" / f"{name}.png").stat().st_size > 0
    # failed slides are retried on a rerun, the good ones kept
    again = run_feature_shard(tasks(paths), **shard_args(tmp_path)).set_index("slide_id")
    assert again.loc["good", "action"] == "reused"
    assert again.loc["notaslide", "action"] == "tiled+encoded"


def test_fail_fast_stops_the_shard_at_the_bad_slide_and_names_it(tmp_path):
    paths = bad_slides(tmp_path / "slides")
    order = {k: paths[k] for k in ("good", "notaslide", "blank")}
    with pytest.raises(SlideError, match=r"slide notaslide .*notaslide\.svs"):
        run_feature_shard(tasks(order), **shard_args(tmp_path, fail_fast=True))
    wsi = tmp_path / "wsi"
    assert (wsi / "features" / "good.h5").is_file()  # finished before: kept for the rerun
    assert not (wsi / "coords" / "blank.h5").exists()  # after: not started
    assert not (wsi / "shards" / "0000.tsv").exists()


def test_import_shard_finds_files_once_and_resumes(tmp_path):
    folder = tmp_path / "features_uni"
    (folder / "h5_files").mkdir(parents=True)
    (folder / "pt_files").mkdir()
    rng = np.random.default_rng(0)
    feats = {s: rng.normal(size=(5 + i, 4)).astype(np.float32) for i, s in enumerate("ab")}
    for s, x in feats.items():
        with h5py.File(folder / "h5_files" / f"{s}.h5", "w") as f:
            f["features"] = x
            f["coords"] = np.zeros((len(x), 2), dtype=np.int64)
    index = feature_file_index(folder, ["a", "b", "c"])
    assert index == {s: str(folder / "h5_files" / f"{s}.h5") for s in ("a", "b")}
    slides = [{"slide_id": s, "patient_id": "P", "path": "", "mpp": None} for s in "abc"]
    args = {
        "folder": folder,
        "wsi_dir": tmp_path / "wsi",
        "manifest": tmp_path / "m.tsv",
        "sources": {s: index.get(s) for s in "abc"},
    }
    table = run_import_shard(slides, **args).set_index("slide_id")
    assert table["status"].to_dict() == {"a": "ok", "b": "ok", "c": "failed"}
    assert "h5_files" in table.loc["c", "reason"]
    with h5py.File(tmp_path / "wsi" / "imported" / "b.h5") as f:
        np.testing.assert_array_equal(f["features"][()], feats["b"])
    again = run_import_shard(slides, **args).set_index("slide_id")
    assert again["action"].to_dict() == {"a": "reused", "b": "reused", "c": "imported"}
    pd.testing.assert_series_equal(again["n_tiles"], table["n_tiles"])


def test_the_plan_looks_slides_up_from_the_sheet():
    sheet = pd.DataFrame(
        {
            "patient_id": ["P1", "P1", "P2"],
            "slide_id": ["b", "a", "c"],
            "path": ["/s/b.svs", "/s/a.svs", "/s/c.svs"],
            "mpp": [None, 0.25, float("nan")],
        }
    )
    plan = ShardPlan.from_sheet(sheet, 2)
    assert plan.shards == {"0000": ["a", "b"], "0001": ["c"]}
    assert plan.paths("0000") == ["/s/a.svs", "/s/b.svs"]
    assert [s["mpp"] for s in plan.slides("0000")] == [0.25, None]
    c = {"slide_id": "c", "patient_id": "P2", "path": "/s/c.svs", "mpp": None}
    assert plan.slides("0001") == [c]
    assert list(plan.patient_of()) == ["b", "a", "c"]  # sheet order
    assert plan.manifests("w") == ["w/0000.tsv", "w/0001.tsv"]
    assert plan.manifests("w", ["c"]) == ["w/0001.tsv"]
    assert ShardPlan.from_sheet(None, 100).shards == {}
    with pytest.raises(ValueError, match=r"duplicate slide ids.*'a'"):
        ShardPlan.from_sheet(pd.concat([sheet, sheet.iloc[[1]]]), 2)
