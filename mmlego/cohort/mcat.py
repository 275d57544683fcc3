"""Cohorts in the MCAT/PORPOISE release format: one CSV per cancer type, one row per slide.

The CSV (``tcga_blca_all_clean.csv.gz`` and the like; mahmoodlab/MCAT) has the columns
``case_id, slide_id, site, is_female, oncotree_code, age, survival_months, censorship`` (1 =
censored) followed by feature columns: ``*_rnaseq``, ``*_cnv``, ``*_mut`` (some releases give
mutation columns no suffix). MCAT's release also carries a leftover ``train`` column, which is
never a feature. The first column may be an unnamed row index.

:func:`load_mcat` turns it into a :class:`~mmlego.cohort.sheets.Cohort`: one row per patient
(``case_id``), the slides of each case joined by case id (paths ``slide_dir/<slide_id>``), and one
table modality per :class:`~mmlego.cohort.sheets.ColumnGroup`. Everything that would otherwise
go wrong later, or silently, is an error naming the file, the column and example cases: missing
columns, negative, zero, missing or non-numeric times, censorship other than 0/1, non-numeric
features, slides of one case that disagree on the outcome or on any feature value, a column
claimed by two modalities, slide files that do not exist. Patients left out on purpose (a class
not requested) are listed in :attr:`Cohort.excluded` with the reason, and every such step is
logged with counts and examples.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from mmlego.cohort.sheets import (
    SAFE_ID,
    UNREADABLE,
    Cohort,
    CohortError,
    ColumnGroup,
    _check_months,
    _check_patients,
    _examples,
    _no_exclusions,
    group_table,
    repeated_names,
    unreadable_reason,
)

__all__ = [
    "MCAT_COLUMNS",
    "MCAT_IGNORED",
    "SLIDE_EXTENSIONS",
    "load_mcat",
    "mcat_slide_sheet",
    "read_mcat_csv",
]

log = logging.getLogger(__name__)

MCAT_COLUMNS = (
    "case_id", "slide_id", "site", "is_female", "oncotree_code", "age", "survival_months",
    "censorship",
)  # fmt: skip
"""The metadata columns of the format (``is_female`` and ``age`` can still be chosen by name)."""

MCAT_IGNORED = ("train",)
"""Columns of MCAT's release that are neither metadata nor features (a leftover ``train`` flag)."""

SLIDE_EXTENSIONS = (".svs", ".tif", ".tiff", ".ndpi", ".mrxs", ".scn", ".bif", ".vms")
"""Slide file extensions stripped from ``slide_id`` to name the slide's outputs."""

# "keep": the slide files are not read (wsi.features_from), so their absence is not checked
MissingSlides = Literal["error", "drop", "keep"]


def read_mcat_csv(
    path: str | os.PathLike, *, usecols: Sequence[str] | None = None, text: Sequence[str] = ()
) -> pd.DataFrame:
    """Read an MCAT/PORPOISE CSV (plain or gzipped), dropping an unnamed leading index column.

    Parameters
    ----------
    path
        The CSV.
    usecols
        Read only these columns (those absent are ignored), e.g. for the slide sheet.
    text
        More columns read as text besides the ids, ``site`` and ``oncotree_code``: the class
        label's (classes ``01``, ``02`` are not the numbers 1, 2).

    Returns
    -------
    pandas.DataFrame
        One row per slide; ``case_id`` and ``slide_id`` as str.

    Raises
    ------
    CohortError
        If the file is missing or unreadable (also a truncated or corrupt ``.gz``), or has
        duplicate column names.
    """
    p = Path(path)
    if not p.is_file():
        raise CohortError(f"{p}: MCAT cohort CSV does not exist")
    try:
        raw_header = pd.read_csv(p, nrows=1, header=None, dtype=str).iloc[0].tolist()
    except UNREADABLE as err:
        raise _unreadable(p, err) from None
    header = ["" if pd.isna(c) else str(c) for c in raw_header]
    has_index = header[0] == ""
    names = header[1:] if has_index else header
    dup = repeated_names(names)
    if dup:
        raise CohortError(f"{p}: duplicate column name(s) {_examples(dup)}")
    if len(names) == 1 and "\t" in names[0]:
        raise CohortError(f"{p}: the file looks tab-separated; the MCAT format is comma-separated")
    dtypes = {c: str for c in ("case_id", "slide_id", "site", "oncotree_code", *text) if c in names}
    positions = None
    if usecols is not None:  # by position: the index column has no name
        positions = sorted(
            ([0] if has_index else []) + [header.index(c) for c in usecols if c in names]
        )
    try:
        df = pd.read_csv(
            p,
            index_col=0 if has_index else None,
            usecols=positions,
            dtype=dtypes,
            low_memory=False,
        )
    except (*UNREADABLE, ValueError) as err:
        raise _unreadable(p, err) from None
    return df.reset_index(drop=True)


