"""The synthetic demo cohort: determinism, availability, survival model and signal strength."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sksurv.metrics import concordance_index_censored

from mmlego.demo.cohort import DemoConfig, design, survival_outcomes, write_tables
from mmlego.io import read_tsv

SEEDS = range(5)


@pytest.fixture(scope="module")
def cohorts(tmp_path_factory) -> dict[int, Path]:
    """The default-size demo cohort's tables for seeds 0..4."""
    out = {}
    for seed in SEEDS:
        folder = tmp_path_factory.mktemp(f"cohort{seed}")
        write_tables(folder, DemoConfig(seed=seed))
        out[seed] = folder
    return out


def test_design_is_deterministic_and_fast():
    cfg = DemoConfig(seed=3)
    a, b = design(cfg), design(cfg)
    pd.testing.assert_frame_equal(a.patients, b.patients)
    pd.testing.assert_frame_equal(a.slides, b.slides)
    assert not design(DemoConfig(seed=4)).patients.equals(a.patients)
    durations = []
    for _ in range(5):
        t0 = time.perf_counter()
        design(cfg)
        durations.append(time.perf_counter() - t0)
    assert min(durations) < 0.05


def test_design_availability_and_ids():
    des = design(DemoConfig())
    pts, slides = des.patients, des.slides
    assert len(pts) == 120
    assert pts["patient_id"].iloc[0] == "SYN-0001"
    assert pts["patient_id"].str.fullmatch(r"SYN-\d{4}").all()
    slides_only = (pts["n_slides"] > 0) & ~pts["has_omics"]
    omics_only = pts["n_slides"] == 0
    two = pts["n_slides"] == 2
    assert slides_only.sum() == round(0.12 * 120)
    assert omics_only.sum() == round(0.12 * 120)
    assert two.sum() == round(0.15 * 120)
    assert not (omics_only & ~pts["has_omics"]).any()  # everyone has some modality
    # One slide row per planned slide, ids SYN-0001-S1, ...
    assert len(slides) == pts["n_slides"].sum()
    counts = slides.groupby("patient_id").size()
    planned = pts.set_index("patient_id")["n_slides"]
    assert counts.to_dict() == planned[planned > 0].to_dict()
    assert slides["slide_id"].str.fullmatch(r"SYN-\d{4}-S[12]").all()
    assert slides["slide_seed"].nunique() == len(slides)
    # Per-slide factor = patient's slide factor + small noise.
    merged = slides.merge(pts, on="patient_id")
    diff = merged["factor"] - merged["slide_factor"]
    assert 0 < diff.abs().max() < 0.8
    # The two latent factors are independent draws.
    assert abs(np.corrcoef(pts["slide_factor"], pts["omics_factor"])[0, 1]) < 0.3


def test_write_tables_is_byte_identical(tmp_path):
    cfg = DemoConfig(n_patients=40, seed=7)
    write_tables(tmp_path / "a", cfg)
    write_tables(tmp_path / "b", cfg)
    write_tables(tmp_path / "c", DemoConfig(n_patients=40, seed=8))
    files = sorted(
        p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file()
    )
    assert [str(f) for f in files] == [
        "README.txt",
        "omics/cnv.tsv",
        "omics/rnaseq.tsv",
        "patients.tsv",
        "slides.tsv",
        "synthetic_cohort.json",
        "synthetic_true_risk.tsv",
    ]
    for f in files:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    assert (tmp_path / "a" / "patients.tsv").read_bytes() != (
        tmp_path / "c" / "patients.tsv"
    ).read_bytes()


