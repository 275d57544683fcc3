"""The pan-cancer report: every cohort's ``metrics.tsv`` in one self-contained HTML page and TSVs.

Tables (all from the cohorts' per-fold validation metrics, nothing is refitted):

- :func:`cindex_table`: cohort x model Harrell's c-index, mean ± SD over folds, and per model
  the mean over cohorts of the cohort means (SD over cohorts, the number of cohorts);
- :func:`paired_pancancer`: per-fold paired differences ``model - baseline`` of the MM-Lego
  models against each baseline within each cohort (:func:`mmlego.evaluation.evaluate.
  paired_differences`), summarised per cohort (:func:`~mmlego.evaluation.evaluate.
  summarise_differences`: mean, bootstrap interval over folds) and over cohorts (mean of the
  cohorts' mean differences, percentile bootstrap interval over cohorts);
- win / tie / loss counts: a difference is a *tie* when ``|diff| < tie`` (default 0.01 c-index),
  a win when ``diff >= tie`` and a loss when ``diff <= -tie``; counted over cohorts (by each
  cohort's mean difference) and over all cohort folds;
- the modalities used per cohort and the column groups left out, with the reason
  (:func:`mmlego.cohort.pancancer.groups_table`), and the cohorts left out of the run (fewer
  than two usable groups); per cohort, whether its folds were given or made by the workflow.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mmlego.config import MIN_MODALITIES
from mmlego.evaluation import metrics as M
from mmlego.evaluation.evaluate import paired_differences, summarise_differences
from mmlego.io import atomic_path, read_tsv
from mmlego.pipeline.config import pancancer_defaults
from mmlego.report.html import CSS, _e, _provenance_section, _section, _table

PathLike = str | os.PathLike
ALL_COHORTS = "mean_over_cohorts"
_DEFAULTS = pancancer_defaults()
LEGO_MODELS = tuple(_DEFAULTS["lego_models"])
BASELINES = tuple(_DEFAULTS["baselines"])
TIE = float(_DEFAULTS["tie"])
CINDEX_COLUMNS = ["cohort", "model", "metric", "mean", "sd", "n"]
PAIRED_COLUMNS = [
    "scope", "model", "baseline", "metric", "mean_diff", "ci_low", "ci_high", "n",
    "wins", "ties", "losses",
]  # fmt: skip


def read_cohort_metrics(files: Mapping[str, PathLike]) -> pd.DataFrame:
    """The cohorts' long metrics tables in one, with a leading ``cohort`` column."""
    parts = []
    for cohort, path in files.items():
        table = read_tsv(path)
        missing = {"model", "fold", "metric", "value"} - set(table.columns)
        if missing:
            raise ValueError(f"{path} (cohort {cohort!r}): lacks column(s) {sorted(missing)}")
        parts.append(table.assign(cohort=cohort))
    if not parts:
        raise ValueError("no cohort metrics to report")
    out = pd.concat(parts, ignore_index=True)
    return out[["cohort", "model", "fold", "metric", "value"]]


def cindex_table(metrics: pd.DataFrame, *, metric: str = "c_index") -> pd.DataFrame:
    """Per cohort and model: mean, SD (ddof=1) and number of folds of ``metric``; then per
    model the mean over cohorts of the cohort means (``cohort`` = :data:`ALL_COHORTS`, SD over
    cohorts, ``n`` = cohorts)."""
    rows = metrics[metrics["metric"] == metric]
    if rows.empty:
        raise ValueError(f"no {metric!r} values in the cohorts' metrics")
    per = (
        rows.groupby(["cohort", "model"], sort=True)["value"]
        .agg(mean="mean", sd=lambda v: v.std(ddof=1) if v.notna().sum() > 1 else np.nan, n="count")
        .reset_index()
    )
    pooled = (
        per.groupby("model", sort=True)["mean"]
        .agg(mean="mean", sd=lambda v: v.std(ddof=1) if v.notna().sum() > 1 else np.nan, n="count")
        .reset_index()
        .assign(cohort=ALL_COHORTS)
    )
    out = pd.concat([per, pooled], ignore_index=True).assign(metric=metric)
    out["n"] = out["n"].astype(int)
    return out[CINDEX_COLUMNS]


