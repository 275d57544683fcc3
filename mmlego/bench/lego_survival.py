"""A quick survival benchmark of the MM-Lego models over the pan-cancer cohorts, in one process.

Run::

    python -m mmlego.bench.lego_survival [--cohorts tcga_blca,tcga_kirc] [--folds 0-4] \
        [--configfile my_pancancer.yaml] [--set training.lr=0.001] [--out DIR] [--rsf] \
        [--unimodal]

It plans the cohorts exactly as the pan-cancer workflow (``workflow/pancancer.smk``) does, with
:func:`mmlego.cohort.pancancer.plan_cohorts`: the cohorts of the folder (``--data``, default
``../shared/data/porpoise`` beside the checkout), each with the candidate column groups it has
(``modalities`` of ``config/pancancer.yaml``, ``pancancer.min_columns``) and its full workflow
configuration. Then, fold by fold, it does with the workflow's own functions what the workflow
does with that configuration:

- the folds come from :func:`mmlego.cohort.splits.cohort_folds` (the cohort's split files with a
  tune share carved from their training patients, or folds made here);
- each table is preprocessed on the fold's training patients
  (:func:`mmlego.omics.preprocess.fit_transform_fold`);
- blocks, LegoMerge, LegoFuse and the late fusion of the blocks' risks are trained and predicted
  by :mod:`mmlego.training.blocks` and :mod:`mmlego.training.combine`, the Coxnet (and with
  ``--rsf`` the random survival forest) baselines by :mod:`mmlego.training.baselines` /
  :mod:`mmlego.training.forests`, with ``--unimodal`` also a Coxnet on each table alone
  (``coxnet_<modality>``: how far each block is from a linear model of its own inputs); every
  model is scored once on the fold's validation patients with Harrell's c-index
  (:func:`mmlego.evaluation.metrics.harrell_c`).

Settings: ``config/pancancer.yaml``, then each ``--configfile``, then each ``--set key.path=value``
(the value read as YAML), planned over ``config/config.yaml`` as in the workflow. The config of
each cohort is written to ``<out>/<cohort>.yaml``: the workflow run on it gives the same folds,
tables and models.

The baselines do not depend on the LegoBlocks' settings: their predictions are cached under
``<out>/../baseline_cache`` (``--cache``), keyed by cohort, fold and everything they depend on (the
tables, not the blocks' encoders).

Output: ``<out>/metrics.tsv`` (cohort, fold, model, c_index, n), the per-cohort table (mean ±
sd over folds) and the paired differences fold by fold (LegoFuse and LegoMerge minus Coxnet and
minus the late fusion), also written to ``<out>/summary.txt``.

Two runs (say the defaults and ``--set X=Y``) are compared with::

    python -m mmlego.bench.lego_survival --compare BASE_OUT OTHER_OUT

which reads their ``metrics.tsv`` and prints, for each model both ran, the mean over cohorts in
each run and the paired difference OTHER - BASE (fold by fold within each cohort, the mean over
cohorts with a percentile bootstrap interval over cohorts, and how many cohorts went up, stayed
within the pan-cancer report's tie or went down), then the difference of each model per cohort:
whether a setting helps across cohorts or on a few (:func:`compare_runs`).
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from mmlego.bench.runner import ROOT, parse_assignment
from mmlego.cohort.pancancer import CohortPlan, plan_cohorts
from mmlego.evaluation.prediction_format import RISK
from mmlego.io import read_tsv
from mmlego.pipeline.config import BASE_CONFIG_FILE, prepare_config
from mmlego.pipeline.config import merge as deep_merge
from mmlego.pipeline.stages import stage_settings
from mmlego.report.pancancer import ALL_COHORTS, TIE, cindex_table, paired_pancancer

log = logging.getLogger(__name__)

LEGO_MODELS = ("lego_fuse", "lego_merge", "late_fusion_mean_risk")
BASELINES = ("coxnet", "rsf")


# --------------------------------------------------------------------------- settings
def parse_set(items: Sequence[str]) -> dict[str, Any]:
    """``["a.b=1", "c=[x, y]"]`` -> ``{"a": {"b": 1}, "c": ["x", "y"]}`` (values as YAML)."""
    out: dict[str, Any] = {}
    for item in items:
        key, value = parse_assignment(item)
        node = out
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


def load_settings(configfiles: Sequence[str] = (), sets: Sequence[str] = ()) -> dict[str, Any]:
    """``config/pancancer.yaml``, then ``configfiles``, then ``--set`` overrides."""
    cfg = yaml.safe_load((ROOT / "config" / "pancancer.yaml").read_text())
    for f in configfiles:
        cfg = deep_merge(cfg, yaml.safe_load(Path(f).read_text()) or {})
    return deep_merge(cfg, parse_set(sets))


def parse_folds(text: str) -> list[int]:
    """``"0-4"`` -> [0, 1, 2, 3, 4]; ``"0,2"`` -> [0, 2]."""
    out: list[int] = []
    for part in text.split(","):
        a, sep, b = part.partition("-")
        out += list(range(int(a), int(b) + 1)) if sep else [int(a)]
    return out


def data_folder(data: str | None) -> Path:
    candidates = [
        data,
        os.environ.get("MMLEGO_PORPOISE_DATA"),
        ROOT.parent / "shared/data/porpoise",
    ]
    for c in candidates:
        if c and Path(c).is_dir():
            return Path(c).resolve()
    raise FileNotFoundError("PORPOISE data folder not found: pass --data")


def plan(settings: Mapping[str, Any], data: Path, cohorts: Sequence[str] = ()) -> list[CohortPlan]:
    """The cohorts of ``data`` (only ``cohorts``, if given) as the pan-cancer workflow plans
    them: each with its kept column groups and its workflow configuration, validated and with
    the schema's defaults filled in. A cohort the workflow leaves out is left out here too."""
    pan_config = copy.deepcopy(dict(settings))
    pan_config["pancancer"] = {
        **pan_config.get("pancancer", {}),
        "folder": str(data),
        "cohorts": list(cohorts),
    }
    defaults = yaml.safe_load(BASE_CONFIG_FILE.read_text())
    plans = []
    for p in plan_cohorts(pan_config, defaults):
        if p.runs:
            prepare_config(p.config)
            plans.append(p)
        else:
            log.warning("%s: left out, %s", p.name, p.left_out)
    return plans


