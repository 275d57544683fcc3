"""One bag of patch features per patient: the tiles of all of the patient's slides.

File format of ``wsi/patient_bags.h5`` (written by :func:`write_patient_bags`):

- one group per patient that has at least one tile, named by its patient id;
- ``<patient>/features``: (n, d) float32, the tiles of the patient's slides one slide after the
  other (slides sorted by file path, tiles in each slide's order), chunked by rows
  (:func:`bag_chunk_rows` rows a chunk, about 1 MiB);
- ``<patient>/slide_index``: (n,) int64, the tile's slide as a position in the ``slides``
  attribute;
- attribute ``slides`` of the group: the slide ids (feature file stems) of the patient, slides
  without tiles included.

The file is written slide by slide and block by block (:data:`COPY_ROWS` rows at a time): the
peak memory of the assembly is one block, whatever the number of slides or patients. Readers
read one patient's group at a time (:class:`mmlego.training.data.BagModality`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from mmlego.io import atomic_path

log = logging.getLogger(__name__)

COPY_ROWS = 8192  # rows copied at a time from a slide's feature file into the bags file
CHUNK_BYTES = 1 << 20  # target size of one chunk of a patient's ``features``
N_NAMED = 5  # patients named in the warning about patients without tiles (then "and N more")


def bag_chunk_rows(n: int, d: int) -> int:
    """Rows per chunk of a patient's (n, d) float32 ``features``: about 1 MiB, at most n."""
    return max(1, min(n, CHUNK_BYTES // (4 * max(d, 1))))


def _slide_shape(path: str) -> tuple[int, int | None]:
    """(tiles, width) of a slide's feature file, read from its metadata only (width ``None``
    for a slide without tiles, which may carry any shape)."""
    with h5py.File(path, "r") as f:
        if "features" not in f:
            raise ValueError(f"{path}: no 'features' dataset")
        shape = f["features"].shape
    n = int(shape[0]) if len(shape) else 0
    if n == 0:
        return 0, None
    if len(shape) != 2:
        raise ValueError(f"{path}: features of shape {shape}, expected (n_tiles, d)")
    return n, int(shape[1])


def write_patient_bags(
    *, feature_files: Sequence[str], patient_of: Mapping[str, str], out_h5: str
) -> dict[str, int]:
    """Concatenate the slides' ``features`` per patient into ``out_h5`` (a group per patient).

    The slide id is the feature file's stem. Each patient group holds ``features`` (n, d) and
    ``slide_index`` (n,) pointing into its ``slides`` attribute (see the module docstring). A
    patient whose slides have no tiles (no tissue, or failed: see the QC table) gets no group,
    so downstream the patient lacks the slide modality. Returns tiles per patient (0 for those
    left out).

    A first pass reads the files' shapes only (and checks that they agree on the feature
    width); the second copies them slide by slide, :data:`COPY_ROWS` rows at a time.
    """
    per_patient: dict[str, list[tuple[str, str, int]]] = {}  # patient -> (slide, path, n)
    dims: dict[int, str] = {}  # width -> first file with it
    for path in sorted(feature_files):
        slide = Path(path).stem
        if slide not in patient_of:
            raise ValueError(f"{path}: slide {slide!r} is not in the slide sheet")
        n, width = _slide_shape(path)
        if width is not None:  # a slide without tiles (or failed) may carry any width
            dims.setdefault(width, str(path))
        per_patient.setdefault(patient_of[slide], []).append((slide, str(path), n))
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
            counts[patient] = total = sum(n for _, _, n in slides)
            if total == 0:
                continue
            group = out.create_group(patient)
            feats = group.create_dataset(
                "features",
                shape=(total, dim),
                dtype=np.float32,
                chunks=(bag_chunk_rows(total, dim), dim),
            )  # (n, d)
            index = group.create_dataset("slide_index", shape=(total,), dtype=np.int64)  # (n,)
            row = 0
            for i, (_, path, n) in enumerate(slides):
                if n == 0:
                    continue
                with h5py.File(path, "r") as f:
                    src = f["features"]  # (n_slide, d)
                    for start in range(0, n, COPY_ROWS):
                        block = src[start : start + COPY_ROWS]  # (r, d)
                        block = block.astype(np.float32, copy=False)
                        feats[row : row + len(block)] = block
                        row += len(block)
                index[row - n : row] = i
            if row != total:
                raise ValueError(
                    f"{out_h5}: patient {patient!r}: copied {row} tiles, expected {total} "
                    "(a feature file changed while the bags were written?)"
                )
            group.attrs["slides"] = [s for s, _, _ in slides]
    empty = [p for p, n in counts.items() if n == 0]
    if empty:
        more = f" and {len(empty) - N_NAMED} more" if len(empty) > N_NAMED else ""
        log.warning(
            "%d patient(s) have slides but no tiles (left out of the bags; the WSI QC table "
            "says why): %s%s",
            len(empty),
            ", ".join(empty[:N_NAMED]),
            more,
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
            # the tiling's reason (a slide smaller than one tile) or the usual one
            status, reason = "no_tissue", reason or "no tile reaches wsi.min_tissue"
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
