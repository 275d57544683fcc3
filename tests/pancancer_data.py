"""Small synthetic cohorts in the MCAT/PORPOISE CSV format, for the pan-cancer tests."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd


def synthetic_cohort(
    n_patients: int,
    groups: Mapping[str, int],
    *,
    seed: int = 0,
    constant: Sequence[str] = (),
    missing_age: int = 0,
) -> pd.DataFrame:
    """One row per slide (a few patients have two): the metadata columns, then ``n`` columns
    per suffix of ``groups`` (``{"_rnaseq": 12, "_cnv": 3}``). Survival depends on the first
    feature of each group. ``constant`` columns get one value for everybody; the first
    ``missing_age`` patients have no age."""
    rng = np.random.default_rng(seed)
    cases = [f"TCGA-{seed:02d}-{i:04d}" for i in range(n_patients)]
    frame: dict[str, object] = {
        "case_id": cases,
        "slide_id": [f"{c}-01Z.svs" for c in cases],
        "site": rng.choice(["A1", "B2", "C3"], n_patients),
        "is_female": rng.integers(0, 2, n_patients),
        "oncotree_code": "X",
        "age": rng.normal(60, 10, n_patients).round(),
    }
    risk = np.zeros(n_patients)
    for suffix, n in groups.items():
        for j in range(n):
            if suffix == "_mut":
                values = (rng.random(n_patients) < 0.3).astype(float)
            else:
                values = rng.normal(size=n_patients).round(3)
            frame[f"G{j}{suffix}"] = values
            if j == 0:
                risk += values
    time = rng.exponential(30 * np.exp(-0.7 * risk)) + 1.0
    frame["survival_months"] = time.round(2)
    frame["censorship"] = (rng.random(n_patients) < 0.35).astype(int)
    df = pd.DataFrame(frame)
    for col in constant:
        df[col] = 1
    if missing_age:
        df.loc[: missing_age - 1, "age"] = np.nan
    second = df.iloc[: max(1, n_patients // 10)].copy()  # a second slide of some patients
    second["slide_id"] = [s.replace("-01Z", "-02Z") for s in second["slide_id"]]
    return pd.concat([df, second], ignore_index=True)


def write_cohort(
    folder: Path, name: str, df: pd.DataFrame, *, folds: int = 0, scheme: str = ""
) -> Path:
    """Write ``<name>_all_clean.csv.gz`` (with an unnamed index column) and, with ``folds``,
    MCAT-style split files ``splits/<name>/splits_<k>.csv`` (with a ``scheme``, e.g.
    ``5foldcv``, ``splits/<scheme>/<name>/splits_<k>.csv`` as in MCAT's repository)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}_all_clean.csv.gz"
    df.to_csv(path)
    if folds:
        cases = np.array(sorted(df["case_id"].unique()))
        which = np.arange(len(cases)) % folds
        split_dir = folder / "splits" / scheme / name
        split_dir.mkdir(parents=True, exist_ok=True)
        for k in range(folds):
            train, val = cases[which != k], cases[which == k]
            table = pd.DataFrame({"train": pd.Series(train), "val": pd.Series(val)})
            table.to_csv(split_dir / f"splits_{k}.csv")
    return path
