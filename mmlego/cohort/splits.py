"""Patient-level cross-validation folds: make, write, read and check them.

A fold is a table ``patient_id, role`` with role in ``train`` (fits the model and every
statistic), ``tune`` (early stopping and any other choice; carved from the fold's training
patients) and ``val`` (scored once). Every patient of the cohort is ``val`` in exactly one fold
of :func:`make_folds`, and folds are at patient level, so several slides of one patient never
straddle train and val.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from mmlego.io import read_tsv, write_tsv

__all__ = [
    "ROLES",
    "SplitError",
    "check_folds",
    "make_folds",
    "read_split_files",
    "strata",
    "write_folds",
]

ROLES = ("train", "tune", "val")


class SplitError(ValueError):
    """A split is malformed; the message names the file or fold and the patients."""


def _as_indexed(patients: pd.DataFrame) -> pd.DataFrame:
    if "patient_id" in patients.columns:
        patients = patients.set_index("patient_id")
    if patients.index.has_duplicates:
        dup = patients.index[patients.index.duplicated()].unique().tolist()
        raise SplitError(f"patients: duplicate patient_id(s) {dup[:5]}")
    return patients


def strata(
    patients: pd.DataFrame, *, by: Literal["survival", "label"] = "survival", n_time_bins: int = 4
) -> pd.Series:
    """Stratum of each patient, for stratified folds.

    Parameters
    ----------
    patients
        Indexed by patient_id (or with a ``patient_id`` column); ``time`` and ``event`` for
        ``by="survival"``, ``label`` for ``by="label"``.
    by
        ``"survival"``: event crossed with quantile bins of time within each event group;
        ``"label"``: the class label.
    n_time_bins
        Number of time quantile bins per event group (fewer when a group is small).

    Returns
    -------
    pandas.Series
        str stratum per patient, indexed like ``patients``.
    """
    pts = _as_indexed(patients)
    if by == "label":
        if "label" not in pts.columns:
            raise SplitError("patients: stratifying by label needs a 'label' column")
        return pts["label"].astype(str).rename("stratum")
    missing = [c for c in ("time", "event") if c not in pts.columns]
    if missing:
        raise SplitError(f"patients: stratifying by survival needs column(s) {missing}")
    out = pd.Series("", index=pts.index, name="stratum", dtype=object)
    for ev, group in pts.groupby("event"):
        n_bins = max(1, min(n_time_bins, len(group) // 4))
        # Rank first so that ties in time do not collapse quantile edges.
        ranks = group["time"].rank(method="first").to_numpy() - 1  # (g,) 0..g-1
        bins = np.floor(ranks * n_bins / len(group)).astype(int)
        out[group.index] = [f"e{int(ev)}_t{b}" for b in bins]
    return out


def make_folds(
    patients: pd.DataFrame,
    *,
    k: int,
    seed: int,
    tune_fraction: float = 0.2,
    by: Literal["survival", "label"] = "survival",
) -> list[pd.DataFrame]:
    """Stratified patient-level K-fold splits with a tune subset carved from each training set.

    Patients are ordered by stratum (event x time quartile within event, or label) and at random
    within a stratum, then dealt to folds in turn, so that every stratum is spread evenly and
    fold sizes differ by at most one. In each fold, ``tune`` takes ``tune_fraction`` of the
    training patients at random within each event group (or label).

    Parameters
    ----------
    patients
        Indexed by patient_id (or with a ``patient_id`` column); see :func:`strata`.
    k
        Number of folds (2 <= k <= number of patients).
    seed
        Random seed.
    tune_fraction
        Fraction of each fold's training patients moved to ``tune`` (0 = no tune set).
    by
        What to stratify on: ``"survival"`` or ``"label"``.

    Returns
    -------
    list of pandas.DataFrame
        ``k`` tables ``patient_id, role`` in the patients' order.
    """
    pts = _as_indexed(patients)
    n = len(pts)
    if not 2 <= k <= n:
        raise SplitError(f"splits.k must be between 2 and the number of patients ({n}), got {k}")
    if not 0 <= tune_fraction < 1:
        raise SplitError(f"splits.tune_fraction must be in [0, 1), got {tune_fraction}")
    stratum, _ = pd.factorize(strata(pts, by=by), sort=True)  # (n,) int codes
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5E1]))
    tiebreak = rng.permutation(n)
    order = np.lexsort((tiebreak, stratum))  # by stratum, random within
    offset = int(rng.integers(k))
    fold_of = np.empty(n, dtype=np.int64)
    fold_of[order] = (np.arange(n) + offset) % k
    tune_group = (pts["event"] if by == "survival" else pts["label"]).astype(str).to_numpy()
    folds = []
    for f in range(k):
        role = np.where(fold_of == f, "val", "train").astype(object)
        train_idx = np.flatnonzero(fold_of != f)
        for g in sorted(set(tune_group[train_idx])):
            members = train_idx[tune_group[train_idx] == g]
            n_tune = round(tune_fraction * len(members))
            if n_tune:
                role[rng.choice(members, size=n_tune, replace=False)] = "tune"
        folds.append(pd.DataFrame({"patient_id": pts.index.astype(str), "role": role}))
    return folds


def check_folds(
    folds: Sequence[pd.DataFrame],
    *,
    patient_ids: Iterable[str] | None = None,
    partition: bool = True,
    names: Sequence[str] | None = None,
) -> None:
    """Raise :class:`SplitError` if the folds are malformed.

    Checks, per fold: columns ``patient_id`` and ``role``, roles in :data:`ROLES`, each patient
    at most once, at least one train and one val patient, patients known (if ``patient_ids``).
    With ``partition``: every patient of ``patient_ids`` (or of the folds) is val in exactly one
    fold.
    """
    names = list(names) if names is not None else [f"fold {i}" for i in range(len(folds))]
    known = set(map(str, patient_ids)) if patient_ids is not None else None
    val_count: dict[str, int] = {}
    for name, fold in zip(names, folds, strict=True):
        missing = [c for c in ("patient_id", "role") if c not in fold.columns]
        if missing:
            raise SplitError(f"{name}: lacks column(s) {missing}; found {list(fold.columns)}")
        bad = ~fold["role"].isin(ROLES)
        if bad.any():
            raise SplitError(
                f"{name}: role must be one of {list(ROLES)}; got {sorted(set(fold['role'][bad]))} "
                f"for patient(s) {fold['patient_id'][bad].head(5).tolist()}"
            )
        ids = fold["patient_id"].astype(str)
        dup = ids[ids.duplicated()].unique().tolist()
        if dup:
            raise SplitError(f"{name}: patient(s) listed more than once: {dup[:5]}")
        for role in ("train", "val"):
            if not (fold["role"] == role).any():
                raise SplitError(f"{name}: no patient has role {role!r}")
        if known is not None:
            unknown = sorted(set(ids) - known)
            if unknown:
                raise SplitError(
                    f"{name}: {len(unknown)} patient(s) not in the cohort: {unknown[:5]}"
                )
        for pid in ids[fold["role"].to_numpy() == "val"]:
            val_count[pid] = val_count.get(pid, 0) + 1
    if partition:
        everyone = known if known is not None else {str(p) for f in folds for p in f["patient_id"]}
        never = sorted(everyone - set(val_count))
        twice = sorted(p for p, c in val_count.items() if c > 1)
        if never or twice:
            raise SplitError(
                "folds do not partition the patients into validation sets: "
                f"{len(never)} never val (e.g. {never[:5]}), "
                f"{len(twice)} val more than once (e.g. {twice[:5]})"
            )


def write_folds(folds: Sequence[pd.DataFrame], outdir: str | os.PathLike) -> list[Path]:
    """Write ``fold0.tsv``, ``fold1.tsv``, ... (``patient_id, role``) into ``outdir``.

    Returns
    -------
    list of pathlib.Path
        The files written, in fold order.
    """
    check_folds(folds, partition=False)
    paths = []
    for i, fold in enumerate(folds):
        path = Path(outdir) / f"fold{i}.tsv"
        write_tsv(fold[["patient_id", "role"]], path)
        paths.append(path)
    return paths


def read_split_files(
    paths: Sequence[str | os.PathLike],
    *,
    patient_ids: Iterable[str] | None = None,
    partition: bool = False,
) -> list[pd.DataFrame]:
    """Read given split files (``patient_id, role`` TSVs) and check them.

    Parameters
    ----------
    paths
        One TSV per fold, in fold order.
    patient_ids
        The cohort's patients: every patient in a split must be one of them.
    partition
        Also require that every patient is val in exactly one fold (true of :func:`make_folds`,
        not necessarily of splits made elsewhere).

    Returns
    -------
    list of pandas.DataFrame
        ``patient_id`` (str), ``role`` per fold.
    """
    folds = []
    for p in paths:
        if not Path(p).is_file():
            raise SplitError(f"{p}: split file does not exist")
        df = read_tsv(p)
        if "patient_id" in df.columns:
            df["patient_id"] = df["patient_id"].astype(str)
        folds.append(df)
    check_folds(folds, patient_ids=patient_ids, partition=partition, names=[str(p) for p in paths])
    return [f[["patient_id", "role"]] for f in folds]
