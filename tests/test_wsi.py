"""WSI stage: tissue segmentation, tiling and patch features on real slide files (OpenSlide)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import h5py
import numpy as np
import openslide
import pytest
from PIL import Image

from mmlego.cohort.sheets import PLAUSIBLE_MPP
from mmlego.demo.slides import _render, write_aperio_tiff, write_synthetic_slide
from mmlego.wsi.encoders import (
    HED_FEATURES,
    HedTextureEncoder,
    available_encoders,
    encoder_gpus,
    get_encoder,
    register_patch_encoder,
    rgb_to_hed,
)
from mmlego.wsi.features import extract_features
from mmlego.wsi.slide import (
    MAX_UPSAMPLE,
    CoarserThanTargetError,
    SlideError,
    choose_level,
    open_slide,
    read_low_res,
    read_tiles,
    slide_mpp,
)
from mmlego.wsi.tiling import grid_coords, tile_slide, tile_tissue_fraction
from mmlego.wsi.tissue import (
    TISSUE_PRESETS,
    TissueParams,
    cap_outliers,
    otsu_threshold,
    segment_tissue,
    tissue_params,
    tissue_params_from_config,
)

W, H = 2048, 1536  # level 0 at 0.5 µm/px: 1 x 0.77 mm
TILING = dict(target_mpp=1.0, tile_size=128, tissue=TissueParams())  # the demo default


@pytest.fixture(scope="module")
def slides(tmp_path_factory):
    """Slides 'lo' and 'hi' share a seed (same tissue) and differ in factor; plus blank, no-mpp."""
    d = tmp_path_factory.mktemp("wsi")
    write_synthetic_slide(d / "lo.tiff", seed=21, factor=-2.0, width=W, height=H)
    write_synthetic_slide(d / "hi.tiff", seed=21, factor=2.0, width=W, height=H)
    write_synthetic_slide(d / "nompp.tiff", seed=3, factor=0.0, width=1024, height=768, mpp=None)
    rng = np.random.default_rng(0)
    blank = np.clip(240 + rng.normal(0, 2.5, size=(768, 1024, 3)), 0, 255).astype(np.uint8)
    write_aperio_tiff(d / "blank.tiff", blank, mpp=0.5)
    return d


@pytest.fixture(scope="module")
def tiled(slides):
    out = {}
    for name in ("lo", "hi"):
        out[name] = tile_slide(
            slides / f"{name}.tiff", slides / f"{name}.h5", qc_png=slides / f"{name}.png", **TILING
        )
    return out


@pytest.fixture(scope="module")
def featurized(slides, tiled):
    feats = {}
    for name in ("lo", "hi"):
        n = extract_features(
            slides / f"{name}.tiff", slides / f"{name}.h5", slides / f"{name}.f.h5"
        )
        assert n == tiled[name].n_tiles
        with h5py.File(slides / f"{name}.f.h5") as f:
            feats[name] = f["features"][:]
    return feats


def _coords(path):
    with h5py.File(path) as f:
        return f["coords"][:], dict(f.attrs)


# --- tissue segmentation ------------------------------------------------------------------


def test_otsu_splits_two_modes():
    rng = np.random.default_rng(0)
    vals = np.concatenate([rng.normal(10, 3, 5000), rng.normal(90, 5, 3000)])
    assert 25 < otsu_threshold(np.clip(vals, 0, 255)) < 75


def test_segment_tissue_objects_and_holes():
    img = np.full((200, 200, 3), 240, dtype=np.uint8)
    img[40:160, 40:160] = (220, 140, 190)  # tissue 120 x 120 px
    img[60:64, 60:64] = 240  # small hole (16 px) -> filled
    img[100:130, 100:130] = 240  # big hole (900 px) -> kept
    img[10:13, 180:183] = (220, 140, 190)  # speck (9 px) -> removed
    params = TissueParams(median_size=1, close_um=0, min_object_um2=100, max_hole_um2=100)
    mask = segment_tissue(img, mpp=1.0, params=params)
    assert mask[50, 50] and mask[62, 62]
    assert not mask[115, 115] and not mask[11, 181] and not mask[5, 5]
    assert mask.sum() == 120 * 120 - 30 * 30


def test_segment_tissue_blank_glass_is_empty():
    rng = np.random.default_rng(1)
    glass = np.clip(240 + rng.normal(0, 3, size=(128, 128, 3)), 0, 255).astype(np.uint8)
    assert not segment_tissue(glass, mpp=8.0, params=TissueParams()).any()


def test_a_pen_line_does_not_hide_pale_tissue():
    """A pen line (strongly saturated ink, 4 % of the image) beside pale tissue (saturation ~30):
    Otsu's threshold would split pen from everything else; capped, it still finds the tissue."""
    rng = np.random.default_rng(4)
    img = np.clip(242 + rng.normal(0, 2, size=(200, 200, 3)), 0, 255).astype(np.uint8)
    img[40:160, 40:160] = (236, 208, 224)  # pale pink: saturation ~30 (0..255)
    img[20:28, :] = (40, 60, 170)  # blue ink
    params = TissueParams(min_object_um2=0, max_hole_um2=0)
    mask = segment_tissue(img, mpp=8.0, params=params)
    assert mask[45:155, 45:155].all()  # the tissue
    assert not mask[170:, :].any() and not mask[:15, :].any()  # the glass
    np.testing.assert_array_equal(segment_tissue(img[30:], mpp=8.0, params=params), mask[30:])


