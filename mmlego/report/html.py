"""The run report: one self-contained HTML page (inline CSS, images as base64 data URIs).

The page loads nothing from anywhere (no scripts, fonts, styles or images by URL), so it can be
mailed or archived as one file. Every piece of text that comes from data is escaped.

Sections (:data:`SECTIONS`, empty ones left out): cohort, modality availability and the patients
left out on purpose (by reason); models (mean ± SD, bootstrap interval, the oracle c-index for
synthetic cohorts); paired per-fold differences against the best baseline; per-fold values;
plots (metric per model and fold, LegoFuse's paired-data budget curve, Kaplan-Meier curves of
median-split risk groups with log-rank p); training curves; WSI QC thumbnails; compute cost of
block training, merge, fuse and end-to-end fusion; stage run times and peak memory; provenance.
Figures are palette PNGs and QC thumbnails are shrunk to ``qc_max_side`` so the page stays small
(under 1 MB for the tiny demo with 16 models and 6 QC images).
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from mmlego.evaluation.evaluate import (
    LOWER_IS_BETTER,
    best_baseline,
    cohort_classes,
    paired_table,
)
from mmlego.evaluation.prediction_format import RISK
from mmlego.io import atomic_path, read_tsv
from mmlego.report import plots
from mmlego.report.tables import (  # noqa: F401  (re-exported: the report's public tables)
    METRIC_ORDER,
    Cell,
    availability_tables,
    cohort_summary,
    compute_cost,
    excluded_table,
    metric_order,
    model_summary_table,
    oracle_values,
    paired_summary_table,
    per_class_table,
    per_fold_table,
    selection_table,
    summarise_benchmarks,
)

PathLike = str | os.PathLike

CSS = """
body { font-family: system-ui, -apple-system, 'Segoe UI', sans-serif; margin: 2em auto;
       max-width: 1100px; color: #222; line-height: 1.4; padding: 0 1em; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; margin-top: 1.8em; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 3px 6px; text-align: right; vertical-align: top;
         white-space: nowrap; }
