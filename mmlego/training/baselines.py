"""Tabular baselines and their shared design matrix; the penalised linear models.

Every tabular baseline of a fold (penalised linear models here, forests in
:mod:`mmlego.training.forests`, the late fusion of concatenated block embeddings) sees the same
kind of design matrix (:func:`design_matrix`): one block of columns ``<modality>:<feature>`` per
modality, concatenated:

* a table modality: its per-fold preprocessed table (``omics/<m>/fold<k>.npz``, already
  transformed with statistics of the fold's ``train`` patients), used as is;
* a slide modality: the patient's mean-pooled patch features
  (``baselines/slide_means.tsv``, :mod:`mmlego.training.slide_means`), z-scored with the mean and
  standard deviation of the fold's training patients (``train`` and ``tune`` roles) only;
* a block embedding (``late_fusion_concat``): the frozen unimodal block's pooled latent
  (``baselines/embeddings/<m>/fold<k>.tsv``, :mod:`mmlego.training.embeddings`), z-scored in the
  same way.

A patient needs at least one modality; a missing one is filled with the training patients'
column means (for a z-scored block, zero), and the ``modalities`` column of the predictions names
only the modalities the patient really has. On the synthetic demo, for instance, ``coxnet`` sees
the RNA-seq and CNV tables and the WSI means.

The penalised linear models: Coxnet (survival, model ``coxnet``) and elastic-net logistic
regression (classification, model ``logistic_enet``). The penalty is chosen by an inner
cross-validation over the fold's training patients (``train`` and ``tune`` roles) only: the
strength ``alpha`` on a path of ``n_alphas`` values, by the mean inner Harrell's c-index
(survival) or ROC AUC (classification); ties go to the stronger penalty. The model is then
refitted on all training patients with the chosen penalty and scores the fold's ``val`` patients
once. ``late_fusion_concat`` fits the same models, the same way, on the block embeddings: one
per member of the blocks' seed ensembles (member m's embeddings of every modality side by side,
since each member has its own latent space), the members' predictions averaged as LegoMerge and
LegoFuse average theirs.

``late_fusion_mean_risk`` (:func:`late_fusion`) needs no model: the mean of the unimodal blocks'
predictions.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from mmlego.evaluation.prediction_format import RISK, is_score_column, prob_column
from mmlego.io import read_tsv, write_tsv
from mmlego.omics.preprocess import load_omics_fold
from mmlego.pipeline.config import check_section, schema_defaults
from mmlego.pipeline.fold import DEVELOPMENT_ROLES, Role
from mmlego.pipeline.models import model_for
from mmlego.training.embedding_format import EMBEDDING_COLUMN

log = logging.getLogger(__name__)

__all__ = [
    "BaselineParams",
    "FeatureBlock",
    "design_matrix",
    "embedding_blocks",
    "fit_coxnet",
    "fit_logistic",
    "fold_design",
    "late_fusion",
    "late_fusion_concat_fold",
    "linear_baseline_fold",
    "penalised_fold",
    "penalised_predictions",
    "read_feature_table",
    "slide_mean_blocks",
    "table_blocks",
]

TRAINING_ROLES = DEVELOPMENT_ROLES
MAX_FEATURES_NAMES = ("sqrt", "log2")
LATE_FUSION_CONCAT = "late_fusion_concat"


_DEFAULTS = schema_defaults("baselines")


@dataclass(frozen=True)
class BaselineParams:
    """Settings of the tabular baselines (config key ``baselines``).

    Parameters
    ----------
    l1_ratio
        Elastic-net mixing: 1 = lasso, towards 0 = ridge.
    n_alphas
        Length of the penalty path searched by the inner cross-validation.
    alpha_min_ratio
        Smallest penalty on the path relative to the largest (Coxnet's ``alpha_min_ratio``).
    inner_folds
        Folds of the inner cross-validation over the training patients.
    forest_trees
        Trees of the random (survival) forest.
    forest_min_samples_leaf
        Smallest number of training patients in a leaf of a forest tree.
    forest_max_features
        Features tried at each split: ``"sqrt"``, ``"log2"`` or a fraction in (0, 1].
    """

    l1_ratio: float = _DEFAULTS["l1_ratio"]
    n_alphas: int = _DEFAULTS["n_alphas"]
    alpha_min_ratio: float = _DEFAULTS["alpha_min_ratio"]
    inner_folds: int = _DEFAULTS["inner_folds"]
    forest_trees: int = _DEFAULTS["forest_trees"]
    forest_min_samples_leaf: int = _DEFAULTS["forest_min_samples_leaf"]
    forest_max_features: str | float = _DEFAULTS["forest_max_features"]

    def __post_init__(self) -> None:
        check_section(asdict(self), "baselines")
        if not isinstance(self.forest_max_features, str):
            # 1 from YAML means all features (a fraction), never "one feature"
            object.__setattr__(self, "forest_max_features", float(self.forest_max_features))

    @classmethod
    def from_config(cls, config: Mapping[str, object] | None) -> BaselineParams:
        """From the config's ``baselines`` section (missing keys take the schema's defaults)."""
        config = dict(config or {})
        check_section(config, "baselines")
        return cls(**config)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------ design matrix


@dataclass(frozen=True)
class FeatureBlock:
    """One modality's columns of a design matrix.

    Parameters
    ----------
    name
        The modality; its columns are named ``<name>:<feature>``.
    frame
        (n_m, p_m) indexed by patient_id (str): only the patients that have the modality.
    standardise
        True: z-score every column with the mean and standard deviation of the fold's
        training patients; False: the values are already transformed (omics folds).
    """

    name: str
    frame: pd.DataFrame
    standardise: bool


def read_feature_table(path: str | os.PathLike, *, what: str) -> pd.DataFrame:
    """A TSV of ``patient_id`` then numeric feature columns, indexed by patient_id.

    Raises
    ------
    ValueError
        Naming the file (``what`` says which) when the patient_id column is missing, a patient
        appears twice, or a value is missing or not a finite number.
    """
    df = read_tsv(path)
    if "patient_id" not in df.columns:
        raise ValueError(f"{path} ({what}): no patient_id column; has {list(df.columns)[:5]}")
    df = df.set_index("patient_id")
    df.index = df.index.astype(str)
    dup = df.index[df.index.duplicated()]
    if len(dup):
        raise ValueError(f"{path} ({what}): patient(s) listed twice: {sorted(set(dup))[:5]}")
    values = df.apply(pd.to_numeric, errors="coerce")
    bad = ~np.isfinite(values.to_numpy(float))  # (n, p)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise ValueError(
            f"{path} ({what}): patient {df.index[row]!r}, column {df.columns[col]!r}: "
            f"{df.iat[row, col]!r} is not a finite number"
        )
    return values.astype(np.float64)


def table_blocks(paths: Mapping[str, str]) -> list[FeatureBlock]:
    """Table modality -> its fold's ``omics/<m>/fold<k>.npz``, as blocks used as they are."""
    blocks = []
    for name in sorted(paths):
        frame = load_omics_fold(paths[name]).frame().astype(np.float64)
        frame.index = frame.index.astype(str)
        blocks.append(FeatureBlock(name=name, frame=frame, standardise=False))
    return blocks


