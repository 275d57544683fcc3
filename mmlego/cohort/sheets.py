"""Load and validate a cohort's sheets: patients, slides and omics tables.

A cohort is described by (formats in config/README.md):

- ``patients.tsv``: ``patient_id``, ``time`` (months, > 0), ``event`` (0/1, 1 = death observed),
  ``label`` (class for the classification task); further columns are kept (clinical).
- ``slides.tsv``: ``patient_id``, ``slide_id``, ``path`` (absolute or relative to the sheet's
  folder), optional ``mpp`` (microns per pixel at level 0; empty = read from the slide).
- ``omics/<modality>.tsv``: ``patient_id`` then numeric feature columns.

:func:`load_cohort` reads them and raises :class:`CohortError` with a message that names the file,
the column and example patients for anything that would otherwise fail deep inside a later stage
(or, worse, silently give wrong results): missing columns, duplicate patients, bad survival times or
event codes, non-numeric or infinite features, ids that are not in the patient sheet, ids that
cannot be used as file names.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from mmlego.io import read_tsv

__all__ = ["SAFE_ID", "Cohort", "CohortError", "load_cohort", "load_cohort_folder"]

SAFE_ID = r"[A-Za-z0-9._-]+"
"""Characters allowed in patient, slide and modality ids (they become parts of file names)."""

_N_EXAMPLES = 5


class CohortError(ValueError):
    """A cohort sheet is malformed; the message names the file, the column and examples."""


@dataclass(frozen=True)
class Cohort:
    """A validated cohort.

    Attributes
    ----------
    patients
        Indexed by ``patient_id`` (str); ``time`` (float), ``event`` (int 0/1) when present,
        ``label`` (str) when present, and any further columns of the sheet.
    slides
        ``patient_id``, ``slide_id``, ``path`` (absolute, str), ``mpp`` (float, NaN = unknown);
        ``None`` when the cohort has no slide sheet.
    omics
        Modality name -> table indexed by ``patient_id`` with float64 feature columns.
    slide_modality
        Name under which slides appear in :meth:`availability` (``"wsi"``).
    """

    patients: pd.DataFrame
    slides: pd.DataFrame | None
    omics: Mapping[str, pd.DataFrame] = field(default_factory=dict)
    slide_modality: str = "wsi"

    @property
    def modality_names(self) -> list[str]:
        """Sorted names of the cohort's modalities (slides under ``slide_modality``)."""
        names = list(self.omics)
        if self.slides is not None:
            names.append(self.slide_modality)
        return sorted(names)

    def availability(self) -> pd.DataFrame:
        """Which modalities each patient has: bool DataFrame (patients x modality names)."""
        index = self.patients.index
        cols = {}
        for name in self.modality_names:
            if name == self.slide_modality and self.slides is not None:
                cols[name] = index.isin(self.slides["patient_id"])
            else:
                cols[name] = index.isin(self.omics[name].index)
        return pd.DataFrame(cols, index=index, columns=self.modality_names, dtype=bool)

    def modalities_of(self, patient_id: str) -> tuple[str, ...]:
        """Sorted names of the modalities ``patient_id`` has (empty if none)."""
        if patient_id not in self.patients.index:
            raise KeyError(f"patient {patient_id!r} is not in the cohort")
        row = self.availability().loc[patient_id]
        return tuple(name for name in self.modality_names if row[name])

    def slides_of(self, patient_id: str) -> pd.DataFrame:
        """The slide rows of ``patient_id`` (empty DataFrame if none)."""
        if self.slides is None:
            return pd.DataFrame(columns=["patient_id", "slide_id", "path", "mpp"])
        return self.slides[self.slides["patient_id"] == patient_id]


def _examples(values: Sequence | pd.Index | pd.Series) -> str:
    vals = list(values)
    shown = ", ".join(repr(v) for v in vals[:_N_EXAMPLES])
    return shown + (f", ... ({len(vals)} in all)" if len(vals) > _N_EXAMPLES else "")


