"""Tissue tiling of one slide: a grid of non-overlapping tiles at a target resolution.

:func:`tile_slide` writes the coordinates file (CLAM/TRIDENT style) that the feature stage
reads: HDF5 with dataset ``coords`` (n, 2) int64, the level-0 x, y of each tile's top-left corner,
in row-major order (y, then x), and dataset ``tissue`` (n,) float32, each tile's tissue fraction.
Attributes:

- ``patch_size``: tile edge in pixels at the target resolution (what the encoder sees);
- ``patch_size_level0``: tile edge in level-0 pixels, ``round(patch_size * target_mpp / mpp0)``;
  it is also the grid step;
- ``patch_level``, ``level_downsample``: pyramid level to read tiles from and its downsample;
- ``read_size``: tile edge in pixels at ``patch_level``, ``round(patch_size_level0 /
  level_downsample)``; tiles are read at this size and resized to ``patch_size``;
- ``target_mpp``, ``slide_mpp`` (level 0), ``mpp_source`` (``metadata`` or ``override``);
- ``slide_id``, ``slide_path``, ``source_size`` (bytes), ``source_mtime`` (seconds since epoch);
- ``openslide_version``, ``mmlego_version``, ``level_tolerance``;
- ``coarser_slides`` (``skip`` or ``upsample``), ``upsampled`` (whether the slide is coarser
  than the target and its tiles are enlarged) and ``upsample_factor`` (the patch level's
  resolution over ``target_mpp``; 1 or less unless upsampled);
- ``tissue_params`` (JSON), ``min_tissue``, ``max_tiles`` (-1: no cap), ``seed``;
- ``n_grid`` (grid tiles inside the slide), ``n_candidates`` (with enough tissue, before the
  cap), ``slide_tissue_fraction`` (of the low-resolution mask), ``mask_scale`` (level-0 pixels
  per mask pixel);
- ``reason``, only when ``n_grid`` is 0: the slide is smaller than one tile (the QC table's
  reason for its having no tiles).

The ``coords`` dataset itself carries the attributes CLAM and TRIDENT read (so their feature
extractors, and :mod:`mmlego.wsi.byo`, accept the file):

- TRIDENT: ``patch_size`` (pixels at the target resolution), ``patch_size_level0``,
  ``level0_magnification`` (``10 / slide_mpp``) and ``target_magnification``
  (``10 / target_mpp``; the usual 10 µm-per-pixel-at-1x convention, so 0.5 µm/px is 20x; not
  rounded, so that ``patch_size * level0_magnification / target_magnification`` is the level-0
  tile size), ``overlap`` (0), ``name``, ``level0_width``, ``level0_height``;
- CLAM: ``patch_level``, ``downsample`` (x, y), ``level_dim`` and ``downsampled_level_dim`` of the
  patch level, ``name``. CLAM reads ``patch_size`` pixels at ``patch_level``: that is the same
  tile only when ``read_size == patch_size`` (the target resolution is a pyramid level's, e.g.
  20x tiles from a 20x scan, or 1 µm/px from a 40x Aperio's 4x-downsampled level); otherwise
  CLAM's reader would see a different field of view, so use this workflow's or TRIDENT's.

Level choice: the coarsest level whose resolution is at most ``target_mpp * (1 + 0.1)``, see
:func:`mmlego.wsi.slide.choose_level`. A slide whose finest level is coarser than that (a 20x
scan tiled at 0.25 µm/px) is unusable (``coarser_slides='skip'``, the default: recorded, or
raised with ``fail_fast``), or read from its finest level and enlarged to the target
(``coarser_slides='upsample'``: ``read_size < patch_size``, recorded in ``upsampled``), at most
:data:`~mmlego.wsi.slide.MAX_UPSAMPLE` (4) times: a slide coarser still is unusable either way,
as is a slide whose resolution lies outside :data:`~mmlego.wsi.slide.PLAUSIBLE_MPP` (0.05 to
20 µm/px: an image tool's 72 dpi would otherwise make a tile of every few pixels).
Tiles lie fully inside level 0 (the grid starts at (0, 0); a partial last row/column is
dropped). A tile's tissue fraction is the mean of the low-resolution tissue mask over the
tile's footprint (rounded to mask pixels).
"""