def slide_mean_blocks(path: str, modalities: Sequence[str]) -> list[FeatureBlock]:
    """The mean-pooled slide features (``baselines/slide_means.tsv``) as one z-scored block per
    slide modality (every slide modality reads the same patient bags)."""
    frame = read_feature_table(path, what="mean-pooled slide features")
    return [FeatureBlock(name=m, frame=frame, standardise=True) for m in sorted(modalities)]


def tabular_blocks(
    data: Mapping[str, str], slide_means: str | None, slide_modalities: Sequence[str]
) -> list[FeatureBlock]:
    """What the tabular baselines see: the table modalities' folds and, per slide modality, the
    mean-pooled slide features (:func:`table_blocks`, :func:`slide_mean_blocks`)."""
    blocks = table_blocks(data)
    if slide_modalities:
        if slide_means is None:
            raise ValueError(f"slide modalities {list(slide_modalities)} need slide_means")
        blocks += slide_mean_blocks(slide_means, slide_modalities)
    return blocks


def _member_frames(path: str, *, what: str) -> dict[int, pd.DataFrame]:
    """An embedding TSV split by ensemble member: member -> (n, l_d) frame, columns z0..z<l_d-1>."""
    frame = read_feature_table(path, what=what)
    parsed = [EMBEDDING_COLUMN.fullmatch(str(c)) for c in frame.columns]
    bad = [c for c, m in zip(frame.columns, parsed, strict=True) if m is None]
    if bad or not parsed:
        raise ValueError(
            f"{path} ({what}): columns must be named m<member>_z<j>, got {bad[:5] or 'none'} "
            "(embeddings written by an earlier version of the workflow: rerun train_block)"
        )
    members: dict[int, pd.DataFrame] = {}
    for member in sorted({int(m["member"]) for m in parsed}):
        cols = sorted(
            (int(m["j"]), c)
            for c, m in zip(frame.columns, parsed, strict=True)
            if int(m["member"]) == member
        )
        members[member] = frame[[c for _, c in cols]].set_axis([f"z{j}" for j, _ in cols], axis=1)
    return members