def _read_sheet(path: str | os.PathLike, what: str) -> pd.DataFrame:
    p = Path(path)
    if not p.is_file():
        raise CohortError(f"{p}: {what} file does not exist")
    try:
        df = read_tsv(p)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as err:
        raise CohortError(f"{p}: cannot read the {what} as a tab-separated table: {err}") from None
    with p.open() as fh:
        header = fh.readline().rstrip("\r\n").split("\t")
    dup = sorted({c for c in header if header.count(c) > 1})
    if dup:
        raise CohortError(f"{p}: duplicate column name(s) {dup}")
    return df


def _require_columns(df: pd.DataFrame, required: Sequence[str], path: Path, what: str) -> None:
    missing = [c for c in required if c not in df.columns]
    if missing:
        hint = ""
        if len(df.columns) == 1 and "," in str(df.columns[0]):
            hint = " (the file looks comma-separated; sheets must be tab-separated)"
        raise CohortError(
            f"{path}: {what} lacks required column(s) {missing}; found {list(df.columns)[:10]}"
            f"{hint}"
        )


def _check_ids(df: pd.DataFrame, column: str, path: Path) -> None:
    ids = df[column]
    empty = ids.isna() | (ids.astype(str).str.len() == 0)
    if empty.any():
        lines = (np.flatnonzero(empty.to_numpy()) + 2).tolist()
        raise CohortError(f"{path}: column {column!r} is empty on line(s) {_examples(lines)}")
    bad = ~ids.astype(str).str.fullmatch(SAFE_ID)
    if bad.any():
        raise CohortError(
            f"{path}: column {column!r} has id(s) with characters other than letters, digits, "
            f"'.', '_' and '-' (ids become file names): {_examples(ids[bad])}"
        )


def _check_known(ids: pd.Series, known: pd.Index, path: Path, what: str) -> None:
    unknown = pd.unique(ids[~ids.isin(known)])
    if len(unknown):
        raise CohortError(
            f"{path}: {len(unknown)} patient_id(s) in the {what} are not in the patient sheet: "
            f"{_examples(unknown)}"
        )


def _numeric_column(df: pd.DataFrame, column: str, path: Path) -> pd.Series:
    """``df[column]`` as float64; raise naming the patients whose value is not a number."""
    raw = df[column]
    num = pd.to_numeric(raw, errors="coerce").astype("float64")
    bad = num.isna() & raw.notna()
    if bad.any():
        ex = [f"{pid}={val!r}" for pid, val in zip(df["patient_id"][bad], raw[bad], strict=True)]
        raise CohortError(f"{path}: column {column!r} has non-numeric value(s): {_examples(ex)}")
    return num


def _load_patients(path: Path, *, task: str | None) -> pd.DataFrame:
    df = _read_sheet(path, "patient sheet")
    required = ["patient_id"]
    if task == "survival":
        required += ["time", "event"]
    elif task == "classification":
        required += ["label"]
    _require_columns(df, required, path, "patient sheet")
    _check_ids(df, "patient_id", path)
    df["patient_id"] = df["patient_id"].astype(str)
    dup = df["patient_id"].duplicated(keep=False)
    if dup.any():
        outcome_cols = [c for c in ("time", "event", "label") if c in df.columns]
        groups = df[dup].groupby("patient_id", sort=False)
        conflicting = [
            pid
            for pid, g in groups
            if outcome_cols and len(g[outcome_cols].astype(str).drop_duplicates()) > 1
        ]
        detail = (
            f"; with conflicting outcomes ({', '.join(outcome_cols)}): {_examples(conflicting)}"
            if conflicting
            else " (identical rows)"
        )
        raise CohortError(
            f"{path}: {groups.ngroups} patient_id(s) appear on more than one row: "
            f"{_examples(list(groups.groups))}{detail}. The patient sheet needs one row per "
            "patient (slides go in the slide sheet)"
        )
    if "time" in df.columns:
        time = _numeric_column(df, "time", path)
        bad = ~np.isfinite(time) | (time <= 0)
        if bad.any():
            ex = [
                f"{p}={'empty' if pd.isna(v) else v}"
                for p, v in zip(df["patient_id"][bad], df["time"][bad], strict=True)
            ]
            raise CohortError(
                f"{path}: column 'time' must be a finite number > 0 (months) for every patient; "
                f"bad value(s): {_examples(ex)}"
            )
        df["time"] = time
    if "event" in df.columns:
        event = _numeric_column(df, "event", path)
        bad = ~event.isin([0.0, 1.0])
        if bad.any():
            ex = [
                f"{p}={'empty' if pd.isna(v) else v}"
                for p, v in zip(df["patient_id"][bad], df["event"][bad], strict=True)
            ]
            raise CohortError(
                f"{path}: column 'event' must be 0 (censored) or 1 (death observed); "
                f"bad value(s): {_examples(ex)}"
            )
        df["event"] = event.astype(np.int64)
    if "label" in df.columns:
        missing = df["label"].isna()
        if missing.any():
            raise CohortError(
                f"{path}: column 'label' is empty for patient(s) "
                f"{_examples(df['patient_id'][missing])}"
            )
        df["label"] = df["label"].astype(str)
        if task == "classification" and df["label"].nunique() < 2:
            raise CohortError(
                f"{path}: column 'label' needs at least two classes for classification, "
                f"found {sorted(df['label'].unique())}"
            )
    return df.set_index("patient_id")


