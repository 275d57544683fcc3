"""Build and check a slide sheet (``slides.tsv``) from a folder of slides or a GDC manifest.

The sheet has one row per slide: ``patient_id``, ``slide_id``, ``path`` (absolute, or relative
to the sheet's folder with ``relative=True``), ``mpp`` (empty: read from the slide; fill it in
for slides without resolution metadata). Rows are checked against
``config/schemas/slides.schema.yaml`` (:func:`validate_slide_sheet`); the workflow checks the
sheet again, with the patient sheet, when it loads the cohort (:mod:`mmlego.cohort.sheets`).

- :func:`sheet_from_folder`: every slide file under a folder (``.svs``, ``.tif(f)``, ``.ndpi``,
  ``.mrxs``, ...); the patient id comes from ``id_regex`` or, by default, from the TCGA barcode
  at the start of the file name (``TCGA-XX-XXXX``, the first 12 characters).
- :func:`sheet_from_gdc`: the slides of a GDC manifest (``id``, ``filename``, ...) or sample sheet
  (``File ID``, ``File Name``, ``Case ID``, ...) as downloaded by ``gdc-client`` into
  ``<slide_folder>/<file id>/<file name>`` (or flat in ``<slide_folder>``).

A slide id is the file name up to its first ``.`` (TCGA:
``TCGA-2F-A9KO-01Z-00-DX1.195576CF-....svs`` -> ``TCGA-2F-A9KO-01Z-00-DX1``).

Command line::

    python -m mmlego.wsi.find_slides --folder /data/slides --out slides.tsv
    python -m mmlego.wsi.find_slides --gdc gdc_sample_sheet.tsv --slides /data/gdc --out slides.tsv
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from collections.abc import Sequence
from functools import cache
from pathlib import Path

import jsonschema
import numpy as np
import pandas as pd
import yaml

from mmlego.io import write_tsv

log = logging.getLogger(__name__)

#: File extensions OpenSlide reads (lower case); ``.mrxs`` files come with a data folder.
SLIDE_EXTENSIONS = (
    ".svs",
    ".tif",
    ".tiff",
    ".ndpi",
    ".mrxs",
    ".scn",
    ".vms",
    ".vmu",
    ".bif",
    ".svslide",
)
#: A TCGA case id at the start of a file name: ``TCGA-<TSS>-<participant>``.
TCGA_CASE = re.compile(r"^(TCGA-[A-Za-z0-9]{2}-[A-Za-z0-9]{4})(?![A-Za-z0-9])")
SCHEMA_PATH = Path(__file__).resolve().parents[2] / "config" / "schemas" / "slides.schema.yaml"
COLUMNS = ["patient_id", "slide_id", "path", "mpp"]
#: The id regex the error for unmatched file names suggests: the name up to its first ``_``.
EXAMPLE_ID_REGEX = "^(?P<patient>[^_]+)_"
_N_EXAMPLES = 5


class SlideSheetError(ValueError):
    """A slide sheet cannot be built or is malformed; the message names files, rows and columns."""


def slide_id_from_name(name: str) -> str:
    """The file name up to its first ``.`` (TCGA: the barcode without the UUID)."""
    return Path(name).name.split(".", 1)[0]


def tcga_case_id(name: str) -> str | None:
    """``TCGA-XX-XXXX`` (the first 12 characters) if the file name starts with a TCGA barcode."""
    m = TCGA_CASE.match(Path(name).name)
    return m.group(1) if m else None


def _examples(values: Sequence[object]) -> str:
    vals = [str(v) for v in values]
    more = f" (and {len(vals) - _N_EXAMPLES} more)" if len(vals) > _N_EXAMPLES else ""
    return ", ".join(vals[:_N_EXAMPLES]) + more


def _is_slide(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in SLIDE_EXTENSIONS


def _patient_of(name: str, id_regex: re.Pattern[str] | None) -> str | None:
    if id_regex is None:
        return tcga_case_id(name)
    m = id_regex.search(name)
    if m is None:
        return None
    if "patient" in m.groupdict():
        return m.group("patient")
    return m.group(1) if m.groups() else m.group(0)


def sheet_from_folder(
    folder: str | os.PathLike,
    *,
    pattern: str = "*",
    id_regex: str | None = None,
    recursive: bool = True,
) -> pd.DataFrame:
    """A slide sheet of every slide file under ``folder`` (sorted by path).

    Parameters
    ----------
    folder
        Folder to search.
    pattern
        Glob pattern on file names (``"*.svs"``, ``"TCGA-*"``); files must also have a slide
        extension (:data:`SLIDE_EXTENSIONS`).
    id_regex
        Regular expression searched in the file name whose named group ``patient`` (else group
        1, else the whole match) is the patient id. Default: the TCGA case id (first 12
        characters of a TCGA barcode).
    recursive
        Search subfolders too.

    Returns
    -------
    pandas.DataFrame
        ``patient_id``, ``slide_id``, ``path`` (absolute), ``mpp`` (NaN), validated.
    """
    root = Path(folder)
    if not root.is_dir():
        raise SlideSheetError(f"slide folder not found: {root}")
    regex = re.compile(id_regex) if id_regex else None
    files = sorted(p for p in (root.rglob(pattern) if recursive else root.glob(pattern)))
    files = [p for p in files if _is_slide(p)]
    if not files:
        raise SlideSheetError(
            f"{root}: no slide files matching {pattern!r} with extension "
            f"{', '.join(SLIDE_EXTENSIONS)}"
        )
    rows, unmatched = [], []
    for p in files:
        patient = _patient_of(p.name, regex)
        if patient is None:
            unmatched.append(p.name)
            continue
        rows.append((patient, slide_id_from_name(p.name), str(p.resolve()), np.nan))
    if unmatched:
        how = f"id_regex {id_regex!r}" if id_regex else "a TCGA barcode (TCGA-XX-XXXX...)"
        raise SlideSheetError(
            f"{root}: cannot derive a patient id from {len(unmatched)} file name(s) with {how}: "
            f"{_examples(unmatched)}; give a regular expression whose group 'patient' finds "
            f"it in the file name: --id-regex {EXAMPLE_ID_REGEX!r} on the command line "
            "(id_regex in Python)"
        )
    sheet = pd.DataFrame(rows, columns=COLUMNS)
    validate_slide_sheet(sheet, source=str(root))
    return sheet


_GDC_COLUMNS = {
    "file_id": ("id", "File ID", "file_id"),
    "file_name": ("filename", "File Name", "file_name"),
    "case_id": ("Case ID", "case_submitter_id", "cases.submitter_id"),
}


def _column(df: pd.DataFrame, key: str, source: Path) -> str | None:
    for name in _GDC_COLUMNS[key]:
        if name in df.columns:
            return name
    if key == "file_name":
        raise SlideSheetError(
            f"{source}: not a GDC manifest or sample sheet: no file name column "
            f"(one of {list(_GDC_COLUMNS['file_name'])}); columns: {list(df.columns)}"
        )
    return None


def sheet_from_gdc(
    manifest_or_samplesheet: str | os.PathLike,
    slide_folder: str | os.PathLike,
    *,
    missing: str = "error",
) -> pd.DataFrame:
    """A slide sheet of the slides listed in a GDC manifest or sample sheet.

    Files are looked for at ``<slide_folder>/<file id>/<file name>`` (``gdc-client download``)
    and then at ``<slide_folder>/<file name>``. Rows that are not slides (other extensions) are
    skipped. The patient id is the sample sheet's ``Case ID`` when present (a single id), else
    the TCGA case id of the file name.

    Parameters
    ----------
    manifest_or_samplesheet
        Tab-separated GDC manifest (``id``, ``filename``, ``md5``, ``size``, ``state``) or
        sample sheet (``File ID``, ``File Name``, ``Case ID``, ``Sample ID``, ...).
    slide_folder
        Where the files were downloaded.
    missing
        ``'error'`` (default): raise listing the files not found; ``'skip'``: leave them out
        with a warning.

    Returns
    -------
    pandas.DataFrame
        ``patient_id``, ``slide_id``, ``path`` (absolute), ``mpp`` (NaN), plus ``file_id`` and
        ``sample_id`` / ``sample_type`` when the input has them; validated.
    """
    src, folder = Path(manifest_or_samplesheet), Path(slide_folder)
    if missing not in ("error", "skip"):
        raise ValueError(f"missing must be 'error' or 'skip', got {missing!r}")
    if not src.is_file():
        raise SlideSheetError(f"GDC manifest / sample sheet not found: {src}")
    if not folder.is_dir():
        raise SlideSheetError(f"slide folder not found: {folder}")
    df = pd.read_csv(src, sep="\t", dtype=str, keep_default_na=False)
    name_col = _column(df, "file_name", src)
    id_col = _column(df, "file_id", src)
    case_col = _column(df, "case_id", src)
    df = df[df[name_col].map(lambda n: Path(n).suffix.lower() in SLIDE_EXTENSIONS)]
    if df.empty:
        raise SlideSheetError(f"{src}: lists no slide files ({', '.join(SLIDE_EXTENSIONS)})")
    rows, absent, no_case = [], [], []
    for rec in df.to_dict("records"):
        name = rec[name_col]
        candidates = [folder / rec[id_col] / name] if id_col else []
        candidates.append(folder / name)
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            absent.append(name)
            continue
        case = rec.get(case_col, "").strip() if case_col else ""
        if not case or "," in case:
            case = tcga_case_id(name) or ""
        if not case:
            no_case.append(name)
            continue
        row = {
            "patient_id": case,
            "slide_id": slide_id_from_name(name),
            "path": str(path.resolve()),
            "mpp": np.nan,
        }
        if id_col:
            row["file_id"] = rec[id_col]
        for extra, col in (("sample_id", "Sample ID"), ("sample_type", "Sample Type")):
            if col in rec:
                row[extra] = rec[col]
        rows.append(row)
    if absent:
        msg = (
            f"{src}: {len(absent)} slide file(s) not found under {folder} (as <file id>/<name> "
            f"or <name>): {_examples(absent)}"
        )
        if missing == "error":
            raise SlideSheetError(msg)
        log.warning("%s; left out", msg)
    if no_case:
        raise SlideSheetError(
            f"{src}: no case id for {len(no_case)} file(s) (no 'Case ID' column and not a TCGA "
            f"file name): {_examples(no_case)}"
        )
    if not rows:
        raise SlideSheetError(f"{src}: none of the listed slides was found under {folder}")
    sheet = pd.DataFrame(rows)
    validate_slide_sheet(sheet, source=str(src))
    return sheet


@cache
def _schema() -> dict:
    return yaml.safe_load(SCHEMA_PATH.read_text())


def validate_slide_sheet(sheet: pd.DataFrame, *, source: str = "slide sheet") -> None:
    """Check every row against ``config/schemas/slides.schema.yaml`` and slide ids are unique.

    Raises :class:`SlideSheetError` naming the source, the rows (slide ids) and the columns.
    """
    missing = [c for c in ("patient_id", "slide_id", "path") if c not in sheet.columns]
    if missing:
        raise SlideSheetError(f"{source}: missing column(s) {missing}")
    validator = jsonschema.Draft202012Validator(_schema())
    problems = []
    for i, rec in enumerate(sheet.to_dict("records")):
        rec = {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in rec.items()}
        for err in validator.iter_errors(rec):
            col = err.path[0] if err.path else "row"
            problems.append(f"row {i + 1} ({rec.get('slide_id')}) column {col!r}: {err.message}")
    if problems:
        raise SlideSheetError(f"{source}: {len(problems)} problem(s): {_examples(problems)}")
    dup = sheet["slide_id"][sheet["slide_id"].duplicated(keep=False)]
    if len(dup):
        paths = sheet.loc[dup.index, "path"].tolist()
        raise SlideSheetError(
            f"{source}: slide_id must be unique; repeated {sorted(set(dup))[:_N_EXAMPLES]} "
            f"(files {_examples(paths)})"
        )


def write_slide_sheet(
    sheet: pd.DataFrame, out: str | os.PathLike, *, relative: bool = False
) -> None:
    """Validate and write ``sheet`` as TSV (atomically); ``relative`` stores paths relative to
    the sheet's folder (portable when slides and sheet move together)."""
    validate_slide_sheet(sheet, source=str(out))
    sheet = sheet.copy()
    if relative:
        base = Path(out).resolve().parent
        sheet["path"] = [os.path.relpath(p, base) for p in sheet["path"]]
    write_tsv(sheet, out)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: build a slide sheet from a folder or a GDC file (see the module doc)."""
    ap = argparse.ArgumentParser(
        prog="python -m mmlego.wsi.find_slides", description=__doc__.split("\n")[0]
    )
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--folder", help="folder of slide files")
    src.add_argument("--gdc", help="GDC manifest or sample sheet (TSV)")
    ap.add_argument("--slides", help="with --gdc: the folder the files were downloaded to")
    ap.add_argument("--pattern", default="*", help="with --folder: glob on file names")
    ap.add_argument("--id-regex", help="with --folder: regex giving the patient id")
    ap.add_argument("--skip-missing", action="store_true", help="with --gdc: skip absent files")
    ap.add_argument("--relative", action="store_true", help="paths relative to the sheet")
    ap.add_argument("--out", required=True, help="slides.tsv to write")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        if args.folder:
            sheet = sheet_from_folder(args.folder, pattern=args.pattern, id_regex=args.id_regex)
        else:
            if not args.slides:
                ap.error("--gdc needs --slides (the download folder)")
            missing = "skip" if args.skip_missing else "error"
            sheet = sheet_from_gdc(args.gdc, args.slides, missing=missing)
        write_slide_sheet(sheet, args.out, relative=args.relative)
    except (SlideSheetError, re.error) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    n_pat = sheet["patient_id"].nunique()
    print(f"wrote {args.out}: {len(sheet)} slides of {n_pat} patients")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