def embedding_blocks(paths: Mapping[str, str]) -> list[list[FeatureBlock]]:
    """Modality -> its block's embedding TSV (``baselines/embeddings/<m>/fold<k>.tsv``), as
    z-scored blocks: one list of blocks (one per modality) per ensemble member.

    Raises
    ------
    ValueError
        Naming the files when their blocks do not have the same ensemble members.
    """
    frames = {m: _member_frames(paths[m], what=f"block embeddings of {m!r}") for m in paths}
    members = {m: sorted(f) for m, f in frames.items()}
    if len({tuple(v) for v in members.values()}) > 1:
        listed = ", ".join(f"{paths[m]}: {len(v)}" for m, v in sorted(members.items()))
        raise ValueError(f"block embeddings of different ensemble sizes (members: {listed})")
    return [
        [FeatureBlock(name=m, frame=frames[m][k], standardise=True) for m in sorted(paths)]
        for k in next(iter(members.values()), [])
    ]


def design_matrix(
    blocks: Sequence[FeatureBlock], train_ids: Sequence[str]
) -> tuple[pd.DataFrame, pd.Series]:
    """Concatenate the feature blocks of several modalities for one fold.

    Parameters
    ----------
    blocks
        One per modality (names unique).
    train_ids
        The fold's training patients (``train`` and ``tune`` roles): the z-score statistics of
        the blocks to standardise, and the column means that fill a missing modality, come from
        them only.

    Returns
    -------
    X : pandas.DataFrame
        (n, p) indexed by patient_id (sorted): every patient with at least one modality, columns
        ``<modality>:<feature>``. A block no training patient has is left out (with a warning).
    modalities : pandas.Series
        '+'-joined sorted names of the modalities each patient really has.

    Raises
    ------
    ValueError
        When two blocks share a name, or no training patient has any modality.
    """
    names = [b.name for b in blocks]
    if len(set(names)) < len(names):
        raise ValueError(f"design matrix: modality names repeat: {sorted(names)}")
    train_set = set(map(str, train_ids))
    parts, has = [], {}
    for block in sorted(blocks, key=lambda b: b.name):
        frame = block.frame.copy()
        frame.index = frame.index.astype(str)
        train = frame.loc[frame.index.isin(train_set)]
        if train.empty:
            log.warning(
                "modality %r: no training patient of this fold has it; left out", block.name
            )
            continue
        if block.standardise:
            sd = train.std(axis=0, ddof=0)
            frame = (frame - train.mean(axis=0)) / sd.where(sd > 1e-12, 1.0)
        parts.append(frame.add_prefix(f"{block.name}:"))
        has[block.name] = set(frame.index)
    if not parts:
        raise ValueError(
            f"no training patient of this fold has any of the modalities {sorted(names)}"
        )
    X = pd.concat(parts, axis=1, join="outer").sort_index()  # (n, p), NaN where missing
    X.index.name = "patient_id"
    means = X.loc[X.index.isin(train_set)].mean(axis=0).fillna(0.0)  # (p,)
    X = X.fillna(means)
    mods = pd.Series(
        ["+".join(m for m in sorted(has) if pid in has[m]) for pid in X.index], index=X.index
    )
    return X, mods