def _unreadable(path: Path, err: BaseException) -> CohortError:
    """The error for a CSV that cannot be read, naming it and saying why (a truncated or corrupt
    compressed file raises an error that names neither)."""
    return CohortError(f"{path}: cannot read the MCAT cohort CSV ({unreadable_reason(err)})")


def _require(df: pd.DataFrame, columns: Sequence[str], path: Path, why: str) -> None:
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise CohortError(
            f"{path}: lacks column(s) {missing} ({why}); found {list(df.columns)[:12]}"
        )


def _check_case_ids(df: pd.DataFrame, path: Path) -> None:
    ids = df["case_id"]
    empty = ids.isna() | (ids.astype(str).str.strip() == "")
    if empty.any():
        lines = (np.flatnonzero(empty.to_numpy()) + 2).tolist()
        raise CohortError(f"{path}: column 'case_id' is empty on line(s) {_examples(lines)}")
    bad = ~ids.astype(str).str.fullmatch(SAFE_ID)
    if bad.any():
        raise CohortError(
            f"{path}: column 'case_id' has id(s) with characters other than letters, digits, "
            f"'.', '_' and '-' (ids become file names): {_examples(pd.unique(ids[bad]))}"
        )


def _numeric(df: pd.DataFrame, column: str, path: Path) -> pd.Series:
    raw = df[column]
    num = pd.to_numeric(raw, errors="coerce").astype("float64")
    bad = num.isna() & raw.notna() & (raw.astype(str).str.strip() != "")
    if bad.any():
        ex = [f"{c}={v!r}" for c, v in zip(df["case_id"][bad], raw[bad], strict=True)]
        raise CohortError(f"{path}: column {column!r} has non-numeric value(s): {_examples(ex)}")
    return num


_SURVIVAL_VALUES = {
    "survival_months": "a number > 0",
    "censorship": "0 (death observed) or 1 (censored)",
}
"""What each survival column must hold, on every row."""


def _survival(df: pd.DataFrame, path: Path) -> tuple[pd.Series, pd.Series]:
    """``time`` (months, > 0) and ``event`` (1 = death) from survival_months and censorship.

    Every bad value of either column (missing, text, out of range) is reported in one error,
    per column, each patient once (its slides repeat its values).
    """
    months = pd.to_numeric(df["survival_months"], errors="coerce").astype("float64")
    cens = pd.to_numeric(df["censorship"], errors="coerce").astype("float64")
    bad = {
        "survival_months": ~np.isfinite(months) | (months <= 0),
        "censorship": ~cens.isin([0.0, 1.0]),
    }
    problems, patients = [], set()
    for column, rows in bad.items():
        if not rows.any():
            continue
        first = df.loc[rows, ["case_id", column]].drop_duplicates("case_id")  # one per patient
        patients.update(first["case_id"])
        shown = [f"{c}={_shown(v)}" for c, v in first.itertuples(index=False)]
        problems.append(
            f"column {column!r} must be {_SURVIVAL_VALUES[column]}, not so for "
            f"{len(first)} patient(s): {_examples(shown)}"
        )
    if problems:
        raise CohortError(
            f"{path}: bad survival values for {len(patients)} patient(s) (case_id): "
            + "; ".join(problems)
        )
    _check_months(months, df["case_id"], path, "survival_months")
    return months, (1 - cens).astype(np.int64)