def test_tables_match_design_and_formats(cohorts):
    folder = cohorts[0]
    des = design(DemoConfig(seed=0))
    pts = read_tsv(folder / "patients.tsv")
    assert list(pts.columns) == ["patient_id", "time", "event", "label"]
    assert (pts["time"] > 0).all() and np.isfinite(pts["time"]).all()
    assert set(pts["event"]) == {0, 1}
    assert set(pts["label"]) == {"subtype_A", "subtype_B"}
    assert 0.3 < (pts["label"] == "subtype_B").mean() < 0.7
    with_omics = des.patients.loc[des.patients["has_omics"], "patient_id"].tolist()
    rna = read_tsv(folder / "omics" / "rnaseq.tsv")
    cnv = read_tsv(folder / "omics" / "cnv.tsv")
    assert rna["patient_id"].tolist() == with_omics == cnv["patient_id"].tolist()
    assert rna.shape[1] == 1 + 200 and cnv.shape[1] == 1 + 100
    assert rna.columns[1] == "SYNGENE0001" and cnv.columns[1] == "SYNSEG001"
    assert (rna.iloc[:, 1:] >= 0).all().all()
    assert (rna.iloc[:, 1:] > 0).to_numpy().mean() > 0.9
    assert set(np.unique(cnv.iloc[:, 1:])) == {-2, -1, 0, 1, 2}
    slides = read_tsv(folder / "slides.tsv", keep_default_na=False)
    assert slides["slide_id"].tolist() == des.slides["slide_id"].tolist()
    assert slides["path"].tolist() == [f"slides/{s}.tiff" for s in des.slides["slide_id"]]
    assert (slides["mpp"] == "").all()
    truth = read_tsv(folder / "synthetic_true_risk.tsv")
    np.testing.assert_allclose(
        truth["true_risk"], 1.2 * truth["slide_factor"] + 1.2 * truth["omics_factor"], atol=1e-5
    )
    meta = json.loads((folder / "synthetic_cohort.json").read_text())
    assert meta["synthetic"] is True and meta["config"]["seed"] == 0
    assert "SYNTHETIC" in (folder / "README.txt").read_text()


def test_omics_tables_carry_the_omics_factor_only(cohorts):
    folder = cohorts[0]
    truth = read_tsv(folder / "synthetic_true_risk.tsv").set_index("patient_id")
    rna = read_tsv(folder / "omics" / "rnaseq.tsv").set_index("patient_id")
    logx = np.log1p(rna)
    corr_o = logx.corrwith(truth.loc[rna.index, "omics_factor"]).abs()
    corr_s = logx.corrwith(truth.loc[rna.index, "slide_factor"]).abs()
    assert (corr_o > 0.6).sum() >= 15  # the signal genes
    assert corr_s.max() < 0.4


@pytest.mark.parametrize("seed", SEEDS)
def test_censoring_and_c_index(cohorts, seed):
    folder = cohorts[seed]
    pts = read_tsv(folder / "patients.tsv").set_index("patient_id")
    truth = read_tsv(folder / "synthetic_true_risk.tsv").set_index("patient_id").loc[pts.index]
    censored = 1 - pts["event"].mean()
    assert 0.35 <= censored <= 0.50
    event = pts["event"].astype(bool).to_numpy()
    times = pts["time"].to_numpy()
    c = {
        col: concordance_index_censored(event, times, truth[col].to_numpy())[0]
        for col in ("true_risk", "slide_factor", "omics_factor")
    }
    assert c["true_risk"] > 0.75
    assert c["slide_factor"] > 0.6 and c["omics_factor"] > 0.6
    assert c["slide_factor"] < c["true_risk"] - 0.05
    assert c["omics_factor"] < c["true_risk"] - 0.05


def test_survival_baseline_median():
    cfg = DemoConfig(censoring_target=0.0, baseline_median_months=40.0)
    rng = np.random.default_rng(0)
    time_, event = survival_outcomes(np.zeros(20000), cfg=cfg, rng=rng)
    assert event.all()
    assert abs(np.median(time_) - 40.0) < 1.5
    # A higher risk shortens survival.
    time_hi, _ = survival_outcomes(np.full(20000, 1.0), cfg=cfg, rng=np.random.default_rng(0))
    assert np.median(time_hi) < 0.6 * np.median(time_)


def test_config_validation():
    with pytest.raises(ValueError, match="frac"):
        DemoConfig(frac_slides_only=0.5, frac_omics_only=0.5)
    with pytest.raises(ValueError, match="n_signal_genes"):
        DemoConfig(n_genes=10, n_signal_genes=20)