def test_cap_outliers():
    vals = np.array([0.0, 2, 5, 30, 30, 30, 40, 200, 210])
    # foreground (> 10): 30 30 30 40 200 210, median 35; capped at 1.5 x 35
    np.testing.assert_array_equal(
        cap_outliers(vals, floor=10.0), [0, 2, 5, 30, 30, 30, 40, 52.5, 52.5]
    )
    np.testing.assert_array_equal(cap_outliers(vals[:3], floor=10.0), vals[:3])  # all glass


def test_tissue_params_validate():
    with pytest.raises(ValueError, match="median_size"):
        TissueParams(median_size=4)
    with pytest.raises(ValueError, match="mask_mpp"):
        TissueParams(mask_mpp=0)


# --- slide helpers ------------------------------------------------------------------------


def test_choose_level():
    ds = (1.0, 4.0, 16.0)
    assert choose_level(ds, mpp0=0.25, target_mpp=1.0) == 1
    assert choose_level(ds, mpp0=0.25, target_mpp=0.9) == 0  # level 1 would be 11 % too coarse
    assert choose_level(ds, mpp0=0.25, target_mpp=0.95) == 1  # within the 10 % tolerance
    assert choose_level(ds, mpp0=0.25, target_mpp=8.0) == 2
    with pytest.raises(ValueError, match=r"x\.svs.*coarser than the target"):
        choose_level(ds, mpp0=1.0, target_mpp=0.5, path="x.svs")
    assert choose_level(ds, mpp0=1.0, target_mpp=0.5, upsample=True) == 0  # the finest level


def test_coarser_slides_advice_and_upsample_limit():
    """A 2 µm/px scan at a 1 µm/px target: the fix is a coarser target (a larger target_mpp)
    or upsampling; a scan more than MAX_UPSAMPLE times coarser is not upsampled."""
    with pytest.raises(CoarserThanTargetError) as err:
        choose_level((1.0, 4.0), mpp0=2.0, target_mpp=1.0, path="x.svs")
    assert "x.svs: slide resolution 2 µm/px is 2x coarser than the target 1 µm/px" in str(err)
    assert "raise wsi.target_mpp to 2 or more" in str(err) and "upsample" in str(err)
    assert choose_level((1.0,), mpp0=MAX_UPSAMPLE, target_mpp=1.0, upsample=True) == 0
    for upsample in (False, True):
        with pytest.raises(CoarserThanTargetError) as err:
            choose_level((1.0,), mpp0=5.0, target_mpp=1.0, path="x.svs", upsample=upsample)
        assert "5x coarser" in str(err) and "(4x at most)" in str(err)
        assert "raise wsi.target_mpp to 5 or more" in str(err)


