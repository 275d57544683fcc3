"""A quick survival benchmark of the MM-Lego models over the PORPOISE TCGA cohorts.

Run::

    python -m mmlego.bench.lego_survival --cohorts blca,kirc,lusc --folds 0-4 \
        [--configfile config/tcga_blca.yaml] [--set training.lr=0.001] [--out DIR] [--rsf]

For each cohort (``<data>/tcga_<cohort>_all_clean.csv.gz`` with the 5-fold case splits under
``<data>/splits/tcga_<cohort>/``, ``<data>`` = ``../shared/data/porpoise`` beside the checkout or
``--data``) it does, fold by fold, in one process and with the workflow's own functions, what the
workflow does with the same settings:

- the table modalities are the CSV's column groups ``*_rnaseq``, ``*_cnv``, ``*_mut`` and the
  clinical ``age`` / ``is_female`` (a group with fewer than ``--min-columns`` columns is left
  out), imported with :func:`mmlego.cohort.mcat.load_mcat`;
- the tune patients are carved from the given training patients
  (:func:`mmlego.cohort.splits.add_tune`), each table is preprocessed on the fold's training
  patients (:func:`mmlego.omics.preprocess.fit_transform_fold`);
- blocks, LegoMerge, LegoFuse and the late fusion of the blocks' risks are trained and predicted
  by :mod:`mmlego.training.blocks` and :mod:`mmlego.training.combine`, the Coxnet (and with
  ``--rsf`` the random survival forest) baselines by :mod:`mmlego.training.baselines` /
  :mod:`mmlego.training.forests`; every model is scored once on the fold's validation patients
  with Harrell's c-index (:func:`mmlego.evaluation.metrics.harrell_c`).

Settings: ``config/config.yaml``, then each ``--configfile``, then each ``--set key.path=value``
(the value read as YAML). A modality's ``preprocess`` and ``encoder`` come from the config's
``modalities.<name>`` entry (``rnaseq``, ``cnv``, ``mut``, ``clinical``), else from
:data:`FALLBACK_SPECS`. The merged config of each cohort is written to ``<out>/<cohort>.yaml``:
the workflow run on it gives the same folds, tables and models.

The baselines do not depend on the LegoBlocks' settings: their predictions are cached under
``<out>/../baseline_cache`` (``--cache``), keyed by cohort, fold and everything they depend on (the
tables, not the blocks' encoders).

Output: ``<out>/metrics.tsv`` (cohort, fold, model, c_index, n), the per-cohort table (mean ±
sd over folds) and the paired differences fold by fold (LegoFuse and LegoMerge minus Coxnet and
minus the late fusion), also written to ``<out>/summary.txt``.
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

from mmlego.bench.runner import ROOT
from mmlego.pipeline.config import merge as deep_merge

log = logging.getLogger(__name__)

COHORTS = (
    "blca", "brca", "coadread", "gbmlgg", "hnsc", "kirc", "kirp", "lihc", "lusc", "paad", "ucec",
)  # fmt: skip

GROUPS: dict[str, dict[str, Any]] = {
    "rnaseq": {"suffix": "_rnaseq"},
    "cnv": {"suffix": "_cnv"},
    "mut": {"suffix": "_mut"},
    "clinical": {"names": ["age", "is_female"]},
}
"""Column group of each modality the benchmark looks for."""

_OMICS_PRE = {
    "log1p": False,
    "variance_top_k": None,
    "outcome_top_k": 30,
    "zscore": True,
    "clip": 5.0,
    "signatures": "none",
}
_SNN = {"kind": "snn", "hidden": 32, "n_tokens": 4, "token_dim": 16, "dropout": 0.25}
FALLBACK_SPECS: dict[str, dict[str, Any]] = {
    "rnaseq": {
        "type": "table",
        "preprocess": {**_OMICS_PRE, "outcome_top_k": 100},
        "encoder": _SNN,
    },
    "cnv": {"type": "table", "preprocess": dict(_OMICS_PRE), "encoder": _SNN},
    "mut": {"type": "table", "preprocess": dict(_OMICS_PRE), "encoder": _SNN},
    "clinical": {
        "type": "table",
        "preprocess": {**_OMICS_PRE, "outcome_top_k": None},
        "encoder": {"kind": "mlp", "hidden": 16, "n_tokens": 4, "token_dim": 16, "dropout": 0.0},
    },
}
"""Modality specs used when the config has no entry of that name (e.g. ``mut``)."""

LEGO_MODELS = ("lego_fuse", "lego_merge", "late_fusion_mean_risk")
BASELINES = ("coxnet", "rsf")


# --------------------------------------------------------------------------- settings
def parse_set(items: Sequence[str]) -> dict[str, Any]:
    """``["a.b=1", "c=[x, y]"]`` -> ``{"a": {"b": 1}, "c": ["x", "y"]}`` (values as YAML)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set expects key.path=value, got {item!r}")
        node = out
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = yaml.safe_load(raw)
    return out