def _load_slides(path: Path, patients: pd.Index, *, check_files: bool) -> pd.DataFrame:
    df = _read_sheet(path, "slide sheet")
    _require_columns(df, ["patient_id", "slide_id", "path"], path, "slide sheet")
    _check_ids(df, "patient_id", path)
    _check_ids(df, "slide_id", path)
    df["patient_id"] = df["patient_id"].astype(str)
    df["slide_id"] = df["slide_id"].astype(str)
    dup = df["slide_id"].duplicated()
    if dup.any():
        raise CohortError(
            f"{path}: slide_id must be unique; repeated: {_examples(df['slide_id'][dup].unique())}"
        )
    _check_known(df["patient_id"], patients, path, "slide sheet")
    no_path = df["path"].isna() | (df["path"].astype(str).str.strip() == "")
    if no_path.any():
        raise CohortError(
            f"{path}: column 'path' is empty for slide(s) {_examples(df['slide_id'][no_path])}"
        )
    base = path.parent.resolve()
    df["path"] = [
        str(Path(p) if Path(p).is_absolute() else base / p) for p in df["path"].astype(str)
    ]
    if "mpp" in df.columns:
        mpp = pd.to_numeric(df["mpp"], errors="coerce").astype("float64")
        bad = (mpp.isna() & df["mpp"].notna() & (df["mpp"].astype(str).str.strip() != "")) | (
            mpp <= 0
        )
        if bad.any():
            ex = [f"{s}={v!r}" for s, v in zip(df["slide_id"][bad], df["mpp"][bad], strict=True)]
            raise CohortError(
                f"{path}: column 'mpp' must be a number > 0 or empty; bad value(s): {_examples(ex)}"
            )
        df["mpp"] = mpp
    else:
        df["mpp"] = np.nan
    if check_files:
        pairs = zip(df["slide_id"], df["path"], strict=True)
        absent = [s for s, p in pairs if not Path(p).is_file()]
        if absent:
            raise CohortError(
                f"{path}: {len(absent)} slide file(s) do not exist: {_examples(absent)}"
            )
    return df[["patient_id", "slide_id", "path", "mpp"]].reset_index(drop=True)


