"""A pan-cancer benchmark: every cohort of a folder of MCAT/PORPOISE CSVs, one configuration each.

The folder holds one CSV per cohort, ``<cohort>_all_clean.csv.gz`` (or ``.csv``), and optionally
its case splits ``splits/<cohort>/splits_{0..k-1}.csv`` or, as in MCAT's and PORPOISE's
repositories, ``splits/<scheme>/<cohort>/splits_{0..k-1}.csv`` (e.g. ``splits/5foldcv/``);
:func:`discover_cohorts` finds them (a cohort without split files gets folds made by the
workflow, ``splits.k`` of them); other files, and split folders of no cohort, are not read, and
are named in a warning.

Each cohort's modalities are the candidate column groups of the pan-cancer configuration
(``modalities``: RNA-seq, CNV and mutations by suffix, clinical by names) that the cohort really
has. :func:`check_groups` decides, by one rule for every cohort:

- a column is *usable* when it has at least two distinct non-missing numeric values (an absent,
  all-missing or constant column carries nothing);
- a group that chooses its columns by family (``suffix`` / ``unsuffixed``) is kept when it has
  at least ``min_columns`` usable columns; otherwise it is left out, as *absent* (no column at
  all) or *nearly empty* (fewer usable columns than ``min_columns``);
- a group that names its columns (``names``, e.g. ``age``, ``is_female``) keeps its usable named
  columns and is left out only when none is usable (a named column that is absent or constant
  in a cohort, e.g. ``is_female`` in a cohort of women only, is dropped from it and recorded).

:func:`cohort_config` then writes the cohort's full workflow configuration: the shared settings
merged over the defaults, the kept modalities only, the CSV and split files as inputs, and
``allow_missing_features`` switched on exactly when a kept column has empty values (imputed per
fold with training medians). Every decision is a :class:`GroupCheck`; :func:`groups_table` lists
them for the report.

A cohort left with fewer than two kept groups (:data:`~mmlego.config.MIN_MODALITIES`) has nothing
to merge or fuse: :func:`plan_cohorts` leaves it out of the run, and its groups are recorded as
left out with that reason, so that the report names it; the run stops only when every cohort is
left out. The plan is logged when it is made (:attr:`CohortPlan.summary`): a warning for each
cohort left out, a line for each other one with its modalities, folds and groups left out.

Reading a cohort's CSV to check its groups takes seconds, and Snakemake plans the workflow again
in every cluster job: :func:`cohort_checks` keeps each cohort's checks in a small JSON file,
reused while the CSV (path, size, modification time), the candidate groups, ``min_columns``
and this code are the same.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import os
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mmlego.cohort.mcat import MCAT_COLUMNS, MCAT_IGNORED, read_mcat_csv
from mmlego.cohort.sheets import SAFE_ID, CohortError, ColumnGroup, _examples
from mmlego.cohort.splits import SplitError, check_events
from mmlego.config import MIN_MODALITIES
from mmlego.io import write_json
from mmlego.pipeline.code import code_version
from mmlego.pipeline.config import merge as deep_merge
from mmlego.pipeline.config import pancancer_defaults

__all__ = [
    "CSV_PATTERN",
    "MIN_COLUMNS",
    "CohortPlan",
    "CohortSource",
    "GroupCheck",
    "check_cohort_events",
    "check_groups",
    "cohort_checks",
    "cohort_config",
    "deep_merge",
    "discover_cohorts",
    "groups_table",
    "plan_cohorts",
    "prefixed_settings",
    "rule_prefix",
    "usable_columns",
    "workflow_rules",
]

log = logging.getLogger(__name__)

CSV_PATTERN = re.compile(r"^(?P<name>.+)_all_clean\.csv(?:\.gz)?$")
"""A cohort's CSV in the folder: ``<cohort>_all_clean.csv.gz`` or ``.csv``."""
CSV_NAMES = "<cohort>_all_clean.csv.gz or <cohort>_all_clean.csv (lower-case extension)"
"""How the messages tell what a cohort's CSV is called."""
SPLIT_PATTERN = re.compile(r"^splits_(?P<fold>\d+)\.csv$")
MIN_COLUMNS = int(pancancer_defaults()["min_columns"])
"""Default fewest usable columns of a column-family group (``pancancer.min_columns``)."""
GROUP_COLUMNS = ["cohort", "modality", "selects", "n_columns", "n_usable", "kept", "reason"]


