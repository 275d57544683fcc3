"""The run report: one self-contained HTML page (inline CSS, images as base64 data URIs).

The page loads nothing from anywhere (no scripts, fonts, styles or images by URL), so it can be
mailed or archived as one file. Every piece of text that comes from data is escaped.
"""

from __future__ import annotations

import base64
import html
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mmlego.evaluation.evaluate import ORACLE_MODEL
from mmlego.io import atomic_path, read_tsv
from mmlego.report import plots

PathLike = str | os.PathLike

#: Metrics shown first, in this order, when present; others follow alphabetically.
METRIC_ORDER = (
    "c_index",
    "c_index_complete",
    "c_index_uno",
    "auc",
    "average_precision",
    "balanced_accuracy",
    "f1",
)

CSS = """
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; margin: 2em auto;
       max-width: 1100px; color: #222; line-height: 1.4; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; margin-top: 1.8em; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 3px 8px; text-align: right; }
th { background: #f3f3f3; } td.l, th.l { text-align: left; }
.banner { background: #fff3cd; border: 1px solid #e0c060; padding: 0.6em 1em; }
.callout { background: #eef4fb; border-left: 4px solid #4c72b0; padding: 0.5em 1em; }
.figs { display: flex; flex-wrap: wrap; gap: 1em; } figure { margin: 0; }
figcaption { font-size: 0.8em; color: #555; max-width: 360px; overflow-wrap: anywhere; }
img.thumb { max-width: 360px; border: 1px solid #ccc; }
pre { background: #f7f7f7; padding: 0.6em; overflow-x: auto; font-size: 0.8em; }
.muted { color: #777; }
"""


def _e(value: Any) -> str:
    """HTML-escape any value's text."""
    return html.escape(str(value), quote=True)


def _fmt(value: Any, *, digits: int = 3) -> str:
    if value is None or (isinstance(value, float | np.floating) and not np.isfinite(value)):
        return "–"
    if isinstance(value, float | np.floating):
        return f"{value:.{digits}f}"
    return str(value)


def _table(
    header: Sequence[str], rows: Iterable[Sequence[Any]], *, left: int = 1, digits: int = 3
) -> str:
    """A table; the first ``left`` columns are left-aligned, floats shown with ``digits``."""
    head = "".join(
        f'<th class="l">{_e(h)}</th>' if i < left else f"<th>{_e(h)}</th>"
        for i, h in enumerate(header)
    )
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="l">{_e(_fmt(v, digits=digits))}</td>'
            if i < left
            else f"<td>{_e(_fmt(v, digits=digits))}</td>"
            for i, v in enumerate(row)
        )
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _img(data: bytes, *, alt: str, css_class: str = "", mime: str = "image/png") -> str:
    b64 = base64.b64encode(data).decode("ascii")
    cls = f' class="{_e(css_class)}"' if css_class else ""
    return f'<img src="data:{mime};base64,{b64}" alt="{_e(alt)}"{cls}>'


def _figure(data: bytes, *, caption: str, css_class: str = "", mime: str = "image/png") -> str:
    img = _img(data, alt=caption, css_class=css_class, mime=mime)
    return f"<figure>{img}<figcaption>{_e(caption)}</figcaption></figure>"


def _image_mime(data: bytes) -> str | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    return None


def _metric_order(metrics: Iterable[str]) -> list[str]:
    names = set(metrics)
    first = [m for m in METRIC_ORDER if m in names]
    counts = sorted(m for m in names if m.startswith("n_"))
    rest = sorted(names - set(first) - set(counts))
    return first + rest + counts


def _is_count(metric: str) -> bool:
    return metric.startswith("n_")


def infer_task(metrics: pd.DataFrame) -> str:
    """'survival' if the metrics table has a c-index, else 'classification'."""
    has_c = metrics["metric"].astype(str).str.startswith("c_index").any()
    return "survival" if has_c else "classification"


def primary_metric(task: str) -> str:
    """The metric models are ranked by: ``c_index`` (survival) or ``auc`` (classification)."""
    return "c_index" if task == "survival" else "auc"