def _props(x, y=None, vendor="generic-tiff"):
    """OpenSlide's properties of a slide with these resolutions (a generic TIFF's from 72 dpi
    resolution tags)."""
    props = {"openslide.vendor": vendor}
    if x is not None:
        props["openslide.mpp-x"] = str(x)
    if y is not None:
        props["openslide.mpp-y"] = str(y)
    if vendor == "generic-tiff":
        props |= {"tiff.XResolution": "72", "tiff.ResolutionUnit": "inch"}
    return props


def test_slide_mpp_square_and_plausible():
    def mpp(*args, override=None, **kw):
        slide = SimpleNamespace(properties=_props(*args, **kw))  # what slide_mpp reads
        return slide_mpp(slide, path="s.tif", override=override)

    assert mpp(0.25, 0.2524) == (pytest.approx(0.2512), "metadata")  # within 1 %: the mean
    assert mpp(0.5) == (0.5, "metadata")  # one of the two given
    assert mpp(None, override=0.5) == (0.5, "override")
    with pytest.raises(SlideError, match=r"s\.tif: non-square pixels: 0\.5 µm/px along x and 1 "):
        mpp(0.5, 1.0)
    assert mpp(0.5, 1.0, override=0.5) == (0.5, "override")  # the sheet settles it
    lo, hi = PLAUSIBLE_MPP
    assert mpp(lo)[0] == lo and mpp(hi)[0] == hi
    with pytest.raises(SlideError) as err:
        mpp(352.7778)
    assert str(err.value).startswith(
        "s.tif: implausible resolution 352.778 µm/px from the TIFF resolution tags "
        "(72 pixels per inch)"
    )
    assert str(err.value).endswith("give its mpp in the slide sheet's 'mpp' column")
    with pytest.raises(SlideError, match=r"0\.01 µm/px from the slide's aperio metadata"):
        mpp(0.01, vendor="aperio")
    with pytest.raises(SlideError, match=r"500 µm/px from the slide sheet's 'mpp' column"):
        mpp(0.5, override=500.0)


def test_read_low_res_strips_match_whole_read(slides):
    with open_slide(slides / "lo.tiff") as s:
        whole, sx, sy = read_low_res(s, mpp0=0.5, mask_mpp=40.0)  # level 2 (8 µm/px) reduced 5x
        strips, sx2, sy2 = read_low_res(s, mpp0=0.5, mask_mpp=40.0, strip_pixels=2000)
        level2 = np.asarray(s.read_region((0, 0), 2, s.level_dimensions[2]).convert("RGB"))
    assert whole.shape == (20, 26, 3)  # ceil(96 / 5), ceil(128 / 5)
    np.testing.assert_array_equal(whole, np.asarray(Image.fromarray(level2).reduce(5)))
    # Strips of 5 rows reduce to the same picture, up to the partial last block's rounding.
    assert strips.shape == whole.shape and (sx, sy) == (sx2, sy2)
    assert np.abs(strips[:-1].astype(int) - whole[:-1]).max() == 0
    assert sx == pytest.approx(W / 26)


def test_tile_tissue_fraction_on_a_known_mask():
    mask = np.zeros((10, 10), dtype=bool)
    mask[:5, :] = True
    coords = grid_coords(100, 100, 20)  # 5 x 5 tiles of 20 px on a 10 px-per-mask-px mask
    assert coords.shape == (25, 2) and tuple(coords[1]) == (20, 0)  # row-major
    frac = tile_tissue_fraction(mask, coords, size=20, scale_x=10, scale_y=10)
    np.testing.assert_allclose(frac.reshape(5, 5)[:, 0], [1, 1, 0.5, 0, 0])


# --- tiling -------------------------------------------------------------------------------