from __future__ import annotations

import json
import logging
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import openslide
from PIL import Image

import mmlego
from mmlego.io import atomic_path
from mmlego.wsi.qc import QC_MAX_SIDE, draw_tiling_qc, skipped_qc_picture, write_tiling_qc
from mmlego.wsi.slide import (
    LEVEL_TOLERANCE,
    SlideError,
    choose_level,
    open_slide,
    read_low_res,
    require_rgb,
    slide_mpp,
)
from mmlego.wsi.tissue import TissueParams, segment_tissue

log = logging.getLogger(__name__)

#: What to do with a slide coarser than the target resolution (see :func:`tile_slide`).
COARSER_SLIDES = ("skip", "upsample")


@dataclass(frozen=True)
class TilingResult:
    """Summary of :func:`tile_slide` (the coordinates themselves are in the HDF5 file)."""

    slide_id: str
    n_tiles: int
    n_candidates: int
    n_grid: int
    patch_level: int
    patch_size: int
    patch_size_level0: int
    read_size: int
    level_downsample: float
    slide_mpp: float
    tissue_fraction: float
    status: str = "ok"  # ok | no_tissue | failed
    reason: str = ""  # why failed; for a usable slide, a note (upsampled)
    upsample_factor: float = 1.0
    upsampled: bool = False  # coarser than the target, its tiles enlarged


def grid_coords(width: int, height: int, step: int) -> np.ndarray:
    """Top-left corners (n, 2) int64 x, y of non-overlapping ``step`` tiles inside the image.

    Row-major: all tiles of the first row (smallest y) left to right, then the next row.
    """
    xs = np.arange(0, width - step + 1, step, dtype=np.int64)
    ys = np.arange(0, height - step + 1, step, dtype=np.int64)
    gy, gx = np.meshgrid(ys, xs, indexing="ij")
    return np.stack([gx.ravel(), gy.ravel()], axis=1)  # (n, 2)


def tile_tissue_fraction(
    mask: np.ndarray, coords: np.ndarray, *, size: int, scale_x: float, scale_y: float
) -> np.ndarray:
    """Tissue fraction (n,) float32 of each level-0 tile footprint on a low-resolution mask.

    ``scale_x``/``scale_y`` are level-0 pixels per mask pixel; footprints are rounded to whole
    mask pixels (at least one) and clipped to the mask.
    """
    h, w = mask.shape
    integral = np.zeros((h + 1, w + 1), dtype=np.int64)
    integral[1:, 1:] = np.cumsum(np.cumsum(mask, axis=0, dtype=np.int64), axis=1)
    x = coords[:, 0].astype(np.float64)
    y = coords[:, 1].astype(np.float64)
    x0 = np.clip(np.rint(x / scale_x).astype(np.int64), 0, w - 1)
    y0 = np.clip(np.rint(y / scale_y).astype(np.int64), 0, h - 1)
    x1 = np.clip(np.maximum(np.rint((x + size) / scale_x).astype(np.int64), x0 + 1), 1, w)
    y1 = np.clip(np.maximum(np.rint((y + size) / scale_y).astype(np.int64), y0 + 1), 1, h)
    total = integral[y1, x1] - integral[y0, x1] - integral[y1, x0] + integral[y0, x0]
    return (total / ((x1 - x0) * (y1 - y0))).astype(np.float32)


def subsample_sorted(n: int, k: int, *, seed: int, key: str) -> np.ndarray:
    """``k`` of ``range(n)`` drawn without replacement, in increasing order.

    The generator is seeded by ``seed`` and a CRC32 of ``key`` (the slide id), so slides with the
    same number of tiles do not keep the same positions.
    """
    rng = np.random.default_rng([seed, zlib.crc32(key.encode())])
    return np.sort(rng.choice(n, size=k, replace=False))