# --------------------------------------------------------------------------------------------
# tables


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
        secs, rss = [], []
        for path in paths:
            try:
                df = pd.read_csv(path, sep="\t", na_values=["NA", "-", ""])
            except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as err:
                raise ValueError(f"benchmark file {path} (rule {rule}) unreadable: {err}") from err
            if "s" not in df.columns:
                raise ValueError(f"benchmark file {path} (rule {rule}) has no 's' column")
            secs.append(float(pd.to_numeric(df["s"], errors="coerce").mean()))
            if "max_rss" in df.columns:
                rss.append(float(pd.to_numeric(df["max_rss"], errors="coerce").max()))
        s = np.asarray(secs, float)
        r = np.asarray(rss, float)
        ok = s[np.isfinite(s)]
        rows.append(
            {
                "rule": rule,
                "n_jobs": len(paths),
                "total_s": float(ok.sum()) if len(ok) else np.nan,
                "median_s": float(np.median(ok)) if len(ok) else np.nan,
                "max_s": float(ok.max()) if len(ok) else np.nan,
                "max_rss_mb": float(np.nanmax(r)) if np.isfinite(r).any() else np.nan,
            }
        )
    out = pd.DataFrame(
        rows, columns=["rule", "n_jobs", "total_s", "median_s", "max_s", "max_rss_mb"]
    )
    return out.sort_values("total_s", ascending=False, kind="stable", na_position="last")


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


def model_summary_table(metrics: pd.DataFrame, *, rank_by: str) -> tuple[list[str], list[list]]:
    """Header and rows of 'mean ± sd' per model and metric, best ``rank_by`` mean first."""
    metric_names = _metric_order(metrics["metric"].unique())
    grouped = metrics.groupby(["model", "metric"])["value"]
    mean = grouped.mean().unstack()
    sd = grouped.std(ddof=1).unstack()
    count = grouped.count().unstack()
    key = mean[rank_by] if rank_by in mean.columns else pd.Series(np.nan, mean.index)
    order = key.sort_values(ascending=False, na_position="last", kind="stable").index
    rows = []
    for model in order:
        row: list[Any] = [model]
        for m in metric_names:
            mu = mean.at[model, m] if m in mean.columns else np.nan
            if not np.isfinite(mu):
                row.append("–")
            elif _is_count(m):
                row.append(f"{mu:.1f}")
            else:
                s = sd.at[model, m]
                s_txt = f"{s:.3f}" if np.isfinite(s) else "–"
                row.append(f"{mu:.3f} ± {s_txt} (n={int(count.at[model, m])})")
        rows.append(row)
    return ["model", *metric_names], rows


def per_fold_table(
    metrics: pd.DataFrame, *, model_order: Sequence[str] | None = None
) -> tuple[list[str], list[list]]:
    """Header and rows of one line per (model, fold) with every metric as a column.

    Models follow ``model_order`` (e.g. the ranking of the summary table), then the rest.
    """
    metric_names = _metric_order(metrics["metric"].unique())
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
            row.append(int(v) if _is_count(m) and np.isfinite(v) else float(v))
        rows.append(row)
    return ["model", "fold", *metric_names], rows