@dataclass(frozen=True)
class CohortSource:
    """One cohort of the folder: its name, CSV and given split files (empty: none given, the
    workflow makes the folds)."""

    name: str
    csv: str
    split_files: tuple[str, ...] = ()


def discover_cohorts(folder: str | os.PathLike, *, only: Sequence[str] = ()) -> list[CohortSource]:
    """The cohorts of ``folder`` (sorted by name), each with its split files if it has them.

    Parameters
    ----------
    folder
        Holds ``<cohort>_all_clean.csv.gz`` / ``.csv`` files and optionally
        ``splits/<cohort>/splits_<k>.csv`` or ``splits/<scheme>/<cohort>/splits_<k>.csv``
        (k = 0, 1, ...; the scheme folder, e.g. ``5foldcv``, as in MCAT's repository).
    only
        Keep only these cohorts (empty: all); a name not found is an error.

    Other files of the folder (hidden ones aside) and folders other than ``splits`` are not
    cohorts: they are logged as a warning, with the name a cohort's CSV must have. So are the
    folders under ``splits`` of no cohort, and a cohort's split folder without split files.

    Raises
    ------
    CohortError
        Naming the folder or file: no such folder, no cohort in it (listing what it holds), a
        cohort name that cannot be a file name, a cohort given both as ``.csv`` and ``.csv.gz``,
        split files not numbered 0..k-1, split files of one cohort in two folders, or ``only``
        naming a cohort that is not there.
    """
    base = Path(folder)
    if not base.is_dir():
        raise CohortError(f"pancancer.folder: {base} is not a folder")
    found: dict[str, Path] = {}
    ignored: list[str] = []
    for path in sorted(base.iterdir()):
        match = CSV_PATTERN.fullmatch(path.name)
        if not match or not path.is_file():
            if not path.name.startswith(".") and path.name != "splits":
                ignored.append(f"{path.name}/" if path.is_dir() else path.name)
            continue
        name = match.group("name")
        if not re.fullmatch(SAFE_ID, name):
            raise CohortError(
                f"{path}: the cohort name {name!r} has characters other than letters, digits, "
                "'.', '_' and '-' (it names the cohort's results folder)"
            )
        if name in found:
            raise CohortError(f"{base}: cohort {name!r} is given twice: {found[name]} and {path}")
        found[name] = path
    if not found:
        raise CohortError(
            f"pancancer.folder: {base} has no cohort file {CSV_NAMES}; it holds "
            + (_examples(ignored) if ignored else "no other file")
        )
    if ignored:
        log.warning(
            "pancancer.folder: %s: ignored %d item(s) not named %s: %s",
            base,
            len(ignored),
            CSV_NAMES,
            _examples(ignored),
        )
    absent = [c for c in only if c not in found]
    if absent:
        raise CohortError(
            f"pancancer.cohorts: {absent} not in {base}; its cohorts are {sorted(found)}"
        )
    names = [c for c in sorted(found) if not only or c in only]
    splits = _cohort_splits(base, found)
    return [CohortSource(n, str(found[n]), splits.get(n, ())) for n in names]