def load_settings(configfiles: Sequence[str] = (), sets: Sequence[str] = ()) -> dict[str, Any]:
    """``config/config.yaml``, then ``configfiles``, then ``--set`` overrides."""
    cfg = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
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


def cohort_modalities(
    csv: Path, settings: Mapping[str, Any], *, min_columns: int
) -> dict[str, dict[str, Any]]:
    """Modality name -> spec (type, columns, preprocess, encoder) of the groups the CSV has."""
    header = pd.read_csv(csv, nrows=0).columns.astype(str)
    config_mods = settings.get("modalities") or {}
    specs = {}
    for name, group in GROUPS.items():
        if "suffix" in group:
            n = int(sum(c.endswith(group["suffix"]) for c in header))
        else:
            n = int(sum(c in header for c in group["names"]))
            n = n if n == len(group["names"]) else 0
        if n == 0 or ("suffix" in group and n < min_columns):
            log.info("%s: modality %s left out (%d columns)", csv.name, name, n)
            continue
        base = config_mods.get(name)
        spec = copy.deepcopy(base if base and base.get("type") == "table" else FALLBACK_SPECS[name])
        spec["columns"] = dict(group)
        specs[name] = spec
    return specs


def cohort_config(
    cohort: str, data: Path, settings: Mapping[str, Any], modalities: Mapping[str, Any]
) -> dict[str, Any]:
    """The workflow config of one cohort with these settings (written beside the results)."""
    cfg = {k: v for k, v in settings.items() if k not in ("modalities", "demo", "wsi")}
    cfg = copy.deepcopy(cfg)
    cfg["cohort"] = f"tcga_{cohort}"
    cfg["task"] = "survival"
    cfg["inputs"] = {
        **cfg.get("inputs", {}),
        "mcat_csv": str(data / f"tcga_{cohort}_all_clean.csv.gz"),
        "split_files": str(data / "splits" / f"tcga_{cohort}" / "splits_{fold}.csv"),
        "allow_missing_features": True,
    }
    cfg["modalities"] = copy.deepcopy(dict(modalities))
    cfg["experiments"] = {"paired_budget": [], "disjoint": False}
    return cfg


# --------------------------------------------------------------------------- one cohort
def _key(*parts: Any) -> str:
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def run_cohort(
    cohort: str,
    *,
    data: Path,
    settings: Mapping[str, Any],
    folds: Sequence[int],
    out: Path,
    cache: Path,
    min_columns: int = 10,
    rsf: bool = False,
    variants: Mapping[str, Mapping[str, Any]] | None = None,
) -> pd.DataFrame:
    """Train and score every model on the folds of one cohort; rows cohort, fold, model, c_index.

    ``variants``: name -> settings merged over the merge and fuse settings; each variant's
    LegoMerge and LegoFuse of the same blocks are scored as ``lego_merge@<name>`` and
    ``lego_fuse@<name>`` (cheap comparisons of merge / fuse settings); a variant reruns only
    the stages whose settings sections it changes.
    """
    import torch

    from mmlego.cohort.mcat import load_mcat
    from mmlego.cohort.sheets import ColumnGroup
    from mmlego.cohort.splits import add_tune, read_given_splits
    from mmlego.evaluation.metrics import harrell_c
    from mmlego.io import read_tsv, write_tsv
    from mmlego.omics.preprocess import OmicsParams, fit_transform_fold
    from mmlego.pipeline.fold import FIT_ROLES, Fold
    from mmlego.training.baselines import BaselineParams, linear_baseline_fold
    from mmlego.training.blocks import train_block
    from mmlego.training.combine import fuse_blocks, late_fusion, merge_blocks

    torch.set_num_threads(1)
    csv = data / f"tcga_{cohort}_all_clean.csv.gz"
    specs = cohort_modalities(csv, settings, min_columns=min_columns)
    config = cohort_config(cohort, data, settings, specs)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{cohort}.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    loaded = load_mcat(
        csv,
        modalities={m: ColumnGroup.from_config(s["columns"]) for m, s in specs.items()},
        task="survival",
        allow_missing_features=True,
    )
    patients = loaded.patients
    split_files = [data / "splits" / f"tcga_{cohort}" / f"splits_{i}.csv" for i in range(5)]
    given = read_given_splits(
        split_files, patient_ids=patients.index, excluded=loaded.excluded["patient_id"]
    )
    seed = int(settings["seed"])
    tune_fraction = float(settings["splits"]["tune_fraction"])
    names = sorted(specs)
    block_settings = {
        k: settings[k] for k in ("task", "seed", "model", "survival", "training", "selection")
    }
    block_settings["task"] = "survival"
    merge_settings = {
        k: settings[k] for k in ("seed", "survival", "merge", "training", "selection")
    }
    fuse_settings = {k: settings[k] for k in ("seed", "survival", "training", "fuse", "selection")}
    merge_settings["task"] = fuse_settings["task"] = "survival"
    rows = []
    for i in folds:
        start = time.perf_counter()
        split = add_tune(
            given[i], patients, fraction=tune_fraction, seed=seed, index=i, by="survival"
        )
        fold = Fold(
            index=i,
            roles=split.set_index("patient_id")["role"].astype(str),
            outcomes=patients,
        )
        work = Path(tempfile.mkdtemp(prefix=f"lego_{cohort}_{i}_"))
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
            base_key = _key(
                cohort, i, seed, tune_fraction, tables, settings.get("baselines"), min_columns
            )
            split_tsv = str(work / "split.tsv")
            write_tsv(split, split_tsv)
            cached = cache / base_key
            cached.mkdir(parents=True, exist_ok=True)
            cox = cached / "coxnet.tsv"
            if not cox.is_file():
                linear_baseline_fold(
                    data=paths,
                    split=split,
                    outcomes=patients,
                    task="survival",
                    params=BaselineParams.from_config(settings.get("baselines")),
                    seed=seed,
                    out_predictions=str(cox),
                    out_cv=str(cached / "coxnet.cv.tsv"),
                )
            preds["coxnet"] = str(cox)
            if rsf:
                preds["rsf"] = _rsf(cached, paths, split, patients, settings, seed)
            for model, path in preds.items():
                table = read_tsv(path)
                rows.append(
                    {
                        "cohort": cohort,
                        "fold": i,
                        "model": model,
                        "c_index": harrell_c(table["time"], table["event"], table["risk"]),
                        "n": len(table),
                    }
                )
            log.info(
                "%s fold %d: %s (lego %.0f s, all %.0f s)",
                cohort,
                i,
                " ".join(
                    f"{r['model']}={r['c_index']:.3f}"
                    for r in rows
                    if r["fold"] == i and r["cohort"] == cohort
                ),
                lego_seconds,
                time.perf_counter() - start,
            )
        finally:
            shutil.rmtree(work, ignore_errors=True)
        pd.DataFrame(rows).to_csv(out / f"{cohort}.metrics.tsv", sep="\t", index=False)
    return pd.DataFrame(rows)


