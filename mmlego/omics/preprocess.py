"""Fold-safe preprocessing of omics tables.

For each fold, every statistic of the transform is fitted on the fold's training patients only:
the imputation values, the feature selection (top-k training variance, constant features dropped),
and the z-score mean and standard deviation. The fitted transform is then applied to every patient
of the table (train, tune and validation alike), so a validation patient's values never influence
how any patient is transformed.

Steps, in order: ``log1p`` (optional) -> impute missing values (training median or mean) -> drop
features constant over the training patients -> keep the ``variance_top_k`` features of highest
training variance (optional) -> keep the ``outcome_top_k`` features most associated with the
training patients' outcome (optional: univariate Cox score test for survival, ANOVA F for classes)
-> z-score with training mean/std (optional) -> clip to ``[-clip, clip]`` (optional).

Optional gene-family signatures (``signatures: append`` or ``only``; families such as MCAT's
``signatures.csv``: tumour suppressors, oncogenes, protein kinases, ...): the score of a family is
the mean of its member genes' values z-scored with training statistics (every non-constant member,
whether or not ``variance_top_k`` keeps it), then z-scored itself with its training mean and
standard deviation. Genes are matched by name with the ``_rnaseq`` / ``_cnv`` / ``_mut`` suffix
removed. ``append`` adds the scores after the selected features (named ``signature:<family>``),
``only`` keeps the scores alone.

A fitted fold is stored as ``.npz`` (plain arrays, no pickles): ``patient_ids``,
``feature_names``, ``X`` (n, p) float32 for all patients of the table, ``train_ids`` and the
fitted arrays, so that it can be re-applied to new patients with :meth:`OmicsFold.transform`.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from mmlego.cohort.sheets import OMICS_SUFFIXES
from mmlego.io import atomic_path
from mmlego.pipeline.config import check_section, schema_defaults
from mmlego.pipeline.models import OUTCOME_COLUMNS

__all__ = [
    "OmicsFold",
    "OmicsParams",
    "fit_transform_fold",
    "gene_name",
    "load_omics_fold",
    "outcome_association",
    "read_signatures",
]

log = logging.getLogger(__name__)

FORMAT_VERSION = 2
"""Version 2 added the signature arrays; version 1 files load as folds without signatures."""

SIGNATURE_PREFIX = "signature:"


_DEFAULTS = schema_defaults("$defs", "preprocess")


@dataclass(frozen=True)
class OmicsParams:
    """How one omics modality is preprocessed.

    Parameters
    ----------
    log1p
        Apply ``log(1 + x)`` first (expression counts/TPM); values must be >= 0 (a negative
        value means the table is already log-transformed or centred).
    variance_top_k
        Keep the k features of highest training variance (after log and imputation);
        ``None`` keeps every non-constant feature.
    outcome_top_k
        Then keep the k features most associated with the outcome of the training patients
        (``|z|`` of the univariate Cox score test for survival, ANOVA F for classification);
        ``None`` = no such selection. Needs the outcomes when fitting.
    zscore
        Standardise with the training mean and standard deviation.
    impute
        Fill missing values with the training ``"median"`` or ``"mean"`` of the feature.
    clip
        Clip the final values to ``[-clip, clip]``; ``None`` = no clipping.
    signatures
        ``"none"``; ``"append"`` gene-family scores to the selected features; ``"only"`` use the
        scores alone. Needs the families (``signatures.csv``) when fitting.
    signature_min_genes
        A family is scored only if at least this many of its genes are in the table (and vary
        over the training patients).
    """

    log1p: bool = _DEFAULTS["log1p"]
    variance_top_k: int | None = _DEFAULTS["variance_top_k"]
    outcome_top_k: int | None = _DEFAULTS["outcome_top_k"]
    zscore: bool = _DEFAULTS["zscore"]
    impute: Literal["median", "mean"] = _DEFAULTS["impute"]
    clip: float | None = _DEFAULTS["clip"]
    signatures: Literal["none", "append", "only"] = _DEFAULTS["signatures"]
    signature_min_genes: int = _DEFAULTS["signature_min_genes"]

    def __post_init__(self) -> None:
        check_section(asdict(self), "$defs", "preprocess")

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> OmicsParams:
        """Build from a ``modalities.<m>.preprocess`` mapping (missing keys take defaults)."""
        config = dict(config or {})
        check_section(config, "$defs", "preprocess")
        return cls(**config)


@dataclass(frozen=True)
class OmicsFold:
    """An omics table transformed with statistics fitted on one fold's training patients.

    Attributes
    ----------
    name
        Modality name (for messages).
    params
        The preprocessing parameters.
    patient_ids
        (n,) str: every patient of the table, in table order.
    feature_names
        (p,) str: the selected features, in table order.
    X
        (n, p) float32: the transformed values of every patient.
    train_ids
        (n_train,) str: the patients the statistics were fitted on.
    input_features
        (p_in,) str: the table's feature columns, in order (the transform expects them).
    impute_values
        (p_in,) float64: training median/mean per input feature (after log1p).
    selected
        (p,) int64: indices of the selected features into ``input_features``.
    mean, std
        (p_sel,) float64: z-score statistics of the selected features (0 and 1 when ``zscore``
        is off).
    sig_names
        (q,) str: the scored gene families (q = 0 without signatures); ``X`` has
        p = p_sel + q columns (``append``) or q (``only``).
    sig_center, sig_scale
        (p_in,) float64: training mean and standard deviation of every input feature used by a
        signature (0 and 1 elsewhere).
    sig_weights
        (p_in, q) float64: member weights (1 / number of members) of each family.
    sig_mean, sig_std
        (q,) float64: training mean and standard deviation of the family scores.
    """

    name: str
    params: OmicsParams
    patient_ids: np.ndarray
    feature_names: np.ndarray
    X: np.ndarray
    train_ids: np.ndarray
    input_features: np.ndarray
    impute_values: np.ndarray
    selected: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    sig_names: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=str))
    sig_center: np.ndarray = field(default_factory=lambda: np.empty(0))
    sig_scale: np.ndarray = field(default_factory=lambda: np.empty(0))
    sig_weights: np.ndarray = field(default_factory=lambda: np.empty((0, 0)))
    sig_mean: np.ndarray = field(default_factory=lambda: np.empty(0))
    sig_std: np.ndarray = field(default_factory=lambda: np.empty(0))

    def frame(self) -> pd.DataFrame:
        """``X`` as a DataFrame indexed by patient_id with the selected feature names."""
        return pd.DataFrame(
            self.X,
            index=pd.Index(self.patient_ids, name="patient_id"),
            columns=list(self.feature_names),
        )

    def transform(self, table: pd.DataFrame) -> np.ndarray:
        """Apply the fitted transform to a table with the same feature columns.

        Parameters
        ----------
        table
            Indexed by patient_id (or with a ``patient_id`` column); must contain every
            column of ``input_features``.

        Returns
        -------
        numpy.ndarray
            (n, p) float32.
        """
        table = _as_indexed(table)
        missing = [c for c in self.input_features if c not in table.columns]
        if missing:
            raise ValueError(
                f"omics modality {self.name!r}: the table lacks {len(missing)} feature column(s) "
                f"the transform was fitted on, e.g. {missing[:5]}"
            )
        raw = table[list(self.input_features)].to_numpy(dtype=np.float64)  # (n, p_in)
        X = _prepare(raw, table, self.params, self.name)
        X = np.where(np.isnan(X), self.impute_values, X)
        return self._finish(X)

    def _scores(self, X: np.ndarray) -> np.ndarray:
        """Raw family scores (n, q) of imputed inputs ``X`` (n, p_in)."""
        used = self.sig_weights.any(axis=1)  # (p_in,)
        Z = (X[:, used] - self.sig_center[used]) / self.sig_scale[used]  # (n, p_used)
        return Z @ self.sig_weights[used]  # (n, q)

    def _finish(self, X: np.ndarray) -> np.ndarray:
        """Final values (n, p) from imputed inputs ``X`` (n, p_in)."""
        parts = []
        if self.params.signatures != "only":
            parts.append((X[:, self.selected] - self.mean) / self.std)  # (n, p_sel)
        if self.params.signatures != "none":
            parts.append((self._scores(X) - self.sig_mean) / self.sig_std)  # (n, q)
        out = np.concatenate(parts, axis=1) if len(parts) > 1 else parts[0]
        if self.params.clip is not None:
            out = np.clip(out, -self.params.clip, self.params.clip)
        return out.astype(np.float32)

    def save(self, path: str | os.PathLike) -> None:
        """Write the fold to ``path`` (``.npz``, plain arrays, atomically)."""
        arrays = {
            "format_version": np.array(FORMAT_VERSION, dtype=np.int64),
            "name": np.array(self.name, dtype=str),
            "params_json": np.array(json.dumps(asdict(self.params), sort_keys=True), dtype=str),
            "patient_ids": self.patient_ids.astype(str),
            "feature_names": self.feature_names.astype(str),
            "X": self.X.astype(np.float32),
            "train_ids": self.train_ids.astype(str),
            "input_features": self.input_features.astype(str),
            "impute_values": self.impute_values.astype(np.float64),
            "selected": self.selected.astype(np.int64),
            "mean": self.mean.astype(np.float64),
            "std": self.std.astype(np.float64),
            "sig_names": self.sig_names.astype(str),
            "sig_center": self.sig_center.astype(np.float64),
            "sig_scale": self.sig_scale.astype(np.float64),
            "sig_weights": self.sig_weights.astype(np.float64),
            "sig_mean": self.sig_mean.astype(np.float64),
            "sig_std": self.sig_std.astype(np.float64),
        }
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **arrays)


def load_omics_fold(path: str | os.PathLike) -> OmicsFold:
    """Read a fold written by :meth:`OmicsFold.save`."""
    with np.load(Path(path), allow_pickle=False) as z:
        version = int(z["format_version"])
        if version not in (1, FORMAT_VERSION):
            raise ValueError(f"{path}: omics fold format {version}, expected {FORMAT_VERSION}")
        sig = (
            {k: z[k] for k in ("sig_names", "sig_center", "sig_scale", "sig_weights")}
            | {k: z[k] for k in ("sig_mean", "sig_std")}
            if version >= 2
            else {}
        )
        return OmicsFold(
            name=str(z["name"]),
            params=OmicsParams(**json.loads(str(z["params_json"]))),
            patient_ids=z["patient_ids"],
            feature_names=z["feature_names"],
            X=z["X"],
            train_ids=z["train_ids"],
            input_features=z["input_features"],
            impute_values=z["impute_values"],
            selected=z["selected"],
            mean=z["mean"],
            std=z["std"],
            **sig,
        )


def gene_name(feature: str) -> str:
    """The gene of a feature column: the name without an ``_rnaseq`` / ``_cnv`` / ``_mut``
    suffix."""
    for suffix in OMICS_SUFFIXES:
        if feature.endswith(suffix):
            return feature[: -len(suffix)]
    return feature


def read_signatures(path: str | os.PathLike) -> dict[str, tuple[str, ...]]:
    """Gene families from a CSV with one column per family listing its genes (MCAT's
    ``signatures.csv``; shorter columns padded with empty cells).

    Returns
    -------
    dict
        Family name -> its genes (unique, in file order).
    """
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"{p}: signatures file does not exist")
    df = pd.read_csv(p, dtype=str, keep_default_na=False)
    families = {}
    for col in df.columns:
        genes = [g.strip() for g in df[col] if g.strip()]
        families[str(col)] = tuple(dict.fromkeys(genes))
    if not any(families.values()):
        raise ValueError(f"{p}: no genes in the signatures file")
    return families


def _as_indexed(table: pd.DataFrame) -> pd.DataFrame:
    if "patient_id" in table.columns:
        table = table.set_index("patient_id")
    return table


def _prepare(raw: np.ndarray, table: pd.DataFrame, params: OmicsParams, name: str) -> np.ndarray:
    """Checks and the per-value (stateless) part of the transform: log1p."""
    if np.isinf(raw).any():
        r, c = np.argwhere(np.isinf(raw))[0]
        raise ValueError(
            f"omics modality {name!r}: infinite value in column {table.columns[c]!r} for patient "
            f"{table.index[r]!r}"
        )
    if params.log1p:
        low = raw < 0
        if low.any():
            r, c = np.argwhere(low)[0]
            raise ValueError(
                f"omics modality {name!r}: log1p is for counts or TPM (values >= 0), but column "
                f"{table.columns[c]!r} is {raw[r, c]} for patient {table.index[r]!r} "
                f"({int(low.sum())} negative value(s)): the table looks already log-transformed "
                "or centred; set log1p: false for this modality"
            )
        return np.log1p(raw)
    return raw


def fit_transform_fold(
    table: pd.DataFrame,
    train_ids: Iterable[str],
    params: OmicsParams,
    *,
    name: str = "omics",
    signatures: Mapping[str, Sequence[str]] | None = None,
    outcomes: pd.DataFrame | None = None,
    fold: int | None = None,
) -> OmicsFold:
    """Fit the preprocessing on the training patients and transform every patient.

    Parameters
    ----------
    table
        Indexed by patient_id (or with a ``patient_id`` column); numeric feature columns
        (NaN allowed: imputed).
    train_ids
        The fold's training patients; those without this modality are ignored.
    params
        Preprocessing parameters.
    name
        Modality name, used in messages.
    signatures
        Family name -> genes (see :func:`read_signatures`); needed when ``params.signatures``
        is not ``"none"``.
    outcomes
        Indexed by patient_id: ``time`` and ``event`` (survival) or ``label``; needed with
        ``params.outcome_top_k``. Only the training patients' rows are read.
    fold
        The fold's number, used in messages.

    Returns
    -------
    OmicsFold
        Transformed values of every patient of ``table`` and the fitted statistics.

    Raises
    ------
    ValueError
        If fewer than two training patients have the modality, if every feature is constant
        (or missing) over them, or on non-finite/invalid input values.
    """
    which = "this fold's" if fold is None else f"fold {fold}'s"
    table = _as_indexed(table)
    if table.index.has_duplicates:
        dup = table.index[table.index.duplicated()].unique().tolist()
        raise ValueError(f"omics modality {name!r}: duplicate patient_id(s) {dup[:5]}")
    ids = table.index.astype(str)
    train_set = {str(i) for i in train_ids}
    is_train = ids.isin(train_set)  # (n,)
    n_train = int(is_train.sum())
    if n_train < 2:
        raise ValueError(
            f"omics modality {name!r}: only {n_train} of {which} {len(train_set)} training "
            "patients have this modality; at least 2 are needed to fit the preprocessing"
        )
    non_numeric = [c for c in table.columns if not pd.api.types.is_numeric_dtype(table[c])]
    if non_numeric:
        raise ValueError(f"omics modality {name!r}: non-numeric column(s) {non_numeric[:5]}")
    raw = table.to_numpy(dtype=np.float64)  # (n, p_in)
    X = _prepare(raw, table, params, name)
    Xtr = X[is_train]  # (n_train, p_in)
    observed = ~np.isnan(Xtr)
    has_train_values = observed.any(axis=0)  # (p_in,)
    impute = np.full(X.shape[1], np.nan)
    if has_train_values.any():
        agg = np.nanmedian if params.impute == "median" else np.nanmean
        impute[has_train_values] = agg(Xtr[:, has_train_values], axis=0)
    X = np.where(np.isnan(X), impute, X)
    Xtr = X[is_train]
    var = Xtr.var(axis=0)  # (p_in,) NaN where no training values
    scale = np.maximum(1.0, np.abs(Xtr.mean(axis=0)) ** 2)
    usable = has_train_values & (var > 1e-12 * scale)
    if not usable.any():
        raise ValueError(
            f"omics modality {name!r}: all {X.shape[1]} feature(s) are constant or missing over "
            f"{which} {n_train} training patients; nothing to learn from"
        )
    candidates = np.flatnonzero(usable)
    if params.variance_top_k is not None and params.variance_top_k < len(candidates):
        by_var = candidates[np.argsort(-var[candidates], kind="stable")]
        selected = np.sort(by_var[: params.variance_top_k])
    else:
        selected = candidates
    if params.outcome_top_k is not None and params.outcome_top_k < len(selected):
        score = outcome_association(
            Xtr[:, selected], _train_outcomes(outcomes, ids[is_train], name)
        )  # (p_sel,)
        best = np.argsort(-score, kind="stable")[: params.outcome_top_k]
        selected = np.sort(selected[best])
    Xsel = X[:, selected]  # (n, p_sel)
    if params.zscore:
        mean = Xsel[is_train].mean(axis=0)
        std = Xsel[is_train].std(axis=0)
    else:
        mean = np.zeros(len(selected))
        std = np.ones(len(selected))
    sig = _fit_signatures(X, is_train, usable, table.columns, params, signatures, name)
    names = [str(c) for c in table.columns[selected]] if params.signatures != "only" else []
    names += [f"{SIGNATURE_PREFIX}{f}" for f in sig["sig_names"]]
    fold = OmicsFold(
        name=name,
        params=params,
        patient_ids=np.asarray(ids, dtype=str),
        feature_names=np.asarray(names, dtype=str),
        X=np.empty((0, 0), dtype=np.float32),
        train_ids=np.asarray(ids[is_train], dtype=str),
        input_features=np.asarray(table.columns.astype(str), dtype=str),
        impute_values=impute,
        selected=selected.astype(np.int64),
        mean=mean,
        std=std,
        **sig,
    )
    return replace(fold, X=fold._finish(X))


def _train_outcomes(outcomes: pd.DataFrame | None, train: pd.Index, name: str) -> pd.DataFrame:
    if outcomes is None:
        raise ValueError(
            f"omics modality {name!r}: outcome_top_k needs the training patients' outcomes"
        )
    out = outcomes.set_index("patient_id") if "patient_id" in outcomes.columns else outcomes
    out.index = out.index.astype(str)
    missing = [p for p in train if p not in out.index]
    if missing:
        raise ValueError(
            f"omics modality {name!r}: no outcome for {len(missing)} training patient(s), "
            f"e.g. {missing[:5]}"
        )
    return out.loc[list(train)]


def task_outcomes(patients: pd.DataFrame, task: str) -> pd.DataFrame:
    """The columns of the patients table that ``task`` learns from (:data:`OUTCOME_COLUMNS`), for
    ``outcomes`` of :func:`fit_transform_fold`: a classification cohort's patients may also have
    ``time`` and ``event`` (an MCAT CSV always gives them), which must not choose its features."""
    if task not in OUTCOME_COLUMNS:
        raise ValueError(f"task must be one of {sorted(OUTCOME_COLUMNS)}, got {task!r}")
    keep = [c for c in ("patient_id", *OUTCOME_COLUMNS[task]) if c in patients.columns]
    return patients[keep]


def outcome_association(X: np.ndarray, outcomes: pd.DataFrame) -> np.ndarray:
    """Univariate association of each column of ``X`` with the outcome (higher = stronger).

    Parameters
    ----------
    X
        (n, p) values of the (training) patients.
    outcomes
        n rows in the same order: ``time`` and ``event`` (survival: ``|z|`` of the Cox
        partial-likelihood score test at beta = 0, Breslow ties) or ``label`` (ANOVA F).

    Returns
    -------
    numpy.ndarray
        (p,) scores; 0 where a feature does not vary.
    """
    if {"time", "event"} <= set(outcomes.columns):
        time = outcomes["time"].to_numpy(float)
        event = outcomes["event"].to_numpy(int).astype(bool)
        order = np.argsort(-time, kind="stable")  # latest first
        t, e, Xo = time[order], event[order], X[order]  # (n,), (n,), (n, p)
        # risk set of position i: everyone with time >= t[i], i.e. positions 0..last[i]
        last = np.searchsorted(-t, -t, side="right") - 1  # (n,)
        n_risk = (last + 1).astype(float)[:, None]  # (n, 1)
        s1 = np.cumsum(Xo, axis=0)[last]  # (n, p)
        s2 = np.cumsum(Xo**2, axis=0)[last]
        mean = s1 / n_risk
        var = np.maximum(s2 / n_risk - mean**2, 0.0)
        U = (Xo[e] - mean[e]).sum(axis=0)  # (p,)
        info = var[e].sum(axis=0)
        return np.where(info > 1e-12, np.abs(U) / np.sqrt(np.maximum(info, 1e-12)), 0.0)
    if "label" in outcomes.columns:
        from sklearn.feature_selection import f_classif

        with np.errstate(divide="ignore", invalid="ignore"):
            F, _ = f_classif(X, outcomes["label"].astype(str).to_numpy())
        return np.nan_to_num(F, nan=0.0, posinf=0.0)
    raise ValueError("outcomes need columns time and event, or label")


def _fit_signatures(
    X: np.ndarray,
    is_train: np.ndarray,
    usable: np.ndarray,
    columns: pd.Index,
    params: OmicsParams,
    signatures: Mapping[str, Sequence[str]] | None,
    name: str,
) -> dict[str, np.ndarray]:
    """Family weights and score statistics fitted on the training rows of imputed ``X``."""
    p_in = X.shape[1]
    if params.signatures == "none":
        return {
            "sig_names": np.empty(0, dtype=str),
            "sig_center": np.zeros(p_in),
            "sig_scale": np.ones(p_in),
            "sig_weights": np.zeros((p_in, 0)),
            "sig_mean": np.zeros(0),
            "sig_std": np.ones(0),
        }
    if not signatures:
        raise ValueError(
            f"omics modality {name!r}: signatures: {params.signatures} needs gene families "
            "(inputs.signatures, e.g. signatures.csv)"
        )
    genes = np.array([gene_name(str(c)) for c in columns])  # (p_in,)
    kept, weights = [], []
    for family, members in signatures.items():
        member = np.isin(genes, list(members)) & usable  # (p_in,)
        if member.sum() < params.signature_min_genes:
            log.info(
                "%s: family %r has %d gene(s) in the table (< %d): not scored",
                name,
                family,
                int(member.sum()),
                params.signature_min_genes,
            )
            continue
        kept.append(str(family))
        weights.append(member / member.sum())
    if not kept:
        raise ValueError(
            f"omics modality {name!r}: no gene family has {params.signature_min_genes} or more "
            f"genes among the table's columns (e.g. {list(columns[:3])}); check the signatures "
            "file or set signatures: none"
        )
    W = np.stack(weights, axis=1)  # (p_in, q)
    used = W.any(axis=1)
    center = np.zeros(p_in)
    scale = np.ones(p_in)
    center[used] = X[is_train][:, used].mean(axis=0)
    scale[used] = X[is_train][:, used].std(axis=0)  # > 0: members are usable
    scores = ((X[is_train][:, used] - center[used]) / scale[used]) @ W[used]  # (n_train, q)
    sig_std = scores.std(axis=0)
    sig_std = np.where(sig_std > 1e-12, sig_std, 1.0)
    log.info("%s: %d gene-family signature(s) scored: %s", name, len(kept), kept)
    return {
        "sig_names": np.asarray(kept, dtype=str),
        "sig_center": center,
        "sig_scale": scale,
        "sig_weights": W,
        "sig_mean": scores.mean(axis=0),
        "sig_std": sig_std,
    }
