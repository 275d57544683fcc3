"""Mean-pooled slide features: one vector per patient, the mean of all of its patch features.

The tabular baselines (:mod:`mmlego.training.baselines`, :mod:`mmlego.training.forests`) see a
slide modality through this vector. It is computed once per cohort from
``wsi/patient_bags.h5`` (the tiles of all of a patient's slides, see
:func:`mmlego.wsi.bags.write_patient_bags`) and carries no fold statistic: the z-scoring with the
fold's training patients happens in the baselines. A patient without a group in the bags file
(no slide, or no tile) gets no row, so downstream it lacks the slide modality.

File written: ``baselines/slide_means.tsv``: ``patient_id`` then ``f0 .. f<d-1>`` (float64 means
of the float32 patch features), sorted by patient.
"""

from __future__ import annotations

import logging
import os

import h5py
import numpy as np
import pandas as pd

from mmlego.io import write_tsv

log = logging.getLogger(__name__)

__all__ = ["pool_patient_bags", "write_slide_means"]


def pool_patient_bags(bags_h5: str | os.PathLike) -> pd.DataFrame:
    """Mean patch feature of each patient of a ``patient_bags.h5``.

    Parameters
    ----------
    bags_h5
        A patient bags file: one group per patient with a ``features`` (n, d) dataset.

    Returns
    -------
    pandas.DataFrame
        (n_patients, d) indexed by ``patient_id`` (sorted), columns ``f0 .. f<d-1>``. Patients
        whose bag has no rows are left out.

    Raises
    ------
    ValueError
        Naming the file and the patient when a group has no ``features`` dataset or the
        patients' feature widths differ.
    """
    rows: dict[str, np.ndarray] = {}
    width: tuple[int, str] | None = None  # (d, first patient with it)
    with h5py.File(bags_h5, "r") as f:
        for patient in sorted(f):
            group = f[patient]
            if not isinstance(group, h5py.Group) or "features" not in group:
                raise ValueError(f"{bags_h5}: patient {patient!r} has no 'features' dataset")
            feats = group["features"][()]  # (n, d)
            if feats.ndim != 2:
                raise ValueError(
                    f"{bags_h5}: patient {patient!r}: features of shape {feats.shape}, "
                    "expected (n_tiles, d)"
                )
            if feats.shape[0] == 0:
                continue
            if width is None:
                width = (int(feats.shape[1]), patient)
            elif feats.shape[1] != width[0]:
                raise ValueError(
                    f"{bags_h5}: patient {patient!r} has {feats.shape[1]} features per tile, "
                    f"patient {width[1]!r} has {width[0]}"
                )
            rows[patient] = feats.astype(np.float64).mean(axis=0)  # (d,)
    d = width[0] if width else 0
    X = np.stack([rows[p] for p in rows]) if rows else np.zeros((0, d))  # (n, d)
    return pd.DataFrame(
        X, index=pd.Index(list(rows), name="patient_id"), columns=[f"f{j}" for j in range(d)]
    )


def write_slide_means(*, bags_h5: str | os.PathLike, out_tsv: str | os.PathLike) -> pd.DataFrame:
    """Pool ``bags_h5`` with :func:`pool_patient_bags` and write it (atomically) to ``out_tsv``."""
    means = pool_patient_bags(bags_h5)
    log.info("mean-pooled slide features: %d patients x %d features", *means.shape)
    write_tsv(means, out_tsv, index=True)
    return means