# --------------------------------------------------------------------------- one cohort
def _key(*parts: Any) -> str:
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def run_cohort(
    cohort: CohortPlan,
    *,
    folds: Sequence[int],
    out: Path,
    cache: Path,
    rsf: bool = False,
    unimodal: bool = False,
    variants: Mapping[str, Mapping[str, Any]] | None = None,
) -> pd.DataFrame:
    """Train and score every model on the folds of one planned cohort; rows cohort, fold,
    model, c_index, n.

    ``unimodal``: also a penalised Cox model on each modality's own table (``coxnet_<m>``, the
    same preprocessed features and patients as ``block_<m>``), a linear reference for each block.

    ``variants``: name -> settings merged over the merge and fuse settings; each variant's
    LegoMerge and LegoFuse of the same blocks are scored as ``lego_merge@<name>`` and
    ``lego_fuse@<name>`` (cheap comparisons of merge / fuse settings); a variant reruns only
    the stages whose settings sections it changes.
    """
    import torch

    from mmlego.cohort.mcat import load_mcat
    from mmlego.cohort.sheets import ColumnGroup
    from mmlego.cohort.splits import cohort_folds
    from mmlego.evaluation.metrics import harrell_c
    from mmlego.io import read_tsv
    from mmlego.omics.preprocess import OmicsParams, fit_transform_fold
    from mmlego.pipeline.fold import FIT_ROLES, Fold
    from mmlego.training.baselines import late_fusion
    from mmlego.training.blocks import train_block
    from mmlego.training.combine import fuse_blocks, merge_blocks

    torch.set_num_threads(1)
    settings, name = cohort.config, cohort.name
    if settings["task"] != "survival":
        raise ValueError(f"{name}: the survival benchmark needs task: survival")
    specs = settings["modalities"]
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.yaml").write_text(yaml.safe_dump(settings, sort_keys=False))
    inputs = settings["inputs"]
    loaded = load_mcat(
        inputs["mcat_csv"],
        modalities={m: ColumnGroup.from_config(s["columns"]) for m, s in specs.items()},
        task="survival",
        allow_missing_features=inputs["allow_missing_features"],
    )
    patients = loaded.patients
    splits = settings["splits"]
    seed = int(settings["seed"])
    all_folds = cohort_folds(
        patients,
        given=inputs["split_files"],
        excluded=loaded.excluded["patient_id"],
        k=splits["k"],
        seed=seed,
        tune_fraction=splits["tune_fraction"],
        task=settings["task"],
        stratify_site=splits["stratify_site"],
    )
    absent = [i for i in folds if not 0 <= i < len(all_folds)]
    if absent:
        raise ValueError(f"{name}: no fold {absent}; it has folds 0-{len(all_folds) - 1}")
    names = sorted(specs)
    block_settings, merge_settings, fuse_settings = (
        stage_settings(settings, stage) for stage in ("block", "merge", "fuse")
    )
    rows = []
    for i in folds:
        start = time.perf_counter()
        split = all_folds[i]
        fold = Fold(
            index=i,
            roles=split.set_index("patient_id")["role"].astype(str),
            outcomes=patients,
        )
        work = Path(tempfile.mkdtemp(prefix=f"lego_{name}_{i}_"))
        try:
            fit_ids = fold.ids_in(FIT_ROLES)
            paths = {}
            for m in names:
                omics = fit_transform_fold(
                    loaded.omics[m],
                    fit_ids,
                    OmicsParams.from_config(specs[m].get("preprocess", {})),
                    name=m,
                    fold=i,
                    outcomes=patients,
                )
                paths[m] = str(work / f"{m}.npz")
                omics.save(paths[m])
            preds: dict[str, str] = {}
            for m in names:
                preds[f"block_{m}"] = str(work / f"block_{m}.tsv")
                train_block(
                    name=m,
                    modality_spec=specs[m],
                    data_path=paths[m],
                    fold=fold,
                    settings=block_settings,
                    out_model=str(work / f"block_{m}.pt"),
                    out_history=str(work / f"block_{m}.history.tsv"),
                    out_predictions=preds[f"block_{m}"],
                    out_selection=str(work / f"block_{m}.selection.tsv"),
                )
            data_spec = {m: ("table", paths[m]) for m in names}
            blocks = [str(work / f"block_{m}.pt") for m in names]

            # LegoMerge and LegoFuse of the fold's blocks with the configured settings, then with
            # each variant's merged over them (lego_merge@<variant>, lego_fuse@<variant>)
            runs = [("", {})] + [(f"@{v}", extra) for v, extra in (variants or {}).items()]
            for suffix, extra in runs if len(names) >= 2 else []:
                for model, stage, base in (
                    ("lego_merge", "merge", merge_settings),
                    ("lego_fuse", "fuse", fuse_settings),
                ):
                    if suffix and not set(extra) & set(base):
                        continue  # the variant leaves this stage's settings as they are
                    preds[model + suffix] = str(work / f"{stage}{suffix}.tsv")
                    outputs = {
                        "out_model": str(work / f"{stage}{suffix}.pt"),
                        "out_predictions": preds[model + suffix],
                        "out_selection": str(work / f"{stage}{suffix}.selection.tsv"),
                    }
                    if stage == "fuse":
                        outputs["out_history"] = str(work / f"{stage}{suffix}.history.tsv")
                    combine = merge_blocks if stage == "merge" else fuse_blocks
                    combine(
                        block_paths=blocks,
                        names=names,
                        data=data_spec,
                        fold=fold,
                        settings=deep_merge(base, extra),
                        **outputs,
                    )
            preds["late_fusion_mean_risk"] = str(work / "late.tsv")
            late_fusion(
                block_predictions=[preds[f"block_{m}"] for m in names],
                task="survival",
                out_predictions=preds["late_fusion_mean_risk"],
            )
            lego_seconds = time.perf_counter() - start
            tables = {m: {k: s.get(k) for k in ("columns", "preprocess")} for m, s in specs.items()}
            base_key = _key(name, i, seed, splits, tables, settings["baselines"])
            cached = cache / base_key
            cached.mkdir(parents=True, exist_ok=True)
            fold_args = {"split": split, "outcomes": patients, "settings": settings}
            preds["coxnet"] = _baseline(cached, "coxnet", paths, **fold_args)
            for m in names if unimodal else []:
                preds[f"coxnet_{m}"] = _baseline(cached, f"coxnet_{m}", {m: paths[m]}, **fold_args)
            if rsf:
                preds["rsf"] = _baseline(cached, "rsf", paths, forest=True, **fold_args)
            for model, path in preds.items():
                table = read_tsv(path)
                rows.append(
                    {
                        "cohort": name,
                        "fold": i,
                        "model": model,
                        "c_index": harrell_c(table["time"], table["event"], table[RISK]),
                        "n": len(table),
                    }
                )
            log.info(
                "%s fold %d: %s (lego %.0f s, all %.0f s)",
                name,
                i,
                " ".join(
                    f"{r['model']}={r['c_index']:.3f}"
                    for r in rows
                    if r["fold"] == i and r["cohort"] == name
                ),
                lego_seconds,
                time.perf_counter() - start,
            )
        finally:
            shutil.rmtree(work, ignore_errors=True)
        pd.DataFrame(rows).to_csv(out / f"{name}.metrics.tsv", sep="\t", index=False)
    return pd.DataFrame(rows)


