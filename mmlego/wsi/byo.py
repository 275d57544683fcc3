"""Bring your own features: CLAM / TRIDENT feature files -> this workflow's features files.

With ``wsi.features_from: <folder>`` the workflow skips tiling and extraction and calls
:func:`import_slide_features` per slide, which finds ``<folder>/<slide_id>.h5`` or ``.pt``
(also CLAM's ``h5_files/`` and ``pt_files/`` subfolders) and writes the usual features file
(:mod:`mmlego.wsi.features`): ``features`` (n, d) float32, ``coords`` (n, 2) int64 and attrs
``encoder``, ``dim``, ``status``, ``reason``, plus ``source_path`` and ``source_format``.

Formats read:

- CLAM ``.h5`` (``extract_features_fp.py``): datasets ``features`` (n, d) and ``coords`` (n, 2);
- TRIDENT ``.h5``: the same datasets, with the patch attributes on ``coords``
  (``patch_size``, ``level0_magnification``, ...); they are kept on the output's ``coords``.
  The encoder's name is taken from the folder name ``features_<encoder>`` when it has one;
- ``.pt``: a tensor (n, d) saved by CLAM (``pt_files``), or a dict with ``features`` (and
  optionally ``coords``); loaded with ``torch.load(weights_only=True)``. Without coordinates the
  output's ``coords`` are -1 and attr ``coords_known`` is False.

``features`` of shape (1, n, d) are squeezed. Feature files of one cohort must agree on ``d``
(:func:`mmlego.wsi.bags.write_patient_bags` checks it).
"""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from mmlego.io import atomic_path

log = logging.getLogger(__name__)


class FeatureFileError(ValueError):
    """A feature file is missing or not in a format read here; the message names it."""


def candidate_paths(folder: str | os.PathLike, slide_id: str) -> list[Path]:
    """Where :func:`find_feature_file` looks, in order of preference (h5 carries coordinates)."""
    root = Path(folder)
    return [
        root / f"{slide_id}.h5",
        root / "h5_files" / f"{slide_id}.h5",
        root / f"{slide_id}.pt",
        root / "pt_files" / f"{slide_id}.pt",
    ]


def existing_feature_file(folder: str | os.PathLike, slide_id: str) -> Path | None:
    """The first of :func:`candidate_paths` that is a file, or None."""
    return next((p for p in candidate_paths(folder, slide_id) if p.is_file()), None)


def find_feature_file(folder: str | os.PathLike, slide_id: str) -> Path:
    """The feature file of ``slide_id`` under ``folder``; FeatureFileError lists the paths tried."""
    found = existing_feature_file(folder, slide_id)
    if found is not None:
        return found
    paths = candidate_paths(folder, slide_id)
    raise FeatureFileError(
        f"no feature file for slide {slide_id!r}: tried {', '.join(str(p) for p in paths)}"
    )


def _encoder_from_folder(path: Path) -> str | None:
    for part in (path.parent.name, path.parent.parent.name):
        m = re.fullmatch(r"features_(.+)", part)
        if m:
            return m.group(1)
    return None


def _as_features(x: Any, path: Path) -> np.ndarray:
    arr = np.asarray(x)
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 2:
        raise FeatureFileError(f"{path}: features must be (n, d), got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number):
        raise FeatureFileError(f"{path}: features are not numeric ({arr.dtype})")
    arr = arr.astype(np.float32)
    if not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).any(axis=1).sum())
        raise FeatureFileError(f"{path}: {bad} feature row(s) contain NaN or infinity")
    return arr