def _flatten(obj: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(obj, Mapping):
        out = []
        for k in sorted(obj, key=str):
            out += _flatten(obj[k], f"{prefix}.{k}" if prefix else str(k))
        return out
    if isinstance(obj, list | tuple) and obj and all(isinstance(x, Mapping) for x in obj):
        return [(prefix, json.dumps(obj, default=str))]
    return [(prefix, obj)]


def pool_predictions(predictions: Mapping[Any, Any]) -> dict[str, pd.DataFrame]:
    """One table per model with a ``fold`` column, from any of the accepted layouts.

    Accepted: ``{model: DataFrame}`` (with or without ``fold``), ``{model: {fold: DataFrame or
    path}}``, or ``{(model, fold): DataFrame or path}`` (as for evaluation).
    """

    def load(x: Any) -> pd.DataFrame:
        return x if isinstance(x, pd.DataFrame) else read_tsv(x)

    parts: dict[str, list[pd.DataFrame]] = {}
    for key, value in predictions.items():
        if isinstance(key, tuple):
            model, fold = key
            parts.setdefault(str(model), []).append(load(value).assign(fold=fold))
        elif isinstance(value, Mapping):
            for fold, v in value.items():
                parts.setdefault(str(key), []).append(load(v).assign(fold=fold))
        else:
            parts.setdefault(str(key), []).append(load(value))
    return {m: pd.concat(dfs, ignore_index=True) for m, dfs in parts.items()}


# --------------------------------------------------------------------------------------------
# sections


def _section(title: str, body: str, *, anchor: str) -> str:
    return f'<section id="{_e(anchor)}"><h2>{_e(title)}</h2>{body}</section>'


def _cohort_section(patients: pd.DataFrame, availability: pd.DataFrame | None) -> str:
    body = _table(["", "value"], cohort_summary(patients))
    if availability is not None and len(availability):
        per, combo = availability_tables(availability)
        body += "<h3>Modality availability</h3>"
        body += _table(["modality", "patients", "%"], per.itertuples(index=False), digits=1)
        body += _table(["modalities", "patients"], combo.itertuples(index=False))
    return _section("Cohort", body, anchor="cohort")


def _oracle_html(metrics: pd.DataFrame, *, synthetic: bool) -> str:
    if not synthetic:
        return ""
    rows = metrics[(metrics["model"] == ORACLE_MODEL) & (metrics["metric"] == "c_index")]
    values = rows["value"].astype(float)
    values = values[np.isfinite(values)]
    if values.empty:
        text = "Oracle c-index (true simulated risk): not available."
    else:
        sd = f"{values.std(ddof=1):.3f}" if len(values) > 1 else "–"
        text = (
            f"Oracle c-index of the true simulated risk on the same validation patients: "
            f"{values.mean():.3f} ± {sd} over {len(values)} fold(s). This is the ceiling a model "
            f"can reach on this synthetic cohort (censoring and noise keep it below 1)."
        )
    return f'<p class="callout">{_e(text)}</p>'


def _plots_section(
    metrics: pd.DataFrame, pooled: Mapping[str, pd.DataFrame], *, task: str, max_km_plots: int
) -> str:
    figs = []
    for metric in (primary_metric(task), "c_index_complete"):
        values = metrics.loc[metrics["metric"] == metric, "value"].astype(float)
        if np.isfinite(values).any():
            figs.append(_figure(plots.metric_plot(metrics, metric=metric), caption=metric))
    if task == "survival":
        c_rows = metrics[metrics["metric"] == "c_index"]
        means = c_rows.groupby("model")["value"].mean().sort_values(ascending=False)
        ranked = [m for m in means.index if m in pooled] + sorted(set(pooled) - set(means.index))
        for model in ranked[:max_km_plots]:
            df = pooled[model]
            if not {"time", "event", "risk"} <= set(df.columns) or df.empty:
                continue
            png, p = plots.km_plot(df, title=model)
            figs.append(
                _figure(png, caption=f"{model}: median-split risk groups, pooled folds, p={p:.3g}")
            )
    if not figs:
        return _section("Plots", '<p class="muted">No values to plot.</p>', anchor="plots")
    return _section("Plots", f'<div class="figs">{"".join(figs)}</div>', anchor="plots")


def _wsi_status_html(wsi_qc: pd.DataFrame | None) -> str:
    """Counts of slides by status, and every slide that was skipped with its reason."""
    if wsi_qc is None or wsi_qc.empty:
        return ""
    counts = wsi_qc["status"].value_counts()
    html = _table(["status", "slides"], [(k, int(v)) for k, v in counts.items()])
    bad = wsi_qc[wsi_qc["status"] != "ok"]
    if len(bad):
        html += "<h3>Slides without tiles</h3>" + _table(
            ["slide", "patient", "status", "reason"],
            bad[["slide_id", "patient_id", "status", "reason"]].itertuples(index=False),
            left=4,
        )
    return html


def _qc_section(
    qc_images: Sequence[PathLike], *, max_images: int, wsi_qc: pd.DataFrame | None = None
) -> str:
    if not qc_images and (wsi_qc is None or wsi_qc.empty):
        return ""
    figs, skipped = [], []
    for path in list(qc_images)[:max_images]:
        data = Path(path).read_bytes()
        mime = _image_mime(data)
        if mime is None:
            skipped.append(str(path))
            continue
        figs.append(_figure(data, caption=Path(path).name, css_class="thumb", mime=mime))
    note = f"<p class='muted'>Showing {len(figs)} of {len(qc_images)} slide QC images.</p>"
    if skipped:
        note += f"<p class='muted'>Not PNG/JPEG, skipped: {_e(', '.join(skipped))}</p>"
    body = _wsi_status_html(wsi_qc) + note + f'<div class="figs">{"".join(figs)}</div>'
    return _section("WSI quality control", body, anchor="wsi-qc")


def _benchmark_section(benchmarks: Mapping[str, Sequence[PathLike]] | None) -> str:
    if not benchmarks:
        return ""
    table = summarise_benchmarks(benchmarks)
    header = ["rule", "jobs", "total s", "median s", "max s", "max RSS MB"]
    return _section(
        "Stage run times and peak memory",
        _table(header, table.itertuples(index=False), digits=1),
        anchor="benchmarks",
    )


def _provenance_section(provenance: Mapping[str, Any]) -> str:
    prov = dict(provenance)
    config = prov.pop("config", None)
    packages = prov.pop("packages", None)
    inputs = prov.pop("inputs", None)
    body = _table(["", "value"], _flatten(prov))
    if packages:
        body += "<h3>Packages</h3>" + _table(["package", "version"], sorted(packages.items()))
    if inputs:
        rows = [(i.get("path"), i.get("kind"), i.get("bytes"), i.get("sha256")) for i in inputs]
        body += "<h3>Inputs</h3>" + _table(["path", "kind", "bytes", "sha256"], rows, left=2)
    if config is not None:
        text = json.dumps(config, indent=2, sort_keys=True, default=str)
        body += f"<h3>Configuration</h3><pre>{_e(text)}</pre>"
    return _section("Provenance", body, anchor="provenance")


def _load_log(value: Any) -> pd.DataFrame:
    if isinstance(value, pd.DataFrame):
        return value
    if isinstance(value, list | tuple):
        return pd.concat([_load_log(v).assign(fold=i) for i, v in enumerate(value)])
    return read_tsv(value)


# --------------------------------------------------------------------------------------------


def render_report(
    *,
    out_html: PathLike,
    cohort_name: str,
    metrics: pd.DataFrame,
    patients: pd.DataFrame,
    availability: pd.DataFrame | None,
    predictions: Mapping[Any, Any],
    benchmarks: Mapping[str, Sequence[PathLike]] | None,
    qc_images: Sequence[PathLike],
    provenance: Mapping[str, Any],
    synthetic: bool,
    training_logs: Mapping[str, Any] | None = None,
    task: str | None = None,
    max_km_plots: int = 6,
    max_qc_images: int = 6,
    wsi_qc: pd.DataFrame | None = None,
) -> Path:
    """Write the self-contained HTML report; return its path.

    Parameters
    ----------
    out_html : path
        Destination, written atomically.
    cohort_name : str
    metrics : DataFrame
        Long metrics table (model, fold, metric, value), oracle rows included.
    patients : DataFrame
        The cohort's patients table (time, event and/or label).
    availability : DataFrame, optional
        Patient x modality booleans (index or ``patient_id`` column = patient).
    predictions : mapping
        Validation predictions; see :func:`pool_predictions` for the accepted layouts.
    benchmarks : mapping rule -> list of path, optional
        Snakemake benchmark TSVs per rule.
    qc_images : sequence of path
        WSI QC thumbnails (PNG/JPEG); the first ``max_qc_images`` are embedded.
    provenance : mapping
        From :func:`mmlego.report.provenance.collect_provenance`.
    synthetic : bool
        Marks the cohort as synthetic (title, banner, oracle c-index).
    training_logs : mapping name -> (DataFrame | path | list of those), optional
        Loss curves with columns epoch, split, loss; a list is taken as one log per fold.
    task : {'survival', 'classification'}, optional
        Default: inferred from the metrics.
    max_km_plots : int
        Kaplan-Meier plots for at most this many models (best c-index first).
    max_qc_images : int
        Embed at most this many QC images.
    wsi_qc : DataFrame, optional
        The WSI stage's per-slide QC table (slide_id, patient_id, status, reason, n_tiles).
    """
    task = task or infer_task(metrics)
    rank_by = primary_metric(task)
    pooled = pool_predictions(predictions)
    title = f"MM-Lego report: {cohort_name}" + (" (synthetic cohort)" if synthetic else "")

    parts = [f"<h1>{_e(title)}</h1>"]
    if synthetic:
        parts.append(
            '<p class="banner"><strong>Synthetic data.</strong> '
            + _e(
                "This cohort was simulated by the demo generator; its patients, slides and "
                "omics are not real and the results say nothing about any disease."
            )
            + "</p>"
        )
    stamp = provenance.get("timestamp_utc", "")
    commit = (provenance.get("git") or {}).get("commit")
    parts.append(
        f'<p class="muted">Task: {_e(task)}. Generated {_e(stamp)} UTC'
        f"{_e(', commit ' + str(commit)) if commit else ''}.</p>"
    )
    parts.append(_cohort_section(patients, availability))

    header, rows = model_summary_table(metrics, rank_by=rank_by)
    body = (
        _oracle_html(metrics, synthetic=synthetic)
        + f"<p>Mean ± SD over folds (n = folds with a value); sorted by {_e(rank_by)}.</p>"
        + _table(header, rows)
    )
    parts.append(_section("Models", body, anchor="models"))
    header, rows = per_fold_table(metrics, model_order=[r[0] for r in rows])
    parts.append(_section("Per fold", _table(header, rows, left=2), anchor="folds"))
    parts.append(_plots_section(metrics, pooled, task=task, max_km_plots=max_km_plots))
    if training_logs:
        logs = {name: _load_log(v) for name, v in training_logs.items()}
        png = plots.training_curves_plot(logs)
        parts.append(
            _section("Training curves", _figure(png, caption="loss per epoch"), anchor="training")
        )
    parts.append(_qc_section(qc_images, max_images=max_qc_images, wsi_qc=wsi_qc))
    parts.append(_benchmark_section(benchmarks))
    parts.append(_provenance_section(provenance))

    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{CSS}</style></head>\n<body>\n"
        + "\n".join(p for p in parts if p)
        + "\n</body></html>\n"
    )
    with atomic_path(out_html) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return Path(out_html)