def _baseline(
    cached: Path, model: str, paths, *, split, outcomes, settings, forest: bool = False
) -> str:
    """A Coxnet (``forest``: the random survival forest) on the tables ``paths`` of one fold,
    cached under ``cached`` as ``<model>.tsv``."""
    from mmlego.training.baselines import BaselineParams, linear_baseline_fold
    from mmlego.training.forests import forest_baseline_fold

    out = cached / f"{model}.tsv"
    if out.is_file():
        return str(out)
    fit, extra = (
        (forest_baseline_fold, {"n_bins": settings["survival"]["n_bins"]})
        if forest
        else (linear_baseline_fold, {"out_cv": str(cached / f"{model}.cv.tsv")})
    )
    fit(
        data=paths,
        split=split,
        outcomes=outcomes,
        task="survival",
        params=BaselineParams.from_config(settings.get("baselines")),
        seed=int(settings["seed"]),
        out_predictions=str(out),
        **extra,
    )
    return str(out)


# --------------------------------------------------------------------------- summaries
def best_block(metrics: pd.DataFrame) -> pd.DataFrame:
    """Per cohort and fold the c-index of the cohort's best block (best mean over folds)."""
    blocks = metrics[metrics["model"].str.startswith("block_")]
    means = blocks.groupby(["cohort", "model"])["c_index"].mean()
    best = means.groupby(level="cohort").idxmax().map(lambda t: t[1])
    out = blocks[blocks["model"] == blocks["cohort"].map(best)].copy()
    out["model"] = "best_block"
    return out