def _rsf(cached: Path, paths, split, patients, settings, seed) -> str:
    from mmlego.training.baselines import BaselineParams
    from mmlego.training.forests import forest_baseline_fold

    out = cached / "rsf.tsv"
    if not out.is_file():
        forest_baseline_fold(
            data=paths,
            split=split,
            outcomes=patients,
            task="survival",
            params=BaselineParams.from_config(settings.get("baselines")),
            seed=seed,
            n_bins=settings["survival"]["n_bins"],
            out_predictions=str(out),
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


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--cohorts", default=",".join(COHORTS), help="comma-separated, e.g. blca,kirc"
    )
    parser.add_argument("--folds", default="0-4", help="e.g. 0-4 or 0,2")
    parser.add_argument("--data", help="PORPOISE folder (default ../shared/data/porpoise)")
    parser.add_argument(
        "--configfile",
        action="append",
        default=None,
        help="merged over config/config.yaml (default: config/tcga_blca.yaml)",
    )
    parser.add_argument("--set", action="append", default=[], help="key.path=value (YAML)")
    parser.add_argument("--out", default=None, help="results folder (default: a new temp dir)")
    parser.add_argument(
        "--cache", default=None, help="baseline cache (default: <out>/../baseline_cache)"
    )
    parser.add_argument("--min-columns", type=int, default=10)
    parser.add_argument("--rsf", action="store_true", help="also the random survival forest")
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        help="NAME:key.path=value[;key.path=value]: also LegoMerge / LegoFuse with these settings",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    log.setLevel(logging.INFO)
    configfiles = (
        args.configfile if args.configfile is not None else [str(ROOT / "config/tcga_blca.yaml")]
    )
    settings = load_settings(configfiles, args.set)
    variants = {}
    for v in args.variant:
        vname, _, items = v.partition(":")
        variants[vname] = parse_set([i for i in items.split(";") if i])
    data = data_folder(args.data)
    out = Path(args.out or tempfile.mkdtemp(prefix="lego_survival_")).resolve()
    cache = Path(args.cache).resolve() if args.cache else out.parent / "baseline_cache"
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    parts = []
    for cohort in args.cohorts.split(","):
        parts.append(
            run_cohort(
                cohort.strip(),
                data=data,
                settings=settings,
                folds=parse_folds(args.folds),
                out=out,
                cache=cache,
                min_columns=args.min_columns,
                rsf=args.rsf,
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
