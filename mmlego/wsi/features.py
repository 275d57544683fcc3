"""Patch features of one slide: read the tiles listed in a coordinates file and encode them.

Output HDF5 (written atomically):

- dataset ``features`` (n, d) float32, one row per tile, in the coordinates file's order;
- dataset ``coords`` (n, 2) int64, level-0 x, y (copied from the coordinates file);
- attributes ``encoder`` (name), ``dim`` (d), ``feature_names`` (JSON list, when the encoder
  has names), ``slide_id``, ``patch_size``, ``patch_size_level0``, ``patch_level``,
  ``target_mpp``, ``slide_mpp`` (copied), ``encoder_options`` (JSON).

A slide with no tiles gives ``features`` of shape (0, d).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import openslide

from mmlego.io import atomic_path
from mmlego.wsi.encoders import get_encoder
from mmlego.wsi.slide import SlideError, open_slide, read_tiles

log = logging.getLogger(__name__)

_COPIED_ATTRS = (
    "slide_id",
    "patch_size",
    "patch_size_level0",
    "patch_level",
    "target_mpp",
    "slide_mpp",
)


def read_coords(coords_h5: str | os.PathLike) -> tuple[np.ndarray, dict[str, Any]]:
    """Coordinates (n, 2) int64 and attributes of a coordinates file from the tiling stage."""
    path = Path(coords_h5)
    with h5py.File(path, "r") as f:
        if "coords" not in f:
            raise ValueError(f"{path}: not a coordinates file (no 'coords' dataset)")
        coords = np.asarray(f["coords"][:], dtype=np.int64).reshape(-1, 2)
        attrs = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in f.attrs.items()}
    missing = [k for k in ("patch_size", "patch_level") if k not in attrs]
    if missing:
        raise ValueError(f"{path}: coordinates file lacks attributes {missing}")
    return coords, attrs


def extract_features(
    slide_path: str | os.PathLike,
    coords_h5: str | os.PathLike,
    out_h5: str | os.PathLike,
    *,
    encoder: str = "hed_texture",
    batch_size: int = 64,
    encoder_options: dict[str, Any] | None = None,
    fail_fast: bool = True,
) -> int:
    """Encode every tile of a coordinates file and write the features file (format above).

    Tiles are read with OpenSlide at the recorded ``patch_level`` and ``read_size`` (for files
    without ``read_size``: ``round(patch_size_level0 / level_downsample)``), then resized to
    ``patch_size`` when the sizes differ.

    Parameters
    ----------
    slide_path
        The slide the coordinates were computed on.
    coords_h5
        Coordinates file from :func:`mmlego.wsi.tiling.tile_slide`.
    out_h5
        Features file to write.
    encoder
        Registered encoder name (:func:`mmlego.wsi.encoders.available_encoders`).
    batch_size
        Tiles read and encoded at a time (bounds memory).
    encoder_options
        Keyword options for the encoder's factory.
    fail_fast
        If False, a slide whose tiles cannot be read (truncated or corrupt data) gives a
        features file with no rows and attrs ``status='failed'`` and ``reason``, instead of
        raising; its patient then lacks the slide modality unless another slide has tiles.

    Returns
    -------
    int
        Number of tiles encoded.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    coords, attrs = read_coords(coords_h5)
    opts = dict(encoder_options or {})
    enc = get_encoder(encoder, **opts)
    patch_size = int(attrs["patch_size"])
    level = int(attrs["patch_level"])
    if "read_size" in attrs:
        read_size = int(attrs["read_size"])
    else:
        read_size = round(attrs["patch_size_level0"] / attrs.get("level_downsample", 1.0))

    feats = np.zeros((len(coords), enc.dim), dtype=np.float32)  # (n, d)
    status, reason = str(attrs.get("status", "ok")), str(attrs.get("reason", ""))
    try:
        _encode_tiles(
            slide_path,
            coords_h5,
            coords,
            feats,
            enc,
            level=level,
            read_size=read_size,
            patch_size=patch_size,
            batch_size=batch_size,
        )
    except (SlideError, openslide.OpenSlideError) as e:
        reason = f"{slide_path}: cannot read tiles: {e}"
        if fail_fast:
            raise SlideError(reason) from e
        log.warning("skipping slide %s: %s", slide_path, reason)
        status, coords, feats = "failed", coords[:0], feats[:0]

    with atomic_path(out_h5, suffix=".h5") as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("features", data=feats)
        f.create_dataset("coords", data=coords)
        f.attrs["encoder"] = enc.name
        f.attrs["dim"] = int(enc.dim)
        f.attrs["status"] = status
        f.attrs["reason"] = reason
        f.attrs["encoder_options"] = json.dumps(opts, sort_keys=True, default=str)
        names = getattr(enc, "feature_names", None)
        if names is not None:
            f.attrs["feature_names"] = json.dumps(list(names))
        for key in _COPIED_ATTRS:
            if key in attrs:
                f.attrs[key] = attrs[key]
    return len(coords)


def _encode_tiles(
    slide_path: str | os.PathLike,
    coords_h5: str | os.PathLike,
    coords: np.ndarray,
    feats: np.ndarray,
    enc: Any,
    *,
    level: int,
    read_size: int,
    patch_size: int,
    batch_size: int,
) -> None:
    """Fill ``feats`` (n, d) with the encoder's features of the tiles at ``coords`` (n, 2)."""
    if len(coords):
        with open_slide(slide_path) as slide:
            if level >= slide.level_count:
                raise ValueError(
                    f"{slide_path}: coordinates file {coords_h5} asks for level {level} but the "
                    f"slide has {slide.level_count} levels (was it tiled from another file?)"
                )
            for start in range(0, len(coords), batch_size):
                batch = coords[start : start + batch_size]
                tiles = read_tiles(
                    slide, batch, level=level, read_size=read_size, out_size=patch_size
                )  # (b, s, s, 3)
                out = np.asarray(enc(tiles), dtype=np.float32)
                if out.shape != (len(batch), enc.dim):
                    raise ValueError(
                        f"encoder {enc.name!r} returned shape {out.shape}, "
                        f"expected {(len(batch), enc.dim)}"
                    )
                feats[start : start + len(batch)] = out