def summary_table(metrics: pd.DataFrame) -> pd.DataFrame:
    """Cohort x model: 'mean ± sd' of the c-index over folds, plus the mean over cohorts."""
    m = pd.concat([metrics, best_block(metrics)], ignore_index=True)
    stats = m.groupby(["cohort", "model"])["c_index"].agg(["mean", "std"])
    cells = stats.apply(lambda r: f"{r['mean']:.3f} ± {r['std']:.3f}", axis=1).unstack("model")
    means = stats["mean"].unstack("model")
    cells.loc["MEAN"] = means.mean().map(lambda v: f"{v:.3f}")
    order = [
        c for c in ("lego_fuse", "lego_merge", "late_fusion_mean_risk", "coxnet", "rsf")
        if c in cells
    ]  # fmt: skip
    order += ["best_block", *sorted(c for c in cells if c.startswith("block_"))]
    order += sorted(c for c in cells if c.startswith("coxnet_"))
    return cells[[c for c in order if c in cells]]


def paired_differences(metrics: pd.DataFrame) -> pd.DataFrame:
    """Per cohort the mean fold-by-fold difference of the MM-Lego models against baselines."""
    wide = metrics.pivot_table(index=["cohort", "fold"], columns="model", values="c_index")
    pairs = [
        ("lego_fuse", "coxnet"),
        ("lego_fuse", "late_fusion_mean_risk"),
        ("lego_merge", "coxnet"),
        ("lego_merge", "late_fusion_mean_risk"),
        ("lego_fuse", "rsf"),
    ]
    out = {}
    for a, b in pairs:
        if a in wide and b in wide:
            out[f"{a} - {b}"] = (wide[a] - wide[b]).groupby(level="cohort").mean()
    table = pd.DataFrame(out)
    table.loc["MEAN"] = table.mean()
    return table


