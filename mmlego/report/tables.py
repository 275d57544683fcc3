"""The report's tables as DataFrames or (header, rows): cohort, models, folds, paired
differences, stage run times and the compute cost of the MM-Lego approaches.

Rendering to HTML is :mod:`mmlego.report.html`'s job; nothing here knows about markup except
:class:`Cell`, a cell with a main value and a muted note under it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mmlego.evaluation.evaluate import (
    LOWER_IS_BETTER,
    ORACLE_MODEL,
    is_count,
    per_class_results,
    summarise,
    summarise_differences,
)
from mmlego.pipeline.models import compute_approaches

PathLike = str | os.PathLike

#: Metrics shown first, in this order, when present; others follow alphabetically.
METRIC_ORDER = (
    "c_index",
    "c_index_complete",
    "c_index_uno",
    "td_auc",
    "ibs",
    "auc",
    "average_precision",
    "balanced_accuracy",
    "f1",
)

#: Approaches of the compute-cost table: (label, benchmark rule, adds the blocks' cost).
COMPUTE_APPROACHES = compute_approaches()


@dataclass(frozen=True)
class Cell:
    """A table cell: a main text and an optional smaller note (e.g. the interval)."""

    text: str
    note: str = ""

    def __str__(self) -> str:
        return f"{self.text} {self.note}".strip()


def metric_order(metrics: Iterable[str]) -> list[str]:
    """Known metrics first (:data:`METRIC_ORDER`), then the rest alphabetically, counts last."""
    names = set(metrics)
    first = [m for m in METRIC_ORDER if m in names]
    counts = sorted(m for m in names if is_count(m))
    rest = sorted(names - set(first) - set(counts))
    return first + rest + counts


# --------------------------------------------------------------------------------------------
# cohort


def cohort_summary(patients: pd.DataFrame) -> list[tuple[str, Any]]:
    """(label, value) pairs: patients, events, censoring %, median follow-up, label counts."""
    out: list[tuple[str, Any]] = [("patients", len(patients))]
    if "event" in patients.columns:
        events = int(pd.to_numeric(patients["event"], errors="coerce").fillna(0).sum())
        out.append(("events (deaths observed)", events))
        if len(patients):
            out.append(("censored %", f"{100.0 * (1 - events / len(patients)):.1f}"))
    if "time" in patients.columns:
        out.append(("median follow-up time", float(pd.to_numeric(patients["time"]).median())))
    if "label" in patients.columns:
        counts = patients["label"].astype(str).value_counts().sort_index()
        out.append(("labels", ", ".join(f"{k}: {v}" for k, v in counts.items())))
    return out


def excluded_table(excluded: pd.DataFrame, *, n_examples: int = 5) -> list[tuple[str, int, str]]:
    """(reason, patients, examples) per reason of the patients left out of the cohort on purpose
    (``patient_id, reason``: the cohort folder's ``excluded.tsv``), most patients first."""
    rows = []
    for reason, ids in excluded.groupby("reason", sort=False)["patient_id"]:
        shown = ", ".join(map(str, ids.iloc[:n_examples]))
        rows.append((str(reason), len(ids), shown + (", ..." if len(ids) > n_examples else "")))
    return sorted(rows, key=lambda r: (-r[1], r[0]))


def availability_tables(availability: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per-modality counts and per-combination counts from a patient x modality boolean table."""
    avail = availability.set_index("patient_id") if "patient_id" in availability else availability
    avail = avail.astype(bool)
    n = len(avail)
    per = pd.DataFrame(
        {
            "modality": list(avail.columns),
            "patients": [int(avail[c].sum()) for c in avail.columns],
            "percent": [100.0 * avail[c].sum() / n if n else np.nan for c in avail.columns],
        }
    )
    combos = avail.apply(lambda r: "+".join(c for c in avail.columns if r[c]) or "(none)", axis=1)
    combo = combos.value_counts().rename_axis("modalities").reset_index(name="patients")
    combo = combo.sort_values(["patients", "modalities"], ascending=[False, True], kind="stable")
    return per, combo


# --------------------------------------------------------------------------------------------
# metrics


def _ci_note(low: float, high: float, n: int) -> str:
    ci = f"[{low:.3f}, {high:.3f}] " if np.isfinite(low) and np.isfinite(high) else ""
    return f"{ci}n={n}"


def model_summary_table(
    metrics: pd.DataFrame, *, rank_by: str, n_boot: int = 1000, seed: int = 0
) -> tuple[list[str], list[list]]:
    """Header and rows of 'mean ± sd' (note: bootstrap 95% CI, folds) per model and metric.

    Rows are sorted by the mean of ``rank_by``, best first (lowest for IBS). Counts (``n_*``)
    show their total over the folds, a whole number: each patient is validated in one fold, so
    ``n_patients`` is the number of patients the model was scored on. Cells are :class:`Cell`
    objects (``str()`` gives 'mean ± sd [low, high] n=k').
    """
    summary = summarise(metrics, n_boot=n_boot, seed=seed).set_index(["model", "metric"])
    counts = metrics[metrics["metric"].map(is_count)]
    totals = counts.groupby(["model", "metric"])["value"].sum(min_count=1)
    metric_names = metric_order(metrics["metric"].unique())
    means = summary["mean"].unstack()
    key = means[rank_by] if rank_by in means.columns else pd.Series(np.nan, means.index)
    ascending = rank_by in LOWER_IS_BETTER
    order = key.sort_values(ascending=ascending, na_position="last", kind="stable").index
    rows = []
    for model in order:
        row: list[Any] = [model]
        for m in metric_names:
            if (model, m) not in summary.index or not np.isfinite(summary.at[(model, m), "mean"]):
                row.append("–")
                continue
            s = summary.loc[(model, m)]
            if is_count(m):
                row.append(f"{totals[(model, m)]:.0f}")
                continue
            sd = f"{s['sd']:.3f}" if np.isfinite(s["sd"]) else "–"
            note = _ci_note(s["ci_low"], s["ci_high"], int(s["n_folds"]))
            row.append(Cell(f"{s['mean']:.3f} ± {sd}", note))
        rows.append(row)
    return ["model", *metric_names], rows


def per_fold_table(
    metrics: pd.DataFrame, *, model_order: Sequence[str] | None = None
) -> tuple[list[str], list[list]]:
    """Header and rows of one line per (model, fold) with every metric as a column.

    Models follow ``model_order`` (e.g. the ranking of the summary table), then the rest.
    """
    metric_names = metric_order(metrics["metric"].unique())
    wide = metrics.pivot_table(
        index=["model", "fold"], columns="metric", values="value", aggfunc="first", dropna=False
    )
    rank = {m: i for i, m in enumerate(model_order or [])}
    keys = sorted(wide.index, key=lambda mf: (rank.get(mf[0], len(rank)), str(mf[0])))
    rows = []
    for model, fold in keys:
        values = wide.loc[(model, fold)]
        row: list[Any] = [model, fold]
        for m in metric_names:
            v = values.get(m, np.nan)
            row.append(int(v) if is_count(m) and np.isfinite(v) else float(v))
        rows.append(row)
    return ["model", "fold", *metric_names], rows


def per_class_table(
    pooled: Mapping[str, pd.DataFrame],
    classes: Sequence[str],
    *,
    model_order: Sequence[str] | None = None,
) -> tuple[list[str], list[list]]:
    """Header and rows of one line per (model, class) of the validation predictions (``pooled``:
    one table per model with a ``fold`` column): the class's validation patients over the folds,
    the share of them predicted as it (recall) and its one-vs-rest AUC, mean ± SD over the folds
    with a value (n). Classes in the order of ``classes`` (the cohort's)."""
    rank = {m: i for i, m in enumerate(model_order or [])}
    rows = []
    for model in sorted(pooled, key=lambda m: (rank.get(m, len(rank)), m)):
        # a fold without a class among its training patients has no column for it: pooling
        # the folds leaves that column empty on its rows
        folds = pd.concat(
            [
                per_class_results(g.dropna(axis=1, how="all"), classes=classes)
                for _, g in pooled[model].groupby("fold", sort=True)
            ]
        )
        for c in classes:
            sub = folds[folds["class"] == c]
            n = int(sub["patients"].sum())
            recall = float(sub["correct"].sum() / n) if n else np.nan
            aucs = sub["auc"].dropna()
            sd = f" ± {aucs.std(ddof=1):.3f}" if len(aucs) > 1 else ""
            auc = Cell(f"{aucs.mean():.3f}{sd}", f"n={len(aucs)}") if len(aucs) else Cell("–")
            rows.append([model, c, n, recall, auc])
    return ["model", "class", "patients", "recall", "auc (one vs rest)"], rows


def paired_summary_table(
    diffs: pd.DataFrame, *, rank_by: str, n_boot: int = 1000, seed: int = 0
) -> tuple[list[str], list[list]]:
    """Header and rows of the paired differences: one row per model, one column per metric.

    A cell reads '+0.034 ± 0.050' with the note '[low, high] wins 4/5' (bootstrap 95% CI of
    the mean difference). Rows are sorted by the mean difference in ``rank_by`` (best first),
    the metrics as in :func:`metric_order`.
    """
    summary = summarise_differences(diffs, n_boot=n_boot, seed=seed)
    if summary.empty:
        return ["model"], []
    table = summary.set_index(["model", "metric"])
    metric_names = metric_order(summary["metric"].unique())
    key = table["mean_diff"].unstack()
    key = key[rank_by] if rank_by in key.columns else pd.Series(np.nan, key.index)
    order = key.sort_values(
        ascending=rank_by in LOWER_IS_BETTER, na_position="last", kind="stable"
    ).index
    rows = []
    for model in order:
        row: list[Any] = [model]
        for m in metric_names:
            if (model, m) not in table.index:
                row.append("–")
                continue
            s = table.loc[(model, m)]
            sd = f"{s['sd_diff']:.3f}" if np.isfinite(s["sd_diff"]) else "–"
            ci = f"[{s['ci_low']:+.3f}, {s['ci_high']:+.3f}] " if np.isfinite(s["ci_low"]) else ""
            note = f"{ci}wins {int(s['n_wins'])}/{int(s['n_folds'])}"
            row.append(Cell(f"{s['mean_diff']:+.3f} ± {sd}", note))
        rows.append(row)
    return ["model", *metric_names], rows


def oracle_values(metrics: pd.DataFrame, *, metric: str = "c_index") -> np.ndarray:
    """The oracle's finite per-fold values of ``metric`` (synthetic cohorts)."""
    rows = metrics[(metrics["model"] == ORACLE_MODEL) & (metrics["metric"] == metric)]
    values = rows["value"].astype(float).to_numpy()
    return values[np.isfinite(values)]


# --------------------------------------------------------------------------------------------
# benchmarks


def _read_benchmark(path: PathLike, rule: str) -> pd.DataFrame:
    try:
        df = pd.read_csv(path, sep="\t", na_values=["NA", "-", ""])
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
        raise ValueError(f"benchmark file {path} (rule {rule}) unreadable: {err}") from err
    if "s" not in df.columns:
        raise ValueError(f"benchmark file {path} (rule {rule}) has no 's' column")
    return df


def _job_values(path: PathLike, rule: str) -> tuple[float, float, float]:
    """(wall s, CPU s, max RSS MB) of one job; repeats are averaged, missing values NaN."""
    df = _read_benchmark(path, rule)

    def col(name: str, how: str) -> float:
        if name not in df.columns:
            return float("nan")
        v = pd.to_numeric(df[name], errors="coerce")
        return float(v.max() if how == "max" else v.mean())

    return col("s", "mean"), col("cpu_time", "mean"), col("max_rss", "max")


def summarise_benchmarks(benchmarks: Mapping[str, Sequence[PathLike]]) -> pd.DataFrame:
    """Run time and peak memory per rule from Snakemake ``benchmark:`` TSVs.

    Each file is one job; when a file holds several repeats, their mean is used. ``s`` is wall
    seconds and ``max_rss`` megabytes ('NA' / '-' are treated as missing).

    Returns
    -------
    DataFrame
        rule, n_jobs, total_s, median_s, max_s, max_rss_mb (sorted by total_s, largest first).

    Raises
    ------
    ValueError
        Naming the file when it cannot be read or lacks the ``s`` column.
    """
    rows = []
    for rule, paths in benchmarks.items():
        jobs = np.array([_job_values(p, rule) for p in paths], float).reshape(-1, 3)  # (j, 3)
        s, rss = jobs[:, 0], jobs[:, 2]
        ok = s[np.isfinite(s)]
        rows.append(
            {
                "rule": rule,
                "n_jobs": len(paths),
                "total_s": float(ok.sum()) if len(ok) else np.nan,
                "median_s": float(np.median(ok)) if len(ok) else np.nan,
                "max_s": float(ok.max()) if len(ok) else np.nan,
                "max_rss_mb": float(np.nanmax(rss)) if np.isfinite(rss).any() else np.nan,
            }
        )
    out = pd.DataFrame(
        rows, columns=["rule", "n_jobs", "total_s", "median_s", "max_s", "max_rss_mb"]
    )
    return out.sort_values("total_s", ascending=False, kind="stable", na_position="last")


def compute_cost(
    benchmarks: Mapping[str, Sequence[PathLike]],
    *,
    approaches: Sequence[tuple[str, str, bool]] = COMPUTE_APPROACHES,
) -> pd.DataFrame:
    """Compute cost of training the unimodal blocks, merging, fusing and end-to-end fusion.

    Wall and CPU seconds (benchmark columns ``s`` and ``cpu_time``) are summed over all jobs of
    a rule (all folds and modalities), or of several rules named ``rule_a+rule_b`` (an approach
    made of several steps). LegoMerge and LegoFuse reuse the blocks, so their cost
    *including the blocks* adds the ``train_block`` totals; end-to-end fusion trains from
    scratch. Rules without benchmark files are left out.

    Returns
    -------
    DataFrame
        approach, rule, n_jobs, wall_s, cpu_s, max_rss_mb, wall_s_with_blocks,
        cpu_s_with_blocks.
    """

    def totals(rule: str) -> tuple[int, float, float, float]:
        """Jobs, summed wall and CPU seconds, peak RSS of a rule or of ``rule_a+rule_b``."""
        jobs_of = [(p, r) for r in rule.split("+") for p in benchmarks.get(r, [])]
        paths = [p for p, _ in jobs_of]
        jobs = np.array([_job_values(p, r) for p, r in jobs_of], float).reshape(-1, 3)

        def nansum(v: np.ndarray) -> float:
            return float(np.nansum(v)) if np.isfinite(v).any() else np.nan

        rss = jobs[:, 2]
        peak = float(np.nanmax(rss)) if np.isfinite(rss).any() else np.nan
        return len(paths), nansum(jobs[:, 0]), nansum(jobs[:, 1]), peak

    block_rule = next((rule for _, rule, _ in approaches if rule == "train_block"), "train_block")
    _, block_wall, block_cpu, _ = totals(block_rule)
    rows = []
    for label, rule, with_blocks in approaches:
        n, wall, cpu, rss = totals(rule)
        if n == 0:
            continue
        add_wall = block_wall if with_blocks and np.isfinite(block_wall) else 0.0
        add_cpu = block_cpu if with_blocks and np.isfinite(block_cpu) else 0.0
        rows.append(
            {
                "approach": label,
                "rule": rule,
                "n_jobs": n,
                "wall_s": wall,
                "cpu_s": cpu,
                "max_rss_mb": rss,
                "wall_s_with_blocks": wall + add_wall,
                "cpu_s_with_blocks": cpu + add_cpu,
            }
        )
    columns = [
        "approach",
        "rule",
        "n_jobs",
        "wall_s",
        "cpu_s",
        "max_rss_mb",
        "wall_s_with_blocks",
        "cpu_s_with_blocks",
    ]
    return pd.DataFrame(rows, columns=columns)


SELECTION_COLUMNS = ("stage", "candidate", "rung", "epochs", "tune_score", "chosen")
"""The columns of a selection table that are not settings (:mod:`mmlego.pipeline.selection`)."""


def selection_table(
    selections: Mapping[str, Sequence[pd.DataFrame]],
) -> tuple[list[str], list[list[Any]]]:
    """Header and rows of the settings chosen per model and fold: the chosen candidate's values
    of the searched keys, its tune score, and how many candidates raced.

    ``selections``: model -> one selection table per fold (fold order)."""
    keys: list[str] = []
    for tables in selections.values():
        for t in tables:
            keys += [c for c in t.columns if c not in SELECTION_COLUMNS and c not in keys]
    rows = []
    for model, tables in selections.items():
        for fold, t in enumerate(tables):
            chosen = t[t["chosen"].astype(str).str.lower() == "true"]
            if chosen.empty:
                continue
            row = chosen.iloc[-1]
            values = [_setting(row[k]) if k in t.columns else "" for k in keys]
            n = int(t["candidate"].nunique())
            rows.append([model, fold, *values, float(row["tune_score"]), n])
    return ["model", "fold", *keys, "tune score", "candidates"], rows


def _setting(value: Any) -> str:
    """A setting as the config file writes it (0.0001, not 0.000)."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    if isinstance(value, bool | np.bool_):
        return str(bool(value)).lower()
    if isinstance(value, float | np.floating):
        return f"{float(value):g}"
    return str(value)