def _cohort_splits(base: Path, cohorts: Collection[str]) -> dict[str, tuple[str, ...]]:
    """Each cohort's split files, in ``splits/<cohort>/`` or ``splits/<scheme>/<cohort>/``.

    Warns of the folders under ``splits/`` that belong to no cohort and of a cohort's split
    folder without split files (its folds are made by the workflow); raises when the split
    files of a cohort are in two folders.
    """
    root = base / "splits"
    if not root.is_dir():
        return {}
    folders: dict[str, list[Path]] = {}  # cohort -> its split folders
    unused: list[str] = []
    for entry in sorted(p for p in root.iterdir() if p.is_dir()):
        if entry.name in cohorts:
            folders.setdefault(entry.name, []).append(entry)
            continue
        inner = sorted(p for p in entry.iterdir() if p.is_dir())  # a scheme: its cohorts
        for folder in inner:
            if folder.name in cohorts:
                folders.setdefault(folder.name, []).append(folder)
            else:
                unused.append(f"{folder.relative_to(base)}/")
        if not inner:
            unused.append(f"{entry.relative_to(base)}/")
    if unused:
        log.warning(
            "pancancer.folder: %s: ignored %d split folder(s) of no cohort (split files go to "
            "splits/<cohort>/ or splits/<scheme>/<cohort>/): %s",
            base,
            len(unused),
            _examples(unused),
        )
    out = {}
    for cohort, candidates in sorted(folders.items()):
        given = {f: files for f in candidates if (files := _split_files(f))}
        if len(given) > 1:
            raise CohortError(
                f"{base}: cohort {cohort!r} has split files in {len(given)} folders, "
                f"{[str(f.relative_to(base)) for f in given]}; keep those of one"
            )
        if not given:
            log.warning(
                "%s: no split file splits_<k>.csv for cohort %r: its folds are made by the "
                "workflow",
                ", ".join(str(f) for f in candidates),
                cohort,
            )
        out[cohort] = next(iter(given.values()), ())
    return out


def _split_files(folder: Path) -> tuple[str, ...]:
    """``splits_0.csv`` ... ``splits_<k-1>.csv`` of a cohort's split folder (empty: none)."""
    folds = {
        int(m.group("fold")): p
        for p in folder.iterdir()
        if (m := SPLIT_PATTERN.fullmatch(p.name)) and p.is_file()
    }
    if not folds:
        return ()
    if sorted(folds) != list(range(len(folds))):
        raise CohortError(
            f"{folder}: split files must be numbered splits_0.csv ... splits_<k-1>.csv without "
            f"gaps; found folds {sorted(folds)}"
        )
    return tuple(str(folds[k]) for k in range(len(folds)))


def usable_columns(values: pd.DataFrame) -> list[str]:
    """Columns with at least two distinct non-missing numeric values (in column order)."""
    numeric = values.apply(pd.to_numeric, errors="coerce")
    return [str(c) for c in numeric.columns[numeric.nunique(dropna=True).to_numpy() >= 2]]


@dataclass(frozen=True)
class GroupCheck:
    """The decision on one candidate column group of one cohort."""

    cohort: str
    modality: str
    selects: str  # how the group chooses its columns (ColumnGroup.describe)
    n_columns: int  # columns of the group present in the CSV
    n_usable: int  # of them with at least two distinct values
    kept: bool
    reason: str  # why left out; for a kept group, what was dropped from it (or "")
    columns: Mapping[str, Any] = field(default_factory=dict)  # the spec to use when kept
    has_missing: bool = False  # a kept column has empty values


def check_groups(
    sheet: pd.DataFrame,
    groups: Mapping[str, Mapping[str, Any]],
    *,
    cohort: str,
    min_columns: int = MIN_COLUMNS,
) -> list[GroupCheck]:
    """Which candidate column groups a cohort has (see the module docstring for the rule).

    Parameters
    ----------
    sheet
        The cohort's CSV (one row per slide or per patient; only the columns are compared).
    groups
        Modality name -> its ``columns`` spec (``suffix``, ``names`` or ``unsuffixed``).
    cohort
        The cohort's name, for the records and messages.
    min_columns
        Fewest usable columns of a column-family group (``suffix`` / ``unsuffixed``).

    Returns
    -------
    list of GroupCheck
        One per group, in the order of ``groups``.
    """
    if min_columns < 1:
        raise ValueError(f"min_columns must be at least 1, got {min_columns}")
    reserved = {*MCAT_COLUMNS, *MCAT_IGNORED}
    present = [str(c) for c in sheet.columns]
    out = []
    for name, spec in groups.items():
        try:
            group = ColumnGroup.from_config(spec)
        except ValueError as err:
            raise CohortError(f"modalities.{name}.columns: {err}") from None
        if group.names:
            out.append(_check_named(sheet, name, group, cohort=cohort, present=present))
            continue
        cols = group.select(present, reserved=reserved)
        usable = usable_columns(sheet[cols]) if cols else []
        if not cols:
            kept, reason = False, f"absent: no {group.describe()}"
        elif len(usable) < min_columns:
            kept, reason = (
                False,
                f"nearly empty: {len(usable)} usable of {len(cols)} column(s), fewer than "
                f"min_columns = {min_columns}",
            )
        else:
            kept, reason = True, ""
        out.append(
            GroupCheck(
                cohort=cohort,
                modality=name,
                selects=group.describe(),
                n_columns=len(cols),
                n_usable=len(usable),
                kept=kept,
                reason=reason,
                columns=dict(spec) if kept else {},
                has_missing=kept and bool(sheet[cols].isna().to_numpy().any()),
            )
        )
    return out


