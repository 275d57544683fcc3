"""Fold-safe preprocessing of omics tables.

For each fold, every statistic of the transform is fitted on the fold's training patients only:
the imputation values, the feature selection (top-k training variance, constant features dropped),
and the z-score mean and standard deviation. The fitted transform is then applied to every patient
of the table (train, tune and validation alike), so a validation patient's values never influence
how any patient is transformed.

Steps, in order: ``log1p`` (optional) -> impute missing values (training median or mean) -> drop
features constant over the training patients -> keep the ``variance_top_k`` features of highest
training variance (optional) -> z-score with training mean/std (optional) -> clip to
``[-clip, clip]`` (optional).

A fitted fold is stored as ``.npz`` (plain arrays, no pickles): ``patient_ids``,
``feature_names``, ``X`` (n, p) float32 for all patients of the table, ``train_ids`` and the
fitted arrays, so that it can be re-applied to new patients with :meth:`OmicsFold.transform`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from mmlego.io import atomic_path

__all__ = ["OmicsFold", "OmicsParams", "fit_transform_fold", "load_omics_fold"]

FORMAT_VERSION = 1


@dataclass(frozen=True)
class OmicsParams:
    """How one omics modality is preprocessed.

    Parameters
    ----------
    log1p
        Apply ``log(1 + x)`` first (expression counts/TPM); values must be > -1.
    variance_top_k
        Keep the k features of highest training variance (after log and imputation);
        ``None`` keeps every non-constant feature.
    zscore
        Standardise with the training mean and standard deviation.
    impute
        Fill missing values with the training ``"median"`` or ``"mean"`` of the feature.
    clip
        Clip the final values to ``[-clip, clip]``; ``None`` = no clipping.
    """

    log1p: bool = False
    variance_top_k: int | None = None
    zscore: bool = True
    impute: Literal["median", "mean"] = "median"
    clip: float | None = 5.0

    def __post_init__(self) -> None:
        if self.variance_top_k is not None and self.variance_top_k < 1:
            raise ValueError(f"variance_top_k must be >= 1 or None, got {self.variance_top_k}")
        if self.impute not in ("median", "mean"):
            raise ValueError(f"impute must be 'median' or 'mean', got {self.impute!r}")
        if self.clip is not None and not self.clip > 0:
            raise ValueError(f"clip must be > 0 or None, got {self.clip}")

    @classmethod
    def from_config(cls, config: Mapping[str, Any] | None) -> OmicsParams:
        """Build from a ``modalities.<m>.preprocess`` mapping (missing keys take defaults)."""
        config = dict(config or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(config) - known)
        if unknown:
            raise ValueError(f"preprocess: unknown key(s) {unknown}; known: {sorted(known)}")
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
        (p,) float64: z-score statistics (0 and 1 when ``zscore`` is off).
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
        return self._finish(X[:, self.selected])

    def _finish(self, X: np.ndarray) -> np.ndarray:
        X = (X - self.mean) / self.std  # (n, p)
        if self.params.clip is not None:
            X = np.clip(X, -self.params.clip, self.params.clip)
        return X.astype(np.float32)

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
        }
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, **arrays)


def load_omics_fold(path: str | os.PathLike) -> OmicsFold:
    """Read a fold written by :meth:`OmicsFold.save`."""
    with np.load(Path(path), allow_pickle=False) as z:
        version = int(z["format_version"])
        if version != FORMAT_VERSION:
            raise ValueError(f"{path}: omics fold format {version}, expected {FORMAT_VERSION}")
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
        )


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
        low = raw <= -1
        if low.any():
            r, c = np.argwhere(low)[0]
            raise ValueError(
                f"omics modality {name!r}: log1p needs values > -1, but column "
                f"{table.columns[c]!r} is {raw[r, c]} for patient {table.index[r]!r} "
                f"({int(low.sum())} such value(s)); set log1p: false for this modality"
            )
        return np.log1p(raw)
    return raw


def fit_transform_fold(
    table: pd.DataFrame,
    train_ids: Iterable[str],
    params: OmicsParams,
    *,
    name: str = "omics",
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
            f"omics modality {name!r}: only {n_train} of this fold's {len(train_set)} training "
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
            f"this fold's {n_train} training patients; nothing to learn from"
        )
    candidates = np.flatnonzero(usable)
    if params.variance_top_k is not None and params.variance_top_k < len(candidates):
        by_var = candidates[np.argsort(-var[candidates], kind="stable")]
        selected = np.sort(by_var[: params.variance_top_k])
    else:
        selected = candidates
    Xsel = X[:, selected]  # (n, p)
    if params.zscore:
        mean = Xsel[is_train].mean(axis=0)
        std = Xsel[is_train].std(axis=0)
    else:
        mean = np.zeros(len(selected))
        std = np.ones(len(selected))
    fold = OmicsFold(
        name=name,
        params=params,
        patient_ids=np.asarray(ids, dtype=str),
        feature_names=np.asarray(table.columns[selected].astype(str), dtype=str),
        X=np.empty((0, 0), dtype=np.float32),
        train_ids=np.asarray(ids[is_train], dtype=str),
        input_features=np.asarray(table.columns.astype(str), dtype=str),
        impute_values=impute,
        selected=selected.astype(np.int64),
        mean=mean,
        std=std,
    )
    return replace(fold, X=fold._finish(Xsel))
