"""The TCGA benchmarks: the shipped cohort configs run through the workflow on the real files.

A :class:`Benchmark` names the shipped config, the files it needs under the TCGA data folder
(``../shared/data/tcga`` beside the checkout, ``$MMLEGO_TCGA_DATA`` or ``--data``) and the numbers
published for the same folds. :func:`run_benchmark` runs it in a scratch working copy and
:func:`comparison_table` puts the measured figures next to the published ones.

Protocol (every run): patient-level folds from MCAT's split files; every statistic, bin edge and
scaler fitted on the fold's training patients; early stopping on a ``tune`` subset carved from the
training patients; the validation fold scored once. With ``inner=True`` (:func:`inner_split_files`)
the folds are replaced by *inner* folds: validation = each outer fold's ``tune`` patients,
training = the rest of its training patients, the outer validation patients left out entirely:
the only figures hyperparameters may be chosen on.

A run's figures also depend on the master seed (``seed``): it draws the ``tune`` patients, the
networks' initial weights and batch order, and the baselines' inner folds. With ``--seeds`` the
benchmark runs once per seed (:func:`run_seeds`) and :func:`seed_table` gives each model's fold
mean under every seed and their mean, sd and range, the spread a figure of one seed comes with.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from mmlego.bench.runner import (
    ROOT,
    RunResult,
    run_workflow,
    shared_data,
    summarise_metrics,
    working_copy,
)
from mmlego.cohort.mcat import load_mcat
from mmlego.cohort.splits import add_tune, fold_strata, read_given_splits, write_folds
from mmlego.io import write_tsv

log = logging.getLogger(__name__)

__all__ = [
    "BLCA",
    "UCEC_SUBTYPE",
    "Benchmark",
    "comparison_table",
    "format_seed_table",
    "inner_split_files",
    "main",
    "published_cindex",
    "run_benchmark",
    "run_seeds",
    "seed_table",
]


@dataclass(frozen=True)
class Benchmark:
    """A shipped cohort config and the files it reads from the TCGA data folder."""

    name: str
    config: str  # relative to the checkout
    cohort: str
    csv: str  # relative to the data folder
    splits: str  # pattern with {fold}, relative to the data folder
    metric: str  # c_index or auc
    project: str  # row of MCAT's published tables
    published: dict[str, str] = field(default_factory=dict)  # label -> published_cindex file
    targets: dict[str, float] = field(default_factory=dict)  # model -> stretch target

    @property
    def metric_label(self) -> str:
        """How the metric is named in the printed tables."""
        return "Harrell's c-index" if self.metric == "c_index" else "ROC AUC"

    @property
    def baseline(self) -> str:
        """The penalised linear model the target models are set against."""
        return "coxnet" if self.metric == "c_index" else "logistic_enet"


BLCA = Benchmark(
    name="TCGA-BLCA survival (RNA-seq, CNV, clinical)",
    config="config/tcga_blca.yaml",
    cohort="tcga_blca",
    csv="tcga_blca_all_clean.csv.gz",
    splits="splits/tcga_blca/splits_{fold}.csv",
    metric="c_index",
    project="blca",
    published={
        "SNN (omics)": "SNNsm_nll_surv_a0.0_reg1e-04_5foldcv_gc32_sig.csv",
        "AMIL (slides)": "AMILsm_nll_surv_a0.0_5foldcv_gc32_sig.csv",
        "AMIL+SNN concat": "AMILsm_nll_surv_a0.0_5foldcv_gc32_sig_concat.csv",
        "MCAT": "MCATsm_nll_surv_a0.0_5foldcv_gc32_concat.csv",
    },
    targets={"lego_fuse": 0.65, "lego_merge": 0.62},
)

UCEC_SUBTYPE = Benchmark(
    name="TCGA-UCEC histological subtype UEC vs USC (CNV, mutations)",
    config="config/tcga_ucec_subtype.yaml",
    cohort="tcga_ucec_subtype",
    csv="tcga_ucec_all_clean.csv.gz",
    splits="splits/tcga_ucec/splits_{fold}.csv",
    metric="auc",
    project="ucec",
    targets={"lego_fuse": 0.85, "lego_merge": 0.85},
)

# MCAT's published BLCA numbers (data/tcga/published_cindex), used when the files are absent.
PUBLISHED_BLCA = {
    "SNN (omics)": (0.541, 0.016),
    "AMIL (slides)": (0.536, 0.038),
    "AMIL+SNN concat": (0.605, 0.045),
    "MCAT": (0.624, 0.034),
}


def published_cindex(bench: Benchmark, data: Path) -> pd.DataFrame:
    """MCAT's published 5-fold validation c-index (mean, sd) per method for the cohort."""
    rows = []
    for label, name in bench.published.items():
        path = data / "published_cindex" / name
        if path.is_file():
            table = pd.read_csv(path)
            row = table[table.iloc[:, 0].astype(str).str.lower() == bench.project]
            if len(row):
                rows.append(
                    {
                        "model": f"{label} [published]",
                        "mean": float(row["Val C-Index (Mean)"].iloc[0]),
                        "sd": float(row["Val C-Index (STD)"].iloc[0]),
                    }
                )
                continue
        if bench is BLCA and label in PUBLISHED_BLCA:
            mean, sd = PUBLISHED_BLCA[label]
            rows.append({"model": f"{label} [published]", "mean": mean, "sd": sd})
    return pd.DataFrame(rows, columns=["model", "mean", "sd"])