def _load_omics(name: str, path: Path, patients: pd.Index, *, allow_missing: bool) -> pd.DataFrame:
    what = f"omics table {name!r}"
    df = _read_sheet(path, what)
    _require_columns(df, ["patient_id"], path, what)
    features = [c for c in df.columns if c != "patient_id"]
    if not features:
        raise CohortError(f"{path}: {what} has no feature columns besides 'patient_id'")
    _check_ids(df, "patient_id", path)
    df["patient_id"] = df["patient_id"].astype(str)
    dup = df["patient_id"].duplicated()
    if dup.any():
        raise CohortError(
            f"{path}: {what} must have one row per patient; repeated patient_id(s): "
            f"{_examples(df['patient_id'][dup].unique())}"
        )
    _check_known(df["patient_id"], patients, path, what)
    non_numeric = [c for c in features if not pd.api.types.is_numeric_dtype(df[c])]
    if non_numeric:
        col = non_numeric[0]
        _numeric_column(df, col, path)  # raises with example patients if any value is text
        # A column of only empty cells is read as text-free object/str: report it as missing.
        df[non_numeric] = df[non_numeric].apply(pd.to_numeric, errors="coerce")
    table = df.set_index("patient_id")[features].astype("float64")
    values = table.to_numpy()  # (n, p)
    inf = np.isinf(values)
    if inf.any():
        cols = table.columns[inf.any(axis=0)]
        rows = table.index[inf[:, table.columns.get_loc(cols[0])]]
        raise CohortError(
            f"{path}: {what} has infinite value(s) in {len(cols)} column(s) "
            f"{_examples(cols)}; e.g. column {cols[0]!r} for patient(s) {_examples(rows)}"
        )
    nan = np.isnan(values)
    if nan.any() and not allow_missing:
        cols = table.columns[nan.any(axis=0)]
        rows = table.index[nan[:, table.columns.get_loc(cols[0])]]
        raise CohortError(
            f"{path}: {what} has missing (empty or NaN) value(s) in {len(cols)} column(s) "
            f"{_examples(cols)}; e.g. column {cols[0]!r} for patient(s) {_examples(rows)}. "
            "Fill them, or allow missing values to impute them with training-fold medians"
        )
    return table


def load_cohort(
    *,
    patients: str | os.PathLike,
    slides: str | os.PathLike | None = None,
    omics: Mapping[str, str | os.PathLike] | None = None,
    task: Literal["survival", "classification"] | None = "survival",
    slide_modality: str = "wsi",
    allow_missing_features: bool = False,
    check_slide_files: bool = False,
) -> Cohort:
    """Read and validate a cohort's sheets.

    Parameters
    ----------
    patients
        Patient sheet (TSV).
    slides
        Slide sheet (TSV), or ``None`` for a cohort without slides.
    omics
        Modality name -> omics table (TSV).
    task
        ``"survival"`` requires ``time`` and ``event``; ``"classification"`` requires ``label``;
        ``None`` requires only ``patient_id``. Columns that are present are validated either way.
    slide_modality
        Name of the slide modality in :meth:`Cohort.availability`.
    allow_missing_features
        Accept empty/NaN omics values (to be imputed per fold); infinite values are always refused.
    check_slide_files
        Also check that every slide file exists.

    Returns
    -------
    Cohort

    Raises
    ------
    CohortError
        Naming the file, column and example patients of the first problem found.
    """
    omics = dict(omics or {})
    for name in omics:
        if not pd.Series([name]).str.fullmatch(SAFE_ID).iloc[0]:
            raise CohortError(
                f"omics modality name {name!r} must use only letters, digits, '.', '_' and '-'"
            )
        if name == slide_modality:
            raise CohortError(
                f"omics modality name {name!r} clashes with the slide modality {slide_modality!r}"
            )
    pts = _load_patients(Path(patients), task=task)
    sl = (
        _load_slides(Path(slides), pts.index, check_files=check_slide_files)
        if slides is not None
        else None
    )
    tables = {
        name: _load_omics(name, Path(p), pts.index, allow_missing=allow_missing_features)
        for name, p in sorted(omics.items())
    }
    return Cohort(patients=pts, slides=sl, omics=tables, slide_modality=slide_modality)


def load_cohort_folder(folder: str | os.PathLike, **options) -> Cohort:
    """Load a cohort folder in the standard layout.

    ``patients.tsv``, ``slides.tsv`` (if present) and every ``omics/<modality>.tsv``.

    Parameters
    ----------
    folder
        The cohort folder (e.g. the synthetic demo cohort's).
    **options
        Passed to :func:`load_cohort` (``task``, ``allow_missing_features``, ...).
    """
    root = Path(folder)
    slides = root / "slides.tsv"
    omics = {p.stem: p for p in sorted((root / "omics").glob("*.tsv"))}
    return load_cohort(
        patients=root / "patients.tsv",
        slides=slides if slides.is_file() else None,
        omics=omics,
        **options,
    )