def tile_slide(
    slide_path: str | os.PathLike,
    out_h5: str | os.PathLike,
    *,
    target_mpp: float,
    tile_size: int,
    tissue: TissueParams,
    min_tissue: float = 0.5,
    max_tiles: int | None = None,
    seed: int = 0,
    mpp_override: float | None = None,
    qc_png: str | os.PathLike | None = None,
    slide_id: str | None = None,
    fail_fast: bool = True,
    coarser_slides: str = "skip",
) -> TilingResult:
    """Find tissue tiles of a slide and write their coordinates file (format: module docstring).

    Parameters
    ----------
    slide_path
        Any slide OpenSlide reads.
    out_h5
        Coordinates file to write (atomically).
    target_mpp
        Resolution of the tiles in microns per pixel.
    tile_size
        Tile edge in pixels at ``target_mpp``.
    tissue
        Tissue segmentation parameters.
    min_tissue
        Keep tiles whose tissue fraction is at least this (0..1).
    max_tiles
        Keep at most this many tiles, drawn at random (seeded) and kept in grid order.
    seed
        Seed of that draw (combined with the slide id).
    mpp_override
        Microns per level-0 pixel to use instead of the file's metadata.
    qc_png
        If given, write a QC thumbnail (tissue outline and kept tiles) there.
    slide_id
        Identifier stored in the file; defaults to the file name without its last suffix.
    fail_fast
        If False, a slide that cannot be used (missing, unreadable, truncated, no resolution,
        an implausible one, non-square pixels, grayscale) does not raise: a coordinates file
        with no tiles records the reason (attrs ``status``, ``reason``) and the QC picture says
        why; the result has ``status='failed'``.
    coarser_slides
        A slide whose finest level is coarser than ``target_mpp`` (beyond the 10 % tolerance):
        ``'skip'`` makes it unusable like the slides above (recorded with the reason, or raised
        with ``fail_fast``); ``'upsample'`` reads its tiles from the finest level and enlarges
        them to ``tile_size`` (Lanczos), recorded in attrs ``upsampled``/``upsample_factor``
        and in the result's ``reason``, up to :data:`~mmlego.wsi.slide.MAX_UPSAMPLE` times (a
        slide coarser still is unusable either way).

    Returns
    -------
    TilingResult
    """
    path = Path(slide_path)
    sid = slide_id if slide_id is not None else path.stem
    if not target_mpp > 0:
        raise ValueError(f"{path}: target_mpp must be > 0, got {target_mpp}")
    if tile_size < 1:
        raise ValueError(f"{path}: tile_size must be >= 1, got {tile_size}")
    if not 0.0 <= min_tissue <= 1.0:
        raise ValueError(f"{path}: min_tissue must be in [0, 1], got {min_tissue}")
    if max_tiles is not None and max_tiles < 1:
        raise ValueError(f"{path}: max_tiles must be >= 1 or None, got {max_tiles}")
    if coarser_slides not in COARSER_SLIDES:
        raise ValueError(
            f"{path}: coarser_slides must be one of {list(COARSER_SLIDES)}, got {coarser_slides!r}"
        )

    mpp0 = float("nan")  # known once read: recorded for a slide coarser than the target
    try:
        with open_slide(path) as slide:
            require_rgb(slide, path=path)
            mpp0, mpp_source = slide_mpp(slide, path=path, override=mpp_override)
            downsamples = tuple(float(d) for d in slide.level_downsamples)
            level = choose_level(
                downsamples,
                mpp0=mpp0,
                target_mpp=target_mpp,
                path=path,
                upsample=coarser_slides == "upsample",
            )
            ps0 = max(1, round(tile_size * target_mpp / mpp0))
            read_size = max(1, round(ps0 / downsamples[level]))
            w0, h0 = slide.dimensions
            level_dim = tuple(int(v) for v in slide.level_dimensions[level])
            rgb, sx, sy = read_low_res(slide, mpp0=mpp0, mask_mpp=tissue.mask_mpp)  # (h, w, 3)
            thumb = qc_thumbnail(slide, rgb, mpp0=mpp0, path=path) if qc_png else None
    except (SlideError, FileNotFoundError, openslide.OpenSlideError) as e:
        reason = str(e) if not isinstance(e, openslide.OpenSlideError) else f"{path}: {e}"
        if fail_fast:
            if isinstance(e, openslide.OpenSlideError):
                raise SlideError(reason) from e
            raise
        log.warning("skipping slide %s: %s", sid, reason)
        write_skipped_tiling(
            out_h5,
            qc_png,
            slide_id=sid,
            reason=reason,
            tile_size=tile_size,
            target_mpp=target_mpp,
            slide_mpp=mpp0,
        )
        return TilingResult(sid, 0, 0, 0, 0, tile_size, 0, 0, 1.0, mpp0, 0.0, "failed", reason)
    mask = segment_tissue(rgb, mpp=mpp0 * (sx + sy) / 2, params=tissue)  # (h, w)

    grid = grid_coords(w0, h0, ps0)  # (g, 2)
    frac = tile_tissue_fraction(mask, grid, size=ps0, scale_x=sx, scale_y=sy)  # (g,)
    keep = np.flatnonzero(frac >= min_tissue) if len(grid) else np.zeros(0, dtype=np.int64)
    n_candidates = int(keep.size)
    if max_tiles is not None and keep.size > max_tiles:
        keep = keep[subsample_sorted(keep.size, max_tiles, seed=seed, key=sid)]
    coords = grid[keep].astype(np.int64).reshape(-1, 2)  # (n, 2)
    factor = mpp0 * downsamples[level] / float(target_mpp)
    upsampled = factor > 1.0 + LEVEL_TOLERANCE
    note = (
        f"upsampled {factor:.3g}x: scanned at {mpp0 * downsamples[level]:g} µm/px, coarser "
        f"than the target {target_mpp:g} µm/px"
        if upsampled
        else ""
    )
    if note:
        log.warning("slide %s: %s", sid, note)
    if not len(grid):
        note = smaller_than_a_tile((w0, h0), mpp0=mpp0, tile_size=tile_size, target_mpp=target_mpp)
        log.warning("slide %s: %s", sid, note)

    stat = path.stat()
    attrs = {
        "patch_size": int(tile_size),
        "patch_size_level0": ps0,
        "patch_level": int(level),
        "level_downsample": downsamples[level],
        "read_size": read_size,
        "target_mpp": float(target_mpp),
        "slide_mpp": mpp0,
        "mpp_source": mpp_source,
        "slide_id": sid,
        "slide_path": str(path.resolve()),
        "source_size": int(stat.st_size),
        "source_mtime": float(stat.st_mtime),
        "openslide_version": openslide.__library_version__,
        "mmlego_version": mmlego.__version__,
        "level_tolerance": LEVEL_TOLERANCE,
        "coarser_slides": coarser_slides,
        "upsampled": bool(upsampled),
        "upsample_factor": float(factor),
        "tissue_params": json.dumps(tissue.to_dict(), sort_keys=True),
        "min_tissue": float(min_tissue),
        "max_tiles": -1 if max_tiles is None else int(max_tiles),
        "seed": int(seed),
        "n_grid": len(grid),
        "n_candidates": n_candidates,
        "slide_tissue_fraction": float(mask.mean()),
        "mask_scale": float((sx + sy) / 2),
    }
    if not len(grid):
        attrs["reason"] = note  # why the slide has no tiles (the QC table says it)
    dataset_attrs = {
        # TRIDENT
        "patch_size": int(tile_size),
        "patch_size_level0": ps0,
        "level0_magnification": 10.0 / mpp0,
        "target_magnification": 10.0 / float(target_mpp),
        "overlap": 0,
        "name": sid,
        "level0_width": int(w0),
        "level0_height": int(h0),
        # CLAM
        "patch_level": int(level),
        "downsample": (downsamples[level], downsamples[level]),
        "level_dim": level_dim,
        "downsampled_level_dim": level_dim,
    }
    with atomic_path(out_h5, suffix=".h5") as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("coords", data=coords).attrs.update(dataset_attrs)
        f.create_dataset("tissue", data=frac[keep].astype(np.float32))
        f.attrs.update(attrs)

    if qc_png is not None:
        title = f"{sid}: {len(coords)} tiles ({n_candidates} with tissue) @ {target_mpp:g} um/px"
        if upsampled:
            title += f", upsampled {factor:.3g}x"
        pic = draw_tiling_qc(thumb, mask, coords, size=(w0, h0), patch_size_level0=ps0, title=title)
        write_tiling_qc(pic, qc_png)

    return TilingResult(
        status="ok" if len(coords) else "no_tissue",
        slide_id=sid,
        n_tiles=len(coords),
        n_candidates=n_candidates,
        n_grid=len(grid),
        patch_level=int(level),
        patch_size=int(tile_size),
        patch_size_level0=ps0,
        read_size=read_size,
        level_downsample=downsamples[level],
        slide_mpp=mpp0,
        tissue_fraction=float(mask.mean()),
        reason=note,
        upsample_factor=float(factor),
        upsampled=bool(upsampled),
    )