def _check_named(
    sheet: pd.DataFrame, name: str, group: ColumnGroup, *, cohort: str, present: list[str]
) -> GroupCheck:
    cols = [c for c in group.names if c in present]
    usable = usable_columns(sheet[cols]) if cols else []
    dropped = [
        f"{c} {'absent' if c not in cols else 'constant or empty'}"
        for c in group.names
        if c not in usable
    ]
    kept = bool(usable)
    if kept:
        reason = f"left out of the group: {', '.join(dropped)}" if dropped else ""
    else:
        reason = f"absent or constant: none of {list(group.names)} is usable ({', '.join(dropped)})"
    return GroupCheck(
        cohort=cohort,
        modality=name,
        selects=group.describe(),
        n_columns=len(cols),
        n_usable=len(usable),
        kept=kept,
        reason=reason,
        columns={"names": usable} if kept else {},
        has_missing=kept and bool(sheet[usable].isna().to_numpy().any()),
    )


def _cohort_groups(
    sheet: pd.DataFrame,
    source: CohortSource,
    groups: Mapping[str, Mapping[str, Any]],
    *,
    min_columns: int,
) -> list[GroupCheck]:
    try:
        return check_groups(sheet, groups, cohort=source.name, min_columns=min_columns)
    except (CohortError, KeyError, ValueError) as err:
        raise CohortError(f"{source.csv} (cohort {source.name!r}): {err}") from None


@functools.cache
def _checks_code() -> str:
    """The version of the code that checks a cohort (this module and what it imports)."""
    return code_version(__file__)


def cohort_checks(
    source: CohortSource,
    groups: Mapping[str, Mapping[str, Any]],
    *,
    min_columns: int,
    cache: str | os.PathLike | None = None,
) -> list[GroupCheck]:
    """:func:`check_groups` on the cohort's CSV, and, when it keeps enough groups to run,
    :func:`check_cohort_events` (errors name the file).

    With ``cache`` (a folder) the checks are kept in ``<cache>/<cohort>.json`` and read from
    there, without reading the CSV, while the CSV's path, size and modification time, ``groups``,
    ``min_columns`` and the code of this module are the same. A failed check is never kept."""
    stat = Path(source.csv).stat()
    key = json.dumps(
        {
            "csv": str(Path(source.csv).resolve()),
            "size": stat.st_size,
            "mtime_ns": stat.st_mtime_ns,
            "groups": groups,
            "min_columns": min_columns,
            "code": _checks_code(),
        },
        sort_keys=True,
        default=str,
    )
    kept = Path(cache, f"{source.name}.json") if cache is not None else None
    if kept is not None and kept.is_file():
        try:
            saved = json.loads(kept.read_text())
            if saved["key"] == key:
                return [GroupCheck(**c) for c in saved["checks"]]
        except (OSError, ValueError, KeyError, TypeError):
            pass  # unreadable or from another version: checked again and rewritten
    sheet = read_mcat_csv(source.csv)
    checks = _cohort_groups(sheet, source, groups, min_columns=min_columns)
    if not _too_few(checks):
        check_cohort_events(sheet, source)
    if kept is not None:
        write_json({"key": key, "checks": [dataclasses.asdict(c) for c in checks]}, kept)
    return checks


