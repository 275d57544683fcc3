"""Patch features of one slide: read the tiles listed in a coordinates file and encode them.

Output HDF5 (written atomically; CLAM and TRIDENT read it as their own features files):

- dataset ``features`` (n, d) float32, one row per tile, in the coordinates file's order;
- dataset ``coords`` (n, 2) int64, level-0 x, y (copied from the coordinates file, with its
  dataset attributes: the CLAM/TRIDENT patch attributes, see :mod:`mmlego.wsi.tiling`);
- attributes ``encoder`` (name), ``dim`` (d), ``feature_names`` (JSON list, when the encoder
  has names), ``slide_id``, ``patch_size``, ``patch_size_level0``, ``patch_level``,
  ``target_mpp``, ``slide_mpp`` (copied), ``encoder_options`` (JSON), ``encoder_source`` (the
  weights file of a neural encoder, with its size), ``mmlego_version``, ``status`` (``ok`` or
  ``failed``) and ``reason``, ``n_tiles``, ``tiles_per_s`` (extraction rate, informative);
- ``n_unreadable_tiles`` (tiles of the coordinates file whose data could not be decoded),
  ``unreadable_first_error`` (the first such tile and OpenSlide's error, or ``""``),
  ``max_bad_tile_fraction``, and dataset ``unreadable_coords`` (k, 2) int64 of those tiles.
  Unreadable tiles are left out of ``features`` and ``coords`` alike (the rows stay paired);
  the slide fails when more than ``max_bad_tile_fraction`` of its tiles are unreadable.

A slide with no tiles gives ``features`` of shape (0, d). Features are written batch by batch
into the (temporary) output file, so memory stays bounded whatever the number of tiles.
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

import mmlego
from mmlego.io import atomic_path
from mmlego.wsi.encoders import Encoder, get_encoder
from mmlego.wsi.loader import Progress, iter_tile_batches
from mmlego.wsi.slide import SlideError, open_slide

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
    encoder: str | Encoder = "hed_texture",
    batch_size: int = 64,
    encoder_options: dict[str, Any] | None = None,
    num_workers: int = 0,
    prefetch: int = 2,
    fail_fast: bool = True,
    progress_every_s: float = 30.0,
    max_bad_tile_fraction: float = 0.1,
) -> int:
    """Encode every tile of a coordinates file and write the features file (format above).

    Tiles are read with OpenSlide at the recorded ``patch_level`` and ``read_size`` (for files
    without ``read_size``: ``round(patch_size_level0 / level_downsample)``), then resized to
    ``patch_size`` when the sizes differ (:func:`mmlego.wsi.slide.resize_tile`).

    Parameters
    ----------
    slide_path
        The slide the coordinates were computed on.
    coords_h5
        Coordinates file from :func:`mmlego.wsi.tiling.tile_slide`.
    out_h5
        Features file to write.
    encoder
        Encoder spec (:func:`mmlego.wsi.encoders.get_encoder`): ``hed_texture``,
        ``resnet50_trunc``, ``uni``, ``timm:<name>``, ``torchscript:<path>``, ...; or an
        encoder already built with ``encoder_options`` (one model load for many slides).
    batch_size
        Tiles read and encoded at a time (bounds memory).
    encoder_options
        Keyword options for the encoder's factory (``weights``, ``device``, ``precision``, ...).
    num_workers
        Processes reading tiles ahead of the encoder (torch ``DataLoader``). 0 (default): a
        thread of this process reads ``prefetch`` batches ahead while this one encodes (two
        cores busy, no copies between processes); worth raising for neural encoders on a GPU.
    prefetch
        With ``num_workers=0``: batches read ahead by the reading thread (0: no thread, read
        and encode in turn on one core).
    fail_fast
        If False, a slide whose tiles cannot be read (truncated or corrupt data) gives a
        features file with no rows and attrs ``status='failed'`` and ``reason``, instead of
        raising; its patient then lacks the slide modality unless another slide has tiles.
    progress_every_s
        Log a progress line (tiles done, tiles/s, time left) at most this often.
    max_bad_tile_fraction
        Tiles whose data cannot be decoded (a corrupt JPEG tile) are skipped, their number
        recorded, while they are at most this share of the slide's tiles; beyond it the slide
        fails (recorded, or raised with ``fail_fast``). 0: any unreadable tile fails the slide.

    Returns
    -------
    int
        Number of tiles encoded.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not 0.0 <= max_bad_tile_fraction <= 1.0:
        raise ValueError(f"max_bad_tile_fraction must be in [0, 1], got {max_bad_tile_fraction}")
    coords, attrs = read_coords(coords_h5)
    coords_attrs = _dataset_attrs(coords_h5)
    opts = dict(encoder_options or {})
    enc = encoder if isinstance(encoder, Encoder) else get_encoder(encoder, **opts)
    patch_size = int(attrs["patch_size"])
    level = int(attrs["patch_level"])
    if "read_size" in attrs:
        read_size = int(attrs["read_size"])
    else:
        read_size = round(attrs["patch_size_level0"] / attrs.get("level_downsample", 1.0))
    sid = str(attrs.get("slide_id", Path(slide_path).stem))

    status, reason = str(attrs.get("status", "ok")), str(attrs.get("reason", ""))
    n, rate = len(coords), 0.0
    max_unreadable = int(np.floor(max_bad_tile_fraction * n + 1e-9))
    unreadable: dict[int, str] = {}  # index into coords -> why
    with atomic_path(out_h5, suffix=".h5") as tmp, h5py.File(tmp, "w") as f:
        dset = f.create_dataset(
            "features",
            shape=(n, enc.dim),
            maxshape=(n, enc.dim) if n else None,  # shrunk if tiles are unreadable
            dtype=np.float32,
            chunks=(max(1, min(n, batch_size)), enc.dim) if n else None,
        )
        try:
            if n:
                _check_level(slide_path, coords_h5, level)
            progress = Progress(n, label=sid, every_s=progress_every_s, logger=log)
            batches = iter_tile_batches(
                slide_path,
                coords,
                level=level,
                read_size=read_size,
                out_size=patch_size,
                batch_size=batch_size,
                num_workers=num_workers,
                prefetch=prefetch,
                max_unreadable=max_unreadable,
                unreadable=unreadable,
            )
            for tiles in batches:  # (b, s, s, 3)
                out = np.asarray(enc(tiles), dtype=np.float32)
                if out.shape != (len(tiles), enc.dim):
                    raise ValueError(
                        f"encoder {enc.name!r} returned shape {out.shape}, "
                        f"expected {(len(tiles), enc.dim)}"
                    )
                dset[progress.done : progress.done + len(tiles)] = out
                progress.update(len(tiles))
            if progress.done + len(unreadable) != n:  # pragma: no cover - all tiles come back
                raise SlideError(f"{slide_path}: read {progress.done} of {n} tiles")
            rate = progress.finish() if n else 0.0
            if unreadable:
                dset.resize((progress.done, enc.dim))
                log.warning(
                    "slide %s: %d of %d tiles unreadable, skipped (first: %s)",
                    sid,
                    len(unreadable),
                    n,
                    unreadable[min(unreadable)],
                )
        except (SlideError, openslide.OpenSlideError) as e:
            reason = str(e) if str(e).startswith(str(slide_path)) else f"{slide_path}: {e}"
            reason = f"cannot read tiles: {reason}"
            if len(unreadable) > max_unreadable:
                reason += f" (wsi.max_bad_tile_fraction is {max_bad_tile_fraction:g})"
            if fail_fast:
                raise SlideError(reason) from e
            log.warning("skipping slide %s: %s", sid, reason)
            status = "failed"
            del f["features"]
            f.create_dataset("features", data=np.zeros((0, enc.dim), dtype=np.float32))
        bad = np.zeros(n, dtype=bool)
        bad[list(unreadable)] = True
        f.create_dataset("unreadable_coords", data=coords[bad].reshape(-1, 2))
        coords = coords[:0] if status == "failed" else coords[~bad]
        c = f.create_dataset("coords", data=coords)
        c.attrs.update(coords_attrs)
        f.attrs["encoder"] = enc.name
        f.attrs["dim"] = int(enc.dim)
        f.attrs["status"] = status
        f.attrs["reason"] = reason
        f.attrs["n_tiles"] = len(coords)
        f.attrs["n_unreadable_tiles"] = len(unreadable)
        f.attrs["unreadable_first_error"] = unreadable[min(unreadable)] if unreadable else ""
        f.attrs["max_bad_tile_fraction"] = float(max_bad_tile_fraction)
        f.attrs["tiles_per_s"] = float(rate)
        f.attrs["encoder_options"] = json.dumps(opts, sort_keys=True, default=str)
        f.attrs["encoder_source"] = str(getattr(enc, "source", ""))
        f.attrs["mmlego_version"] = mmlego.__version__
        names = getattr(enc, "feature_names", None)
        if names is not None:
            f.attrs["feature_names"] = json.dumps(list(names))
        for key in _COPIED_ATTRS:
            if key in attrs:
                f.attrs[key] = attrs[key]
    return len(coords)


def _dataset_attrs(coords_h5: str | os.PathLike) -> dict[str, Any]:
    """Attributes of the ``coords`` dataset (the CLAM/TRIDENT patch attributes), if any."""
    with h5py.File(coords_h5, "r") as f:
        return dict(f["coords"].attrs)


def _check_level(slide_path: str | os.PathLike, coords_h5: str | os.PathLike, level: int) -> None:
    """Raise ValueError if the slide has no pyramid level ``level`` (coordinates of another
    file); a slide OpenSlide cannot open raises SlideError."""
    with open_slide(slide_path) as slide:
        if level >= slide.level_count:
            raise ValueError(
                f"{slide_path}: coordinates file {coords_h5} asks for level {level} but the "
                f"slide has {slide.level_count} levels (was it tiled from another file?)"
            )