@dataclass(frozen=True)
class FoldDesign:
    """A fold's design matrix split by role, as arrays, with the patients' modalities."""

    train_ids: list[str]
    val_ids: list[str]
    X_train: np.ndarray  # (n_train, p)
    X_val: np.ndarray  # (n_val, p)
    modalities: pd.Series  # patient_id -> '+'-joined modalities
    columns: list[str]


def fold_design(blocks: Sequence[FeatureBlock], split: pd.DataFrame, *, model: str) -> FoldDesign:
    """The design matrix of a fold's training (``train`` + ``tune``) and ``val`` patients that
    have at least one modality."""
    roles = split.assign(patient_id=split["patient_id"].astype(str)).set_index("patient_id")["role"]
    training = roles.index[roles.isin(TRAINING_ROLES)]
    X, mods = design_matrix(blocks, training)
    train_ids = [p for p in sorted(training) if p in X.index]
    val_ids = [p for p in sorted(roles.index[roles == Role.VAL]) if p in X.index]
    log.info(
        "%s: %d training patients (train + tune), %d val patients, %d features",
        model,
        len(train_ids),
        len(val_ids),
        X.shape[1],
    )
    return FoldDesign(
        train_ids=train_ids,
        val_ids=val_ids,
        X_train=X.loc[train_ids].to_numpy(np.float64),
        X_val=X.loc[val_ids].to_numpy(np.float64),
        modalities=mods,
        columns=list(X.columns),
    )


def outcome_table(outcomes: pd.DataFrame, ids: Sequence[str], *, task: str) -> pd.DataFrame:
    """``patient_id, time, event`` (survival) or ``patient_id, label`` rows of ``ids``."""
    rows = outcomes.loc[list(ids)]
    if task == "survival":
        return pd.DataFrame(
            {
                "patient_id": list(ids),
                "time": rows["time"].to_numpy(float),
                "event": rows["event"].to_numpy(int),
            }
        )
    return pd.DataFrame({"patient_id": list(ids), "label": rows["label"].astype(str).to_numpy()})


def write_fold_predictions(
    preds: pd.DataFrame, d: FoldDesign, out_predictions: str, *, classifier=None
) -> pd.DataFrame:
    """Add the val patients' ``prob_<class>`` columns (when a fitted ``classifier`` with
    ``predict_proba`` is given) and ``modalities``, and write the predictions atomically."""
    if classifier is not None:
        classes = [str(c) for c in classifier.classes_]
        prob = classifier.predict_proba(d.X_val) if d.val_ids else np.zeros((0, len(classes)))
        for i, c in enumerate(classes):
            preds[prob_column(c)] = prob[:, i]
    preds["modalities"] = d.modalities.loc[d.val_ids].to_numpy() if d.val_ids else []
    write_tsv(preds.reset_index(drop=True), out_predictions)
    return preds


