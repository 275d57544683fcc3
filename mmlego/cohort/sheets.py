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

Beyond the standard layout, :func:`load_cohort` can take a table modality from a group of the
patient sheet's own columns (:class:`ColumnGroup`, e.g. clinical ``age`` and ``is_female``), read
the class label from another column and keep only some classes; patients left out that way are
listed in :attr:`Cohort.excluded` with the reason, never dropped silently.
:func:`write_cohort_folder` writes any :class:`Cohort` in the standard layout (the workflow's
``import_cohort`` rule; :mod:`mmlego.cohort.mcat` builds one from an MCAT/PORPOISE CSV).
"""

from __future__ import annotations

import gzip
import logging
import os
import re
import zlib
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from mmlego.io import read_tsv, write_tsv

__all__ = [
    "OMICS_SUFFIXES",
    "SAFE_ID",
    "Cohort",
    "CohortError",
    "ColumnGroup",
    "group_table",
    "load_cohort",
    "load_cohort_folder",
    "read_slide_sheet",
    "write_cohort_folder",
]

log = logging.getLogger(__name__)

OMICS_SUFFIXES = ("_rnaseq", "_cnv", "_mut")
"""Column-name suffixes of the omics groups of a wide sheet (the MCAT/PORPOISE convention)."""

SAFE_ID = r"[A-Za-z0-9._-]+"
"""Characters allowed in patient, slide and modality ids (they become parts of file names)."""

_N_EXAMPLES = 5

UNREADABLE = (
    pd.errors.EmptyDataError,
    pd.errors.ParserError,
    UnicodeDecodeError,
    OSError,
    EOFError,
    zlib.error,
)
"""What reading a table raises on a file that is not a readable table: empty, malformed, not
text, or a compressed file that is truncated (EOFError) or corrupt (zlib.error, gzip's
OSError)."""

MAX_MONTHS = 1200.0
"""Longest plausible survival time, in months (100 years): a longer one is likely in days."""
DAYS_PER_MONTH = 30.44

PLAUSIBLE_MPP = (0.05, 20.0)
"""Level-0 resolutions (µm/px) a scan of a microscope slide can have: from finer than any
objective resolves (0.05) to a low-power overview (20). A value outside, in a slide sheet's
``mpp`` column or a slide's metadata (:func:`mmlego.wsi.slide.slide_mpp`), comes from metadata
that does not describe the scan (an image tool's 72 dpi gives 352.8 µm/px) or a typing error."""


class CohortError(ValueError):
    """A cohort sheet is malformed; the message names the file, the column and examples."""


@dataclass(frozen=True)
class ColumnGroup:
    """Which columns of a wide sheet (one row per patient or slide) make up one table modality.

    Exactly one way of choosing is set.

    Parameters
    ----------
    suffix
        Every column whose name ends with this suffix (``"_rnaseq"``, ``"_cnv"``, ``"_mut"``).
    names
        These columns, in this order (e.g. clinical ``("age", "is_female")``).
    unsuffixed
        Every column that ends with none of :data:`OMICS_SUFFIXES` and is not a reserved
        (identifier, outcome or metadata) column: e.g. the mutation columns of MCAT's UCEC
        release, which carry no suffix.
    """

    suffix: str | None = None
    names: tuple[str, ...] = ()
    unsuffixed: bool = False

    def __post_init__(self) -> None:
        chosen = sum([self.suffix is not None, bool(self.names), self.unsuffixed])
        if chosen != 1:
            raise ValueError(
                "a column group needs exactly one of 'suffix', 'names' or 'unsuffixed: true', "
                f"got {self}"
            )
        if self.suffix is not None and not self.suffix:
            raise ValueError("a column group's 'suffix' must not be empty")
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"a column group names a column twice: {list(self.names)}")

    @classmethod
    def from_config(cls, spec: Mapping[str, object]) -> ColumnGroup:
        """Build from a ``modalities.<m>.columns`` mapping (``suffix``, ``names`` or
        ``unsuffixed``)."""
        known = {"suffix", "names", "unsuffixed"}
        unknown = sorted(set(spec) - known)
        if unknown:
            raise ValueError(f"columns: unknown key(s) {unknown}; known: {sorted(known)}")
        names = spec.get("names") or ()
        return cls(
            suffix=spec.get("suffix"),  # type: ignore[arg-type]
            names=tuple(str(n) for n in names),  # type: ignore[union-attr]
            unsuffixed=bool(spec.get("unsuffixed", False)),
        )

    def describe(self) -> str:
        """How the group chooses its columns, for messages."""
        if self.suffix is not None:
            return f"columns ending with {self.suffix!r}"
        if self.names:
            return f"columns {list(self.names)}"
        return f"columns without a suffix {list(OMICS_SUFFIXES)}"

    def select(self, columns: Sequence[str], *, reserved: Collection[str] = ()) -> list[str]:
        """The chosen columns among ``columns``, in sheet order (``names``: in the given order).

        ``reserved`` columns (identifiers, outcomes, metadata) are never chosen by ``suffix`` or
        ``unsuffixed``; ``names`` may choose them (e.g. ``age``). Missing ``names`` raise.
        """
        cols = [str(c) for c in columns]
        if self.names:
            missing = [n for n in self.names if n not in cols]
            if missing:
                raise CohortError(f"column(s) {missing} not found")
            return list(self.names)
        free = [c for c in cols if c not in set(reserved)]
        if self.suffix is not None:
            return [c for c in free if c.endswith(self.suffix)]
        return [c for c in free if not c.endswith(OMICS_SUFFIXES)]


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
    excluded
        ``patient_id``, ``reason``: patients of the input left out on purpose (e.g. a class
        not among the requested ones); their slides and omics rows are left out too.
    """

    patients: pd.DataFrame
    slides: pd.DataFrame | None
    omics: Mapping[str, pd.DataFrame] = field(default_factory=dict)
    slide_modality: str = "wsi"
    excluded: pd.DataFrame = field(default_factory=lambda: _no_exclusions())

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


def _no_exclusions() -> pd.DataFrame:
    return pd.DataFrame({"patient_id": pd.Series(dtype=str), "reason": pd.Series(dtype=str)})


def _examples(values: Sequence | pd.Index | pd.Series) -> str:
    vals = list(values)
    shown = ", ".join(repr(v) for v in vals[:_N_EXAMPLES])
    return shown + (f", ... ({len(vals)} in all)" if len(vals) > _N_EXAMPLES else "")


def _read_sheet(path: str | os.PathLike, what: str, *, text: Iterable[str] = ()) -> pd.DataFrame:
    """A sheet with its ids, labels and ``text`` columns as text (see :func:`read_tsv`)."""
    p = Path(path)
    if not p.is_file():
        raise CohortError(f"{p}: {what} file does not exist")
    try:
        header = read_header(p, sep="\t")
        df = read_tsv(p, text=text)
    except UNREADABLE as err:
        raise CohortError(
            f"{p}: cannot read the {what} as a tab-separated table ({unreadable_reason(err)})"
        ) from None
    dup = repeated_names(header)
    if dup:
        raise CohortError(f"{p}: duplicate column name(s) {_examples(dup)}")
    return _strip_text(_drop_unnamed(_rows_as_header(df, p, what, text), header, p, what))


def unreadable_reason(err: BaseException) -> str:
    """Why a table cannot be read, for messages (a truncated or corrupt compressed file raises an
    error that names neither)."""
    why = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
    if isinstance(err, (EOFError, zlib.error, gzip.BadGzipFile)):
        why += "; the compressed file is truncated or corrupt: copy or download it again"
    return why


def read_header(path: Path, *, sep: str) -> list[str]:
    """The names of a table's header line as written (a byte-order mark, surrounding spaces and
    compression removed; ``""`` for an empty name)."""
    row = pd.read_csv(path, sep=sep, header=None, nrows=1, dtype=str, keep_default_na=False)
    return [str(c).strip() for c in row.iloc[0]]


def repeated_names(names: Sequence[str]) -> list[str]:
    """The names that occur more than once, sorted (linear: tables have tens of thousands of
    gene columns)."""
    return sorted(n for n, count in Counter(names).items() if count > 1)


def _rows_as_header(
    df: pd.DataFrame, path: Path, what: str, text: Iterable[str] = ()
) -> pd.DataFrame:
    """Undo pandas' reading of rows with one field more than the header line: it takes their
    first field as row names and shifts every column. A tab at the end of each data row (the
    extra field empty on every row) is re-read without it (``text`` columns as text, as in the
    first reading); row names without a header (R's ``write.table``) are dropped."""
    if isinstance(df.index, pd.RangeIndex):
        return df
    if df.iloc[:, -1].isna().all():
        log.info("%s: the %s's rows end with a tab; the empty last field is ignored", path, what)
        return read_tsv(path, text=text, index_col=False)
    log.info("%s: the %s's first column has no header (row names): ignored", path, what)
    return df.reset_index(drop=True)


def _drop_unnamed(df: pd.DataFrame, header: Sequence[str], path: Path, what: str) -> pd.DataFrame:
    """Name the columns as in the header line; drop columns without a name or any value (a tab
    at the end of each line) and refuse those without a name but with values."""
    if len(header) != len(df.columns):  # rows with an extra field, re-read above
        header = [*header, *[""] * (len(df.columns) - len(header))][: len(df.columns)]
    df.columns = list(header)
    unnamed = [i for i, name in enumerate(header) if not name]
    with_values = [i + 1 for i in unnamed if df.iloc[:, i].notna().any()]
    if with_values:
        raise CohortError(
            f"{path}: the {what} has column(s) without a name in the header line at "
            f"position(s) {with_values} (e.g. row numbers written with the table's index); "
            "name them or remove them"
        )
    if unnamed:
        log.info("%s: %d empty column(s) without a name ignored", path, len(unnamed))
        df = df.iloc[:, [i for i in range(len(header)) if header[i]]]
    return df


def _strip_text(df: pd.DataFrame) -> pd.DataFrame:
    """Text cells without surrounding spaces; a cell of spaces only is empty (missing)."""
    for col in df.columns:
        if pd.api.types.is_numeric_dtype(df[col]) or pd.api.types.is_bool_dtype(df[col]):
            continue
        df[col] = df[col].map(lambda v: (v.strip() or np.nan) if isinstance(v, str) else v)
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


def _check_known(
    ids: pd.Series,
    known: pd.Index,
    path: Path | str,
    what: str,
    *,
    excluded: Collection[str] = (),
) -> np.ndarray:
    """Rows to keep: raise naming unknown ids; rows of ``excluded`` patients are left out
    (logged with a count and examples)."""
    is_excluded = ids.isin(set(excluded)).to_numpy()
    unknown = pd.unique(ids[~ids.isin(known) & ~is_excluded])
    if len(unknown):
        raise CohortError(
            f"{path}: {len(unknown)} patient_id(s) in the {what} are not in the patient sheet: "
            f"{_examples(unknown)}"
        )
    if is_excluded.any():
        log.info(
            "%s: %d row(s) of excluded patients left out of the %s: %s",
            path,
            int(is_excluded.sum()),
            what,
            _examples(pd.unique(ids[is_excluded])),
        )
    return ~is_excluded


def _numeric_column(df: pd.DataFrame, column: str, path: Path) -> pd.Series:
    """``df[column]`` as float64; raise naming the patients whose value is not a number."""
    raw = df[column]
    num = pd.to_numeric(raw, errors="coerce").astype("float64")
    bad = num.isna() & raw.notna()
    if bad.any():
        ex = [f"{pid}={val!r}" for pid, val in zip(df["patient_id"][bad], raw[bad], strict=True)]
        raise CohortError(f"{path}: column {column!r} has non-numeric value(s): {_examples(ex)}")
    return num


def _select_classes(
    df: pd.DataFrame, path: Path | str, *, label_column: str, classes: Sequence[str] | None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read the label from ``label_column``; keep patients of ``classes`` (the rest excluded)."""
    if label_column != "label":
        if "label" in df.columns:
            raise CohortError(
                f"{path}: has a 'label' column and the label is to be read from "
                f"{label_column!r}; rename one of them"
            )
        df = df.rename(columns={label_column: "label"})
    if classes is None:
        return df, _no_exclusions()
    classes = [str(c) for c in classes]
    if len(set(classes)) < 2:
        raise CohortError(f"classes: need at least two distinct classes, got {classes}")
    label = df["label"].astype(str).where(df["label"].notna(), "")
    keep = label.isin(classes)
    absent = [c for c in classes if c not in set(label)]
    if absent:
        raise CohortError(
            f"{path}: class(es) {absent} requested but not found in column {label_column!r}; "
            f"found {sorted(set(label) - {''})}"
        )
    excluded = pd.DataFrame(
        {
            "patient_id": df.loc[~keep, "patient_id"].astype(str).to_numpy(),
            "reason": [
                f"{label_column}={v!r} not in classes {classes}" if v else f"{label_column} empty"
                for v in label[~keep]
            ],
        }
    ).drop_duplicates("patient_id")
    if len(excluded):
        counts = label[~keep].replace("", "<empty>").value_counts().to_dict()
        log.info(
            "%s: %d row(s) of class(es) %s are not among %s and are excluded: %s",
            path,
            int((~keep).sum()),
            counts,
            classes,
            _examples(excluded["patient_id"]),
        )
    return df[keep].reset_index(drop=True), excluded


def _load_patients(
    path: Path,
    *,
    task: str | None,
    label_column: str = "label",
    classes: Sequence[str] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    df = _read_sheet(path, "patient sheet", text=[label_column])
    needs_label = task == "classification" or classes is not None or label_column != "label"
    required = ["patient_id"] + ([label_column] if needs_label else [])
    _require_columns(df, required, path, "patient sheet")
    _check_ids(df, "patient_id", path)
    df["patient_id"] = df["patient_id"].astype(str)
    df, excluded = _select_classes(df, path, label_column=label_column, classes=classes)
    return _check_patients(df, path, task=task), excluded


def kept_patients(
    path: Path | str,
    *,
    task: str | None = None,
    label_column: str = "label",
    classes: Sequence[str] | None = None,
) -> list[str]:
    """The ids of the patient sheet ``path`` that :func:`load_cohort` keeps for ``classes``,
    read and checked as it reads them (spaces stripped, labels as text; the outcome columns
    ``task`` needs), so that whoever plans work for the cohort's patients (e.g. which slides to
    tile) keeps the same ones, and a sheet the import would refuse is refused when the workflow
    is planned."""
    df, _ = _load_patients(Path(path), task=task, label_column=label_column, classes=classes)
    return list(df.index)


def _check_patients(df: pd.DataFrame, path: Path | str, *, task: str | None) -> pd.DataFrame:
    """Validate a patient table (``patient_id`` column, str); return it indexed by patient."""
    required = ["patient_id"]
    if task == "survival":
        required += ["time", "event"]
    elif task == "classification":
        required += ["label"]
    _require_columns(df, required, path, "patient sheet")
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
        _check_months(time, df["patient_id"], path, "time")
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
                f"{path}: column 'label' is missing (empty, or NA, NaN, null) for patient(s) "
                f"{_examples(df['patient_id'][missing])}; list the classes to keep "
                "(inputs.classes) to leave them out"
            )
        df["label"] = df["label"].astype(str)
        for group in similar_classes(df["label"]):
            log.warning(
                "%s: classes %s differ only in case, spaces, '-' or '_': one class written in "
                "several ways? They are kept apart; write them alike in the sheet to make them one",
                path,
                " / ".join(f"{c!r} ({int((df['label'] == c).sum())})" for c in group),
            )
        if task == "classification" and df["label"].nunique() < 2:
            raise CohortError(
                f"{path}: column 'label' needs at least two classes for classification, "
                f"found {sorted(df['label'].unique())}"
            )
    return df.set_index("patient_id")


def similar_classes(labels: Iterable[str]) -> list[list[str]]:
    """Groups of distinct class names that differ only in case, spaces, ``-`` or ``_``
    (``"Luminal A"``, ``"luminal a"``, ``"luminal_A"``): most likely one class written in several
    ways. Each group sorted, the groups by their first name."""
    groups: dict[str, set[str]] = {}
    for label in set(labels):
        groups.setdefault(" ".join(re.split(r"[\s_-]+", label.casefold())).strip(), set()).add(
            label
        )
    return sorted(sorted(g) for g in groups.values() if len(g) > 1)


def _check_months(months: pd.Series, patients: pd.Series, path: Path, column: str) -> None:
    """Warn when a survival time exceeds :data:`MAX_MONTHS`: the column is probably not in
    months (times in days are the usual case). Only a warning: the metrics do not depend on
    the unit, and a synthetic cohort may have long tails; the report's axes say months."""
    long = months > MAX_MONTHS
    if long.any():
        ex = [f"{p}={v:g}" for p, v in zip(patients[long], months[long], strict=True)]
        log.warning(
            "%s: column %r holds survival times in months, but %d value(s) exceed %g months "
            "(%g years): %s; times in days? divide them by %g",
            path,
            column,
            int(long.sum()),
            MAX_MONTHS,
            MAX_MONTHS / 12,
            _examples(list(dict.fromkeys(ex))),
            DAYS_PER_MONTH,
        )


def read_slide_sheet(path: str | Path) -> pd.DataFrame:
    """A slide sheet checked on its own: ``patient_id, slide_id, path, mpp`` (paths resolved
    against the sheet's folder, ``mpp`` float or NaN). The one reader of slide sheets: the
    workflow calls it at parse time (the slides to process) and the cohort import (with the
    patients, :func:`load_cohort`). Raises :class:`CohortError` naming the file and slides."""
    path = Path(path)
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
        text = mpp.isna() & df["mpp"].notna() & (df["mpp"].astype(str).str.strip() != "")
        lo, hi = PLAUSIBLE_MPP
        bad = text | (mpp < lo) | (mpp > hi)
        if bad.any():
            ex = [f"{s}={v!r}" for s, v in zip(df["slide_id"][bad], df["mpp"][bad], strict=True)]
            raise CohortError(
                f"{path}: column 'mpp' (microns per level-0 pixel) must be a number from {lo:g} "
                f"to {hi:g}, the resolutions of a slide scan, or empty (read from the slide); "
                f"bad value(s): {_examples(ex)}"
            )
        df["mpp"] = mpp
    else:
        df["mpp"] = np.nan
    return df[["patient_id", "slide_id", "path", "mpp"]].reset_index(drop=True)


def _load_slides(
    path: Path, patients: pd.Index, *, check_files: bool, excluded: Collection[str] = ()
) -> pd.DataFrame:
    df = read_slide_sheet(path)
    df = df[_check_known(df["patient_id"], patients, path, "slide sheet", excluded=excluded)]
    df = df.reset_index(drop=True)
    if check_files:
        pairs = zip(df["slide_id"], df["path"], strict=True)
        absent = [s for s, p in pairs if not Path(p).is_file()]
        if absent:
            raise CohortError(
                f"{path}: {len(absent)} slide file(s) do not exist: {_examples(absent)}"
            )
    return df[["patient_id", "slide_id", "path", "mpp"]].reset_index(drop=True)


def _load_omics(
    name: str,
    path: Path,
    patients: pd.Index,
    *,
    allow_missing: bool,
    excluded: Collection[str] = (),
) -> pd.DataFrame:
    what = f"omics table {name!r}"
    df = _read_sheet(path, what)
    _require_columns(df, ["patient_id"], path, what)
    _check_ids(df, "patient_id", path)
    df["patient_id"] = df["patient_id"].astype(str)
    return _check_table(df, name, path, patients, allow_missing=allow_missing, excluded=excluded)


def _check_table(
    df: pd.DataFrame,
    name: str,
    path: Path | str,
    patients: pd.Index,
    *,
    allow_missing: bool,
    excluded: Collection[str] = (),
    what: str | None = None,
) -> pd.DataFrame:
    """Validate a modality table (``patient_id`` column of str ids, then features)."""
    what = what or f"omics table {name!r}"
    features = [c for c in df.columns if c != "patient_id"]
    if not features:
        raise CohortError(f"{path}: {what} has no feature columns besides 'patient_id'")
    dup = df["patient_id"].duplicated()
    if dup.any():
        raise CohortError(
            f"{path}: {what} must have one row per patient; repeated patient_id(s): "
            f"{_examples(df['patient_id'][dup].unique())}"
        )
    df = df[_check_known(df["patient_id"], patients, path, what, excluded=excluded)]
    non_numeric = [c for c in features if not pd.api.types.is_numeric_dtype(df[c])]
    if non_numeric:
        df = df.copy()
        for col in non_numeric:
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
            "Fill them, or allow missing values (inputs.allow_missing_features) to impute them "
            "with training-fold medians"
        )
    return table


