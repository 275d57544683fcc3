"""Report figures, rendered off-screen (Agg) and returned as PNG bytes.

Figures are built with :class:`matplotlib.figure.Figure` directly (no pyplot state), and PNGs
carry no software/date metadata, so the same inputs give the same bytes. They are stored as
256-colour palette PNGs (median cut, no dithering): plots have few colours, so this looks the
same and makes them about a third of the true-colour size in the self-contained report.
"""

from __future__ import annotations

import io
from collections.abc import Mapping

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image
from sksurv.compare import compare_survival
from sksurv.nonparametric import kaplan_meier_estimator

from mmlego.evaluation.evaluate import LOWER_IS_BETTER
from mmlego.evaluation.prediction_format import RISK
from mmlego.pipeline.models import spec_of

ORACLE_PREFIX = "oracle"
DPI = 110


BUDGET_RULE = "fuse_budget"  # the rule of the paired-data budget models (lego_fuse_paired<pct>)


def _budget_percent(model: str) -> str | None:
    """The paired-data percentage of a budget model, or None for any other model."""
    try:
        spec, params = spec_of(model)
    except KeyError:
        return None
    return params["pct"] if spec.rule == BUDGET_RULE else None


def _png(fig: Figure) -> bytes:
    """The figure as a palette PNG (see the module docstring)."""
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    buf.seek(0)
    with Image.open(buf) as img:
        pal = img.convert("RGB").quantize(
            colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE
        )
    out = io.BytesIO()
    pal.save(out, format="PNG", optimize=True)
    return out.getvalue()


def metric_plot(metrics: pd.DataFrame, *, metric: str = "c_index") -> bytes:
    """Per model: one point per fold and a bar at the mean (± SD); models sorted best first.

    Parameters
    ----------
    metrics : DataFrame
        Long metrics table (model, fold, metric, value).
    metric : str
        Which metric to draw (e.g. ``c_index``, ``c_index_complete``, ``auc``).

    Raises
    ------
    ValueError
        When the table has no finite value for ``metric``.
    """
    rows = metrics[(metrics["metric"] == metric) & np.isfinite(metrics["value"].astype(float))]
    if rows.empty:
        raise ValueError(f"metrics table has no finite values for metric {metric!r}")
    stats = rows.groupby("model")["value"].agg(["mean", "std"])
    lower = metric in LOWER_IS_BETTER
    stats = stats.sort_values("mean", ascending=lower, kind="stable")
    models = list(stats.index)
    fig = Figure(figsize=(min(10.0, max(4.0, 0.55 * len(models) + 2)), 3.8), layout="constrained")
    ax = fig.add_subplot()
    colors = ["#999999" if m.startswith(ORACLE_PREFIX) else "#4c72b0" for m in models]
    x = np.arange(len(models))
    sd = stats["std"].fillna(0.0)
    ax.bar(x, stats["mean"], yerr=sd, color=colors, alpha=0.45, capsize=3, width=0.7)
    for i, model in enumerate(models):
        vals = rows.loc[rows["model"] == model, "value"].to_numpy(float)
        jitter = np.linspace(-0.18, 0.18, len(vals)) if len(vals) > 1 else np.zeros(1)
        ax.scatter(x[i] + jitter, vals, color="black", s=14, zorder=3)
    if metric.startswith(("c_index", "auc", "td_auc")):
        ax.axhline(0.5, color="#c44e52", lw=0.8, ls="--")
    ax.set_xticks(x, models, rotation=30, ha="right")
    ax.set_ylabel(metric)
    better = " (lower is better)" if lower else ""
    ax.set_title(f"{metric} per fold (points) and mean ± SD (bars){better}")
    return _png(fig)