def inner_split_files(
    bench: Benchmark,
    data: Path,
    outdir: Path,
    *,
    k: int,
    seed: int,
    tune_fraction: float,
) -> list[Path]:
    """Inner folds for choosing hyperparameters without the validation folds.

    For outer fold i (MCAT's file): the ``tune`` patients the workflow carves from its training
    patients (same seed and fraction, :func:`mmlego.cohort.splits.add_tune`) become the inner
    validation set, the remaining training patients the inner training set; the outer
    validation patients appear in no role.
    """
    config = yaml.safe_load((ROOT / bench.config).read_text())
    task = config.get("task", "survival")
    inputs = config.get("inputs", {})
    cohort = load_mcat(
        data / bench.csv,
        modalities={},
        task=task,
        label_column=inputs.get("label_column") or None,
        classes=inputs.get("classes") or None,
    )
    outer = read_given_splits(
        [data / bench.splits.replace("{fold}", str(i)) for i in range(k)],
        patient_ids=cohort.patients.index,
        excluded=cohort.excluded["patient_id"],
    )
    by = fold_strata(task)
    inner = []
    for i, fold in enumerate(outer):
        carved = add_tune(fold, cohort.patients, fraction=tune_fraction, seed=seed, index=i, by=by)
        roles = carved["role"].map({"train": "train", "tune": "val"})
        keep = carved["role"] != "val"
        inner.append(pd.DataFrame({"patient_id": carved["patient_id"][keep], "role": roles[keep]}))
    return write_folds(inner, outdir)


def run_benchmark(
    bench: Benchmark,
    *,
    data: Path,
    workdir: Path,
    cores: int = 2,
    folds: int = 5,
    inner: bool = False,
    overrides: dict[str, Any] | None = None,
    configfiles: Sequence[str] = (),
    quiet: bool = True,
) -> RunResult:
    """Run a benchmark's config in ``workdir`` (a working copy) on the files under ``data``.

    Parameters
    ----------
    bench
        Which benchmark.
    data
        The TCGA data folder.
    workdir
        Working copy (see :func:`mmlego.bench.runner.working_copy`).
    cores
        Snakemake ``--cores``.
    folds
        Number of MCAT split files used (the first ``folds``).
    inner
        Run on inner folds (see :func:`inner_split_files`) under the cohort name
        ``<cohort>_inner``.
    overrides
        Further config keys (e.g. ``{"training": {"epochs": 2}}``), merged last.
    configfiles
        Further config files merged after the benchmark's own.
    quiet
        Keep Snakemake's output in ``workdir/snakemake.out``.
    """
    config = yaml.safe_load((ROOT / bench.config).read_text())
    seed = int((overrides or {}).get("seed", config.get("seed", 0)))
    tune_fraction = float(
        (overrides or {}).get("splits", {}).get("tune_fraction")
        or config.get("splits", {}).get("tune_fraction", 0.2)
    )
    cohort = bench.cohort
    if inner:
        cohort = f"{bench.cohort}_inner"
        files = inner_split_files(
            bench, data, workdir / "inner_splits", k=folds, seed=seed, tune_fraction=tune_fraction
        )
        split_files: Any = [str(f) for f in files]
    else:
        split_files = [str(data / bench.splits.replace("{fold}", str(i))) for i in range(folds)]
    paths = {
        "cohort": cohort,
        "inputs": {
            "mcat_csv": str(data / bench.csv),
            "split_files": split_files,
            "signatures": str(data / "signatures.csv"),
        },
        "splits": {"k": folds},
    }
    merged = _merge(paths, overrides or {})
    return run_workflow(
        workdir,
        configfiles=[bench.config, *configfiles],
        overrides=merged,
        cohort=cohort,
        cores=cores,
        quiet=quiet,
    )