def check_cohort_events(sheet: pd.DataFrame, source: CohortSource) -> None:
    """Raise :class:`CohortError` when the cohort has too few events (patients with
    censorship 0) for its survival to be evaluated with any folds (:func:`~mmlego.cohort.
    splits.check_events`), before the run starts. Only when every censorship value is 0 or 1:
    the cohort's import names other values."""
    if not {"case_id", "censorship"} <= set(sheet.columns):
        return
    censorship = pd.to_numeric(sheet["censorship"], errors="coerce")
    if not censorship.isin([0, 1]).all():
        return
    try:
        check_events(
            sheet.loc[censorship == 0, "case_id"].nunique(),
            where=f"{source.csv} (cohort {source.name!r})",
        )
    except SplitError as err:
        raise CohortError(
            f"{err} (run the others: list them in pancancer.cohorts, or move its file away)"
        ) from None


def cohort_config(
    defaults: Mapping[str, Any],
    shared: Mapping[str, Any],
    source: CohortSource,
    checks: Iterable[GroupCheck],
    *,
    results: str,
) -> dict[str, Any]:
    """The full workflow configuration of one cohort of the pan-cancer run.

    ``shared`` (the pan-cancer configuration without its ``pancancer`` section) is merged over
    ``defaults`` (``config/config.yaml``); the modalities are the kept groups only, each with
    the shared settings of its name merged over the default modality of that name. With given
    split files ``splits.k`` is their number.

    Raises
    ------
    CohortError
        When fewer than :data:`~mmlego.config.MIN_MODALITIES` groups of the cohort are kept.
    """
    checks = list(checks)
    too_few = _too_few(checks)
    if too_few:
        raise CohortError(f"{source.csv} (cohort {source.name!r}): {too_few}")
    kept = [c for c in checks if c.kept]
    shared = {k: v for k, v in shared.items() if k != "pancancer"}
    config = deep_merge(defaults, {k: v for k, v in shared.items() if k != "modalities"})
    default_mods = defaults.get("modalities") or {}
    shared_mods = shared.get("modalities") or {}
    config["modalities"] = {
        c.modality: {
            **deep_merge(default_mods.get(c.modality) or {}, shared_mods.get(c.modality) or {}),
            "columns": dict(c.columns),
        }
        for c in kept
    }
    config["cohort"] = source.name
    config["results"] = results
    inputs = {
        k: v
        for k, v in (config.get("inputs") or {}).items()
        if k not in ("patients", "slides", "tables", "slide_dir")
    }
    inputs["mcat_csv"] = source.csv
    inputs["split_files"] = list(source.split_files)
    inputs["allow_missing_features"] = bool(inputs.get("allow_missing_features")) or any(
        c.has_missing for c in kept
    )
    config["inputs"] = inputs
    if source.split_files:
        config["splits"] = {**config.get("splits", {}), "k": len(source.split_files)}
    return config


def _too_few(checks: Sequence[GroupCheck]) -> str:
    """Why a cohort with fewer than MIN_MODALITIES kept groups cannot run ("" when it can)."""
    kept = [c.modality for c in checks if c.kept]
    if len(kept) >= MIN_MODALITIES:
        return ""
    why = "; ".join(f"{c.modality}: {c.reason}" for c in checks if not c.kept)
    return (
        f"{len(kept)} usable column group(s) {kept}, fewer than the {MIN_MODALITIES} that "
        f"LegoMerge and LegoFuse combine ({why})"
    )


def _left_out(checks: Sequence[GroupCheck]) -> tuple[GroupCheck, ...]:
    """The checks of a cohort that is not run: its usable groups recorded as left out too."""
    reason = f"usable, but the cohort is left out: fewer than {MIN_MODALITIES} usable groups"
    return tuple(
        dataclasses.replace(c, kept=False, reason=reason, columns={}, has_missing=False)
        if c.kept
        else c
        for c in checks
    )


def rule_prefix(cohort: str) -> str:
    """The prefix of a cohort's rule names in the pan-cancer workflow (an identifier + ``_``)."""
    ident = re.sub(r"\W", "_", cohort)
    return f"{'c' if ident[:1].isdigit() else ''}{ident}_"


