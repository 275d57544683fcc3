"""Quality control of the WSI stage: the tiling picture (thumbnail, tissue outline, kept tile
grid) and the notes on usable but imperfect slides added to the QC table (upsampled slides,
unreadable tiles skipped)."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
from PIL import Image, ImageDraw
from scipy import ndimage

from mmlego.io import atomic_path

#: Longest side in pixels of the QC picture.
QC_MAX_SIDE = 768
OUTLINE_RGB = (0, 170, 0)
TILE_RGB = (20, 60, 230)


def draw_tiling_qc(
    thumb: Image.Image,
    mask: np.ndarray,
    coords: np.ndarray,
    *,
    size: tuple[int, int],
    patch_size_level0: int,
    title: str,
) -> Image.Image:
    """Thumbnail with the tissue outline (green) and the kept tiles (blue squares).

    Parameters
    ----------
    thumb
        Slide thumbnail (any size, the slide's aspect ratio), e.g. ``OpenSlide.get_thumbnail``.
    mask
        (h, w) bool tissue mask of the whole slide (any resolution).
    coords
        (n, 2) level-0 x, y of the kept tiles.
    size
        Level-0 (width, height) of the slide.
    patch_size_level0
        Tile edge in level-0 pixels.
    title
        Caption drawn in the top-left corner.
    """
    pic = thumb.convert("RGB")
    up = Image.fromarray(mask.astype(np.uint8) * 255).resize(pic.size, Image.Resampling.NEAREST)
    m = np.asarray(up) > 0  # (H, W) mask at thumbnail size
    edge = m & ~ndimage.binary_erosion(m, border_value=0)
    arr = np.array(pic)
    arr[ndimage.binary_dilation(edge)] = OUTLINE_RGB
    pic = Image.fromarray(arr)
    sx, sy = size[0] / pic.width, size[1] / pic.height  # level-0 px per picture px
    draw = ImageDraw.Draw(pic)
    for x, y in np.asarray(coords):
        x0, y0 = x / sx, y / sy
        x1, y1 = (x + patch_size_level0) / sx - 1, (y + patch_size_level0) / sy - 1
        draw.rectangle([x0, y0, max(x0, x1), max(y0, y1)], outline=TILE_RGB)
    draw.text((4, 4), title, fill=(0, 0, 0))
    return pic


def write_tiling_qc(pic: Image.Image, path: str | os.PathLike) -> None:
    """Save the QC picture as a palette PNG atomically (a few hundred KB for a whole cohort's
    worth of report thumbnails rather than ~1 MB each as true colour)."""
    with atomic_path(path, suffix=".png") as tmp:
        pic.quantize(colors=64, method=Image.Quantize.MEDIANCUT).save(
            tmp, format="PNG", optimize=True
        )


def skipped_qc_picture(slide_id: str, reason: str, *, width: int = 512) -> Image.Image:
    """A QC picture for a slide that was skipped: its id and the reason, wrapped."""
    lines = [f"{slide_id}: SKIPPED", *textwrap.wrap(reason, width=70)]
    pic = Image.new("RGB", (width, 16 * (len(lines) + 1)), (255, 240, 240))
    draw = ImageDraw.Draw(pic)
    for i, line in enumerate(lines):
        draw.text((6, 6 + 16 * i), line, fill=(150, 0, 0))
    return pic


def add_slide_notes(
    table: pd.DataFrame,
    *,
    coords_files: Sequence[str | os.PathLike],
    feature_files: Sequence[str | os.PathLike],
) -> pd.DataFrame:
    """The QC table (one row per ``slide_id``) with two more columns from the slides' files.

    - ``n_unreadable_tiles``: tiles whose data could not be decoded (features attr
      ``n_unreadable_tiles``), left out of the slide's features; a slide with more than
      ``wsi.max_bad_tile_fraction`` of them is ``failed`` and the count is still given;
    - ``note``: what a usable slide lost or how it was read, e.g. ``"42 of 616 tiles
      unreadable, skipped (first: ...)"`` or ``"upsampled 2x: scanned at 0.5 µm/px, ..."``
      (coordinates attr ``upsampled``); empty otherwise.
    """
    coords = {Path(p).stem: Path(p) for p in coords_files}
    features = {Path(p).stem: Path(p) for p in feature_files}
    lost, notes = [], []
    for slide in table["slide_id"].astype(str):
        parts, n_bad = [], 0
        if slide in coords:
            with h5py.File(coords[slide], "r") as f:
                a = f.attrs
                if bool(a.get("upsampled", False)):
                    factor = float(a["upsample_factor"])
                    level_mpp = float(a["slide_mpp"]) * float(a.get("level_downsample", 1.0))
                    parts.append(
                        f"upsampled {factor:.3g}x: scanned at {level_mpp:g} µm/px, coarser than "
                        f"the target {float(a['target_mpp']):g} µm/px"
                    )
        if slide in features:
            with h5py.File(features[slide], "r") as f:
                a = f.attrs
                n_bad = int(a.get("n_unreadable_tiles", 0))
                if n_bad and str(a.get("status", "ok")) == "ok":
                    total = n_bad + int(f["features"].shape[0])
                    parts.append(
                        f"{n_bad} of {total} tiles unreadable, skipped "
                        f"(first: {a.get('unreadable_first_error', '')})"
                    )
        lost.append(n_bad)
        notes.append("; ".join(parts))
    return table.assign(n_unreadable_tiles=lost, note=notes)