def _shown(value: object) -> str:
    """A cell's value in a message (``missing`` when empty)."""
    return "missing" if pd.isna(value) or str(value).strip() == "" else str(value)


def _select_classes(
    df: pd.DataFrame, path: Path, *, label_column: str, classes: Sequence[str] | None
) -> tuple[pd.DataFrame, pd.DataFrame]:
    label = df[label_column].astype(str).where(df[label_column].notna(), "")
    if classes is None:
        empty = label == ""
        if empty.any():
            raise CohortError(
                f"{path}: column {label_column!r} (the class label) is missing (empty, or NA, "
                f"NaN, null) for case(s) {_examples(pd.unique(df.loc[empty, 'case_id']))}; list "
                "the classes to keep (inputs.classes) to leave them out"
            )
        return df, _no_exclusions()
    classes = [str(c) for c in classes]
    if len(set(classes)) < 2:
        raise CohortError(f"classes: need at least two distinct classes, got {classes}")
    absent = [c for c in classes if c not in set(label)]
    if absent:
        raise CohortError(
            f"{path}: class(es) {absent} requested but not in column {label_column!r}; found "
            f"{sorted(set(label) - {''})}"
        )
    keep = label.isin(classes).to_numpy()
    dropped = df.loc[~keep, "case_id"].astype(str)
    # a case whose slides disagree on the label must not survive half-excluded
    both = sorted(set(dropped) & set(df.loc[keep, "case_id"].astype(str)))
    if both:
        raise CohortError(
            f"{path}: {len(both)} case(s) have slides of different {label_column!r} values "
            f"(conflicting outcomes): {_examples(both)}"
        )
    reasons = [
        f"{label_column}={v!r} not in classes {classes}" if v else f"{label_column} empty"
        for v in label[~keep]
    ]
    excluded = (
        pd.DataFrame({"patient_id": dropped.to_numpy(), "reason": reasons})
        .drop_duplicates("patient_id")
        .reset_index(drop=True)
    )
    if len(excluded):
        counts = (
            pd.Series(label[~keep].to_numpy(), index=dropped.to_numpy())
            .groupby(level=0)
            .first()
            .replace("", "<empty>")
            .value_counts()
            .to_dict()
        )
        log.info(
            "%s: %d patient(s) of class(es) %s are not among %s and are excluded: %s",
            path,
            len(excluded),
            counts,
            classes,
            _examples(excluded["patient_id"]),
        )
    return df[keep].reset_index(drop=True), excluded


def _conflicts(values: np.ndarray, codes: np.ndarray, first: np.ndarray) -> np.ndarray:
    """(n, p) bool: row differs from the first row of its case (NaN equals NaN)."""
    ref = values[first[codes]]  # (n, p)
    if values.dtype.kind == "f":
        return ~((values == ref) | (np.isnan(values) & np.isnan(ref)))
    return values != ref


