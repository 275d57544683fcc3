"""Synthetic whole-slide images for the demo cohort: real pyramidal, JPEG-tiled, Aperio-style TIFF.

:func:`write_synthetic_slide` writes a file that OpenSlide opens with its ``aperio`` reader: a
classic (not Big) TIFF whose image file directories (IFDs) are the pyramid levels (downsamples
1, 4, 16, ... one after another, every level tiled and JPEG-compressed), with an Aperio-style
``ImageDescription`` on the first IFD. OpenSlide detects Aperio when the file is a TIFF, the first
IFD is tiled and its description starts with ``Aperio``; it parses the ``|``-separated
``key = value`` pairs of that description into ``aperio.*`` properties and maps ``MPP`` to
``openslide.mpp-x`` / ``openslide.mpp-y`` and ``AppMag`` to ``openslide.objective-power``.
:func:`write_aperio_tiff` writes any RGB array that way (tests use it for blank slides).

The picture: a light grey-white background (about (240, 240, 240) with slight noise) and a few
irregular tissue regions covering 25-50 % of the area, drawn as pink eosin-stained stroma with
purple hematoxylin-stained nuclei. The latent ``factor`` changes what patch features can see:
nuclei density and nuclei radius both rise monotonically with it, through sigmoids of ``factor``
(see :func:`nuclei_density` and :func:`nuclei_radius`). Stain colour varies a little from slide to
slide (seeded), independently of ``factor``.

The tissue fraction actually drawn is recorded in the description as
``SyntheticTissueFraction`` (OpenSlide property ``aperio.SyntheticTissueFraction``) so that tests
can compare tissue segmentation with the truth; ``factor`` itself is never written to the file.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import imagecodecs
import numpy as np
import tifffile
from PIL import Image
from scipy import ndimage

from mmlego.io import atomic_path

BACKGROUND = 240
# Mean stain colours (RGB) before the per-slide jitter.
STROMA_RGB = np.array([232.0, 158.0, 196.0])
NUCLEUS_RGB = np.array([82.0, 52.0, 140.0])
# Level-0 pixels per cell of the coarse grid the tissue shapes are drawn on.
_COARSE = 16
# Base colours stay below 255 - _NOISE so that the unsigned noise addition cannot wrap.
_NOISE = 4
_MAX_BASE = 255 - _NOISE


def _sigmoid(x: float) -> float:
    return float(1.0 / (1.0 + np.exp(-x)))


def nuclei_density(factor: float) -> float:
    """Nuclei per 1000 level-0 pixels of tissue; rises monotonically from 0.35 to 2.0."""
    return 0.35 + 1.65 * _sigmoid(factor)


def nuclei_radius(factor: float, *, mpp: float = 0.5) -> float:
    """Mean nucleus radius in level-0 pixels: 2 µm to 4.5 µm, rising monotonically with factor."""
    return (2.0 + 2.5 * _sigmoid(factor)) / mpp


def _tissue_mask(rng: np.random.Generator, qh: int, qw: int) -> np.ndarray:
    """Irregular tissue blobs on the quarter-resolution grid: (qh, qw) bool."""
    ch, cw = -(-qh // (_COARSE // 4)), -(-qw // (_COARSE // 4))
    yy, xx = np.mgrid[0:ch, 0:cw].astype(np.float32)
    field = np.full((ch, cw), -np.inf, dtype=np.float32)
    for _ in range(int(rng.integers(2, 5))):
        cy, cx = rng.uniform(0.2, 0.8) * ch, rng.uniform(0.2, 0.8) * cw
        a, b = rng.uniform(0.12, 0.3) * cw, rng.uniform(0.12, 0.3) * ch
        th = rng.uniform(0, np.pi)
        dx, dy = xx - cx, yy - cy
        u = (dx * np.cos(th) + dy * np.sin(th)) / a
        v = (-dx * np.sin(th) + dy * np.cos(th)) / b
        field = np.maximum(field, 1.0 - u * u - v * v)
    # Smooth noise makes the outlines irregular and punches a few holes (fat, lumina).
    noise = ndimage.gaussian_filter(rng.standard_normal((ch, cw)).astype(np.float32), 3.0)
    field = field + 0.75 * noise / (noise.std() + 1e-6)
    thr = np.quantile(field, 1.0 - rng.uniform(0.28, 0.45))
    # Bilinear interpolation of the field to the quarter grid gives smooth outlines.
    return ndimage.zoom(field, _COARSE // 4, order=1)[:qh, :qw] > thr


def _disc_offsets(
    radius: int, aspect: float, angle: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixel offsets of an ellipse with semi-axes radius*aspect, radius/aspect."""
    r = int(np.ceil(radius * aspect)) + 1
    dy, dx = np.mgrid[-r : r + 1, -r : r + 1]
    c, s = np.cos(angle), np.sin(angle)
    u = (dx * c + dy * s) / (radius * aspect)
    v = (-dx * s + dy * c) / (radius / aspect)
    d = np.sqrt(u * u + v * v)
    keep = d <= 1.0
    return dy[keep], dx[keep], d[keep]