def read_feature_file(
    path: str | os.PathLike,
) -> tuple[np.ndarray, np.ndarray | None, dict[str, Any]]:
    """Features (n, d) float32, coordinates (n, 2) int64 or None, and provenance attributes.

    The attributes hold ``source_format`` (``h5`` or ``pt``), ``encoder`` when known and, for
    ``.h5``, ``coords_attrs`` (the ``coords`` dataset's attributes).
    """
    p = Path(path)
    info: dict[str, Any] = {"source_format": p.suffix.lstrip(".").lower()}
    coords = None
    if p.suffix.lower() == ".h5":
        try:
            with h5py.File(p, "r") as f:
                if "features" not in f:
                    raise FeatureFileError(
                        f"{p}: no 'features' dataset (datasets: {sorted(f.keys())})"
                    )
                feats = _as_features(f["features"][()], p)
                if "coords" in f:
                    coords = np.asarray(f["coords"][()])
                    info["coords_attrs"] = dict(f["coords"].attrs)
                enc = f.attrs.get("encoder", f["features"].attrs.get("encoder"))
                if enc is not None:
                    info["encoder"] = str(enc)
        except OSError as e:
            raise FeatureFileError(f"{p}: cannot read as HDF5: {e}") from e
    elif p.suffix.lower() == ".pt":
        import torch

        try:
            obj = torch.load(p, map_location="cpu", weights_only=True)
        except Exception as e:
            raise FeatureFileError(
                f"{p}: cannot read with torch.load(weights_only=True): {e}"
            ) from e
        if isinstance(obj, dict):
            if "features" not in obj:
                raise FeatureFileError(f"{p}: a dict without 'features' (keys: {sorted(obj)})")
            coords = obj.get("coords")
            coords = None if coords is None else np.asarray(coords)
            obj = obj["features"]
        if not isinstance(obj, torch.Tensor):
            raise FeatureFileError(f"{p}: expected a tensor (n, d), got {type(obj).__name__}")
        feats = _as_features(obj.float().numpy(), p)
    else:
        raise FeatureFileError(f"{p}: unknown feature file type (expected .h5 or .pt)")
    if coords is not None:
        if coords.ndim == 3 and coords.shape[0] == 1:
            coords = coords[0]
        if coords.shape != (len(feats), 2):
            raise FeatureFileError(
                f"{p}: coords shape {coords.shape} does not match {len(feats)} feature rows"
            )
        coords = coords.astype(np.int64)
    info.setdefault("encoder", _encoder_from_folder(p))
    return feats, coords, info


def import_features(
    src: str | os.PathLike,
    out_h5: str | os.PathLike,
    *,
    slide_id: str,
    expected_dim: int | None = None,
) -> int:
    """Convert one CLAM/TRIDENT feature file into this workflow's features file; returns n.

    ``expected_dim``: raise FeatureFileError naming the file if the width differs.
    """
    feats, coords, info = read_feature_file(src)
    if expected_dim is not None and feats.shape[1] != expected_dim:
        raise FeatureFileError(
            f"{src}: features have {feats.shape[1]} columns, expected {expected_dim} "
            "(all slides must come from the same encoder)"
        )
    known = coords is not None
    if coords is None:
        coords = np.full((len(feats), 2), -1, dtype=np.int64)
    _write(
        out_h5,
        feats,
        coords,
        slide_id=slide_id,
        encoder=info.get("encoder") or f"byo:{info['source_format']}",
        status="ok",
        reason="",
        source=str(Path(src).resolve()),
        source_format=info["source_format"],
        coords_known=known,
        coords_attrs=info.get("coords_attrs", {}),
    )
    return len(feats)


def import_slide_features(
    folder: str | os.PathLike,
    slide_id: str,
    out_h5: str | os.PathLike,
    *,
    expected_dim: int | None = None,
    fail_fast: bool = True,
) -> int:
    """Find ``slide_id``'s file under ``folder`` and import it (the workflow's per-slide step).

    With ``fail_fast=False`` a missing or unreadable file gives a features file with no rows,
    ``status='failed'`` and the reason (the QC table shows it), instead of raising.
    """
    try:
        src = find_feature_file(folder, slide_id)
        return import_features(src, out_h5, slide_id=slide_id, expected_dim=expected_dim)
    except FeatureFileError as e:
        if fail_fast:
            raise
        log.warning("slide %s: %s", slide_id, e)
        dim = int(expected_dim or 0)
        _write(
            out_h5,
            np.zeros((0, dim), dtype=np.float32),
            np.zeros((0, 2), dtype=np.int64),
            slide_id=slide_id,
            encoder="byo",
            status="failed",
            reason=str(e),
            source="",
            source_format="",
            coords_known=False,
            coords_attrs={},
        )
        return 0


def _write(
    out_h5: str | os.PathLike,
    feats: np.ndarray,
    coords: np.ndarray,
    *,
    slide_id: str,
    encoder: str,
    status: str,
    reason: str,
    source: str,
    source_format: str,
    coords_known: bool,
    coords_attrs: dict[str, Any],
) -> None:
    with atomic_path(out_h5, suffix=".h5") as tmp, h5py.File(tmp, "w") as f:
        f.create_dataset("features", data=feats)
        c = f.create_dataset("coords", data=coords)
        for k, v in coords_attrs.items():
            try:
                c.attrs[k] = v
            except TypeError:  # an attribute h5py cannot store as is
                c.attrs[k] = json.dumps(v, default=str)
        f.attrs.update(
            {
                "encoder": encoder,
                "dim": int(feats.shape[1]),
                "slide_id": slide_id,
                "status": status,
                "reason": reason,
                "n_tiles": len(feats),
                "source_path": source,
                "source_format": source_format,
                "coords_known": bool(coords_known),
            }
        )