def _merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def comparison_table(bench: Benchmark, result: RunResult, data: Path) -> pd.DataFrame:
    """Measured mean ± sd per model next to the published figures (same folds)."""
    measured = summarise_metrics(result.metrics, metric=bench.metric)
    measured = measured[~measured["model"].str.startswith("oracle")]
    measured["source"] = "this run"
    published = published_cindex(bench, data) if bench.metric == "c_index" else pd.DataFrame()
    if len(published):
        published = published.assign(
            n=np.nan, source="published by MCAT, same 5 folds, its protocol"
        )
    table = pd.concat([measured, published], ignore_index=True)
    table["target"] = table["model"].map(bench.targets)
    return table[["model", "mean", "sd", "n", "source", "target"]]


def format_table(bench: Benchmark, table: pd.DataFrame, result: RunResult) -> str:
    """The comparison as text."""
    label = bench.metric_label
    lines = [
        f"{bench.name}: {label}, mean ± sd over folds (validation folds scored once)",
        f"{'model':<34} {label:>16}  {'folds':>5}  {'target':>6}  source",
    ]
    for row in table.itertuples():
        n = "" if pd.isna(row.n) else f"{int(row.n)}"
        target = "" if pd.isna(row.target) else f"{row.target:.2f}"
        lines.append(
            f"{row.model:<34} {row.mean:>8.3f} ± {row.sd:<5.3f}  {n:>5}  {target:>6}  {row.source}"
        )
    base = bench.baseline
    means = dict(zip(table["model"], table["mean"], strict=True))
    if base in means:
        for model in bench.targets:
            if model in means:
                verdict = "above" if means[model] > means[base] else "not above"
                lines.append(
                    f"{model}: {means[model]:.3f} ({verdict} the {base} baseline "
                    f"{means[base]:.3f}; target {bench.targets[model]:.2f}: "
                    f"{'reached' if means[model] >= bench.targets[model] else 'not reached'})"
                )
    lines.append(f"workflow time: {result.seconds:.0f} s; results in {result.results}")
    return "\n".join(lines)


def run_seeds(
    bench: Benchmark,
    seeds: Sequence[int],
    *,
    workdir: Path,
    overrides: dict[str, Any] | None = None,
    **kwargs: Any,
) -> dict[int, RunResult]:
    """:func:`run_benchmark` once per master seed, each in its own working copy
    ``workdir/seed<S>``, with ``seed`` set over ``overrides`` and every config file;
    ``kwargs``: the other arguments of :func:`run_benchmark`."""
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"give distinct seeds, got {list(seeds)}")
    results = {}
    for seed in seeds:
        work = working_copy(Path(workdir) / f"seed{seed}")
        results[seed] = run_benchmark(
            bench, workdir=work, overrides=_merge(overrides or {}, {"seed": seed}), **kwargs
        )
    return results


def seed_table(tables: Mapping[int, pd.DataFrame]) -> pd.DataFrame:
    """Each model's figure under every master seed, from ``tables`` (seed -> that run's
    :func:`comparison_table`; the published rows, which no seed changes, are left out): one
    column per seed (``seed <S>``: the mean over folds), then the mean, sample sd, min and max
    over the seeds, and the target; best mean first. A model missing under a seed (NaN) is
    summarised over the seeds that have it."""
    columns = {
        f"seed {seed}": table[table["source"] == "this run"].set_index("model")["mean"]
        for seed, table in tables.items()
    }
    wide = pd.DataFrame(columns)
    out = wide.assign(
        mean=wide.mean(axis=1),
        sd=wide.std(axis=1, ddof=1),
        min=wide.min(axis=1),
        max=wide.max(axis=1),
    )
    targets = pd.concat(list(tables.values())).drop_duplicates("model").set_index("model")
    out["target"] = targets["target"].reindex(out.index)
    out = out.sort_values("mean", ascending=False).rename_axis("model").reset_index()
    return out