_RULE_NAMES = "a cohort's rules are named <cohort>_<rule>, with '.' and '-' as '_'"
_RULE = re.compile(r"^\s*(?:rule|checkpoint)\s+(\w+)\s*:", re.MULTILINE)
_INCLUDE = re.compile(r"^\s*include:\s*[\"'](.+?)[\"']", re.MULTILINE)


def workflow_rules(snakefile: str | os.PathLike) -> list[str]:
    """The names of the rules that a Snakefile and the files it includes define, each whatever
    the conditions around it (sorted): those the pan-cancer workflow copies for every cohort
    (``workflow/Snakefile``) and its own (``workflow/pancancer.smk``)."""
    names: set[str] = set()
    todo, seen = [Path(snakefile)], set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        text = path.read_text()
        names.update(_RULE.findall(text))
        todo += [(path.parent / inc).resolve() for inc in _INCLUDE.findall(text)]
    return sorted(names)


def _check_rule_names(
    plans: Sequence[CohortPlan], rules: Iterable[str], taken: Iterable[str]
) -> None:
    """Raise when two cohorts' copies of ``rules`` (``<prefix><rule>``), or one of them and a
    rule of the pan-cancer workflow (``taken``), would have the same name."""
    where = {p.name: f"{p.name!r} ({p.source.csv})" for p in plans}
    prefixes = [p.prefix for p in plans]
    same = sorted({p for p in prefixes if prefixes.count(p) > 1})
    if same:
        names = [where[p.name] for p in plans if p.prefix in same]
        raise CohortError(
            f"pancancer.folder: cohorts {', '.join(names)} give their rules the same names "
            f"(prefix {same[0]!r}): rename the file of one of them ({_RULE_NAMES})"
        )
    owner = {name: ("", name) for name in taken}  # rule name -> (cohort, the rule it copies)
    for plan in plans:
        for rule in sorted(rules):
            full = plan.prefix + rule
            if full not in owner:
                owner[full] = (plan.name, rule)
                continue
            other, other_rule = owner[full]
            if not other:
                raise CohortError(
                    f"pancancer.folder: cohort {where[plan.name]} would name its copy of rule "
                    f"{rule!r} {full!r}, a rule of the pan-cancer workflow itself: rename its "
                    f"file, e.g. to {plan.name}_cohort_all_clean.csv.gz ({_RULE_NAMES})"
                )
            raise CohortError(
                f"pancancer.folder: cohorts {where[other]} and {where[plan.name]} would both "
                f"have a rule named {full!r}, their copies of rules {other_rule!r} and {rule!r}: "
                f"rename the file of one of them ({_RULE_NAMES})"
            )


def groups_table(checks: Iterable[GroupCheck]) -> pd.DataFrame:
    """One row per (cohort, candidate group): columns found, usable, kept and why."""
    rows = [{k: getattr(c, k) for k in GROUP_COLUMNS} for c in checks]
    table = pd.DataFrame(rows, columns=GROUP_COLUMNS)
    table["kept"] = table["kept"].astype(bool)
    for col in ("n_columns", "n_usable"):
        table[col] = table[col].astype(np.int64)
    return table


def prefixed_settings(settings: Mapping[str, Any], prefixes: Iterable[str]) -> dict[str, Any]:
    """Per-rule settings (e.g. a profile's ``set-resources`` or ``groups``) extended to the
    prefixed copies of the rules: ``<prefix><rule>`` gets the entry of ``<rule>`` unless it has
    its own. Entries of other names are kept as they are."""
    out = dict(settings)
    for prefix in prefixes:
        for rule, value in settings.items():
            out.setdefault(f"{prefix}{rule}", value)
    return out