def test_tiling_finds_tissue_tiles_on_the_grid(slides, tiled):
    res = tiled["lo"]
    coords, attrs = _coords(slides / "lo.h5")
    assert coords.dtype == np.int64 and coords.shape == (res.n_tiles, 2)
    assert 5 <= res.n_tiles < res.n_grid == (W // 256) * (H // 256)
    ps0 = attrs["patch_size_level0"]
    assert ps0 == 256 and attrs["patch_size"] == 128 and attrs["patch_level"] == 0
    assert attrs["read_size"] == 256 and attrs["level_downsample"] == 1.0
    assert attrs["slide_mpp"] == 0.5 and attrs["target_mpp"] == 1.0
    assert attrs["slide_id"] == "lo" and attrs["mpp_source"] == "metadata"
    assert attrs["openslide_version"] == openslide.__library_version__
    assert json.loads(attrs["tissue_params"]) == TissueParams().to_dict()
    assert attrs["source_size"] == (slides / "lo.tiff").stat().st_size
    assert (coords % ps0 == 0).all()
    assert (coords >= 0).all()
    assert (coords[:, 0] + ps0 <= W).all() and (coords[:, 1] + ps0 <= H).all()
    order = np.lexsort((coords[:, 0], coords[:, 1]))  # row-major: y, then x
    np.testing.assert_array_equal(order, np.arange(len(coords)))
    with h5py.File(slides / "lo.h5") as f:
        assert (f["tissue"][:] >= 0.5).all()


def test_tiles_lie_on_tissue(slides):
    coords, _ = _coords(slides / "lo.h5")
    with openslide.OpenSlide(str(slides / "lo.tiff")) as s:
        for x, y in coords[:8]:
            tile = np.asarray(s.read_region((int(x), int(y)), 0, (256, 256)).convert("RGB"))
            sat = (tile.max(axis=2) - tile.min(axis=2)) / np.maximum(tile.max(axis=2), 1)
            assert (sat > 0.15).mean() >= 0.4


def test_segmentation_matches_the_drawn_tissue(slides, tiled):
    with openslide.OpenSlide(str(slides / "lo.tiff")) as s:
        truth = float(s.properties["aperio.SyntheticTissueFraction"])
    assert tiled["lo"].tissue_fraction == pytest.approx(truth, abs=0.05)


def test_tiling_is_deterministic(slides, tiled, tmp_path):
    again = tile_slide(slides / "lo.tiff", tmp_path / "again.h5", **TILING)
    assert again == tiled["lo"]
    a, attrs_a = _coords(slides / "lo.h5")
    b, attrs_b = _coords(tmp_path / "again.h5")
    np.testing.assert_array_equal(a, b)
    assert attrs_a == attrs_b


def test_max_tiles_subsamples_in_grid_order(slides, tiled, tmp_path):
    full, _ = _coords(slides / "lo.h5")
    k = len(full) // 2
    capped = []
    for i, seed in enumerate((0, 0, 1)):
        res = tile_slide(
            slides / "lo.tiff", tmp_path / f"c{i}.h5", max_tiles=k, seed=seed, **TILING
        )
        assert res.n_tiles == k and res.n_candidates == len(full)
        capped.append(_coords(tmp_path / f"c{i}.h5")[0])
    full_rows = {tuple(r) for r in full}
    assert all(tuple(r) in full_rows for r in capped[0])
    np.testing.assert_array_equal(capped[0], capped[1])  # same seed, same tiles
    assert not np.array_equal(capped[0], capped[2])  # another seed, other tiles
    order = np.lexsort((capped[0][:, 0], capped[0][:, 1]))
    np.testing.assert_array_equal(order, np.arange(k))


def test_blank_slide_has_no_tiles(slides, tmp_path):
    res = tile_slide(slides / "blank.tiff", tmp_path / "blank.h5", **TILING)
    assert res.n_tiles == 0 and res.n_grid > 0
    coords, attrs = _coords(tmp_path / "blank.h5")
    assert coords.shape == (0, 2) and attrs["n_candidates"] == 0
    n = extract_features(slides / "blank.tiff", tmp_path / "blank.h5", tmp_path / "blank.f.h5")
    assert n == 0
    with h5py.File(tmp_path / "blank.f.h5") as f:
        assert f["features"].shape == (0, len(HED_FEATURES))
        assert f["features"].dtype == np.float32
        assert f["coords"].shape == (0, 2)


def test_missing_mpp_needs_an_override(slides, tmp_path):
    with pytest.raises(ValueError, match=r"nompp\.tiff.*no resolution"):
        tile_slide(slides / "nompp.tiff", tmp_path / "x.h5", **TILING)
    assert not (tmp_path / "x.h5").exists()
    res = tile_slide(slides / "nompp.tiff", tmp_path / "x.h5", mpp_override=0.5, **TILING)
    assert res.slide_mpp == 0.5 and res.n_tiles > 0
    assert _coords(tmp_path / "x.h5")[1]["mpp_source"] == "override"


def test_unreadable_slide_error_names_the_file(tmp_path):
    bad = tmp_path / "notaslide.svs"
    bad.write_bytes(b"hello")
    with pytest.raises(ValueError, match=r"notaslide\.svs"):
        tile_slide(bad, tmp_path / "x.h5", **TILING)
    with pytest.raises(FileNotFoundError, match=r"missing\.svs"):
        tile_slide(tmp_path / "missing.svs", tmp_path / "x.h5", **TILING)


def test_qc_png(slides, tiled):
    with Image.open(slides / "lo.png") as im:
        assert im.format == "PNG" and max(im.size) <= 1024
        arr = np.asarray(im.convert("RGB"))
    assert (arr == (20, 60, 230)).all(axis=2).sum() > 100  # tile outlines drawn
    assert (arr == (0, 170, 0)).all(axis=2).sum() > 100  # tissue outline drawn


# --- encoders and features ----------------------------------------------------------------


def test_colour_deconvolution():
    pixels = np.array([[240, 240, 240], [70, 45, 130], [235, 120, 200]], dtype=np.uint8)
    h, e, _ = rgb_to_hed(pixels).T
    assert h[0] < 0.05 and e[0] < 0.05  # glass
    assert h[1] > 0.5 and h[1] > 2 * e[1]  # hematoxylin-stained nucleus
    assert e[2] > 0.2 and e[2] > 2 * h[2]  # eosin-stained stroma


def test_encoder_registry():
    assert "hed_texture" in available_encoders()
    enc = get_encoder("hed_texture")
    assert enc.dim == len(enc.feature_names) == 36
    with pytest.raises(ValueError, match=r"unknown patch encoder 'nope'.*hed_texture"):
        get_encoder("nope")
    with pytest.raises(ValueError, match="already registered"):
        register_patch_encoder("hed_texture", lambda: HedTextureEncoder())
    with pytest.raises(ValueError, match=r"\(n, h, w, 3\) uint8"):
        enc(np.zeros((2, 8, 8, 3), dtype=np.float32))


def test_a_slide_shard_asks_for_a_gpu_only_for_an_encoder_that_runs_on_one():
    assert encoder_gpus("hed_texture") == 0
    assert encoder_gpus("hed_texture", {"device": "cuda"}) == 0  # it has no network
    assert encoder_gpus("uni") == encoder_gpus("timm:resnet18", {"device": "auto"}) == 1
    assert encoder_gpus("checkpoint:/models/enc.pt", {"device": "cpu"}) == 0
    with pytest.raises(ValueError, match=r"unknown patch encoder 'unii'"):
        encoder_gpus("unii")


def test_encoder_tiles_are_independent_of_the_batch(slides, tiled):
    coords, _ = _coords(slides / "hi.h5")
    with open_slide(slides / "hi.tiff") as s:
        tiles = np.stack(
            [
                np.asarray(s.read_region((int(x), int(y)), 0, (128, 128)).convert("RGB"))
                for x, y in coords[:4]
            ]
        )
    enc = get_encoder("hed_texture")
    batch = enc(tiles)
    one_by_one = np.concatenate([enc(tiles[i : i + 1]) for i in range(4)])
    assert batch.dtype == np.float32 and batch.shape == (4, 36)
    np.testing.assert_allclose(batch, one_by_one, rtol=1e-5, atol=1e-6)
    reversed_batch = enc(tiles[::-1].copy())[::-1]
    np.testing.assert_allclose(batch, reversed_batch, rtol=1e-5, atol=1e-6)


def test_features_file(slides, tiled, featurized):
    with h5py.File(slides / "lo.f.h5") as f:
        feats = f["features"][:]
        assert feats.dtype == np.float32 and feats.shape == (tiled["lo"].n_tiles, 36)
        assert np.isfinite(feats).all()
        np.testing.assert_array_equal(f["coords"][:], _coords(slides / "lo.h5")[0])
        assert f.attrs["encoder"] == "hed_texture" and f.attrs["dim"] == 36
        assert json.loads(f.attrs["feature_names"]) == list(HED_FEATURES)
        assert f.attrs["slide_id"] == "lo" and f.attrs["patch_size"] == 128
    assert feats.std(axis=0).max() > 0  # tiles differ


def test_batch_size_does_not_change_features(slides, featurized, tmp_path):
    extract_features(slides / "lo.tiff", slides / "lo.h5", tmp_path / "b3.h5", batch_size=3)
    with h5py.File(tmp_path / "b3.h5") as f:
        np.testing.assert_allclose(f["features"][:], featurized["lo"], rtol=1e-6, atol=1e-6)


def test_higher_factor_moves_features_in_the_expected_direction(featurized):
    idx = {n: i for i, n in enumerate(HED_FEATURES)}
    lo, hi = featurized["lo"].mean(axis=0), featurized["hi"].mean(axis=0)
    assert hi[idx["h_pos_frac"]] > 2 * lo[idx["h_pos_frac"]]  # denser nuclei
    assert hi[idx["h_mean"]] > lo[idx["h_mean"]]
    assert hi[idx["blob_area_mean"]] > 2 * lo[idx["blob_area_mean"]]  # larger nuclei
    assert hi[idx["granulo_r2"]] > lo[idx["granulo_r2"]]
    # Stroma colour is the same (same seed): eosin changes much less than hematoxylin.
    assert abs(hi[idx["e_q50"]] - lo[idx["e_q50"]]) < 0.2 * lo[idx["e_q50"]]


def test_tiles_read_from_a_coarser_level(slides, tmp_path):
    """target 2 µm/px on a 0.5 µm/px slide reads level 1 (2 µm/px) without resizing."""
    res = tile_slide(
        slides / "hi.tiff", tmp_path / "l1.h5", target_mpp=2.0, tile_size=64, tissue=TissueParams()
    )
    assert res.patch_level == 1 and res.read_size == 64 and res.patch_size_level0 == 256
    assert res.level_downsample == pytest.approx(4.0)
    n = extract_features(slides / "hi.tiff", tmp_path / "l1.h5", tmp_path / "l1.f.h5")
    assert n == res.n_tiles > 0
    with h5py.File(tmp_path / "l1.f.h5") as f:
        assert f["features"].shape == (n, 36)


# --- presets, fast median, compatibility ---------------------------------------------------


def test_presets_and_overrides():
    assert tissue_params() == TissueParams()
    fatty = tissue_params("fatty", max_hole_um2=1e5)
    assert fatty.min_saturation == TISSUE_PRESETS["fatty"]["min_saturation"] == 10.0
    assert fatty.max_hole_um2 == 1e5
    assert tissue_params_from_config({"preset": "strict", "close_um": 8}).close_um == 8
    assert tissue_params_from_config(None) == TissueParams()
    with pytest.raises(ValueError, match=r"unknown tissue preset 'oily'.*default, fatty"):
        tissue_params("oily")
    with pytest.raises(ValueError, match=r"unknown tissue parameter\(s\) \['radius'\]"):
        tissue_params("default", radius=3)
    with pytest.raises(ValueError, match="median_size"):
        tissue_params("ihc", median_size=2)


def test_pale_tissue_needs_the_fatty_preset():
    rng = np.random.default_rng(3)
    img = np.clip(242 + rng.normal(0, 2, size=(160, 160, 3)), 0, 255).astype(np.uint8)
    img[30:130, 30:130] = (236, 221, 229)  # pale pink: saturation ~16 (0..255)
    got_default = segment_tissue(img, mpp=8.0, params=tissue_params("default"))
    got_fatty = segment_tissue(img, mpp=8.0, params=tissue_params("fatty"))
    assert got_default.mean() < 0.01
    assert got_fatty[35:125, 35:125].all() and got_fatty.mean() == pytest.approx(0.39, abs=0.03)


def test_majority_threshold_equals_median_filter_threshold():
    from scipy import ndimage

    from mmlego.wsi.tissue import _majority, _median_sample

    rng = np.random.default_rng(5)
    sat = rng.integers(0, 60, size=(90, 70)).astype(np.float32)
    for k, thr in ((3, 29.5), (5, 30.0), (7, 20.0)):
        ref = ndimage.median_filter(sat, size=k, mode="nearest") > thr
        np.testing.assert_array_equal(_majority(sat > thr, size=k), ref)
        np.testing.assert_array_equal(
            _median_sample(sat, size=k, max_samples=10**6),
            ndimage.median_filter(sat, size=k, mode="nearest").ravel(),
        )


def test_coords_carry_clam_and_trident_attributes(slides, tmp_path):
    """TRIDENT reads patch_size at target_magnification; CLAM reads patch_size pixels at
    patch_level, which is the same tile when read_size == patch_size."""
    res = tile_slide(
        slides / "hi.tiff", tmp_path / "l1.h5", target_mpp=2.0, tile_size=64, tissue=TissueParams()
    )
    assert res.read_size == res.patch_size == 64 and res.n_tiles > 0
    with h5py.File(tmp_path / "l1.h5") as f:
        d = dict(f["coords"].attrs)
        coords = f["coords"][:]
    assert d["patch_size"] == 64 and d["patch_level"] == 1 and d["overlap"] == 0
    assert d["level0_magnification"] == pytest.approx(20.0)  # 0.5 µm/px
    assert d["target_magnification"] == pytest.approx(5.0)
    ps0 = d["patch_size"] * d["level0_magnification"] / d["target_magnification"]
    assert ps0 == d["patch_size_level0"] == 256
    assert tuple(d["downsample"]) == (4.0, 4.0) and tuple(d["level_dim"]) == (W // 4, H // 4)
    assert d["name"] == "hi" and (d["level0_width"], d["level0_height"]) == (W, H)
    with open_slide(slides / "hi.tiff") as s:
        ours = read_tiles(s, coords[:3], level=1, read_size=64, out_size=64)
        clam = [
            np.asarray(s.read_region(tuple(int(v) for v in c), d["patch_level"], (64, 64)))
            for c in coords[:3]
        ]
    np.testing.assert_array_equal(ours, np.stack(clam)[..., :3])
    # The features file keeps them on its coords dataset (TRIDENT's layout).
    extract_features(slides / "hi.tiff", tmp_path / "l1.h5", tmp_path / "l1.f.h5")
    with h5py.File(tmp_path / "l1.f.h5") as f:
        assert f["coords"].attrs["patch_size_level0"] == 256


def test_qc_picture_of_a_slide_without_pyramid(tmp_path):
    """A single-level TIFF: the QC background is read in strips (never get_thumbnail, which
    would read the whole level), and the tissue outline is drawn."""
    import tifffile

    img, _ = _render(seed=1, factor=0.0, width=2048, height=1536, mpp=0.5)
    tifffile.imwrite(
        tmp_path / "flat.tiff",
        img,
        tile=(256, 256),
        photometric="rgb",
        compression="jpeg",
        resolution=(2e4, 2e4),
        resolutionunit="CENTIMETER",
        metadata=None,
    )
    res = tile_slide(
        tmp_path / "flat.tiff", tmp_path / "flat.h5", qc_png=tmp_path / "flat.png", **TILING
    )
    assert res.patch_level == 0 and res.n_tiles > 5
    with Image.open(tmp_path / "flat.png") as im:
        assert 384 <= max(im.size) <= 768
        arr = np.asarray(im.convert("RGB"))
    assert (arr == (0, 170, 0)).all(axis=2).sum() > 50