def _collapse(
    df: pd.DataFrame,
    path: Path,
    *,
    outcome_columns: Sequence[str],
    feature_columns: Sequence[str],
) -> pd.DataFrame:
    """One row per case_id; raise if a case's slides disagree on an outcome or a feature."""
    codes, cases = pd.factorize(df["case_id"].astype(str))
    first = np.unique(codes, return_index=True)[1]  # (n_cases,) first row of each case
    n_rows = np.bincount(codes, minlength=len(cases))
    if (n_rows > 1).any():
        for kind, cols in (("outcomes", outcome_columns), ("omics values", feature_columns)):
            if not cols:
                continue
            block = df[list(cols)]
            numeric = all(pd.api.types.is_numeric_dtype(block[c]) for c in cols)
            values = (
                block.to_numpy(dtype=np.float64)
                if numeric
                else block.astype(str).where(block.notna(), "").to_numpy()
            )  # (n, p)
            diff = _conflicts(values, codes, first)
            if diff.any():
                rows = diff.any(axis=1)
                bad_cases = pd.unique(cases[codes[rows]])
                col_idx = np.flatnonzero(diff.any(axis=0))
                r = int(np.flatnonzero(rows)[0])
                c = int(np.flatnonzero(diff[r])[0])
                raise CohortError(
                    f"{path}: {len(bad_cases)} patient(s) (case_id) have slides with "
                    f"conflicting {kind} in {len(col_idx)} column(s) "
                    f"{_examples([cols[i] for i in col_idx])}: {_examples(bad_cases)}; e.g. "
                    f"{cases[codes[r]]!r} has {cols[c]}={values[first[codes[r]], c]!r} and "
                    f"{values[r, c]!r}. Fix the file so that every slide of a patient carries "
                    "the same patient-level values"
                )
        others = [c for c in df.columns if c not in {*outcome_columns, *feature_columns}]
        others = [c for c in others if c not in ("slide_id",)]
        if others:
            block = df[others].astype(str).where(df[others].notna(), "").to_numpy()
            diff = _conflicts(block, codes, first)
            if diff.any():
                cols = [others[i] for i in np.flatnonzero(diff.any(axis=0))]
                log.info(
                    "%s: the slides of %d case(s) differ in unused column(s) %s; the first "
                    "slide's value is kept",
                    path,
                    len(pd.unique(codes[diff.any(axis=1)])),
                    cols,
                )
    out = df.iloc[first].reset_index(drop=True).copy()  # copy: one block per dtype
    out.insert(0, "patient_id", np.asarray(cases, dtype=object).astype(str))
    out["n_slides"] = n_rows
    return out


def _slide_rows(
    df: pd.DataFrame, path: Path, *, slide_dir: str | os.PathLike, missing_slides: MissingSlides
) -> pd.DataFrame:
    """The slide sheet (patient_id, slide_id, path, mpp) of the CSV's rows."""
    if missing_slides not in ("error", "drop", "keep"):
        raise ValueError(
            f"missing_slides must be 'error', 'drop' or 'keep', got {missing_slides!r}"
        )
    _require(df, ["case_id", "slide_id"], path, "slides are joined to patients by them")
    raw = df["slide_id"].astype(str).str.strip()
    empty = df["slide_id"].isna() | (raw == "")
    if empty.any():
        raise CohortError(
            f"{path}: column 'slide_id' is empty for case(s) "
            f"{_examples(pd.unique(df.loc[empty, 'case_id']))}"
        )
    dup = raw.duplicated()
    if dup.any():
        raise CohortError(f"{path}: slide_id must be unique; repeated: {_examples(raw[dup])}")
    stem = raw.copy()
    for ext in SLIDE_EXTENSIONS:
        stem = stem.where(~stem.str.lower().str.endswith(ext), stem.str[: -len(ext)])
    bad = ~stem.str.fullmatch(SAFE_ID)
    if bad.any():
        raise CohortError(
            f"{path}: slide_id with characters other than letters, digits, '.', '_' and '-' "
            f"(they become file names): {_examples(raw[bad])}"
        )
    base = Path(slide_dir).resolve()
    sheet = pd.DataFrame(
        {
            "patient_id": df["case_id"].astype(str).to_numpy(),
            "slide_id": stem.to_numpy(),
            "path": [str(base / s) for s in raw],
            "mpp": np.nan,
        }
    )
    if missing_slides == "keep":
        return sheet
    absent = np.array([not Path(p).is_file() for p in sheet["path"]], dtype=bool)
    if absent.any():
        examples = _examples(raw[absent])
        if missing_slides == "error":
            raise CohortError(
                f"{path}: {int(absent.sum())} of {len(sheet)} slide(s) are not in {base}: "
                f"{examples}. Add them, or set inputs.missing_slides: drop to go on without them "
                "(their patients keep their other modalities)"
            )
        log.warning(
            "%s: %d of %d slide(s) are not in %s and are left out (missing_slides: drop): %s",
            path,
            int(absent.sum()),
            len(sheet),
            base,
            examples,
        )
        sheet = sheet[~absent].reset_index(drop=True)
    return sheet