def _draw_nuclei(
    img: np.ndarray,
    mask_q: np.ndarray,
    rng: np.random.Generator,
    *,
    factor: float,
    mpp: float,
    colour: np.ndarray,
) -> None:
    """Stamp elliptical nuclei (darker at the centre) onto ``img`` at random tissue positions.

    ``mask_q`` is the tissue mask on the quarter-resolution grid.
    """
    h, w = img.shape[:2]
    n = int(rng.poisson(nuclei_density(factor) * 16.0 * mask_q.sum() / 1000.0))
    if n == 0:
        return
    # Centres uniform over the tissue: a tissue cell of the quarter grid, then a pixel in it.
    cells = rng.choice(np.flatnonzero(mask_q), size=n)
    ys = np.minimum(cells // mask_q.shape[1] * 4 + rng.integers(0, 4, size=n), h - 1)
    xs = np.minimum(cells % mask_q.shape[1] * 4 + rng.integers(0, 4, size=n), w - 1)
    radius = nuclei_radius(factor, mpp=mpp) * rng.lognormal(0.0, 0.18, size=n)
    rbin = np.clip(np.rint(radius), 2, 40).astype(int)
    abin = rng.integers(0, 3, size=n)  # aspect class
    obin = rng.integers(0, 4, size=n)  # orientation class
    shade = (rng.uniform(0.8, 1.15, size=(n, 1)) * colour).astype(np.float32)  # (n, 3)
    flat = img.reshape(-1, 3)
    for r in np.unique(rbin):
        for a in range(3):
            for o in range(4):
                sel = np.flatnonzero((rbin == r) & (abin == a) & (obin == o))
                if sel.size == 0:
                    continue
                dy, dx, d = _disc_offsets(int(r), 1.0 + 0.2 * a, o * np.pi / 4)
                yy = ys[sel, None] + dy[None, :]  # (m, k)
                xx = xs[sel, None] + dx[None, :]
                inside = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
                ramp = (0.8 + 0.3 * d).astype(np.float32)  # (k,) lighter towards the rim
                val = shade[sel, None, :] * ramp[None, :, None]  # (m, k, 3)
                flat[(yy * w + xx)[inside]] = np.minimum(val[inside], 255).astype(np.uint8)


def _render(
    *, seed: int, factor: float, width: int, height: int, mpp: float
) -> tuple[np.ndarray, float]:
    """Level-0 image (height, width, 3) uint8 and its tissue fraction.

    Tissue shapes and stroma texture are drawn on a 4x coarser grid and enlarged (nearest
    neighbour); per-pixel noise and the nuclei are added at full resolution.
    """
    rng = np.random.default_rng([seed, 7])
    qh, qw = -(-height // 4), -(-width // 4)
    mask_q = _tissue_mask(rng, qh, qw)  # (qh, qw)
    img = _paint(rng, mask_q, factor=factor, width=width, height=height, mpp=mpp)
    return img, float(mask_q.mean())


def _paint(
    rng: np.random.Generator,
    mask_q: np.ndarray,
    *,
    factor: float,
    width: int,
    height: int,
    mpp: float,
) -> np.ndarray:
    """Paint stroma (where the quarter-resolution ``mask_q`` is True), glass and nuclei."""
    qh, qw = mask_q.shape
    stain = rng.normal(1.0, 0.03, size=3)  # per-slide stain jitter
    tex = ndimage.gaussian_filter(rng.standard_normal((qh, qw)).astype(np.float32), (1.0, 4.0))
    tex = 1.0 + 0.05 * tex / (tex.std() + 1e-6)
    small = (STROMA_RGB * stain).astype(np.float32)[None, None, :] * tex[..., None]
    small += rng.normal(0, 3.0, size=(qh, qw, 1)).astype(np.float32)
    small[~mask_q] = BACKGROUND
    small = np.clip(small, 0, _MAX_BASE).astype(np.uint8)  # (qh, qw, 3)
    wide = np.repeat(small, 4, axis=1)  # (qh, 4 qw, 3)
    img = np.empty((qh, 4, 4 * qw, 3), dtype=np.uint8)
    img[:] = wide[:, None]  # each quarter-grid row repeated 4 times
    img = img.reshape(4 * qh, 4 * qw, 3)[:height, :width]
    img = np.ascontiguousarray(img)  # no copy when the size is a multiple of 4
    # Fine noise: a seeded (256, width, 3) band added strip by strip (values stay in 0..255).
    band = rng.integers(-_NOISE, _NOISE + 1, size=(256, 256, 3)).astype(np.uint8)  # wraps
    band = np.tile(band, (1, -(-width // 256), 1))[:, :width]
    for r0 in range(0, height, 256):
        strip = img[r0 : r0 + 256]
        strip += band[: strip.shape[0]]
    _draw_nuclei(img, mask_q, rng, factor=factor, mpp=mpp, colour=NUCLEUS_RGB * stain)
    return img


def write_aperio_tiff(
    path: str | os.PathLike,
    image: np.ndarray,
    *,
    mpp: float | None,
    app_mag: int = 20,
    tile: int = 256,
    quality: int = 85,
    extra: dict[str, str] | None = None,
) -> None:
    """Write an RGB image as a pyramidal, JPEG-tiled, Aperio-style TIFF that OpenSlide reads.

    Parameters
    ----------
    path
        Output file; written atomically.
    image
        (height, width, 3) uint8 level-0 image.
    mpp
        Microns per level-0 pixel written as ``MPP`` (``None`` omits it).
    app_mag
        Apparent objective magnification written as ``AppMag``.
    tile
        Tile edge in pixels (multiple of 16) for every level.
    quality
        JPEG quality.
    extra
        Further ``key = value`` fields of the description (OpenSlide shows them as
        ``aperio.<key>``).

    Notes
    -----
    Levels have downsamples 4**k (4x4 box filter from the previous level): at least three
    (1, 4, 16), more while the coarsest level's longest side exceeds 1024 pixels.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"{path}: image must be (h, w, 3) uint8, got {image.shape} {image.dtype}")
    if tile % 16 or tile < 16:
        raise ValueError(f"{path}: tile size must be a positive multiple of 16, got {tile}")
    if mpp is not None and not mpp > 0:
        raise ValueError(f"{path}: mpp must be > 0 or None, got {mpp}")
    height, width = image.shape[:2]
    fields = [
        "Aperio Image Library v12.0.15 (mmlego synthetic)\r\n"
        f"{width}x{height} [0,0 {width}x{height}] ({tile}x{tile}) JPEG/RGB Q={quality}",
        f"AppMag = {app_mag}",
        "ScanScope ID = MMLEGO-SYNTH",
        f"Filename = {Path(path).stem}",
    ]
    if mpp is not None:
        fields.append(f"MPP = {mpp:g}")
    fields += [f"{k} = {v}" for k, v in (extra or {}).items()]
    n_levels = 3
    while max(width, height) / 4 ** (n_levels - 1) > 1024:
        n_levels += 1
    opts = dict(
        tile=(tile, tile),
        compression="jpeg",
        compressionargs={"level": quality},
        photometric="rgb",
        metadata=None,
    )
    with atomic_path(path) as tmp, tifffile.TiffWriter(tmp, bigtiff=False) as tif:
        level = image
        tif.write(level, description="|".join(fields), **opts)
        for _ in range(1, n_levels):
            level = np.asarray(Image.fromarray(level).reduce(4))  # 4x4 box filter
            h, w = level.shape[:2]
            desc = (
                f"Aperio Image Library v12.0.15\r\n{width}x{height} -> {w}x{h} JPEG/RGB Q={quality}"
            )
            tif.write(level, description=desc, **opts)


def write_synthetic_slide(
    path: str | os.PathLike,
    *,
    seed: int,
    factor: float,
    width: int = 4096,
    height: int = 3072,
    mpp: float | None = 0.5,
    app_mag: int = 20,
    tile: int = 256,
    quality: int = 85,
) -> None:
    """Write one synthetic H&E whole-slide image as a pyramidal Aperio-style TIFF.

    Parameters
    ----------
    path
        Output file (``.tiff`` or ``.svs``); written atomically.
    seed
        Seeds everything drawn (tissue shapes, stain jitter, nuclei); same seed, same pixels.
    factor
        Standard-normal latent; nuclei density and size increase monotonically with it.
    width, height
        Level-0 size in pixels.
    mpp
        Microns per level-0 pixel written as ``MPP``; ``None`` omits it (a slide whose resolution
        must come from elsewhere; nuclei are then drawn as for 0.5 µm/px).
    app_mag, tile, quality
        As in :func:`write_aperio_tiff`.
    """
    if width < 64 or height < 64:
        raise ValueError(f"{path}: slide must be at least 64x64 pixels, got {width}x{height}")
    if mpp is not None and not mpp > 0:
        raise ValueError(f"{path}: mpp must be > 0 or None, got {mpp}")
    if tile % 16 or tile < 16:
        raise ValueError(f"{path}: tile size must be a positive multiple of 16, got {tile}")
    scale_mpp = 0.5 if mpp is None else float(mpp)
    img, fraction = _render(seed=seed, factor=factor, width=width, height=height, mpp=scale_mpp)
    write_aperio_tiff(
        path,
        img,
        mpp=mpp,
        app_mag=app_mag,
        tile=tile,
        quality=quality,
        extra={"SyntheticTissueFraction": f"{fraction:.4f}"},
    )


# --- large, mostly pre-encoded pyramids (memory and speed tests) -----------------------------


def tissue_tile_layout(rows: int, cols: int, *, seed: int) -> np.ndarray:
    """Irregular tissue blobs covering about 25-50 % of a (rows, cols) tile grid, bool."""
    if rows < 8 or cols < 8:
        raise ValueError(f"tissue_tile_layout needs at least 8 x 8 tiles, got {rows} x {cols}")
    return _tissue_mask(np.random.default_rng([seed, 11]), rows, cols)


def write_large_slide(
    path: str | os.PathLike,
    *,
    width: int,
    height: int,
    tissue: np.ndarray,
    mpp: float | None = 0.25,
    app_mag: int = 40,
    seed: int = 0,
    factor: float = 0.0,
    tile: int = 256,
    quality: int = 85,
    bank_size: int = 16,
    blank: str = "empty",
    n_levels: int | None = None,
) -> dict[str, int]:
    """Write a large pyramidal TIFF (e.g. 100,000 x 100,000 px) without ever holding an image
    level in memory.

    The file is a generic tiled pyramidal TIFF (OpenSlide's ``generic-tiff`` reader: levels are
    successive JPEG-tiled IFDs, the reduced ones marked as such; the resolution comes from the
    TIFF resolution tags, as for many ``.tiff`` exports). Not Aperio-style: OpenSlide renders an
    Aperio file's missing tiles from the finer levels, which would defeat empty glass tiles.

    Level-0 tile ``(i, j)`` is tissue where ``tissue[i, j]`` is True: one of ``bank_size``
    synthetic H&E tiles (rendered and JPEG-encoded once, chosen by position), otherwise glass.
    Coarser levels (downsamples 4, 16, ...) are assembled tile by tile from box-reduced copies of
    the bank (or, beyond the tile size, from the level-0 tiles' mean colours) and encoded; tiles
    without tissue are written once as shared bytes. So writing costs about one encode per
    level-1 tissue tile, and memory is a few tiles.

    Parameters
    ----------
    path
        Output file (``.tiff``/``.svs``); written atomically.
    width, height
        Level-0 size in pixels.
    tissue
        (ceil(height / tile), ceil(width / tile)) bool map of the level-0 tile grid.
    mpp, app_mag
        Microns per level-0 pixel, written as the TIFF resolution (``None`` omits it), and the
        objective magnification noted in the description.
    seed, factor
        Seed and latent of the tissue bank (as in :func:`write_synthetic_slide`).
    tile
        Tile edge in pixels, a power of two >= 16.
    quality
        JPEG quality.
    bank_size
        Number of distinct level-0 tissue tiles.
    blank
        ``'empty'``: glass tiles are stored with no data (zero bytes), which OpenSlide reads as
        transparent and the WSI stage as white, like the skipped areas of some scanners;
        ``'jpeg'``: a JPEG of light grey glass (about 1.6 kB each at 256 px).
    n_levels
        Pyramid levels (downsamples 1, 4, 16, ...); ``None``: at least 3, more while the
        coarsest level's longest side exceeds 1024 pixels. Many 40x Aperio scans have 3.

    Returns
    -------
    dict
        ``levels``, ``tissue_tiles`` (level 0) and ``bytes`` (file size).
    """
    if tile < 16 or tile & (tile - 1):
        raise ValueError(f"{path}: tile must be a power of two >= 16, got {tile}")
    rows, cols = -(-height // tile), -(-width // tile)
    tissue = np.asarray(tissue, dtype=bool)
    if tissue.shape != (rows, cols):
        raise ValueError(
            f"{path}: tissue map must have shape {(rows, cols)} (tiles of {tile} px), "
            f"got {tissue.shape}"
        )
    if blank not in ("empty", "jpeg"):
        raise ValueError(f"{path}: blank must be 'empty' or 'jpeg', got {blank!r}")
    if mpp is not None and not mpp > 0:
        raise ValueError(f"{path}: mpp must be > 0 or None, got {mpp}")

    def encode(arr: np.ndarray) -> bytes:
        return imagecodecs.jpeg8_encode(
            arr, level=quality, colorspace="RGB", outcolorspace="YCBCR", subsampling=(2, 2)
        )

    rng = np.random.default_rng([seed, 13])
    side = int(np.ceil(np.sqrt(bank_size)))
    full = np.ones((side * tile // 4, side * tile // 4), dtype=bool)
    scale_mpp = 0.5 if mpp is None else float(mpp)
    painted = _paint(rng, full, factor=factor, width=side * tile, height=side * tile, mpp=scale_mpp)
    bank = [
        painted[
            (k // side) * tile : (k // side + 1) * tile, (k % side) * tile : (k % side + 1) * tile
        ]
        for k in range(bank_size)
    ]  # bank_size x (tile, tile, 3)
    bank_mean = np.array([b.reshape(-1, 3).mean(axis=0) for b in bank], dtype=np.float32)
    ii, jj = np.mgrid[0:rows, 0:cols]
    ids = np.where(tissue, (ii * 7919 + jj * 104729 + seed) % bank_size, -1)  # (rows, cols)
    glass_value = 255 if blank == "empty" else BACKGROUND  # empty tiles read as white
    glass = np.full((tile, tile, 3), glass_value, dtype=np.uint8)
    blank_bytes = b"" if blank == "empty" else encode(glass)
    colour = np.where(tissue[..., None], bank_mean[np.maximum(ids, 0)], float(glass_value))

    if n_levels is None:
        n_levels = 3
        while max(width, height) / 4 ** (n_levels - 1) > 1024:
            n_levels += 1
    elif n_levels < 1:
        raise ValueError(f"{path}: n_levels must be >= 1, got {n_levels}")

    def level_tiles(level: int) -> Iterator[bytes]:
        d = 4**level  # level-0 tiles per level tile, per side
        hl, wl = -(-height // d), -(-width // d)
        if d <= tile:
            s = tile // d
            small = [np.asarray(Image.fromarray(b).reduce(d)) if d > 1 else b for b in bank]
            cache = [encode(b) for b in bank] if d == 1 else None
        for ti in range(-(-hl // tile)):
            for tj in range(-(-wl // tile)):
                block = ids[ti * d : (ti + 1) * d, tj * d : (tj + 1) * d]
                if (block < 0).all():
                    yield blank_bytes
                elif d == 1:
                    yield cache[int(block[0, 0])]
                elif d <= tile:
                    arr = glass.copy()
                    for r, c in zip(*np.nonzero(block >= 0), strict=True):
                        arr[r * s : (r + 1) * s, c * s : (c + 1) * s] = small[block[r, c]]
                    yield encode(arr)
                else:
                    m = d // tile
                    grid = np.full((d, d, 3), float(glass_value), dtype=np.float32)
                    part = colour[ti * d : (ti + 1) * d, tj * d : (tj + 1) * d]
                    grid[: part.shape[0], : part.shape[1]] = part
                    arr = grid.reshape(tile, m, tile, m, 3).mean(axis=(1, 3))
                    yield encode(np.clip(np.rint(arr), 0, 255).astype(np.uint8))

    description = (
        f"mmlego synthetic large slide {width}x{height}, AppMag = {app_mag}, "
        f"SyntheticTissueFraction = {tissue.mean():.4f}"
    )
    opts = dict(
        dtype=np.uint8,
        tile=(tile, tile),
        compression="jpeg",
        photometric="rgb",
        subsampling=(2, 2),
        metadata=None,
    )
    with atomic_path(path) as tmp:
        with tifffile.TiffWriter(tmp, bigtiff=False) as tif:
            for level in range(n_levels):
                d = 4**level
                shape = (-(-height // d), -(-width // d), 3)
                res = {}
                if mpp is not None:
                    res = {"resolution": (1e4 / (mpp * d),) * 2, "resolutionunit": "CENTIMETER"}
                tif.write(
                    level_tiles(level),
                    shape=shape,
                    description=description if level == 0 else None,
                    subfiletype=0 if level == 0 else 1,  # 1: reduced-resolution image
                    **res,
                    **opts,
                )
        size = tmp.stat().st_size
    return {"levels": n_levels, "tissue_tiles": int(tissue.sum()), "bytes": int(size)}