def smaller_than_a_tile(
    size0: tuple[int, int], *, mpp0: float, tile_size: int, target_mpp: float
) -> str:
    """Why a slide of level-0 size ``size0`` has no tile: it is smaller than one tile."""
    w0, h0 = size0
    return (
        f"the slide is smaller than one tile at the target resolution: {w0} x {h0} px at "
        f"{mpp0:g} µm/px ({w0 * mpp0:.0f} x {h0 * mpp0:.0f} µm), a tile {tile_size} px at "
        f"{target_mpp:g} µm/px ({tile_size * target_mpp:g} µm)"
    )


def qc_thumbnail(
    slide: openslide.OpenSlide, rgb: np.ndarray, *, mpp0: float, path: str | os.PathLike = ""
) -> Image.Image:
    """The QC picture's background, at most ``QC_MAX_SIDE`` pixels on its longest side.

    The tissue-mask image ``rgb`` when it is large enough, else a finer read of a pyramid level
    in strips (:func:`read_low_res`); never ``OpenSlide.get_thumbnail``, which reads a whole
    level (level 0 of a slide without a pyramid). If that finer read fails (a corrupt tile of
    that level; the tiles themselves are checked when features are extracted), the picture is
    the tissue-mask image; ``slide`` must then not be read again (OpenSlide's error state).
    """
    if max(rgb.shape[:2]) < QC_MAX_SIDE:
        w0, h0 = slide.dimensions
        try:
            rgb, _, _ = read_low_res(slide, mpp0=mpp0, mask_mpp=max(w0, h0) * mpp0 / QC_MAX_SIDE)
        except openslide.OpenSlideError as e:
            log.warning("%s: QC picture from the coarser tissue-mask image: %s", path, e)
    img = Image.fromarray(rgb)
    img.thumbnail((QC_MAX_SIDE, QC_MAX_SIDE), Image.Resampling.BOX)
    return img