def budget_points(
    metrics: pd.DataFrame, *, metric: str, full_model: str | None = "lego_fuse"
) -> pd.DataFrame:
    """Per-fold values of the paired-data budget models ``lego_fuse_paired<pct>``.

    ``full_model`` (LegoFuse fine-tuned on all paired training patients) is added as 100 %
    when there is no ``lego_fuse_paired100`` and at least one budget model.

    Returns
    -------
    DataFrame
        percent, fold, value (finite values only, sorted by percent and fold).
    """
    rows = metrics[(metrics["metric"] == metric) & np.isfinite(metrics["value"].astype(float))]
    names = rows["model"].astype(str)
    pct = names.map(_budget_percent)
    budget = pct.notna()
    out = pd.DataFrame(
        {
            "percent": pct[budget].astype(int).to_numpy(),
            "fold": rows.loc[budget, "fold"].to_numpy(),
            "value": rows.loc[budget, "value"].astype(float).to_numpy(),
        }
    )
    if len(out) and full_model is not None and 100 not in set(out["percent"]):
        full = rows[names == full_model]
        extra = pd.DataFrame(
            {"percent": 100, "fold": full["fold"].to_numpy(), "value": full["value"].to_numpy()}
        )
        out = pd.concat([out, extra], ignore_index=True) if len(extra) else out
    return out.sort_values(["percent", "fold"], kind="stable").reset_index(drop=True)


def budget_plot(
    metrics: pd.DataFrame, *, metric: str = "c_index", references: Mapping[str, str] | None = None
) -> bytes:
    """The paired-data budget curve: LegoFuse's ``metric`` against the share of paired
    training patients it was fine-tuned on (mean ± SD over folds, points per fold).

    Parameters
    ----------
    metrics : DataFrame
        Long metrics table with ``lego_fuse_paired<pct>`` models (and ``lego_fuse`` as 100 %,
        see :func:`budget_points`).
    metric : str
    references : mapping label -> model, optional
        Models drawn as horizontal lines at their mean (e.g. LegoMerge, the best baseline).

    Raises
    ------
    ValueError
        When there is no finite value of a budget model.
    """
    points = budget_points(metrics, metric=metric)
    if points.empty:
        raise ValueError(f"no lego_fuse_paired<pct> model has a finite {metric!r}")
    stats = points.groupby("percent")["value"].agg(["mean", "std"])
    fig = Figure(figsize=(4.8, 3.6), layout="constrained")
    ax = fig.add_subplot()
    ax.errorbar(
        stats.index,
        stats["mean"],
        yerr=stats["std"].fillna(0.0),
        color="#4c72b0",
        capsize=3,
        marker="o",
        label="LegoFuse (mean ± SD)",
    )
    ax.scatter(points["percent"], points["value"], color="black", s=10, alpha=0.6, zorder=3)
    styles = iter(["--", ":", "-."])
    for label, model in (references or {}).items():
        vals = metrics.loc[
            (metrics["model"] == model) & (metrics["metric"] == metric), "value"
        ].astype(float)
        if np.isfinite(vals).any():
            ax.axhline(vals.mean(), color="#777777", lw=1, ls=next(styles, "--"), label=f"{label}")
    ax.set_xlabel("paired training patients used for fusion (%)")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} against the paired-data budget")
    ax.legend(fontsize=7)
    return _png(fig)


def risk_groups(predictions: pd.DataFrame) -> np.ndarray:
    """'high' / 'low' risk group of each row: above / at-or-below its fold's median risk.

    The split is made within each fold (a ``fold`` column; one fold if absent), because risk
    scales of separately trained fold models need not agree; the groups are then pooled.
    """
    if "fold" in predictions.columns:
        folds = predictions["fold"].astype(str).to_numpy()
    else:
        folds = np.zeros(len(predictions), dtype=int)
    risk = predictions[RISK].astype(float)
    median = risk.groupby(folds).transform("median")
    return np.where(risk.to_numpy() > median.to_numpy(), "high", "low")  # (n,)


def logrank_p(time: np.ndarray, event: np.ndarray, group: np.ndarray) -> float:
    """Log-rank p value between groups; ``nan`` with fewer than two groups or no events."""
    time = np.asarray(time, float)
    event = np.asarray(event).astype(bool)
    group = np.asarray(group)
    if len(np.unique(group)) < 2 or not event.any():
        return float("nan")
    y = np.array(list(zip(event, time, strict=True)), dtype=[("event", bool), ("time", float)])
    return float(compare_survival(y, group)[1])