def mcat_slide_sheet(
    path: str | os.PathLike,
    *,
    slide_dir: str | os.PathLike,
    label_column: str | None = None,
    classes: Sequence[str] | None = None,
    missing_slides: MissingSlides = "error",
) -> pd.DataFrame:
    """The slide sheet of an MCAT CSV (patient_id, slide_id, path, mpp), read cheaply.

    Only ``case_id``, ``slide_id`` and the label column are read, so the workflow can list the
    slides when it is parsed. Slides of patients outside ``classes`` are left out, as in
    :func:`load_mcat`.
    """
    p = Path(path)
    cols = ["case_id", "slide_id"] + ([label_column] if label_column else [])
    df = read_mcat_csv(p, usecols=cols, text=cols[2:])
    _require(df, ["case_id"], p, "it identifies the patients")
    _check_case_ids(df, p)
    if label_column and classes is not None:
        _require(df, [label_column], p, "the class label")
        df, _ = _select_classes(df, p, label_column=label_column, classes=classes)
    return _slide_rows(df, p, slide_dir=slide_dir, missing_slides=missing_slides)


def load_mcat(
    path: str | os.PathLike,
    *,
    modalities: Mapping[str, ColumnGroup],
    task: Literal["survival", "classification"] = "survival",
    label_column: str | None = None,
    classes: Sequence[str] | None = None,
    slide_dir: str | os.PathLike | None = None,
    missing_slides: MissingSlides = "error",
    allow_missing_features: bool | Collection[str] = False,
    slide_modality: str = "wsi",
) -> Cohort:
    """Load an MCAT/PORPOISE CSV as a cohort with one row per patient.

    Parameters
    ----------
    path
        The CSV (one row per slide).
    modalities
        Table modality name -> its :class:`ColumnGroup` (``suffix="_rnaseq"``,
        ``names=("age", "is_female")``, ``unsuffixed=True`` for suffix-less mutation columns).
    task
        ``"survival"``: ``survival_months`` and ``censorship`` are required and become ``time``
        and ``event = 1 - censorship``. ``"classification"``: ``label_column`` becomes
        ``label``; survival columns are kept when present and valid.
    label_column
        The column with the class (e.g. ``oncotree_code``); required for classification.
    classes
        Keep only patients of these classes; the others are excluded (listed, logged).
    slide_dir
        Folder of the slide files, named by ``slide_id``; ``None`` = no slide modality.
    missing_slides
        ``"error"`` (default) or ``"drop"`` slides whose file is not in ``slide_dir`` (logged);
        ``"keep"``: do not look for the files (features imported with ``wsi.features_from``).
    allow_missing_features
        Accept empty feature values (imputed per fold); ``True`` or modality names.
    slide_modality
        Name of the slide modality.

    Returns
    -------
    Cohort
        ``patients``: patient_id (= case_id) index; time, event, label as asked, the other
        metadata columns present (site, is_female, oncotree_code, age) and ``n_slides``.

    Raises
    ------
    CohortError
        Naming the file, the column and example cases.
    """
    p = Path(path)
    if task == "classification" and not label_column:
        raise CohortError(
            f"{p}: the classification task needs the column holding the class "
            "(inputs.label_column, e.g. oncotree_code)"
        )
    df = read_mcat_csv(p, text=[label_column] if label_column else [])
    _require(df, ["case_id"], p, "it identifies the patients")
    if task == "survival":
        _require(df, ["survival_months", "censorship"], p, "the survival outcome")
    if label_column:
        _require(df, [label_column], p, "the class label")
    _check_case_ids(df, p)
    df["case_id"] = df["case_id"].astype(str)

    excluded = _no_exclusions()
    if label_column:
        df, excluded = _select_classes(df, p, label_column=label_column, classes=classes)
        if df[label_column].astype(str).nunique() < 2 and task == "classification":
            raise CohortError(
                f"{p}: column {label_column!r} needs at least two classes for classification"
            )

    outcome_cols: list[str] = []
    survival_ok = {"survival_months", "censorship"} <= set(df.columns)
    if survival_ok:
        try:
            time, event = _survival(df, p)
        except CohortError as err:
            if task == "survival":
                raise
            log.warning("%s: survival columns left out of the patients: %s", p, err)
            survival_ok = False
        else:
            df["survival_months"], df["censorship"] = time, 1 - event
            outcome_cols += ["survival_months", "censorship"]
    if label_column:
        outcome_cols.append(label_column)

    reserved = {*MCAT_COLUMNS, *MCAT_IGNORED, *([label_column] if label_column else [])}
    columns: dict[str, list[str]] = {}
    for name, group in sorted(modalities.items()):
        try:
            columns[name] = group.select(list(df.columns), reserved=reserved)
        except CohortError as err:
            raise CohortError(f"{p}: modality {name!r}: {err}") from None
    owner: dict[str, str] = {}
    for name, cols in columns.items():
        for c in cols:
            if c in owner:
                raise CohortError(
                    f"{p}: column {c!r} is chosen by two modalities, {owner[c]!r} and {name!r}"
                )
            owner[c] = name
        if cols:
            non_numeric = [c for c in cols if not pd.api.types.is_numeric_dtype(df[c])]
            for c in non_numeric:
                df[c] = _numeric(df, c, p)
    unused = [c for c in df.columns if c not in reserved and c not in owner]
    if unused:
        log.info(
            "%s: %d feature column(s) belong to no modality and are not used: %s",
            p,
            len(unused),
            _examples(unused),
        )
    for c in MCAT_IGNORED:
        if c in df.columns and c not in owner:
            df = df.drop(columns=c)

    features = sorted(owner, key=list(df.columns).index)
    sheet = _collapse(df, p, outcome_columns=outcome_cols, feature_columns=features)
    n_multi = int((sheet["n_slides"] > 1).sum())
    log.info(
        "%s: %d slide row(s) -> %d patient(s) (%d with several slides)",
        p,
        len(df),
        len(sheet),
        n_multi,
    )

    meta = [c for c in MCAT_COLUMNS if c in sheet.columns and c not in ("case_id", "slide_id")]
    patients = sheet[["patient_id", *meta, "n_slides"]].copy()
    if survival_ok:
        patients["time"] = sheet["survival_months"].astype(float)
        patients["event"] = (1 - sheet["censorship"]).astype(np.int64)
    patients = patients.drop(columns=["survival_months", "censorship"], errors="ignore")
    if label_column:
        patients["label"] = sheet[label_column].astype(str)
        if label_column in patients.columns:
            patients = patients.drop(columns=label_column)
    lead = [c for c in ("patient_id", "time", "event", "label") if c in patients.columns]
    patients = patients[lead + [c for c in patients.columns if c not in lead]]
    where = f"{p} (one row per case_id)"
    patients_idx = _check_patients(patients, where, task=task)

    def allow(name: str) -> bool:
        if isinstance(allow_missing_features, bool):
            return allow_missing_features
        return name in allow_missing_features

    tables = {
        name: group_table(
            sheet[["patient_id", *columns[name]]],
            name,
            modalities[name],
            where=p,
            reserved={"patient_id"},
            allow_missing=allow(name),
        )
        for name in columns
    }
    slides = (
        _slide_rows(df, p, slide_dir=slide_dir, missing_slides=missing_slides)
        if slide_dir is not None
        else None
    )
    return Cohort(
        patients=patients_idx,
        slides=slides,
        omics=tables,
        slide_modality=slide_modality,
        excluded=excluded,
    )