def report(metrics: pd.DataFrame, seconds: float) -> str:
    lines = [
        "Harrell's c-index on the validation folds, mean ± sd over folds",
        summary_table(metrics).to_string(),
        "",
        "Paired differences (fold by fold, mean per cohort)",
        paired_differences(metrics).round(3).to_string(),
    ]
    diff = paired_differences(metrics)
    if "lego_fuse - coxnet" in diff:
        d = diff["lego_fuse - coxnet"].drop("MEAN")
        lines.append(
            f"lego_fuse - coxnet >= -0.01 on {int((d >= -0.01).sum())} of {len(d)} cohorts"
        )
    lines.append(f"time: {seconds:.0f} s")
    return "\n".join(lines)


OTHER = "@other"  # suffix of the second run's model names in :func:`compare_runs`


def read_metrics(folder: str | os.PathLike) -> pd.DataFrame:
    """A bench run's ``<folder>/metrics.tsv``, with a clear error when it is not one."""
    path = Path(folder) / "metrics.tsv"
    if not path.is_file():
        raise ValueError(f"{path}: no such file; give the --out folder of a finished bench run")
    metrics = read_tsv(path)
    missing = {"cohort", "fold", "model", "c_index"} - set(metrics.columns)
    if missing:
        raise ValueError(f"{path}: not a bench metrics table, lacks column(s) {sorted(missing)}")
    return metrics


