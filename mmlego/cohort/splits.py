"""Patient-level cross-validation folds: make, write, read and check them.

A fold is a table ``patient_id, role`` with role in ``train`` (fits the model and every
statistic), ``tune`` (early stopping and any other choice; carved from the fold's training
patients) and ``val`` (scored once). Every patient of the cohort is ``val`` in exactly one fold
of :func:`make_folds`, and folds are at patient level, so several slides of one patient never
straddle train and val.

Folds made elsewhere come in through :func:`read_given_splits`: MCAT's split CSVs (``train`` and
``val`` columns of case ids) or this project's ``patient_id, role`` tables. Their ``tune`` patients
are carved from each fold's training patients by :func:`add_tune`, the same way :func:`make_folds`
does it, so no choice is ever made on a fold's validation patients.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Collection, Iterable, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from mmlego.cohort.sheets import UNREADABLE, unreadable_reason
from mmlego.io import read_tsv, write_tsv
from mmlego.pipeline.fold import ROLES

__all__ = [
    "ROLES",
    "SplitError",
    "add_tune",
    "check_events",
    "check_fold_events",
    "check_folds",
    "cohort_folds",
    "make_folds",
    "read_given_splits",
    "read_split_files",
    "strata",
    "write_folds",
]

log = logging.getLogger(__name__)


class SplitError(ValueError):
    """A split is malformed; the message names the file or fold and the patients."""


def _as_indexed(patients: pd.DataFrame) -> pd.DataFrame:
    if "patient_id" in patients.columns:
        patients = patients.set_index("patient_id")
    if patients.index.has_duplicates:
        dup = patients.index[patients.index.duplicated()].unique().tolist()
        raise SplitError(f"patients: duplicate patient_id(s) {dup[:5]}")
    return patients


#: The patient column within whose values tune patients are carved from training patients
#: (:func:`add_tune`, :func:`make_folds`), for each way of stratifying (``by``): deaths and
#: survivors, or classes, so that each keeps its share in training.
TUNE_GROUP_COLUMN = {"survival": "event", "label": "label"}


def fold_strata(task: str) -> Literal["survival", "label"]:
    """How a task's folds are stratified (the ``by`` of :func:`strata`, :func:`make_folds` and
    :func:`add_tune`): by survival, or by class for classification."""
    return "label" if task == "classification" else "survival"


def tune_group_column(task: str) -> str:
    """The patient column by which a task's patients are shared out evenly among groups drawn
    from them (tune sets, an ensemble member's rotated tune set): ``event`` or ``label``."""
    return TUNE_GROUP_COLUMN[fold_strata(task)]


def strata(
    patients: pd.DataFrame,
    *,
    by: Literal["survival", "label"] = "survival",
    n_time_bins: int = 4,
    site: bool = False,
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
    site
        Also cross with the ``site`` column (e.g. the TCGA tissue source site), so that every
        site's patients are spread over the folds.

    Returns
    -------
    pandas.Series
        str stratum per patient, indexed like ``patients``.
    """
    pts = _as_indexed(patients)
    if site:
        if "site" not in pts.columns:
            raise SplitError("patients: stratifying by site needs a 'site' column")
        prefix = "s" + pts["site"].astype(str) + "_"
        return (prefix + strata(pts, by=by, n_time_bins=n_time_bins)).rename("stratum")
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
    site: bool = False,
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
    site
        Also stratify by the ``site`` column (see :func:`strata`).

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
    if by == "survival" and "event" in pts.columns:  # without it, strata() says so
        check_events(int((pts["event"] == 1).sum()))
    if by == "label" and "label" in pts.columns:
        warn_rare_classes(pts["label"])
    stratum, _ = pd.factorize(strata(pts, by=by, site=site), sort=True)  # (n,) int codes
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x5E1]))
    tiebreak = rng.permutation(n)
    order = np.lexsort((tiebreak, stratum))  # by stratum, random within
    offset = int(rng.integers(k))
    fold_of = np.empty(n, dtype=np.int64)
    fold_of[order] = (np.arange(n) + offset) % k
    tune_group = _tune_groups(pts, by=by)
    folds = []
    for f in range(k):
        role = np.where(fold_of == f, "val", "train").astype(object)
        _carve_tune(role, tune_group, tune_fraction, rng)
        folds.append(pd.DataFrame({"patient_id": pts.index.astype(str), "role": role}))
    if by == "survival":
        check_fold_events(
            folds, pts, hint=_fold_events_hint(int((pts["event"] == 1).sum()), k, site)
        )
    return folds


def warn_rare_classes(labels: pd.Series) -> None:
    """Warn of classes with a single patient (indexed by patient id): in the fold that
    validates on it no training patient has the class, so no model can predict it."""
    counts = labels.astype(str).value_counts()
    rare = sorted(counts.index[counts < 2])
    if rare:
        who = [f"{c} ({labels.index[labels.astype(str) == c][0]})" for c in rare]
        log.warning(
            "%d class(es) with a single patient, which no fold can both train on and validate: "
            "%s; leave them out with inputs.classes (the classes to keep) or merge them",
            len(rare),
            ", ".join(who),
        )


def _fold_events_hint(n_events: int, k: int, site: bool) -> str:
    """What to do about a made fold without events (:func:`check_events` has passed)."""
    counts = f"the cohort has {n_events} event(s) for {k} folds"
    if n_events < k:  # some fold's validation patients have none, whatever the seed
        return f"{counts}: lower splits.k to at most {n_events}"
    if site:
        return f"{counts}, stratified by site first (splits.stratify_site): switch it off"
    return counts


def _tune_groups(pts: pd.DataFrame, *, by: str) -> np.ndarray:
    column = TUNE_GROUP_COLUMN[by]
    if column not in pts.columns:
        raise SplitError(f"patients: carving a tune subset by {by} needs a {column!r} column")
    return pts[column].astype(str).to_numpy()


def _carve_tune(
    role: np.ndarray, groups: np.ndarray, fraction: float, rng: np.random.Generator
) -> None:
    """Move ``fraction`` of the ``train`` entries of ``role`` to ``tune``, within each group;
    each group keeps at least one training patient (a large fraction would otherwise move the
    only deaths, or the only patients of a class, out of training)."""
    train_idx = np.flatnonzero(role == "train")
    for g in sorted(set(groups[train_idx])):
        members = train_idx[groups[train_idx] == g]
        n_tune = min(round(fraction * len(members)), len(members) - 1)
        if n_tune:
            role[rng.choice(members, size=n_tune, replace=False)] = "tune"


def add_tune(
    fold: pd.DataFrame,
    patients: pd.DataFrame,
    *,
    fraction: float,
    seed: int,
    index: int,
    by: Literal["survival", "label"] = "survival",
) -> pd.DataFrame:
    """Carve the ``tune`` subset of a given fold from its ``train`` patients only.

    ``fraction`` of the training patients, at random within each event group (or class), as in
    :func:`make_folds`; ``val`` patients are never touched. Seeded by ``seed`` and the fold
    ``index``.

    Parameters
    ----------
    fold
        ``patient_id, role`` with roles ``train`` / ``val`` (existing ``tune`` rows are kept).
    patients
        Indexed by patient_id (or with a ``patient_id`` column): ``event`` or ``label``.
    fraction
        Share of the training patients moved to ``tune`` (0 = none).
    seed, index
        Random seed and fold number.
    by
        ``"survival"`` (within event groups) or ``"label"`` (within classes).

    Returns
    -------
    pandas.DataFrame
        ``patient_id, role``, same rows.
    """
    if not 0 <= fraction < 1:
        raise SplitError(f"splits.tune_fraction must be in [0, 1), got {fraction}")
    pts = _as_indexed(patients)
    ids = fold["patient_id"].astype(str)
    unknown = sorted(set(ids) - set(pts.index.astype(str)))
    if unknown:
        raise SplitError(
            f"fold {index}: {len(unknown)} patient(s) not in the cohort: {unknown[:5]}"
        )
    groups = _tune_groups(pts.loc[list(ids)], by=by)
    role = fold["role"].to_numpy(dtype=object).copy()
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x70E, index]))
    _carve_tune(role, groups, fraction, rng)
    out = pd.DataFrame({"patient_id": ids.to_numpy(), "role": role})
    if by == "survival":
        check_fold_events([out], pts, names=[f"fold {index}"], hint="check the split file")
    return out


MIN_EVENTS = 2
"""Fewest events of a cohort whose survival can be cross-validated: each fold needs one among its
training patients (to fit) and one among its validation patients (to score)."""


def check_events(n_events: int, *, where: str = "the cohort") -> None:
    """Raise :class:`SplitError` when ``n_events`` (deaths observed) are fewer than
    :data:`MIN_EVENTS`, so that no number of folds can evaluate survival.

    ``where`` names the cohort (and its file) in the message.
    """
    if n_events >= MIN_EVENTS:
        return
    what = (
        "0 events (every patient is censored)"
        if n_events == 0
        else f"{n_events} event, and each fold needs one among its training and one among its "
        "validation patients"
    )
    raise SplitError(
        f"{where} has {what}, so its survival cannot be evaluated with any number of folds: "
        "check how the outcome is coded (an MCAT CSV's censorship: 1 = censored, 0 = death "
        "observed; a patients sheet's event: 1 = death observed), or leave the cohort out"
    )


def check_fold_events(
    folds: Sequence[pd.DataFrame],
    patients: pd.DataFrame,
    *,
    names: Sequence[str] | None = None,
    hint: str = "",
) -> None:
    """Raise :class:`SplitError` if a fold's ``train`` or ``val`` patients have no event.

    Without an observed death among its training patients a fold cannot fit the survival
    model (its time bins and loss need events); without one among its validation patients its
    c-index is undefined.

    Parameters
    ----------
    folds
        ``patient_id, role`` per fold.
    patients
        Indexed by patient_id (or with a ``patient_id`` column), with ``event`` (0/1).
    names
        How messages name the folds (default ``fold 0``, ``fold 1``, ...).
    hint
        What to do about it, appended to the message.
    """
    pts = _as_indexed(patients)
    names = list(names) if names is not None else [f"fold {i}" for i in range(len(folds))]
    event = pd.Series(pts["event"].to_numpy(), index=pts.index.astype(str))
    for name, fold in zip(names, folds, strict=True):
        events = event.reindex(fold["patient_id"].astype(str)).to_numpy()  # (n,)
        for role in ("train", "val"):
            is_role = fold["role"].to_numpy() == role
            if is_role.any() and not (events[is_role] == 1).any():
                raise SplitError(
                    f"{name}: none of its {int(is_role.sum())} {role!r} patient(s) has an event "
                    f"(event = 1), so {_NO_EVENT_EFFECT[role]}" + (f"; {hint}" if hint else "")
                )


_NO_EVENT_EFFECT = {
    "train": "the survival model cannot be fitted (its time bins and loss need deaths)",
    "val": "its c-index is undefined",
}


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


def _read_table(path: Path) -> pd.DataFrame:
    """A split file as text (comma or tab separated, told by its first line); one that is not
    a readable table (empty, not text, malformed) raises :class:`SplitError` naming it."""
    try:
        with path.open() as fh:
            first = fh.readline()
        sep = "\t" if "\t" in first else ","
        df = pd.read_csv(path, sep=sep, dtype=str, keep_default_na=False)
    except UNREADABLE as err:
        raise SplitError(
            f"{path}: cannot read the split file ({unreadable_reason(err)}); a split file is a "
            "comma- or tab-separated text table"
        ) from None
    unnamed = [c for c in df.columns if str(c) == "" or str(c).startswith("Unnamed: ")]
    return df.drop(columns=unnamed)


def read_given_splits(
    paths: Sequence[str | os.PathLike],
    *,
    patient_ids: Iterable[str],
    excluded: Collection[str] = (),
) -> list[pd.DataFrame]:
    """Read split files made elsewhere: MCAT's CSVs or ``patient_id, role`` tables.

    MCAT's format (``splits_0.csv`` ...): columns ``train`` and ``val`` of case ids (the shorter
    column padded with empty cells, an optional unnamed index column first). The project's own
    format: ``patient_id, role`` (role ``train`` / ``tune`` / ``val``). Either is told apart by
    its columns, comma or tab separated.

    Every id must be a patient of the cohort or an ``excluded`` one (e.g. of a class left out:
    those are dropped, with a logged count); a patient may not be both train and val. Cohort
    patients a fold does not mention take no part in it (logged with a count and examples).

    Parameters
    ----------
    paths
        One file per fold, in fold order.
    patient_ids
        The cohort's patients.
    excluded
        Patients deliberately left out of the cohort.

    Returns
    -------
    list of pandas.DataFrame
        ``patient_id, role`` per fold (``tune`` only if the file has it; see :func:`add_tune`).

    Raises
    ------
    SplitError
        Naming the file, the ids and how many.
    """
    known = {str(p) for p in patient_ids}
    gone = {str(p) for p in excluded}
    folds = []
    for raw_path in paths:
        path = Path(raw_path)
        if not path.is_file():
            raise SplitError(f"{path}: split file does not exist")
        df = _read_table(path)
        if {"train", "val"} <= set(df.columns):
            parts = []
            for role in ("train", "val"):
                ids = df[role].astype(str).str.strip()
                ids = ids[ids != ""]
                dup = ids[ids.duplicated()].unique().tolist()
                if dup:
                    raise SplitError(f"{path}: column {role!r} lists id(s) twice: {dup[:5]}")
                parts.append(pd.DataFrame({"patient_id": ids.to_numpy(), "role": role}))
            fold = pd.concat(parts, ignore_index=True)
            both = fold["patient_id"][fold["patient_id"].duplicated()].unique().tolist()
            if both:
                raise SplitError(
                    f"{path}: {len(both)} id(s) are in both 'train' and 'val': {both[:5]}"
                )
        elif {"patient_id", "role"} <= set(df.columns):
            fold = df[["patient_id", "role"]].copy()
            fold["patient_id"] = fold["patient_id"].astype(str).str.strip()
        else:
            raise SplitError(
                f"{path}: a split file needs columns 'train' and 'val' (MCAT) or 'patient_id' "
                f"and 'role'; found {list(df.columns)}"
            )
        ids = fold["patient_id"]
        unknown = ids[~ids.isin(known) & ~ids.isin(gone)].tolist()
        if unknown:
            raise SplitError(
                f"{path}: {len(unknown)} id(s) are not patients of the cohort: {unknown[:5]}"
                f"{' ...' if len(unknown) > 5 else ''}"
            )
        dropped = ids.isin(gone)
        if dropped.any():
            log.info(
                "%s: %d excluded patient(s) left out of the fold (e.g. %s)",
                path,
                int(dropped.sum()),
                ids[dropped].tolist()[:5],
            )
            fold = fold[~dropped].reset_index(drop=True)
        absent = sorted(known - set(fold["patient_id"]))
        if absent:
            log.warning(
                "%s: %d cohort patient(s) are in no role of this fold and take no part in it: %s",
                path,
                len(absent),
                absent[:5],
            )
        folds.append(fold.reset_index(drop=True))
    check_folds(folds, patient_ids=known, partition=False, names=[str(p) for p in paths])
    return folds


def cohort_folds(
    patients: pd.DataFrame,
    *,
    given: Sequence[str | os.PathLike] = (),
    excluded: Collection[str] = (),
    k: int,
    seed: int,
    tune_fraction: float,
    task: str,
    stratify_site: bool = False,
) -> list[pd.DataFrame]:
    """The folds of a cohort (``splits.*`` of the config): the ``given`` split files, each with
    its ``tune`` patients carved from its training patients (:func:`add_tune`) unless it has
    them, or else ``k`` folds made by :func:`make_folds`.

    ``patients`` is indexed by patient_id; ``excluded`` patients may appear in given files
    (see :func:`read_given_splits`).
    """
    by = fold_strata(task)
    if not given:
        return make_folds(
            patients, k=k, seed=seed, tune_fraction=tune_fraction, by=by, site=stratify_site
        )
    if by == "survival":
        check_events(int((_as_indexed(patients)["event"] == 1).sum()))
    folds = [
        fold
        if (fold["role"] == "tune").any()
        else add_tune(fold, patients, fraction=tune_fraction, seed=seed, index=i, by=by)
        for i, fold in enumerate(
            read_given_splits(list(given), patient_ids=patients.index, excluded=excluded)
        )
    ]
    if by == "survival":
        check_fold_events(
            folds, patients, names=[str(g) for g in given], hint="check the split files"
        )
    return folds
