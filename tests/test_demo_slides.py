"""The synthetic slide writer: real Aperio-style pyramidal TIFFs read back with OpenSlide."""

from __future__ import annotations

import numpy as np
import openslide
import pytest
import tifffile
from scipy import ndimage

from mmlego.demo.slides import (
    _render,
    nuclei_density,
    nuclei_radius,
    tissue_tile_layout,
    write_aperio_tiff,
    write_large_slide,
    write_synthetic_slide,
)

W, H = 1024, 768


@pytest.fixture(scope="module")
def slide_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("slides")
    for name, factor in (("lo", -2.0), ("hi", 2.0)):
        write_synthetic_slide(d / f"{name}.tiff", seed=5, factor=factor, width=W, height=H)
    return d


def _level0(path) -> np.ndarray:
    with openslide.OpenSlide(str(path)) as s:
        return np.asarray(s.read_region((0, 0), 0, s.dimensions).convert("RGB"))


def test_opens_as_aperio_with_mpp_and_pyramid(slide_dir):
    with openslide.OpenSlide(str(slide_dir / "hi.tiff")) as s:
        props = s.properties
        assert props["openslide.vendor"] == "aperio"
        assert float(props["openslide.mpp-x"]) == pytest.approx(0.5)
        assert float(props["openslide.mpp-y"]) == pytest.approx(0.5)
        assert props["openslide.objective-power"] == "20"
        assert s.level_count >= 3
        assert s.dimensions == (W, H)
        assert s.level_dimensions[:3] == ((W, H), (W // 4, H // 4), (W // 16, H // 16))
        np.testing.assert_allclose(s.level_downsamples[:3], [1.0, 4.0, 16.0])
        assert props["openslide.level[0].tile-width"] == "256"
    # Successive tiled, JPEG-compressed IFDs (not SubIFDs).
    with tifffile.TiffFile(slide_dir / "hi.tiff") as tif:
        assert len(tif.pages) >= 3
        for page in tif.pages:
            assert page.is_tiled
            assert page.compression == tifffile.COMPRESSION.JPEG
        assert tif.pages[0].description.startswith("Aperio Image Library")


def test_pixels_read_back_match_the_rendering(slide_dir):
    img, fraction = _render(seed=5, factor=2.0, width=W, height=H, mpp=0.5)
    got = _level0(slide_dir / "hi.tiff").astype(float)
    assert np.abs(got - img).mean() < 6.0  # JPEG at quality 85
    with openslide.OpenSlide(str(slide_dir / "hi.tiff")) as s:
        assert float(s.properties["aperio.SyntheticTissueFraction"]) == pytest.approx(
            fraction, abs=1e-4
        )


def test_background_tissue_and_fraction(slide_dir):
    img = _level0(slide_dir / "lo.tiff").astype(float)
    sat = (img.max(axis=2) - img.min(axis=2)) / img.max(axis=2)
    glass = sat < 0.1
    # Background is light grey-white, tissue is pink/purple (R > G: eosin and hematoxylin).
    assert np.abs(img[glass].mean(axis=0) - 240).max() < 5
    assert 0 < img[glass].std(axis=0).max() < 6  # slight noise, not flat
    tissue = img[~glass]
    assert tissue[:, 0].mean() > tissue[:, 1].mean() + 30
    assert 0.25 <= (~glass).mean() <= 0.5


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4, 5])
def test_tissue_fraction_between_25_and_50_percent(seed):
    _, fraction = _render(seed=seed, factor=0.0, width=512, height=384, mpp=0.5)
    assert 0.25 <= fraction <= 0.5