th { background: #f3f3f3; } td.l, th.l { text-align: left; }
.banner { background: #fff3cd; border: 1px solid #e0c060; padding: 0.6em 1em; }
.callout { background: #eef4fb; border-left: 4px solid #4c72b0; padding: 0.5em 1em; }
.figs { display: flex; flex-wrap: wrap; gap: 1em; } figure { margin: 0; max-width: 100%; }
figure img { max-width: 100%; height: auto; }
figcaption { font-size: 0.8em; color: #555; max-width: 360px; overflow-wrap: anywhere; }
img.thumb { max-width: 360px; border: 1px solid #ccc; }
pre { background: #f7f7f7; padding: 0.6em; overflow-x: auto; font-size: 0.8em; }
.muted { color: #777; } .note { display: block; font-size: 0.75em; color: #777; }
.scroll { overflow-x: auto; } nav a { margin-right: 0.8em; }
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


def _cell(value: Any, *, digits: int) -> str:
    if isinstance(value, Cell):
        note = f'<span class="note">{_e(value.note)}</span>' if value.note else ""
        return f"{_e(value.text)} {note}" if note else _e(value.text)
    return _e(_fmt(value, digits=digits))


def _table(
    header: Sequence[str], rows: Iterable[Sequence[Any]], *, left: int = 1, digits: int = 3
) -> str:
    """A table; the first ``left`` columns are left-aligned, floats shown with ``digits``.

    :class:`~mmlego.report.tables.Cell` values show their note on a second, smaller line.
    """
    head = "".join(
        f'<th class="l">{_e(h)}</th>' if i < left else f"<th>{_e(h)}</th>"
        for i, h in enumerate(header)
    )
    body = []
    for row in rows:
        cells = "".join(
            f'<td class="l">{_cell(v, digits=digits)}</td>'
            if i < left
            else f"<td>{_cell(v, digits=digits)}</td>"
            for i, v in enumerate(row)
        )
        body.append(f"<tr>{cells}</tr>")
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    return f'<div class="scroll">{table}</div>'


def _img(data: bytes, *, alt: str, css_class: str = "", mime: str = "image/png") -> str:
    b64 = base64.b64encode(data).decode("ascii")
    cls = f' class="{_e(css_class)}"' if css_class else ""
    return f'<img src="data:{mime};base64,{b64}" alt="{_e(alt)}"{cls}>'


def _figure(data: bytes, *, caption: str, css_class: str = "", mime: str = "image/png") -> str:
    img = _img(data, alt=caption, css_class=css_class, mime=mime)
    return f"<figure>{img}<figcaption>{_e(caption)}</figcaption></figure>"


def shrink_image(data: bytes, *, max_side: int | None) -> bytes:
    """A thumbnail no longer than ``max_side`` pixels, re-encoded only when that is smaller.

    PNGs become 64-colour palette PNGs (as the WSI stage writes them), JPEGs stay JPEG
    (quality 85). Undecodable data and images already small enough are returned unchanged.
    """
    if max_side is None:
        return data
    try:
        with Image.open(io.BytesIO(data)) as img:
            if max(img.size) <= max_side:
                return data
            fmt = img.format
            small = img.convert("RGB")
    except (OSError, ValueError):
        return data
    small.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    if fmt == "JPEG":
        small.save(out, format="JPEG", quality=85)
    else:
        small.quantize(colors=64, method=Image.Quantize.MEDIANCUT).save(
            out, format="PNG", optimize=True
        )
    return out.getvalue() if out.tell() < len(data) else data


def _image_mime(data: bytes) -> str | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    return None


def infer_task(metrics: pd.DataFrame) -> str:
    """'survival' if the metrics table has a c-index, else 'classification'."""
    has_c = metrics["metric"].astype(str).str.startswith("c_index").any()
    return "survival" if has_c else "classification"


def primary_metric(task: str) -> str:
    """The metric models are ranked by: ``c_index`` (survival) or ``auc`` (classification)."""
    return "c_index" if task == "survival" else "auc"


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


def _cohort_section(
    patients: pd.DataFrame, availability: pd.DataFrame | None, excluded: pd.DataFrame | None
) -> str:
    body = _table(["", "value"], cohort_summary(patients))
    if availability is not None and len(availability):
        per, combo = availability_tables(availability)
        body += "<h3>Modality availability</h3>"
        body += _table(["modality", "patients", "%"], per.itertuples(index=False), digits=1)
        body += _table(["modalities", "patients"], combo.itertuples(index=False))
    if excluded is not None and len(excluded):
        body += "<h3>Patients left out</h3>"
        body += (
            f"<p>{len(excluded)} patient(s) of the input were left out on purpose, with their "
            "slides and omics rows; no model saw them.</p>"
        )
        body += _table(["reason", "patients", "examples"], excluded_table(excluded))
    return _section("Cohort", body, anchor="cohort")


def _per_class_section(
    pooled: Mapping[str, pd.DataFrame], patients: pd.DataFrame, *, model_order: Sequence[str]
) -> str:
    classes = cohort_classes(patients["label"])
    header, rows = per_class_table(pooled, classes, model_order=model_order)
    intro = (
        f"Classes: {', '.join(classes)}. For each model and class, over the folds: the "
        "validation patients of the class, the share of them whose most probable class is it "
        "(recall; their mean over the classes is the balanced accuracy of the pooled folds), and "
        "the class's one-vs-rest AUC, mean ± SD over the folds with a value (n). A class that "
        "no training patient of a fold has gets probability 0 from that fold's models."
    )
    return _section(
        "Per class", f"<p>{_e(intro)}</p>" + _table(header, rows, left=2), anchor="classes"
    )


def _oracle_html(metrics: pd.DataFrame, *, synthetic: bool) -> str:
    if not synthetic:
        return ""
    values = oracle_values(metrics, metric="c_index")
    if not len(values):
        text = "Oracle c-index (true simulated risk): not available."
    else:
        sd = f"{values.std(ddof=1):.3f}" if len(values) > 1 else "–"
        text = (
            f"Oracle c-index of the true simulated risk on the same validation patients: "
            f"{values.mean():.3f} ± {sd} over {len(values)} fold(s). This is the ceiling a model "
            f"can reach on this synthetic cohort (censoring and noise keep it below 1)."
        )
    return f'<p class="callout">{_e(text)}</p>'


def _paired_section(
    metrics: pd.DataFrame,
    paired: pd.DataFrame | None,
    *,
    task: str,
    n_boot: int,
    seed: int,
) -> str:
    rank_by = primary_metric(task)
    diffs = paired_table(metrics, task=task) if paired is None else paired
    if diffs is None or diffs.empty:
        text = "No baseline model to compare against."
        return _section(
            "Against the best baseline", f'<p class="muted">{text}</p>', anchor="paired"
        )
    baselines = sorted(set(diffs["baseline"].astype(str)))
    header, rows = paired_summary_table(diffs, rank_by=rank_by, n_boot=n_boot, seed=seed)
    lower = sorted(set(diffs["metric"]) & LOWER_IS_BETTER)
    text = (
        f"Per-fold difference model − {', '.join(baselines)} (the baseline with the best mean "
        f"{rank_by} among the models that are neither MM-Lego models nor the oracle), mean ± SD "
        f"over the folds where both have a value, [a bootstrap 95% interval of the mean "
        f"difference] and the folds where the model is better."
    )
    if lower:
        text += f" For {', '.join(lower)} lower is better: a negative difference is a win."
    body = f"<p>{_e(text)}</p>" + _table(header, rows)
    return _section("Against the best baseline", body, anchor="paired")


def km_models(
    metrics: pd.DataFrame, pooled: Mapping[str, pd.DataFrame], *, max_plots: int
) -> list[str]:
    """Models that get a Kaplan-Meier plot: LegoFuse, LegoMerge and the best baseline first,
    then the others by mean c-index (best first), at most ``max_plots``."""
    c_rows = metrics[metrics["metric"] == "c_index"]
    means = c_rows.groupby("model")["value"].mean().sort_values(ascending=False, kind="stable")
    ranked = [m for m in means.index if m in pooled] + sorted(set(pooled) - set(means.index))
    first = ["lego_fuse", "lego_merge", best_baseline(metrics, metric="c_index")]
    first = [m for m in first if m in pooled]
    return list(dict.fromkeys(first + ranked))[:max_plots]


def _plots_section(
    metrics: pd.DataFrame, pooled: Mapping[str, pd.DataFrame], *, task: str, max_km_plots: int
) -> str:
    figs = []
    candidates = [primary_metric(task), "c_index_complete", "td_auc", "ibs"]
    for metric in dict.fromkeys(candidates):
        values = metrics.loc[metrics["metric"] == metric, "value"].astype(float)
        if np.isfinite(values).any():
            figs.append(_figure(plots.metric_plot(metrics, metric=metric), caption=metric))
    if not plots.budget_points(metrics, metric=primary_metric(task)).empty:
        refs = {"LegoMerge": "lego_merge"}
        base = best_baseline(metrics, metric=primary_metric(task))
        if base is not None:
            refs[f"best baseline ({base})"] = base
        png = plots.budget_plot(metrics, metric=primary_metric(task), references=refs)
        figs.append(_figure(png, caption="paired-data budget curve of LegoFuse"))
    if task == "survival":
        for model in km_models(metrics, pooled, max_plots=max_km_plots):
            df = pooled[model]
            if not {"time", "event", RISK} <= set(df.columns) or df.empty:
                continue
            png, p = plots.km_plot(df, title=model)
            figs.append(
                _figure(
                    png,
                    caption=f"{model}: median-split risk groups, validation patients of all "
                    f"folds, log-rank p={p:.3g}",
                )
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
    qc_images: Sequence[PathLike],
    *,
    max_images: int,
    wsi_qc: pd.DataFrame | None = None,
    max_side: int | None = None,
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
        data = shrink_image(data, max_side=max_side)
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


def _compute_section(benchmarks: Mapping[str, Sequence[PathLike]] | None) -> str:
    if not benchmarks:
        return ""
    cost = compute_cost(benchmarks)
    if cost.empty:
        return ""
    header = [
        "approach",
        "rule",
        "jobs",
        "wall s",
        "CPU s",
        "max RSS MB",
        "wall s incl. blocks",
        "CPU s incl. blocks",
    ]
    text = (
        "Totals over all folds (and modalities) from the Snakemake benchmark files. LegoMerge "
        "and LegoFuse start from the trained blocks, so their cost including the blocks adds "
        "the block training; the end-to-end baseline trains everything at once."
    )
    body = f"<p>{_e(text)}</p>" + _table(header, cost.itertuples(index=False), left=2, digits=1)
    return _section("Compute cost: merge, fuse, end-to-end", body, anchor="compute")


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

SECTIONS = (
    ("cohort", "Cohort"),
    ("models", "Models"),
    ("paired", "Against the best baseline"),
    ("folds", "Per fold"),
    ("classes", "Per class"),
    ("plots", "Plots"),
    ("training", "Training curves"),
    ("selection", "Chosen settings"),
    ("wsi-qc", "WSI QC"),
    ("compute", "Compute cost"),
    ("benchmarks", "Run times"),
    ("provenance", "Provenance"),
)


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
    selections: Mapping[str, Sequence[Any]] | None = None,
    task: str | None = None,
    max_km_plots: int = 6,
    max_qc_images: int = 6,
    wsi_qc: pd.DataFrame | None = None,
    paired: pd.DataFrame | None = None,
    n_boot: int = 1000,
    bootstrap_seed: int = 0,
    qc_max_side: int | None = 540,
    excluded: pd.DataFrame | None = None,
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
        Snakemake benchmark TSVs per rule (run times, and the compute cost of the rules
        ``train_block``, ``merge``, ``fuse``, ``concat_fusion``).
    qc_images : sequence of path
        WSI QC thumbnails (PNG/JPEG); the first ``max_qc_images`` are embedded.
    provenance : mapping
        From :func:`mmlego.report.provenance.collect_provenance`.
    synthetic : bool
        Marks the cohort as synthetic (title, banner, oracle c-index).
    training_logs : mapping name -> (DataFrame | path | list of those), optional
        Loss curves with columns epoch, split, loss; a list is taken as one log per fold.
    selections : mapping model -> list of (DataFrame | path), optional
        One selection table per fold (``fold<k>.selection.tsv``): the settings chosen per fold.
    task : {'survival', 'classification'}, optional
        Default: inferred from the metrics.
    max_km_plots : int
        Kaplan-Meier plots for at most this many models (best c-index first).
    max_qc_images : int
        Embed at most this many QC images.
    wsi_qc : DataFrame, optional
        The WSI stage's per-slide QC table (slide_id, patient_id, status, reason, n_tiles).
    paired : DataFrame, optional
        Per-fold differences against the best baseline (model, baseline, metric, fold, diff;
        ``metrics_paired.tsv``). Default: computed from ``metrics`` with
        :func:`mmlego.evaluation.evaluate.paired_table`.
    n_boot, bootstrap_seed : int
        Resamples and seed of the bootstrap intervals over folds.
    qc_max_side : int, optional
        QC images with a longer side are embedded shrunk to this size (they are shown 360 px
        wide; the full pictures stay in ``wsi/qc/``); ``None`` embeds them as they are.
    excluded : DataFrame, optional
        ``patient_id, reason``: patients of the input left out on purpose (the cohort
        folder's ``excluded.tsv``, e.g. of a class not kept), listed by reason.
    """
    task = task or infer_task(metrics)
    rank_by = primary_metric(task)
    pooled = pool_predictions(predictions)
    title = f"MM-Lego report: {cohort_name}" + (" (synthetic cohort)" if synthetic else "")

    sections = {"cohort": _cohort_section(patients, availability, excluded)}
    header, rows = model_summary_table(metrics, rank_by=rank_by, n_boot=n_boot, seed=bootstrap_seed)
    order = "lowest" if rank_by in LOWER_IS_BETTER else "highest"
    intro = (
        f"Mean ± SD over folds; under it [the percentile bootstrap 95% interval of the mean] "
        f"({n_boot} resamples of the folds, seed {bootstrap_seed}) and n, the folds with a "
        f"value; counts (n_...) are totals over the folds. Sorted by {rank_by}, {order} "
        f"first. With few folds the interval only describes the spread over folds."
    )
    sections["models"] = _section(
        "Models",
        _oracle_html(metrics, synthetic=synthetic) + f"<p>{_e(intro)}</p>" + _table(header, rows),
        anchor="models",
    )
    sections["paired"] = _paired_section(
        metrics, paired, task=task, n_boot=n_boot, seed=bootstrap_seed
    )
    model_order = [r[0] for r in rows]
    header, rows = per_fold_table(metrics, model_order=model_order)
    sections["folds"] = _section("Per fold", _table(header, rows, left=2), anchor="folds")
    if task == "classification" and "label" in patients.columns and pooled:
        sections["classes"] = _per_class_section(pooled, patients, model_order=model_order)
    sections["plots"] = _plots_section(metrics, pooled, task=task, max_km_plots=max_km_plots)
    if training_logs:
        logs = {name: _load_log(v) for name, v in training_logs.items()}
        png = plots.training_curves_plot(logs)
        sections["training"] = _section(
            "Training curves", _figure(png, caption="loss per epoch"), anchor="training"
        )
    if selections:
        header, rows = selection_table(
            {m: [_load_log(p) for p in ps] for m, ps in selections.items()}
        )
        intro = (
            "Per fold, the settings each model was trained with, chosen by successive halving "
            "on the fold's train patients and scored on its tune patients (never on its "
            "validation patients); the full races are in <model>/fold<k>.selection.tsv."
        )
        sections["selection"] = _section(
            "Chosen settings",
            f"<p>{_e(intro)}</p>" + _table(header, rows, left=2),
            anchor="selection",
        )
    sections["wsi-qc"] = _qc_section(
        qc_images, max_images=max_qc_images, wsi_qc=wsi_qc, max_side=qc_max_side
    )
    sections["compute"] = _compute_section(benchmarks)
    sections["benchmarks"] = _benchmark_section(benchmarks)
    sections["provenance"] = _provenance_section(provenance)

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
    links = [f'<a href="#{a}">{_e(t)}</a>' for a, t in SECTIONS if sections.get(a)]
    parts.append(f"<nav>{''.join(links)}</nav>")
    parts += [sections[a] for a, _ in SECTIONS if sections.get(a)]

    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{CSS}</style></head>\n<body>\n"
        + "\n".join(parts)
        + "\n</body></html>\n"
    )
    with atomic_path(out_html) as tmp:
        tmp.write_text(page, encoding="utf-8")
    return Path(out_html)
