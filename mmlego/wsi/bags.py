"""One bag of patch features per patient: the tiles of all of the patient's slides."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from mmlego.io import atomic_path

log = logging.getLogger(__name__)


def write_patient_bags(
    *, feature_files: Sequence[str], patient_of: Mapping[str, str], out_h5: str
) -> dict[str, int]:
    """Concatenate the slides' ``features`` per patient into ``out_h5`` (a group per patient).

    The slide id is the feature file's stem. Each patient group holds ``features`` (n, d) and
    ``slide_index`` (n,) pointing into its ``slides`` attribute. A patient whose slides have no
    tiles (no tissue, or failed: see the QC table) gets no group, so downstream the patient
    lacks the slide modality. Returns tiles per patient (0 for those left out).
    """
    per_patient: dict[str, list[tuple[str, np.ndarray]]] = {}
    dims: dict[int, str] = {}  # width -> first file with it
    for path in sorted(feature_files):
        slide = Path(path).stem
        if slide not in patient_of:
            raise ValueError(f"{path}: slide {slide!r} is not in the slide sheet")
        with h5py.File(path, "r") as f:
            feats = f["features"][()].astype(np.float32)  # (n, d)
        if len(feats):  # a slide without tiles (or failed) may carry any width
            dims.setdefault(feats.shape[1], str(path))
        per_patient.setdefault(patient_of[slide], []).append((slide, feats))
    if len(dims) > 1:
        example = ", ".join(f"{d} in {p}" for d, p in sorted(dims.items()))
        raise ValueError(
            f"feature files disagree on the feature width (mixed encoders?): {example}"
        )
    dim = next(iter(dims)) if dims else 0
    counts = {}
    with atomic_path(out_h5) as tmp, h5py.File(tmp, "w") as out:
        for patient in sorted(per_patient):
            slides = per_patient[patient]
            counts[patient] = sum(len(x) for _, x in slides)
            if counts[patient] == 0:
                continue
            group = out.create_group(patient)
            group.create_dataset(
                "features",
                data=np.concatenate([x.reshape(-1, dim) if not len(x) else x for _, x in slides]),
            )
            group.create_dataset(
                "slide_index",
                data=np.concatenate([np.full(len(x), i) for i, (_, x) in enumerate(slides)]),
            )
            group.attrs["slides"] = [s for s, _ in slides]
    empty = [p for p, n in counts.items() if n == 0]
    if empty:
        log.warning(
            "%d patient(s) have slides but no tiles (left out of the bags): %s",
            len(empty),
            empty[:5],
        )
    return counts


def qc_table(
    *, coords_files: Sequence[str], feature_files: Sequence[str], patient_of: Mapping[str, str]
) -> pd.DataFrame:
    """One row per slide: slide_id, patient_id, status (ok / no_tissue / failed), reason,
    n_tiles, slide_mpp, tissue_fraction. A slide failed at tiling or at feature extraction is
    ``failed`` with the first reason recorded. Slides are those of either list: with imported
    features (``wsi.features_from``) there are no coordinates files."""
    coords = {Path(p).stem: p for p in coords_files}
    features = {Path(p).stem: p for p in feature_files}
    rows = []
    for slide in sorted(set(coords) | set(features)):
        attrs: dict = {}
        n = 0
        status, reason = "ok", ""
        if slide in coords:
            with h5py.File(coords[slide], "r") as f:
                attrs = dict(f.attrs)
                n = int(f["coords"].shape[0])
            status, reason = str(attrs.get("status", "ok")), str(attrs.get("reason", ""))
        if slide in features:
            with h5py.File(features[slide], "r") as f:
                if status == "ok" and str(f.attrs.get("status", "ok")) == "failed":
                    status, reason = "failed", str(f.attrs.get("reason", ""))
                n = int(f["features"].shape[0])
        if status == "ok" and n == 0:
            status, reason = "no_tissue", "no tile reaches wsi.min_tissue"
            if slide not in coords:
                reason = "the imported feature file has no rows"
        rows.append(
            {
                "slide_id": slide,
                "patient_id": patient_of.get(slide, ""),
                "status": status,
                "reason": reason,
                "n_tiles": n,
                "slide_mpp": float(attrs.get("slide_mpp", float("nan"))),
                "tissue_fraction": float(attrs.get("slide_tissue_fraction", float("nan"))),
            }
        )
    return pd.DataFrame(
        rows,
        columns=[
            "slide_id",
            "patient_id",
            "status",
            "reason",
            "n_tiles",
            "slide_mpp",
            "tissue_fraction",
        ],
    )