def write_skipped_tiling(
    out_h5: str | os.PathLike,
    qc_png: str | os.PathLike | None,
    *,
    slide_id: str,
    reason: str,
    tile_size: int,
    target_mpp: float,
    slide_mpp: float = float("nan"),
) -> None:
    """Record a slide that cannot be tiled: a coordinates file with no tiles and the reason
    (and the slide's resolution, ``slide_mpp``, when it was read).

    Downstream the slide contributes no tiles (its patient lacks the slide modality unless
    another slide has tissue); the QC table and the report show the reason.
    """
    with atomic_path(out_h5, suffix=".h5") as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("coords", data=np.zeros((0, 2), dtype=np.int64))
        f.create_dataset("tissue", data=np.zeros(0, dtype=np.float32))
        f.attrs.update(
            {
                "patch_size": int(tile_size),
                "patch_size_level0": 0,
                "patch_level": 0,
                "read_size": int(tile_size),
                "target_mpp": float(target_mpp),
                "slide_id": slide_id,
                "status": "failed",
                "reason": reason,
            }
        )
        if np.isfinite(slide_mpp):
            f.attrs["slide_mpp"] = float(slide_mpp)
    if qc_png is not None:
        write_tiling_qc(skipped_qc_picture(slide_id, reason), qc_png)