def compare_runs(
    base: pd.DataFrame, other: pd.DataFrame, *, tie: float = TIE
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Paired comparison of two bench runs over the same cohorts and folds.

    Returns
    -------
    (overall, per_cohort)
        ``overall``: one row per model both runs scored: ``base`` and ``other`` (mean over
        cohorts of the cohort means), ``diff`` (mean over cohorts of the cohorts' mean
        fold-by-fold difference other - base), ``ci_low`` / ``ci_high`` (percentile bootstrap
        over cohorts), ``up`` / ``tie`` / ``down`` (cohorts whose mean difference is at least
        ``tie``, within it, or at most ``-tie``) and ``cohorts``. ``per_cohort``: cohort x model,
        the cohort's mean difference other - base.

    Raises
    ------
    ValueError
        If the runs do not cover the same cohort folds (naming the first ones that differ).
    """
    folds_base = set(zip(base["cohort"], base["fold"], strict=True))
    folds_other = set(zip(other["cohort"], other["fold"], strict=True))
    if folds_base != folds_other:
        only = sorted(folds_base ^ folds_other)[:5]
        raise ValueError(
            f"the two runs cover different cohort folds, e.g. {only}: compare runs with the "
            "same --cohorts and --folds"
        )
    models = sorted(set(base["model"]) & set(other["model"]))
    if not models:
        raise ValueError("the two runs have no model in common")
    long = pd.concat([base, other.assign(model=other["model"] + OTHER)])
    long = long[long["model"].str.removesuffix(OTHER).isin(models)]
    long = long.rename(columns={"c_index": "value"}).assign(metric="c_index")
    long = long[["cohort", "model", "fold", "metric", "value"]]
    _, summary = paired_pancancer(
        long, models=[m + OTHER for m in models], baselines=models, tie=tie
    )
    summary = summary[summary["model"] == summary["baseline"] + OTHER]
    means = cindex_table(long).query("cohort == @ALL_COHORTS").set_index("model")["mean"]
    pooled = summary[summary["scope"] == ALL_COHORTS].set_index("baseline").reindex(models)
    names = {"mean_diff": "diff", "ci_low": "ci_low", "ci_high": "ci_high", "wins": "up"}
    names |= {"ties": "tie", "losses": "down", "n": "cohorts"}
    overall = pooled[list(names)].rename(columns=names).rename_axis("model")
    overall.insert(0, "base", means.reindex(models).to_numpy())
    overall.insert(1, "other", means.reindex([m + OTHER for m in models]).to_numpy())
    per_cohort = (
        summary[summary["scope"] != ALL_COHORTS]
        .pivot_table(index="scope", columns="baseline", values="mean_diff")
        .rename_axis(index="cohort", columns="model")
    )
    return overall, per_cohort


def compare_report(base_dir: str, other_dir: str) -> str:
    """The text :func:`compare_runs` prints for two bench folders."""
    overall, per_cohort = compare_runs(read_metrics(base_dir), read_metrics(other_dir))
    return "\n".join(
        [
            f"{other_dir} (other) against {base_dir} (base): Harrell's c-index, mean over "
            f"cohorts; diff = other - base fold by fold, mean over cohorts, bootstrap 95% "
            f"interval over cohorts; up / tie / down: cohorts (tie: |diff| < {TIE:g})",
            overall.round(4).to_string(),
            "",
            "diff per cohort (mean over its folds)",
            per_cohort.round(4).to_string(),
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--cohorts", default="", help="comma-separated, e.g. tcga_blca,tcga_kirc (default: all)"
    )
    parser.add_argument("--folds", default="0-4", help="e.g. 0-4 or 0,2")
    parser.add_argument("--data", help="folder of cohorts (default ../shared/data/porpoise)")
    parser.add_argument(
        "--configfile",
        action="append",
        default=[],
        help="merged over config/pancancer.yaml, in order",
    )
    parser.add_argument("--set", action="append", default=[], help="key.path=value (YAML)")
    parser.add_argument("--out", default=None, help="results folder (default: a new temp dir)")
    parser.add_argument(
        "--cache", default=None, help="baseline cache (default: <out>/../baseline_cache)"
    )
    parser.add_argument("--rsf", action="store_true", help="also the random survival forest")
    parser.add_argument(
        "--unimodal",
        action="store_true",
        help="also a penalised Cox model on each modality's table alone (coxnet_<modality>)",
    )
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        help="NAME:key.path=value[;key.path=value]: also LegoMerge / LegoFuse with these settings",
    )
    parser.add_argument(
        "--compare",
        nargs=2,
        metavar=("BASE_OUT", "OTHER_OUT"),
        help="compare the metrics of two finished runs (their --out folders) and exit",
    )
    args = parser.parse_args(argv)
    if args.compare:
        try:
            print(compare_report(*args.compare))
        except ValueError as err:
            parser.error(str(err))
        return 0
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    log.setLevel(logging.INFO)
    settings = load_settings(args.configfile, args.set)
    variants = {}
    for v in args.variant:
        vname, _, items = v.partition(":")
        variants[vname] = parse_set([i for i in items.split(";") if i])
    cohorts = plan(settings, data_folder(args.data), [c for c in args.cohorts.split(",") if c])
    out = Path(args.out or tempfile.mkdtemp(prefix="lego_survival_")).resolve()
    cache = Path(args.cache).resolve() if args.cache else out.parent / "baseline_cache"
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    parts = []
    for cohort in cohorts:
        parts.append(
            run_cohort(
                cohort,
                folds=parse_folds(args.folds),
                out=out,
                cache=cache,
                rsf=args.rsf,
                unimodal=args.unimodal,
                variants=variants,
            )
        )
        metrics = pd.concat(parts, ignore_index=True)
        metrics.to_csv(out / "metrics.tsv", sep="\t", index=False)
    text = report(metrics, time.perf_counter() - start)
    (out / "summary.txt").write_text(text + "\n")
    print(text)
    print(f"results in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
