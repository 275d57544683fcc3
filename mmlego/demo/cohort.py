"""The synthetic demo cohort: patients, survival outcomes, omics tables and the slide plan.

Everything here is **synthetic**: no real patient stands behind any row. Each synthetic patient
has two independent latent factors drawn from a standard normal:

- ``slide_factor``: seen only in the patient's slides (the slide writer turns it into tissue
  appearance; see :mod:`mmlego.demo.slides`),
- ``omics_factor``: seen only in the omics tables (it shifts a subset of RNA-seq genes and the
  gain/loss probabilities of a subset of CNV segments).

Survival follows a proportional-hazards model whose log-hazard is
``beta_slide * slide_factor + beta_omics * omics_factor`` with a Weibull baseline in months, so
each modality carries half of the signal and a model that fuses both can beat either alone.
Censoring is independent of the outcome: exponential censoring times whose common scale is
calibrated so that the realised censored fraction is close to ``censoring_target``.

Two entry points:

- :func:`design` is pure and fast (it runs at workflow parse time to list the slide ids): it draws
  the latent factors, which modalities each patient has, and the slide plan.
- :func:`write_tables` writes the cohort folder's tables (patients, omics, slide sheet, the true
  risk, a README and a metadata JSON). Slide images are written separately, one per slide id of
  :func:`design`, by :func:`mmlego.demo.slides.write_synthetic_slide`.

Every random draw comes from ``numpy.random.default_rng`` streams spawned from ``seed``: the same
configuration gives byte-identical files.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mmlego.io import atomic_path, write_json, write_tsv

__all__ = ["DemoConfig", "DemoDesign", "design", "survival_outcomes", "write_tables"]

# Independent random streams (SeedSequence spawn keys) for each part of the cohort, so that
# changing, say, the number of genes does not change the patients' factors or outcomes.
_STREAM_DESIGN = 0
_STREAM_SURVIVAL = 1
_STREAM_LABEL = 2
_STREAM_RNASEQ = 3
_STREAM_CNV = 4

LABELS = ("subtype_A", "subtype_B")


@dataclass(frozen=True)
class DemoConfig:
    """Parameters of the synthetic demo cohort.

    Parameters
    ----------
    n_patients
        Number of synthetic patients.
    seed
        Master seed; every random draw derives from it.
    n_genes, n_signal_genes
        RNA-seq genes, and how many of them the omics factor shifts.
    n_cnv, n_signal_cnv
        CNV segments, and how many of them the omics factor pushes towards gains or losses.
    frac_slides_only, frac_omics_only, frac_two_slides
        Fractions of patients with slides but no omics, omics but no slides, and two slides (plus
        omics); every other patient has one slide and omics.
    censoring_target
        Fraction of censored patients the censoring scale is calibrated to.
    beta_slide, beta_omics
        Log-hazard ratios per unit of the slide and omics factors.
    baseline_median_months, weibull_shape
        Weibull baseline: median survival time of a patient with both factors at 0, and shape.
    slide_noise
        Standard deviation of the per-slide noise added to the patient's slide factor.
    rnaseq_noise
        Standard deviation of the per-patient log-expression noise of every gene.
    rnaseq_effect
        Absolute log-expression shift per unit of omics factor of the signal genes.
    cnv_effect
        Shift per unit of omics factor of the latent copy-number score of the signal segments.
    label_noise
        Standard deviation of the noise in the score that defines the two synthetic subtypes.
    """

    n_patients: int = 120
    seed: int = 0
    n_genes: int = 200
    n_signal_genes: int = 20
    n_cnv: int = 100
    n_signal_cnv: int = 15
    frac_slides_only: float = 0.12
    frac_omics_only: float = 0.12
    frac_two_slides: float = 0.15
    censoring_target: float = 0.42
    beta_slide: float = 1.2
    beta_omics: float = 1.2
    baseline_median_months: float = 45.0
    weibull_shape: float = 1.3
    slide_noise: float = 0.15
    rnaseq_noise: float = 0.5
    rnaseq_effect: float = 0.8
    cnv_effect: float = 1.0
    label_noise: float = 0.5

    def __post_init__(self) -> None:
        if self.n_patients < 10:
            raise ValueError(f"DemoConfig.n_patients must be >= 10, got {self.n_patients}")
        if self.seed < 0:
            raise ValueError(f"DemoConfig.seed must be >= 0, got {self.seed}")
        for name, total, signal in [
            ("genes", self.n_genes, self.n_signal_genes),
            ("cnv", self.n_cnv, self.n_signal_cnv),
        ]:
            if not 1 <= signal <= total:
                raise ValueError(
                    f"DemoConfig: need 1 <= n_signal_{name} <= n_{name}, got {signal} and {total}"
                )
        fracs = (self.frac_slides_only, self.frac_omics_only, self.frac_two_slides)
        if min(fracs) < 0 or sum(fracs) >= 1:
            raise ValueError(
                "DemoConfig: frac_slides_only, frac_omics_only and frac_two_slides must be >= 0 "
                f"and sum to < 1, got {fracs}"
            )
        if not 0 <= self.censoring_target < 1:
            raise ValueError(
                f"DemoConfig.censoring_target must be in [0, 1), got {self.censoring_target}"
            )
        if self.baseline_median_months <= 0 or self.weibull_shape <= 0:
            raise ValueError("DemoConfig: baseline_median_months and weibull_shape must be > 0")


@dataclass(frozen=True)
class DemoDesign:
    """What :func:`design` decides: the synthetic patients and their slides.

    Attributes
    ----------
    config
        The configuration it was drawn from.
    patients
        One row per patient: ``patient_id`` (``SYN-0001``, ...), ``slide_factor``,
        ``omics_factor`` (floats), ``has_omics`` (bool), ``n_slides`` (0, 1 or 2).
    slides
        One row per slide: ``patient_id``, ``slide_id`` (``SYN-0001-S1``, ...), ``slide_seed``
        (int, seeds the slide image), ``factor`` (the patient's slide factor plus small
        per-slide noise; what the slide image shows).
    """

    config: DemoConfig
    patients: pd.DataFrame
    slides: pd.DataFrame


def _rng(cfg: DemoConfig, stream: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([cfg.seed, stream]))


def design(cfg: DemoConfig) -> DemoDesign:
    """Draw the synthetic patients' latent factors, modality availability and slide plan.

    Pure (no file access) and fast (a few milliseconds for hundreds of patients).

    Parameters
    ----------
    cfg
        The demo configuration.

    Returns
    -------
    DemoDesign
        ``patients`` and ``slides`` tables (see :class:`DemoDesign`).
    """
    n = cfg.n_patients
    rng = _rng(cfg, _STREAM_DESIGN)
    slide_factor = rng.standard_normal(n)  # (n,)
    omics_factor = rng.standard_normal(n)  # (n,)
    # Availability: exact counts, assigned to a random permutation of the patients.
    n_slides_only = round(cfg.frac_slides_only * n)
    n_omics_only = round(cfg.frac_omics_only * n)
    n_two = round(cfg.frac_two_slides * n)
    order = rng.permutation(n)
    has_omics = np.ones(n, dtype=bool)
    n_slides = np.ones(n, dtype=np.int64)
    has_omics[order[:n_slides_only]] = False
    n_slides[order[n_slides_only : n_slides_only + n_omics_only]] = 0
    n_slides[order[n_slides_only + n_omics_only : n_slides_only + n_omics_only + n_two]] = 2
    width = max(4, len(str(n)))
    ids = [f"SYN-{i + 1:0{width}d}" for i in range(n)]
    patients = pd.DataFrame(
        {
            "patient_id": ids,
            "slide_factor": slide_factor,
            "omics_factor": omics_factor,
            "has_omics": has_omics,
            "n_slides": n_slides,
        }
    )
    slide_rows = []
    # One seed and one noise draw per possible slide, drawn for every patient, so that a
    # patient's slides do not depend on other patients' availability.
    seeds = rng.integers(0, 2**31 - 1, size=(n, 2))  # (n, 2)
    noise = rng.standard_normal((n, 2)) * cfg.slide_noise  # (n, 2)
    for i, pid in enumerate(ids):
        for j in range(n_slides[i]):
            slide_rows.append(
                (pid, f"{pid}-S{j + 1}", int(seeds[i, j]), float(slide_factor[i] + noise[i, j]))
            )
    slides = pd.DataFrame(slide_rows, columns=["patient_id", "slide_id", "slide_seed", "factor"])
    return DemoDesign(config=cfg, patients=patients, slides=slides)


def survival_outcomes(
    true_risk: np.ndarray, *, cfg: DemoConfig, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Draw survival times and event indicators from the proportional-hazards model.

    Parameters
    ----------
    true_risk
        (n,) log-hazard ratios.
    cfg
        Supplies the Weibull baseline and the censoring target.
    rng
        Random generator.

    Returns
    -------
    time, event
        (n,) float months > 0 and (n,) int 0/1 (1 = death observed).
    """
    n = true_risk.shape[0]
    k = cfg.weibull_shape
    # Weibull PH: S(t | r) = exp(-(t / lam)^k * exp(r)); lam gives the requested baseline median.
    lam = cfg.baseline_median_months / np.log(2.0) ** (1.0 / k)
    u = rng.uniform(size=n)  # (n,)
    t_event = lam * (-np.log1p(-u) * np.exp(-true_risk)) ** (1.0 / k)  # (n,)
    c_unit = rng.exponential(size=n)  # (n,) censoring times up to a common scale
    if cfg.censoring_target == 0:
        scale = np.inf
    else:
        # The censored fraction mean(scale * c_unit < t_event) falls as the scale grows:
        # bisect (on log scale) for the scale that gives the target.
        lo, hi = -10.0, 15.0
        for _ in range(100):
            mid = 0.5 * (lo + hi)
            if np.mean(np.exp(mid) * c_unit < t_event) > cfg.censoring_target:
                lo = mid
            else:
                hi = mid
        scale = np.exp(hi)
    t_cens = scale * c_unit
    event = (t_event <= t_cens).astype(np.int64)
    time = np.minimum(t_event, t_cens)
    time = np.maximum(np.round(time, 2), 0.01)  # months, > 0
    return time, event