def group_table(
    sheet: pd.DataFrame,
    name: str,
    group: ColumnGroup,
    *,
    where: Path | str,
    reserved: Collection[str] = (),
    allow_missing: bool = False,
) -> pd.DataFrame:
    """The table modality ``name`` made of a column group of a wide sheet.

    Parameters
    ----------
    sheet
        One row per patient, with a ``patient_id`` column (str).
    name
        Modality name (for messages).
    group
        Which columns.
    where
        The sheet's file (for messages).
    reserved
        Identifier, outcome and metadata columns: never chosen by a suffix.
    allow_missing
        Accept empty values (imputed per fold with training medians).

    Returns
    -------
    pandas.DataFrame
        Indexed by ``patient_id``, float64 features. Patients whose every value of the group is
        empty do not have the modality: their rows are left out (logged with a count).
    """
    try:
        cols = group.select(list(sheet.columns), reserved=reserved)
    except CohortError as err:
        raise CohortError(f"{where}: modality {name!r}: {err}") from None
    if not cols:
        examples = [c for c in sheet.columns if c not in set(reserved)][:5]
        raise CohortError(
            f"{where}: modality {name!r} takes the {group.describe()}, and there are none; "
            f"feature columns look like {examples}"
        )
    what = f"modality {name!r} ({group.describe()})"
    part = sheet[["patient_id", *cols]]
    numeric = part[cols].apply(pd.to_numeric, errors="coerce")
    empty = numeric.isna().all(axis=1) & part[cols].isna().all(axis=1)
    if empty.any():
        log.info(
            "%s: %d patient(s) have no value in any of the %d column(s) of modality %r and do "
            "not have it: %s",
            where,
            int(empty.sum()),
            len(cols),
            name,
            _examples(part.loc[empty, "patient_id"]),
        )
        part = part[~empty]
    return _check_table(
        part.reset_index(drop=True),
        name,
        where,
        pd.Index(part["patient_id"]),
        allow_missing=allow_missing,
        what=what,
    )


