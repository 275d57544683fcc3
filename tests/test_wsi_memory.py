"""Memory and speed of tiling a 100,000 x 100,000 px slide: never a whole level in memory."""

from __future__ import annotations

import argparse
import time

import h5py
import numpy as np
import pytest

from mmlego.bench.wsi import tiling_peak_rss
from mmlego.demo.slides import write_large_slide

W = H = 100_000
TILE = 256


@pytest.mark.slow
def test_tiling_a_100k_slide_stays_under_1_gb(tmp_path):
    """A generated 100,000 x 100,000 px pyramid at 0.25 µm/px (40x; 10^10 pixels, 30 GB as
    raw RGB) with three tissue islands (1 % of the area) is tiled in a fresh process whose peak
    resident memory stays under 1 GB, in a few seconds."""
    tissue = np.zeros((H // TILE + 1, W // TILE + 1), dtype=bool)
    tissue[100:130, 50:90] = True  # 1,200 level-0 tiles
    tissue[250:262, 300:340] = True  # 480
    tissue[20:24, 370:390] = True  # 80
    t = time.perf_counter()
    info = write_large_slide(tmp_path / "big.tiff", width=W, height=H, tissue=tissue, mpp=0.25)
    assert info["levels"] == 5 and time.perf_counter() - t < 20
    out = tiling_peak_rss(tmp_path / "big.tiff", tmp_path / "big.h5", qc_png=tmp_path / "big.png")
    assert out["peak_rss_mb"] < 1024, out
    assert out["seconds"] < 10, out
    # 512 level-0 px tiles (256 px at 0.5 µm/px): each island holds (rows/2) x (cols/2) tiles.
    assert out["n_tiles"] == 15 * 20 + 6 * 20 + 2 * 10
    assert out["tissue_fraction"] == pytest.approx(tissue.sum() * TILE**2 / (W * H), rel=0.05)
    with h5py.File(tmp_path / "big.h5") as f:
        coords = f["coords"][:]
        assert f.attrs["patch_size_level0"] == 512 and f.attrs["slide_mpp"] == 0.25
    # Every tile lies inside an island.
    r, c = coords[:, 1] // TILE, coords[:, 0] // TILE
    assert tissue[r, c].all() and tissue[r + 1, c + 1].all()
    assert (tmp_path / "big.png").stat().st_size > 0


def test_benchmark_rates_on_a_small_slide(tmp_path):
    """The benchmark's raw-read and extraction measurements run on the same tiles."""
    from mmlego.bench.wsi import extraction_rate, raw_read_rate
    from mmlego.demo.slides import write_synthetic_slide
    from mmlego.wsi.encoders import get_encoder
    from mmlego.wsi.tiling import tile_slide
    from mmlego.wsi.tissue import TissueParams

    write_synthetic_slide(tmp_path / "s.tiff", seed=1, factor=0.0, width=1024, height=768)
    res = tile_slide(
        tmp_path / "s.tiff", tmp_path / "c.h5", target_mpp=1.0, tile_size=64, tissue=TissueParams()
    )
    raw, raw_ms = raw_read_rate(tmp_path / "s.tiff", tmp_path / "c.h5", batch_size=8, num_workers=0)
    ext, ext_ms = extraction_rate(
        tmp_path / "s.tiff",
        tmp_path / "c.h5",
        tmp_path / "f.h5",
        encoder=get_encoder("hed_texture"),  # built once, as the benchmark does
        batch_size=8,
        num_workers=0,
        prefetch=0,
    )
    assert raw > 0 and ext > 0 and 0 < raw_ms < ext_ms  # extraction also encodes
    with h5py.File(tmp_path / "f.h5") as f:
        assert f["features"].shape == (res.n_tiles, 36)


def test_benchmark_encoder_options_are_yaml_scalars():
    from mmlego.bench.wsi import _option

    assert _option("weights=/w/uni.bin") == ("weights", "/w/uni.bin")
    assert _option("img_size=224") == ("img_size", 224)
    with pytest.raises(argparse.ArgumentTypeError, match="KEY=VALUE"):
        _option("weights")