def _rnaseq(cfg: DemoConfig, omics_factor: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """TPM-like expression (n, n_genes) >= 0; signal genes shifted by the omics factor."""
    rng = _rng(cfg, _STREAM_RNASEQ)
    n = omics_factor.shape[0]
    base = rng.normal(3.0, 1.5, size=cfg.n_genes)  # (g,) log-scale gene means
    sd = cfg.rnaseq_noise * rng.uniform(0.6, 1.4, size=cfg.n_genes)  # (g,)
    signal = rng.choice(cfg.n_genes, size=cfg.n_signal_genes, replace=False)
    effect = np.zeros(cfg.n_genes)
    sign = rng.choice([-1.0, 1.0], size=cfg.n_signal_genes)
    effect[signal] = sign * cfg.rnaseq_effect * rng.uniform(0.7, 1.3, size=cfg.n_signal_genes)
    log_expr = base + omics_factor[:, None] * effect + rng.standard_normal((n, cfg.n_genes)) * sd
    expr = np.round(np.exp(log_expr) - 1.0, 3).clip(min=0.0)  # (n, g)
    names = [f"SYNGENE{j + 1:04d}" for j in range(cfg.n_genes)]
    return expr, names


def _cnv(cfg: DemoConfig, omics_factor: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Copy-number calls (n, n_cnv) in -2..2; signal segments pushed by the omics factor."""
    rng = _rng(cfg, _STREAM_CNV)
    n = omics_factor.shape[0]
    offset = rng.normal(0.0, 0.3, size=cfg.n_cnv)  # (s,) per-segment tendency to gain/lose
    signal = rng.choice(cfg.n_cnv, size=cfg.n_signal_cnv, replace=False)
    effect = np.zeros(cfg.n_cnv)
    effect[signal] = rng.choice([-1.0, 1.0], size=cfg.n_signal_cnv) * cfg.cnv_effect
    score = offset + omics_factor[:, None] * effect + rng.standard_normal((n, cfg.n_cnv))
    calls = np.digitize(score, [-2.2, -1.1, 1.1, 2.2]) - 2  # (n, s) in -2..2
    names = [f"SYNSEG{j + 1:03d}" for j in range(cfg.n_cnv)]
    return calls.astype(np.int64), names


_README = """\
SYNTHETIC DEMO COHORT - no real patient data.

Generated by mmlego.demo.cohort (seed {seed}, {n} synthetic patients). Every value in this
folder was drawn at random. Each synthetic patient has two independent latent factors: the
slide factor (shown only in the synthetic slides) and the omics factor (shown only in the
synthetic RNA-seq and CNV tables). Survival follows a proportional-hazards model with
log-hazard = {bs} * slide_factor + {bo} * omics_factor, Weibull baseline (median {med} months,
shape {shape}), and independent exponential censoring calibrated to {cens:.0%} censored.

Files:
  patients.tsv                 patient_id, time (months), event (1 = death), label
  slides.tsv                   patient_id, slide_id, path (relative to this folder), mpp
  slides/<slide_id>.tiff       synthetic slide images (mmlego.demo.slides)
  omics/rnaseq.tsv             synthetic TPM-like expression, genes SYNGENE0001...
  omics/cnv.tsv                synthetic copy-number calls -2..2, segments SYNSEG001...
  synthetic_true_risk.tsv      the generating log-hazard and factors (never read by a model)
  synthetic_cohort.json        all generating parameters
"""


def write_tables(outdir: str | os.PathLike, cfg: DemoConfig) -> None:
    """Write the synthetic cohort's tables into ``outdir``.

    Writes ``patients.tsv``, ``slides.tsv``, ``omics/rnaseq.tsv``, ``omics/cnv.tsv``,
    ``synthetic_true_risk.tsv``, ``README.txt`` and ``synthetic_cohort.json`` (each atomically).
    Slide images (``slides/<slide_id>.tiff``) are not written here.

    Parameters
    ----------
    outdir
        The cohort folder (created if needed).
    cfg
        The demo configuration; the same configuration gives byte-identical files.
    """
    out = Path(outdir)
    des = design(cfg)
    pts = des.patients
    s = pts["slide_factor"].to_numpy()
    o = pts["omics_factor"].to_numpy()
    true_risk = cfg.beta_slide * s + cfg.beta_omics * o  # (n,)
    time, event = survival_outcomes(true_risk, cfg=cfg, rng=_rng(cfg, _STREAM_SURVIVAL))
    label_rng = _rng(cfg, _STREAM_LABEL)
    label_score = s + o + label_rng.standard_normal(len(pts)) * cfg.label_noise
    label = np.where(label_score > 0, LABELS[1], LABELS[0])

    ids = pts["patient_id"]
    write_tsv(
        pd.DataFrame({"patient_id": ids, "time": time, "event": event, "label": label}),
        out / "patients.tsv",
    )
    write_tsv(
        pd.DataFrame(
            {
                "patient_id": ids,
                "true_risk": np.round(true_risk, 6),
                "slide_factor": np.round(s, 6),
                "omics_factor": np.round(o, 6),
            }
        ),
        out / "synthetic_true_risk.tsv",
    )
    write_tsv(
        pd.DataFrame(
            {
                "patient_id": des.slides["patient_id"],
                "slide_id": des.slides["slide_id"],
                "path": [f"slides/{sid}.tiff" for sid in des.slides["slide_id"]],
                "mpp": "",
            }
        ),
        out / "slides.tsv",
    )
    omics_mask = pts["has_omics"].to_numpy()
    omics_ids = ids[omics_mask].tolist()
    expr, genes = _rnaseq(cfg, o)
    rna = pd.DataFrame(expr[omics_mask], columns=genes)
    rna.insert(0, "patient_id", omics_ids)
    write_tsv(rna, out / "omics" / "rnaseq.tsv")
    calls, segs = _cnv(cfg, o)
    cnv = pd.DataFrame(calls[omics_mask], columns=segs)
    cnv.insert(0, "patient_id", omics_ids)
    write_tsv(cnv, out / "omics" / "cnv.tsv")

    meta = {
        "synthetic": True,
        "description": "synthetic demo cohort generated by mmlego.demo.cohort; no real patients",
        "config": dataclasses.asdict(cfg),
        "n_patients": len(pts),
        "n_slides": len(des.slides),
        "n_slides_only": int(((pts["n_slides"] > 0) & ~pts["has_omics"]).sum()),
        "n_omics_only": int((pts["n_slides"] == 0).sum()),
        "n_two_slides": int((pts["n_slides"] == 2).sum()),
        "censored_fraction": round(float(1 - event.mean()), 4),
        "labels": {lab: int((label == lab).sum()) for lab in LABELS},
    }
    write_json(meta, out / "synthetic_cohort.json")
    with atomic_path(out / "README.txt") as tmp:
        tmp.write_text(
            _README.format(
                seed=cfg.seed,
                n=cfg.n_patients,
                bs=cfg.beta_slide,
                bo=cfg.beta_omics,
                med=cfg.baseline_median_months,
                shape=cfg.weibull_shape,
                cens=cfg.censoring_target,
            )
        )