def test_deterministic_from_seed(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    for d in (a, b, c):
        d.mkdir()
    write_synthetic_slide(a / "s.tiff", seed=9, factor=0.3, width=512, height=512)
    write_synthetic_slide(b / "s.tiff", seed=9, factor=0.3, width=512, height=512)
    write_synthetic_slide(c / "s.tiff", seed=10, factor=0.3, width=512, height=512)
    assert (a / "s.tiff").read_bytes() == (b / "s.tiff").read_bytes()
    assert not np.array_equal(_level0(a / "s.tiff"), _level0(c / "s.tiff"))


def test_factor_raises_nuclei_density_and_size(slide_dir):
    assert nuclei_density(-2) < nuclei_density(0) < nuclei_density(2)
    assert nuclei_radius(-2) < nuclei_radius(0) < nuclei_radius(2)
    stats = {}
    for name in ("lo", "hi"):
        img = _level0(slide_dir / f"{name}.tiff").astype(float)
        nuclei = (img[..., 0] < 150) & (img[..., 2] > img[..., 1])  # dark purple
        tissue = (img.max(axis=2) - img.min(axis=2)) / img.max(axis=2) >= 0.1
        labels, _ = ndimage.label(nuclei)
        sizes = np.bincount(labels.ravel())[1:]
        stats[name] = (nuclei.sum() / tissue.sum(), np.median(sizes[sizes >= 4]))
    # Same seed: same tissue, but more and larger nuclei.
    assert stats["hi"][0] > 3 * stats["lo"][0]
    assert stats["hi"][1] > 1.5 * stats["lo"][1]


def test_mpp_none_omits_resolution(tmp_path):
    path = tmp_path / "nompp.tiff"
    write_synthetic_slide(path, seed=1, factor=0.0, width=512, height=384, mpp=None)
    with openslide.OpenSlide(str(path)) as s:
        assert s.properties["openslide.vendor"] == "aperio"
        assert "openslide.mpp-x" not in s.properties
        assert "aperio.MPP" not in s.properties


def test_write_aperio_tiff_of_any_image(tmp_path):
    img = np.full((300, 500, 3), 240, dtype=np.uint8)
    img[100:200, 100:300] = (200, 100, 160)
    path = tmp_path / "plain.svs"
    write_aperio_tiff(path, img, mpp=0.25, extra={"Note": "x"})
    with openslide.OpenSlide(str(path)) as s:
        assert s.properties["openslide.vendor"] == "aperio"
        assert s.properties["aperio.Note"] == "x"
        assert float(s.properties["openslide.mpp-x"]) == pytest.approx(0.25)
        assert s.dimensions == (500, 300)
        got = np.asarray(s.read_region((0, 0), 0, (500, 300)).convert("RGB")).astype(int)
    assert np.abs(got - img).mean() < 3


def test_bad_arguments_name_the_file(tmp_path):
    with pytest.raises(ValueError, match=r"bad\.tiff.*multiple of 16"):
        write_synthetic_slide(
            tmp_path / "bad.tiff", seed=0, factor=0, width=256, height=256, tile=100
        )
    with pytest.raises(ValueError, match=r"bad\.tiff.*mpp"):
        write_synthetic_slide(
            tmp_path / "bad.tiff", seed=0, factor=0, width=256, height=256, mpp=-1
        )
    assert not (tmp_path / "bad.tiff").exists()


def test_large_slide_pyramid_reads_back(tmp_path):
    """A generated pyramid: tissue tiles hold stained pixels at every level, glass tiles are
    empty (transparent) or light grey JPEG, and coarser levels are box-reduced copies."""
    w, h, t = 4096, 3072, 256
    tissue = np.zeros((h // t, w // t), dtype=bool)
    tissue[2:6, 3:9] = True
    info = write_large_slide(tmp_path / "l.tiff", width=w, height=h, tissue=tissue, mpp=0.5)
    assert info == {"levels": 3, "tissue_tiles": 24, "bytes": (tmp_path / "l.tiff").stat().st_size}
    with openslide.OpenSlide(str(tmp_path / "l.tiff")) as s:
        assert s.properties["openslide.vendor"] == "generic-tiff"
        assert float(s.properties["openslide.mpp-x"]) == pytest.approx(0.5)
        assert s.level_dimensions == ((w, h), (w // 4, h // 4), (w // 16, h // 16))
        lvl0 = np.asarray(s.read_region((0, 0), 0, (w, h)))
        lvl1 = np.asarray(s.read_region((0, 0), 1, (w // 4, h // 4)))
    inside = lvl0[2 * t : 6 * t, 3 * t : 9 * t]
    assert (inside[..., 3] == 255).all()
    rgb = inside[..., :3].astype(float)
    assert rgb[..., 0].mean() > rgb[..., 1].mean() + 30  # pink/purple stain
    outside = lvl0[: 2 * t]
    assert (outside[..., 3] == 0).all()  # empty tiles: no data
    # Level 1 over the tissue is the 4 x 4 box reduction of level 0 (compared in 8 x 8 blocks
    # of level 1, to average out the JPEG noise of both levels).
    red = rgb.reshape(t // 8, 32, 6 * t // 32, 32, 3).mean(axis=(1, 3))
    got = lvl1[2 * t // 4 : 6 * t // 4, 3 * t // 4 : 9 * t // 4, :3].astype(float)
    got = got.reshape(t // 8, 8, 6 * t // 32, 8, 3).mean(axis=(1, 3))
    assert np.abs(got - red).mean() < 2 and np.abs(got - red).max() < 8
    write_large_slide(tmp_path / "j.tiff", width=w, height=h, tissue=tissue, mpp=None, blank="jpeg")
    with openslide.OpenSlide(str(tmp_path / "j.tiff")) as s:
        assert "openslide.mpp-x" not in s.properties
        glass = np.asarray(s.read_region((0, 0), 0, (256, 256)))
    assert (glass[..., 3] == 255).all() and np.abs(glass[..., :3].astype(int) - 240).max() < 8


def test_large_slide_arguments(tmp_path):
    layout = tissue_tile_layout(40, 60, seed=1)
    assert layout.shape == (40, 60) and 0.2 < layout.mean() < 0.55
    with pytest.raises(ValueError, match=r"x\.tiff: tissue map must have shape \(4, 4\)"):
        write_large_slide(tmp_path / "x.tiff", width=1024, height=1024, tissue=layout)
    with pytest.raises(ValueError, match="power of two"):
        write_large_slide(
            tmp_path / "x.tiff", width=1024, height=1024, tissue=np.ones((5, 5)), tile=240
        )