def _wtl(diffs: np.ndarray, tie: float) -> tuple[int, int, int]:
    d = diffs[np.isfinite(diffs)]
    return int((d >= tie).sum()), int((np.abs(d) < tie).sum()), int((d <= -tie).sum())


def paired_pancancer(
    metrics: pd.DataFrame,
    *,
    models: Sequence[str] = LEGO_MODELS,
    baselines: Sequence[str] = BASELINES,
    metric: str = "c_index",
    tie: float = TIE,
    n_boot: int = 1000,
    seed: int = 0,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Paired differences of ``models`` against ``baselines``, per cohort and over cohorts.

    Returns
    -------
    (per_fold, summary)
        ``per_fold``: cohort, model, baseline, metric, fold, diff. ``summary``: one row per
        (scope, model, baseline), scope a cohort (mean and bootstrap interval over its folds,
        wins / ties / losses over its folds) or :data:`ALL_COHORTS` (mean over cohorts of the
        cohort mean differences, bootstrap interval over cohorts, wins / ties / losses over
        cohorts by their mean difference); ``n`` is the number of folds or cohorts.
    """
    if tie < 0:
        raise ValueError(f"tie must be >= 0, got {tie}")
    parts = []
    for cohort, part in metrics.groupby("cohort", sort=True):
        long = part.drop(columns="cohort")
        present = set(long.loc[long["metric"] == metric, "model"])
        for baseline in baselines:
            if baseline not in present:
                continue
            d = paired_differences(long, metric=metric, baseline=baseline)
            parts.append(d[d["model"].isin(models)].assign(cohort=cohort))
    columns = ["cohort", "model", "baseline", "metric", "fold", "diff"]
    per_fold = (
        pd.concat(parts, ignore_index=True)[columns] if parts else pd.DataFrame(columns=columns)
    )
    rows = []
    for cohort, part in per_fold.groupby("cohort", sort=True):
        summary = summarise_differences(part.drop(columns="cohort"), n_boot=n_boot, seed=seed)
        for s in summary.itertuples(index=False):
            d = part.loc[
                (part["model"] == s.model) & (part["baseline"] == s.baseline), "diff"
            ].to_numpy(dtype=float)
            rows.append(
                {
                    "scope": cohort,
                    "model": s.model,
                    "baseline": s.baseline,
                    "metric": s.metric,
                    "mean_diff": s.mean_diff,
                    "ci_low": s.ci_low,
                    "ci_high": s.ci_high,
                    "n": s.n_folds,
                    **dict(zip(("wins", "ties", "losses"), _wtl(d, tie), strict=True)),
                }
            )
    per_cohort = pd.DataFrame(rows, columns=PAIRED_COLUMNS)
    pooled = []
    for (model, baseline), part in per_cohort.groupby(["model", "baseline"], sort=True):
        means = part["mean_diff"].to_numpy(dtype=float)
        finite = means[np.isfinite(means)]
        low, high = M.bootstrap_ci(finite, n_boot=n_boot, seed=seed)
        pooled.append(
            {
                "scope": ALL_COHORTS,
                "model": model,
                "baseline": baseline,
                "metric": metric,
                "mean_diff": finite.mean() if len(finite) else np.nan,
                "ci_low": low,
                "ci_high": high,
                "n": len(finite),
                **dict(zip(("wins", "ties", "losses"), _wtl(finite, tie), strict=True)),
            }
        )
    summary = pd.concat([per_cohort, pd.DataFrame(pooled, columns=PAIRED_COLUMNS)])
    return per_fold, summary.reset_index(drop=True)


def fold_wtl(per_fold: pd.DataFrame, *, tie: float = TIE) -> pd.DataFrame:
    """Wins / ties / losses over every cohort fold, per (model, baseline)."""
    rows = []
    for (model, baseline), part in per_fold.groupby(["model", "baseline"], sort=True):
        w, t, lo = _wtl(part["diff"].to_numpy(dtype=float), tie)
        rows.append({"model": model, "baseline": baseline, "wins": w, "ties": t, "losses": lo})
    return pd.DataFrame(rows, columns=["model", "baseline", "wins", "ties", "losses"])


def model_order(models: Sequence[str], *, lego: Sequence[str], baselines: Sequence[str]) -> list:
    """MM-Lego models, then the compared baselines, then the others (blocks last)."""
    first = [m for m in [*lego, *baselines] if m in models]
    rest = sorted(m for m in models if m not in first and not str(m).startswith("block_"))
    blocks = sorted(m for m in models if str(m).startswith("block_"))
    return first + rest + blocks


def _mean_sd(mean: float, sd: float) -> str:
    if not np.isfinite(mean):
        return "–"
    return f"{mean:.3f} ± {sd:.3f}" if np.isfinite(sd) else f"{mean:.3f}"


def _signed(value: float) -> str:
    return f"{value:+.3f}" if np.isfinite(value) else "–"


def cohort_overview(
    metrics: pd.DataFrame, groups: pd.DataFrame, *, reference: str = "coxnet"
) -> pd.DataFrame:
    """Per cohort: folds, validation patients and events (summed over the folds of
    ``reference``), the modalities used and the groups left out."""
    rows = []
    for cohort in sorted(set(metrics["cohort"]) | set(groups["cohort"])):
        m = metrics[(metrics["cohort"] == cohort) & (metrics["model"] == reference)]
        n_pat = m.loc[m["metric"] == "n_patients", "value"].sum()
        n_ev = m.loc[m["metric"] == "n_events", "value"].sum()
        g = groups[groups["cohort"] == cohort]
        rows.append(
            {
                "cohort": cohort,
                "folds": int(m["fold"].nunique()),
                "patients": int(n_pat),
                "events": int(n_ev),
                "modalities": ", ".join(g.loc[g["kept"], "modality"]),
                "left_out": ", ".join(g.loc[~g["kept"], "modality"]),
            }
        )
    return pd.DataFrame(rows)


def render_pancancer_report(
    *,
    out_html: PathLike,
    metrics: pd.DataFrame,
    groups: pd.DataFrame,
    cindex: pd.DataFrame,
    per_fold: pd.DataFrame,
    paired: pd.DataFrame,
    lego: Sequence[str] = LEGO_MODELS,
    baselines: Sequence[str] = BASELINES,
    tie: float = TIE,
    min_columns: int | None = None,
    cohort_reports: Mapping[str, str] | None = None,
    folds: Mapping[str, str] | None = None,
    provenance: Mapping[str, Any] | None = None,
) -> Path:
    """Write the pan-cancer HTML page (self-contained, text escaped) atomically.

    ``folds``: per cohort, where its folds come from (:attr:`mmlego.cohort.pancancer.
    CohortPlan.folds`: given split files or made by the workflow).
    """
    cohorts = sorted(set(cindex["cohort"]) - {ALL_COHORTS})
    models = model_order(sorted(set(cindex["model"])), lego=lego, baselines=baselines)
    title = f"MM-Lego pan-cancer benchmark: {len(cohorts)} cohort{'s' if len(cohorts) != 1 else ''}"
    sections = []

    overview = cohort_overview(metrics, groups)
    links = cohort_reports or {}
    origin = folds or {}
    not_run = sorted(set(groups["cohort"]) - set(metrics["cohort"]))
    rows = [
        (
            r.cohort,
            r.folds,
            origin.get(r.cohort) or "–",
            r.patients,
            r.events,
            "none: cohort left out" if r.cohort in not_run else r.modalities,
            r.left_out or "–",
            links.get(r.cohort, ""),
        )
        for r in overview.itertuples(index=False)
    ]
    text = (
        "Validation patients and events summed over the folds; the folds are the cohort's split "
        "files or made by the workflow. Each cohort's modalities are the candidate column "
        "groups it has; the groups left out and why are listed below."
    )
    if not_run:
        text += (
            f" Left out of the run, with fewer than {MIN_MODALITIES} usable column groups "
            f"(nothing to merge or fuse): {', '.join(not_run)}."
        )
    sections.append(
        _section(
            "Cohorts",
            f"<p>{_e(text)}</p>"
            + _table(
                [
                    "cohort",
                    "folds",
                    "folds from",
                    "patients",
                    "events",
                    "modalities",
                    "left out",
                    "report",
                ],
                rows,
            ),
            anchor="cohorts",
        )
    )

    wide = cindex.set_index(["cohort", "model"])
    rows = []
    for cohort in [*cohorts, ALL_COHORTS]:
        row = ["mean over cohorts" if cohort == ALL_COHORTS else cohort]
        for model in models:
            if (cohort, model) in wide.index:
                r = wide.loc[(cohort, model)]
                row.append(_mean_sd(float(r["mean"]), float(r["sd"])))
            else:
                row.append("–")
        rows.append(row)
    n_row = ["cohorts with a value"] + [
        int(wide.loc[(ALL_COHORTS, m), "n"]) if (ALL_COHORTS, m) in wide.index else 0
        for m in models
    ]
    rows.append(n_row)
    text = (
        "Harrell's c-index on each fold's validation patients, mean ± SD over folds; the last "
        "rows: the mean over cohorts of the cohort means ± the SD over cohorts, and the number "
        "of cohorts it averages (LegoBlocks exist only for the modalities a cohort has)."
    )
    sections.append(
        _section(
            "C-index per cohort and model",
            f"<p>{_e(text)}</p>" + _table(["cohort", *models], rows),
            anchor="cindex",
        )
    )

    pooled = paired[paired["scope"] == ALL_COHORTS]
    folds = fold_wtl(per_fold, tie=tie).set_index(["model", "baseline"])
    rows = []
    for r in pooled.itertuples(index=False):
        f = folds.loc[(r.model, r.baseline)] if (r.model, r.baseline) in folds.index else None
        rows.append(
            (
                r.model,
                r.baseline,
                _signed(r.mean_diff),
                f"[{_signed(r.ci_low)}, {_signed(r.ci_high)}]",
                r.n,
                f"{r.wins} / {r.ties} / {r.losses}",
                "–" if f is None else f"{f['wins']} / {f['ties']} / {f['losses']}",
            )
        )
    text = (
        f"Paired per-fold differences model − baseline of the c-index within each cohort (same "
        f"validation patients). Mean over cohorts of the cohorts' mean differences, with a "
        f"percentile bootstrap 95% interval over cohorts. Win / tie / loss: a tie is "
        f"|Δ| < {tie:g}; counted over cohorts (by the cohort's mean Δ) and over all folds."
    )
    body = f"<p>{_e(text)}</p>" + _table(
        [
            "model",
            "baseline",
            "mean Δ",
            "95% interval",
            "cohorts",
            "cohorts W / T / L",
            "folds W / T / L",
        ],
        rows,
        left=2,
    )
    per = paired[paired["scope"] != ALL_COHORTS]
    rows = [
        (
            r.scope,
            r.model,
            r.baseline,
            _signed(r.mean_diff),
            f"[{_signed(r.ci_low)}, {_signed(r.ci_high)}]",
            r.n,
            f"{r.wins} / {r.ties} / {r.losses}",
        )
        for r in per.itertuples(index=False)
    ]
    body += "<h3>Per cohort</h3><p>" + _e(
        "Mean Δ over the cohort's folds, bootstrap 95% interval over folds, folds W / T / L."
    )
    body += "</p>" + _table(
        ["cohort", "model", "baseline", "mean Δ", "95% interval", "folds", "W / T / L"],
        rows,
        left=3,
    )
    sections.append(_section("MM-Lego against the baselines", body, anchor="paired"))

    left_out = groups[~groups["kept"]]
    partial = groups[groups["kept"] & (groups["reason"].astype(str) != "")]
    rule = (
        "A column is usable when it has at least two distinct non-missing values. A group "
        "chosen by a column suffix is kept with at least "
        f"{min_columns if min_columns is not None else 'min_columns'} usable columns; a group "
        "of named columns keeps its usable columns and is left out when none is usable."
    )
    body = f"<p>{_e(rule)}</p>"
    if len(left_out):
        body += _table(
            ["cohort", "group", "selects", "columns", "usable", "reason"],
            left_out[
                ["cohort", "modality", "selects", "n_columns", "n_usable", "reason"]
            ].itertuples(index=False),
            left=3,
        )
    else:
        body += '<p class="muted">No group was left out.</p>'
    if len(partial):
        body += "<h3>Columns left out of kept groups</h3>" + _table(
            ["cohort", "group", "reason"],
            partial[["cohort", "modality", "reason"]].itertuples(index=False),
            left=3,
        )
    sections.append(_section("Column groups left out", body, anchor="groups"))
    if provenance:
        sections.append(_provenance_section(provenance))

    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{CSS}</style></head>\n<body>\n"
        f"<h1>{_e(title)}</h1>\n" + "\n".join(sections) + "\n</body></html>\n"
    )
    with atomic_path(out_html) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return Path(out_html)