def km_plot(predictions: pd.DataFrame, *, title: str) -> tuple[bytes, float]:
    """Kaplan-Meier curves of the median-split risk groups (see :func:`risk_groups`).

    Parameters
    ----------
    predictions : DataFrame
        time, event, risk (and fold) of one model's validation patients, pooled over folds.
    title : str
        Figure title (the model name).

    Returns
    -------
    png : bytes
    p_value : float
        Log-rank p value between the groups (``nan`` when undefined).
    """
    time = predictions["time"].to_numpy(float)
    event = predictions["event"].to_numpy(int).astype(bool)
    group = risk_groups(predictions)
    p = logrank_p(time, event, group)
    fig = Figure(figsize=(4.8, 3.6), layout="constrained")
    ax = fig.add_subplot()
    for name, color in (("low", "#4c72b0"), ("high", "#c44e52")):
        mask = group == name
        if not mask.any():
            continue
        t, s = kaplan_meier_estimator(event[mask], time[mask])
        t = np.concatenate([[0.0], t])
        s = np.concatenate([[1.0], s])
        label = f"{name} risk (n={int(mask.sum())}, events={int(event[mask].sum())})"
        ax.step(t, s, where="post", color=color, label=label)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("time")
    ax.set_ylabel("survival probability")
    ax.set_title(f"{title}: log-rank p = {p:.3g}" if np.isfinite(p) else f"{title}: p n/a")
    ax.legend(loc="lower left", fontsize=8)
    return _png(fig), p


def long_loss_table(df: pd.DataFrame) -> pd.DataFrame:
    """Loss log in long form (epoch, split, loss[, fold]).

    Accepts the long form as is, or the wide training history (epoch, train_loss, tune_loss,
    ...) written by :mod:`mmlego.training`, melted on its ``<split>_loss`` columns.
    """
    if {"epoch", "split", "loss"} <= set(df.columns):
        return df
    loss_cols = [c for c in df.columns if c.endswith("_loss")]
    if "epoch" not in df.columns or not loss_cols:
        return df  # left for the caller's column check to report
    keep = ["epoch", "fold"] if "fold" in df.columns else ["epoch"]
    long = df.melt(id_vars=keep, value_vars=loss_cols, var_name="split", value_name="loss")
    long["split"] = long["split"].str.removesuffix("_loss")
    return long.dropna(subset=["loss"])


def training_curves_plot(logs: Mapping[str, pd.DataFrame], *, ncols: int = 3) -> bytes:
    """Loss per epoch, one panel per log, one line per split (and per fold, if a column).

    Parameters
    ----------
    logs : mapping name -> DataFrame(epoch, split, loss[, fold])
        Training logs, e.g. one per model; wide histories (epoch, train_loss, tune_loss) are
        accepted too (see :func:`long_loss_table`).

    Raises
    ------
    ValueError
        When a log lacks one of the columns epoch, split, loss (naming the log).
    """
    if not logs:
        raise ValueError("no training logs to plot")
    logs = {name: long_loss_table(df) for name, df in logs.items()}
    for name, df in logs.items():
        missing = [c for c in ("epoch", "split", "loss") if c not in df.columns]
        if missing:
            raise ValueError(f"training log {name!r} lacks column(s) {missing}")
    ncols = min(ncols, len(logs))
    nrows = int(np.ceil(len(logs) / ncols))
    fig = Figure(figsize=(3.6 * ncols, 2.8 * nrows), layout="constrained")
    palette = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3"]
    for k, (name, df) in enumerate(logs.items()):
        ax = fig.add_subplot(nrows, ncols, k + 1)
        splits = sorted(df["split"].astype(str).unique())
        keys = ["fold", "split"] if "fold" in df.columns else ["split"]
        for key, part in df.groupby(keys, sort=True):
            split = str(key[-1] if isinstance(key, tuple) else key)
            part = part.sort_values("epoch")
            color = palette[splits.index(split) % len(palette)]
            marker = "o" if len(part) <= 5 else None  # a 1-epoch run is still visible
            ax.plot(part["epoch"], part["loss"], color=color, alpha=0.8, lw=1, marker=marker, ms=3)
        for split in splits:
            ax.plot([], [], color=palette[splits.index(split) % len(palette)], label=split)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        ax.legend(fontsize=7)
    return _png(fig)