@dataclass(frozen=True)
class CohortPlan:
    """One cohort of the pan-cancer run: where it comes from, its groups and its config; or,
    for a cohort that is not run, why (``left_out``; its ``config`` is then empty)."""

    source: CohortSource
    checks: tuple[GroupCheck, ...]
    config: dict[str, Any]
    left_out: str = ""

    @property
    def runs(self) -> bool:
        return not self.left_out

    @property
    def name(self) -> str:
        return self.source.name

    @property
    def prefix(self) -> str:
        return rule_prefix(self.source.name)

    @property
    def modalities(self) -> list[str]:
        return [c.modality for c in self.checks if c.kept]

    @property
    def folds(self) -> str:
        """Where the cohort's folds come from: ``given in <split folder>/`` (relative to the
        cohort folder) or ``made by the workflow``; empty for a cohort left out."""
        if not self.runs:
            return ""
        if not self.source.split_files:
            return "made by the workflow"
        folder = Path(self.source.split_files[0]).parent
        return f"given in {folder.relative_to(Path(self.source.csv).parent)}/"

    @property
    def summary(self) -> str:
        """The plan of the cohort in one line: why it is left out; or its modalities, folds,
        the groups left out and the columns left out of kept groups, with the reasons."""
        if not self.runs:
            return (
                f"cohort {self.name!r} ({self.source.csv}) is left out of the run: {self.left_out}"
            )
        line = (
            f"cohort {self.name!r}: modalities {', '.join(self.modalities)}; "
            f"{self.config['splits']['k']} folds {self.folds}"
        )
        left_out = [f"{c.modality} ({c.reason})" for c in self.checks if not c.kept]
        if left_out:
            line += f"; left out: {', '.join(left_out)}"
        return "".join(
            [line, *(f"; {c.modality}: {c.reason}" for c in self.checks if c.kept and c.reason)]
        )


def plan_cohorts(
    config: Mapping[str, Any],
    defaults: Mapping[str, Any],
    *,
    rules: Iterable[str] = (),
    taken: Iterable[str] = (),
    cache: str | os.PathLike | None = None,
) -> list[CohortPlan]:
    """Every cohort of ``config["pancancer"]["folder"]`` with its workflow configuration.

    ``config`` is the pan-cancer configuration: its ``pancancer`` section (``folder``,
    ``cohorts``, ``min_columns``, ``results``) and the settings shared by every cohort, whose
    ``modalities`` are the candidate column groups (each with ``columns``).

    A cohort with fewer than :data:`~mmlego.config.MIN_MODALITIES` usable groups is planned as
    left out (:attr:`CohortPlan.runs` false). Raises :class:`CohortError` when every cohort is,
    and when the rule names of the run would clash: each cohort that runs gets a copy of every
    one of ``rules`` named ``<prefix><rule>`` (:func:`rule_prefix`), and these names must differ
    from each other and from ``taken``, the workflow's own rules (see :func:`workflow_rules`).
    Also raises when a cohort that runs has too few events (:func:`check_cohort_events`).
    ``cache``: where the cohorts' checks are kept between plans (:func:`cohort_checks`).
    """
    pan = config["pancancer"]
    groups = {}
    for name, spec in (config.get("modalities") or {}).items():
        if not isinstance(spec, Mapping) or "columns" not in spec:
            raise CohortError(
                f"modalities.{name}.columns: every candidate group of the pan-cancer run "
                "chooses its columns (suffix, names or unsuffixed)"
            )
        groups[name] = spec["columns"]
    if not groups:
        raise CohortError("modalities: the pan-cancer run needs at least one candidate group")
    plans = []
    for source in discover_cohorts(pan["folder"], only=pan.get("cohorts") or ()):
        checks = cohort_checks(
            source, groups, min_columns=pan.get("min_columns", MIN_COLUMNS), cache=cache
        )
        too_few = _too_few(checks)
        if too_few:
            plans.append(CohortPlan(source, _left_out(checks), {}, left_out=too_few))
            continue
        cfg = cohort_config(defaults, config, source, checks, results=pan["results"])
        plans.append(CohortPlan(source, tuple(checks), cfg))
    running = [p for p in plans if p.runs]
    if not running:
        why = "; ".join(f"{p.source.csv}: {p.left_out}" for p in plans)
        raise CohortError(f"pancancer.folder: no cohort can be run ({why})")
    _check_rule_names(running, rules, taken)
    for p in plans:
        log.log(logging.INFO if p.runs else logging.WARNING, "%s", p.summary)
    return plans