def load_cohort(
    *,
    patients: str | os.PathLike,
    slides: str | os.PathLike | None = None,
    omics: Mapping[str, str | os.PathLike] | None = None,
    task: Literal["survival", "classification"] | None = "survival",
    slide_modality: str = "wsi",
    allow_missing_features: bool | Collection[str] = False,
    check_slide_files: bool = False,
    column_groups: Mapping[str, ColumnGroup] | None = None,
    label_column: str = "label",
    classes: Sequence[str] | None = None,
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
        Accept empty/NaN omics values (to be imputed per fold); ``True`` for every modality or
        the names of the modalities that may have them. Infinite values are always refused.
    check_slide_files
        Also check that every slide file exists.
    column_groups
        Modality name -> :class:`ColumnGroup` of the patient sheet's own columns (e.g. clinical
        ``age``, ``is_female``); those columns stay in the patient sheet too.
    label_column
        The patient sheet's column holding the class label (renamed ``label``).
    classes
        Keep only patients of these classes; the others go to :attr:`Cohort.excluded`, and
        their slide and omics rows are left out (logged with counts).

    Returns
    -------
    Cohort

    Raises
    ------
    CohortError
        Naming the file, column and example patients of the first problem found.
    """
    omics = dict(omics or {})
    groups = dict(column_groups or {})
    clash = sorted(set(omics) & set(groups))
    if clash:
        raise CohortError(f"modality {clash[0]!r} has both an omics table and a column group")
    for name in [*omics, *groups]:
        if not pd.Series([name]).str.fullmatch(SAFE_ID).iloc[0]:
            raise CohortError(
                f"omics modality name {name!r} must use only letters, digits, '.', '_' and '-'"
            )
        if name == slide_modality:
            raise CohortError(
                f"omics modality name {name!r} clashes with the slide modality {slide_modality!r}"
            )

    def allow(name: str) -> bool:
        if isinstance(allow_missing_features, bool):
            return allow_missing_features
        return name in allow_missing_features

    pts, excluded = _load_patients(
        Path(patients), task=task, label_column=label_column, classes=classes
    )
    gone = set(excluded["patient_id"])
    sl = (
        _load_slides(Path(slides), pts.index, check_files=check_slide_files, excluded=gone)
        if slides is not None
        else None
    )
    tables = {
        name: _load_omics(name, Path(p), pts.index, allow_missing=allow(name), excluded=gone)
        for name, p in sorted(omics.items())
    }
    sheet = pts.reset_index()
    reserved = {"patient_id", "time", "event", "label"}
    for name, group in sorted(groups.items()):
        tables[name] = group_table(
            sheet, name, group, where=Path(patients), reserved=reserved, allow_missing=allow(name)
        )
    cohort = Cohort(
        patients=pts,
        slides=sl,
        omics=dict(sorted(tables.items())),
        slide_modality=slide_modality,
        excluded=excluded,
    )
    available = cohort.availability()  # (patients, modalities) bool
    without = available.index[~available.any(axis=1)]
    if cohort.modality_names and len(without):
        log.warning(
            "%s: %d patient(s) have no slide and no row in any omics table, so no model can "
            "score them: %s",
            patients,
            len(without),
            _examples(without),
        )
    return cohort


def write_cohort_folder(cohort: Cohort, folder: str | os.PathLike) -> dict[str, Path]:
    """Write a cohort in the standard layout (each file atomically).

    ``patients.tsv``, ``slides.tsv`` (if the cohort has slides), ``omics/<modality>.tsv`` and
    ``excluded.tsv`` (``patient_id``, ``reason``; possibly empty).

    Returns
    -------
    dict
        ``"patients"``, ``"slides"``, ``"excluded"`` and ``"omics/<modality>"`` -> path written.
    """
    root = Path(folder)
    written = {"patients": root / "patients.tsv", "excluded": root / "excluded.tsv"}
    write_tsv(cohort.patients.rename_axis("patient_id"), written["patients"], index=True)
    write_tsv(cohort.excluded, written["excluded"])
    if cohort.slides is not None:
        written["slides"] = root / "slides.tsv"
        write_tsv(cohort.slides, written["slides"])
    for name, table in cohort.omics.items():
        key = f"omics/{name}"
        written[key] = root / "omics" / f"{name}.tsv"
        write_tsv(table.rename_axis("patient_id"), written[key], index=True)
    return written


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