def _inner_splits(y_strata: np.ndarray, k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import StratifiedKFold

    k = max(2, min(k, int(np.bincount(pd.factorize(y_strata)[0]).min())))
    cv = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    return list(cv.split(np.zeros(len(y_strata)), y_strata))


def _choose(scores: np.ndarray, alphas: np.ndarray) -> int:
    """Index of the best mean score; ties go to the largest alpha (strongest penalty)."""
    mean = np.nanmean(scores, axis=0)  # (n_alphas,)
    best = np.nanmax(mean)
    candidates = np.flatnonzero(mean >= best - 1e-12)
    return int(candidates[np.argmax(alphas[candidates])])


def fit_coxnet(
    X: np.ndarray, time: np.ndarray, event: np.ndarray, *, params: BaselineParams, seed: int
):
    """Coxnet with the penalty chosen by inner cross-validation on (X, time, event).

    Parameters
    ----------
    X
        (n, p) training features.
    time, event
        (n,) survival times and event indicators (1 = death) of the training patients.
    params
        Baseline settings.
    seed
        Seed of the inner folds.

    Returns
    -------
    model : sksurv.linear_model.CoxnetSurvivalAnalysis
        Fitted on all of ``X`` along the penalty path.
    alpha : float
        The chosen penalty (pass to ``model.predict(X, alpha=alpha)``).
    cv : pandas.DataFrame
        alpha, mean_c_index, sd_c_index, chosen (one row per alpha).
    """
    from sksurv.linear_model import CoxnetSurvivalAnalysis
    from sksurv.metrics import concordance_index_censored
    from sksurv.util import Surv

    event = np.asarray(event).astype(bool)
    time = np.asarray(time, dtype=float)
    y = Surv.from_arrays(event, time)

    def make(ratio: float, alphas=None) -> CoxnetSurvivalAnalysis:
        return CoxnetSurvivalAnalysis(
            l1_ratio=params.l1_ratio,
            n_alphas=params.n_alphas,
            alpha_min_ratio=ratio,
            alphas=alphas,
            max_iter=100_000,
        )

    ratio = params.alpha_min_ratio
    while True:  # very small penalties can overflow on wide data: shorten the path then
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                full = make(ratio).fit(X, y)
            break
        except ArithmeticError:
            if ratio >= 0.5:
                raise
            ratio = min(0.5, ratio * 3)
            log.warning("coxnet: numerical overflow; alpha_min_ratio raised to %.3g", ratio)
    alphas = full.alphas_
    scores = np.full((params.inner_folds, len(alphas)), np.nan)
    # strata: event crossed with time above/below the median, so every inner fold has events
    strata = event.astype(int) * 2 + (time > np.median(time))
    for i, (tr, te) in enumerate(_inner_splits(strata, params.inner_folds, seed)):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                inner = make(ratio, alphas=alphas).fit(X[tr], y[tr])
        except ArithmeticError:
            log.warning("coxnet: inner fold %d failed numerically; skipped", i)
            continue
        for j, a in enumerate(inner.alphas_):
            risk = inner.predict(X[te], alpha=a)
            if event[te].any() and np.ptp(risk) > 0:
                scores[i, j] = concordance_index_censored(event[te], time[te], risk)[0]
            else:
                scores[i, j] = 0.5
    chosen = _choose(scores, alphas)
    cv = pd.DataFrame(
        {
            "alpha": alphas,
            "mean_c_index": np.nanmean(scores, axis=0),
            "sd_c_index": np.nanstd(scores, axis=0),
            "chosen": np.arange(len(alphas)) == chosen,
        }
    )
    n_nonzero = int((np.abs(full.coef_[:, chosen]) > 0).sum())
    log.info(
        "coxnet: alpha %.4g chosen (inner c-index %.3f), %d non-zero coefficient(s) of %d",
        alphas[chosen],
        cv["mean_c_index"].iloc[chosen],
        n_nonzero,
        X.shape[1],
    )
    return full, float(alphas[chosen]), cv


def fit_logistic(X: np.ndarray, labels: np.ndarray, *, params: BaselineParams, seed: int):
    """Elastic-net logistic regression with the penalty chosen by inner cross-validation.

    Returns
    -------
    model : sklearn.linear_model.LogisticRegression
        Refitted on all of ``X`` with the chosen penalty.
    classes : list of str
        The model's classes, in column order of ``predict_proba``.
    cv : pandas.DataFrame
        C (inverse penalty), mean_auc, sd_auc, chosen.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    labels = np.asarray(labels).astype(str)
    Cs = np.logspace(-3, 1, min(params.n_alphas, 12))  # inverse penalties, strongest first

    def make(C: float) -> LogisticRegression:
        return LogisticRegression(
            C=C,
            l1_ratio=params.l1_ratio,
            solver="saga",
            tol=1e-3,
            max_iter=1000,
            class_weight="balanced",
            random_state=seed,
            warm_start=True,
        )

    scores = np.full((params.inner_folds, len(Cs)), np.nan)
    for i, (tr, te) in enumerate(_inner_splits(labels, params.inner_folds, seed)):
        if len(set(labels[te])) < 2:
            continue
        m = make(Cs[0])
        for j, C in enumerate(Cs):  # along the path, each fit warm-started from the last
            m.set_params(C=C)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                m.fit(X[tr], labels[tr])
            prob = m.predict_proba(X[te])
            if len(m.classes_) == 2:
                scores[i, j] = roc_auc_score(labels[te] == m.classes_[1], prob[:, 1])
            else:
                scores[i, j] = roc_auc_score(
                    labels[te], prob, multi_class="ovr", labels=list(m.classes_)
                )
    # larger alpha = smaller C: choose on -C so that ties favour the stronger penalty
    chosen = _choose(scores, 1.0 / Cs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = make(float(Cs[chosen])).fit(X, labels)
    cv = pd.DataFrame(
        {
            "C": Cs,
            "mean_auc": np.nanmean(scores, axis=0),
            "sd_auc": np.nanstd(scores, axis=0),
            "chosen": np.arange(len(Cs)) == chosen,
        }
    )
    log.info("logistic: C %.4g chosen (inner AUC %.3f)", Cs[chosen], cv["mean_auc"].iloc[chosen])
    return model, [str(c) for c in model.classes_], cv


def penalised_predictions(
    d: FoldDesign, outcomes: pd.DataFrame, *, task: str, params: BaselineParams, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The task's penalised model fitted on a fold design's training patients.

    Returns
    -------
    values : pandas.DataFrame
        One row per ``d.val_ids``: ``risk`` (survival) or ``prob_<class>`` per class.
    cv : pandas.DataFrame
        The inner cross-validation table of :func:`fit_coxnet` / :func:`fit_logistic`.
    """
    if task == "survival":
        rows = outcomes.loc[d.train_ids]
        fitted, alpha, cv = fit_coxnet(
            d.X_train,
            rows["time"].to_numpy(float),
            rows["event"].to_numpy(int),
            params=params,
            seed=seed,
        )
        risk = fitted.predict(d.X_val, alpha=alpha) if d.val_ids else np.zeros(0)
        return pd.DataFrame({RISK: risk}), cv
    classifier, classes, cv = fit_logistic(
        d.X_train,
        outcomes.loc[d.train_ids, "label"].astype(str).to_numpy(),
        params=params,
        seed=seed,
    )
    prob = classifier.predict_proba(d.X_val) if d.val_ids else np.zeros((0, len(classes)))
    return pd.DataFrame(prob, columns=[prob_column(c) for c in classes]), cv


def penalised_fold(
    *,
    members: Sequence[Sequence[FeatureBlock]],
    split: pd.DataFrame,
    outcomes: pd.DataFrame,
    task: str,
    params: BaselineParams,
    seed: int,
    model: str,
    out_predictions: str,
    out_cv: str,
) -> pd.DataFrame:
    """Fit the task's penalised model on a fold's training patients; predict its val patients.

    Parameters
    ----------
    members
        The modalities' features (see :func:`design_matrix`), once per member of an ensemble:
        a model is fitted on each, and the val patients' predictions (risks / probabilities)
        are the members' mean. The tabular baselines have one member.
    split
        ``patient_id, role`` of the fold.
    outcomes
        Indexed by patient_id: time, event (survival) or label (classification).
    task
        ``"survival"`` (Coxnet) or ``"classification"`` (elastic-net logistic regression).
    params, seed
        Settings and seed of the inner cross-validation.
    model
        The model's name (for the log).
    out_predictions, out_cv
        Where the predictions (the workflow's prediction format) and the inner-CV tables (one
        per member, column ``member``) go.

    Returns
    -------
    pandas.DataFrame
        The predictions written.
    """
    if not members:
        raise ValueError(f"{model}: no features to fit on")
    designs, values, cvs = [], [], []  # every member: the same patients, other features
    for k, blocks in enumerate(members):
        d = fold_design(blocks, split, model=model if len(members) == 1 else f"{model}[{k}]")
        v, cv = penalised_predictions(d, outcomes, task=task, params=params, seed=seed)
        designs.append(d)
        values.append(v)
        cvs.append(cv.assign(member=k)[["member", *cv.columns]])
    d = designs[0]
    preds = outcome_table(outcomes, d.val_ids, task=task)
    mean = sum(v.to_numpy() for v in values) / len(values)  # (n_val, outputs)
    for j, column in enumerate(values[0].columns):
        preds[column] = mean[:, j]
    write_tsv(pd.concat(cvs, ignore_index=True), out_cv)
    return write_fold_predictions(preds, d, out_predictions)


def linear_baseline_fold(
    *,
    data: Mapping[str, str],
    split: pd.DataFrame,
    outcomes: pd.DataFrame,
    task: str,
    params: BaselineParams,
    seed: int,
    out_predictions: str,
    out_cv: str,
    slide_means: str | None = None,
    slide_modalities: Sequence[str] = (),
) -> pd.DataFrame:
    """The task's linear baseline (``coxnet`` / ``logistic_enet``) on tables + pooled slides.

    Parameters
    ----------
    data
        Table modality -> that fold's ``.npz``.
    slide_means, slide_modalities
        The mean-pooled slide features (``baselines/slide_means.tsv``) and the slide modalities
        that use them (none: tables only).

    Other parameters are those of :func:`penalised_fold`.
    """
    return penalised_fold(
        members=[tabular_blocks(data, slide_means, slide_modalities)],
        split=split,
        outcomes=outcomes,
        task=task,
        params=params,
        seed=seed,
        model=model_for("linear_baseline", task),
        out_predictions=out_predictions,
        out_cv=out_cv,
    )


def late_fusion_concat_fold(
    *,
    embeddings: Mapping[str, str],
    split: pd.DataFrame,
    outcomes: pd.DataFrame,
    task: str,
    params: BaselineParams,
    seed: int,
    out_predictions: str,
    out_cv: str,
) -> pd.DataFrame:
    """``late_fusion_concat``: the penalised model of :func:`penalised_fold` on the fold's frozen
    unimodal blocks' embeddings, concatenated: one model per member of the blocks' seed
    ensembles (on member m's embeddings of every modality), the members' predictions averaged.

    Parameters
    ----------
    embeddings
        Modality -> its block's embedding TSV of the fold
        (:func:`mmlego.training.embeddings.write_block_embeddings`).

    Other parameters are those of :func:`penalised_fold`.

    Notes
    -----
    The blocks were trained on the fold's ``train`` patients, so the embeddings of the training
    patients are in-sample; the inner cross-validation that picks the penalty sees them as they
    are. A patient lacking a modality gets the training mean of its (z-scored) embedding, zero.
    """
    return penalised_fold(
        members=embedding_blocks(embeddings),
        split=split,
        outcomes=outcomes,
        task=task,
        params=params,
        seed=seed,
        model=LATE_FUSION_CONCAT,
        out_predictions=out_predictions,
        out_cv=out_cv,
    )


def late_fusion(*, block_predictions: Sequence[str], task: str, out_predictions: str) -> None:
    """Baseline ``late_fusion_mean_risk``: average the unimodal blocks' scores (risk, survival
    curve or class probabilities) over the modalities each patient has."""
    tables = [read_tsv(p) for p in block_predictions]
    stacked = pd.concat(tables, ignore_index=True)
    keys = ["patient_id", "time", "event"] if task == "survival" else ["patient_id", "label"]
    scores = [c for c in stacked.columns if is_score_column(c)]
    fused = stacked.groupby(keys, sort=True)[scores].mean().reset_index()
    mods = stacked.groupby("patient_id")["modalities"].agg(lambda s: "+".join(sorted(set(s))))
    fused["modalities"] = fused["patient_id"].map(mods)
    write_tsv(fused, out_predictions)