def format_seed_table(bench: Benchmark, table: pd.DataFrame) -> str:
    """:func:`seed_table` as text, with how many seeds each target model is above the baseline
    (Coxnet / the elastic net) and reaches its target."""
    per_seed = [c for c in table.columns if c.startswith("seed ")]
    label = bench.metric_label
    lines = [
        f"{bench.name}: {label} (mean over folds) under {len(per_seed)} master seeds",
        f"{'model':<24}" + "".join(f"{c:>9}" for c in per_seed) + "   mean ± sd      range",
    ]
    for row in table.itertuples(index=False):
        values = dict(zip(table.columns, row, strict=True))
        cells = "".join(f"{values[c]:>9.3f}" for c in per_seed)
        spread = "" if pd.isna(values["sd"]) else f"{values['sd']:.3f}"
        lines.append(
            f"{values['model']:<24}{cells}   {values['mean']:.3f} ± {spread:<5}"
            f"  {values['min']:.3f}-{values['max']:.3f}"
        )
    base = bench.baseline
    by_model = table.set_index("model")
    if base in by_model.index:
        for model, target in bench.targets.items():
            if model not in by_model.index:
                continue
            mine, theirs = by_model.loc[model, per_seed], by_model.loc[base, per_seed]
            above = int((mine > theirs).sum())
            reached = int((mine >= target).sum())
            lines.append(
                f"{model}: {by_model.loc[model, 'mean']:.3f} over the seeds; above {base} under "
                f"{above} of {len(per_seed)} seeds; target {target:.2f} reached under {reached}"
            )
    return "\n".join(lines)


def main(bench: Benchmark, argv: Sequence[str] | None = None) -> int:
    """Command line of a benchmark module (``python -m mmlego.bench.tcga_blca``)."""
    parser = argparse.ArgumentParser(description=f"Benchmark: {bench.name}")
    parser.add_argument("--data", help="TCGA data folder (default: ../shared/data/tcga)")
    parser.add_argument("--workdir", help="scratch folder for the run (default: a new temp dir)")
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--folds", type=int, default=5, help="use the first K split files")
    parser.add_argument(
        "--inner",
        action="store_true",
        help="inner folds (val = each fold's tune patients; outer val left out): for tuning",
    )
    parser.add_argument("--configfile", action="append", default=[], help="extra config file")
    parser.add_argument("--epochs", type=int, help="override training.epochs (quick runs)")
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        help="run once per master seed (in WORKDIR/seed<S>; over any seed a config file sets) "
        "and print each model's figure under every seed with their mean, sd and range",
    )
    parser.add_argument("--verbose", action="store_true", help="show Snakemake's output")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    data = shared_data(args.data)
    if data is None:
        parser.error("TCGA data folder not found: pass --data or set MMLEGO_TCGA_DATA")
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix=f"mmlego-{bench.cohort}-")).resolve()
    overrides: dict[str, Any] = {}
    if args.epochs:
        overrides["training"] = {"epochs": args.epochs}
    extra = [str(Path(c).resolve()) for c in args.configfile]
    options = dict(
        data=data,
        cores=args.cores,
        folds=args.folds,
        inner=args.inner,
        overrides=overrides,
        configfiles=extra,
        quiet=not args.verbose,
    )

    def compared(result: RunResult) -> pd.DataFrame:
        """The run's comparison table, also written to its ``comparison.tsv``."""
        table = comparison_table(bench, result, data)
        write_tsv(table, result.workdir / "comparison.tsv")
        return table

    print(f"running {bench.config} on {data} in {workdir} ...", flush=True)
    if not args.seeds:
        result = run_benchmark(bench, workdir=working_copy(workdir), **options)
        print(format_table(bench, compared(result), result))
        return 0
    tables = {}
    for seed, result in run_seeds(bench, args.seeds, workdir=workdir, **options).items():
        tables[seed] = compared(result)
        print(f"\nmaster seed {seed}:\n{format_table(bench, tables[seed], result)}")
    seeds = seed_table(tables)
    write_tsv(seeds, workdir / "seeds.tsv")
    print(f"\n{format_seed_table(bench, seeds)}")
    return 0
