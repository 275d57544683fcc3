"""Tabular baselines on tables + mean-pooled slides, the forests, and the late fusion of frozen
block embeddings: values on tiny synthetic inputs."""

from __future__ import annotations

from pathlib import Path

import h5py
import jsonschema
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from sklearn.metrics import roc_auc_score
from sksurv.metrics import concordance_index_censored

from mmlego.io import read_tsv, write_tsv
from mmlego.models import survival
from mmlego.models.checkpoint import load_model, save_model
from mmlego.models.ensemble import ensemble
from mmlego.omics.preprocess import OmicsParams, fit_transform_fold
from mmlego.pipeline.fold import Fold
from mmlego.pipeline.models import model_for
from mmlego.training.baselines import (
    BaselineParams,
    FeatureBlock,
    design_matrix,
    late_fusion_concat_fold,
    linear_baseline_fold,
    read_feature_table,
    slide_mean_blocks,
)
from mmlego.training.blocks import build_block
from mmlego.training.embeddings import block_embeddings, embed, write_block_embeddings
from mmlego.training.fold import load_fold_modalities
from mmlego.training.forests import (
    balanced_weights,
    curve_times,
    fit_random_forest,
    forest_baseline_fold,
)
from mmlego.training.slide_means import pool_patient_bags, write_slide_means
from mmlego.training.tasks import SurvivalTask

ROOT = Path(__file__).resolve().parents[1]
FAST = BaselineParams(n_alphas=6, inner_folds=3, forest_trees=60, forest_min_samples_leaf=3)


def _write_bags(path: Path, bags: dict[str, np.ndarray]) -> None:
    with h5py.File(path, "w") as f:
        for patient, feats in bags.items():
            f.create_group(patient).create_dataset("features", data=feats.astype(np.float32))


def _cohort(
    tmp_path: Path,
    *,
    n: int = 150,
    seed: int = 0,
    strength: float = 1.5,
    no_slides: tuple[str, ...] = (),
):
    """A survival cohort whose risk lives in one table feature and in the slides' mean patch.

    Returns ids, roles, outcomes (index patient_id), the omics fold path and the slide means
    path; the patients in ``no_slides`` have no bag.
    """
    rng = np.random.default_rng(seed)
    ids = [f"P{i:03d}" for i in range(n)]
    a, b = rng.normal(size=n), rng.normal(size=n)
    risk = strength * (a + b)
    time = rng.exponential(np.exp(-risk) * 20) + 0.1
    cens = rng.exponential(60, n)
    outcomes = pd.DataFrame(
        {"time": np.minimum(time, cens), "event": (time <= cens).astype(int)},
        index=pd.Index(ids, name="patient_id"),
    )
    n_val = n // 4
    roles = np.array(["train"] * (n - n_val - 20) + ["tune"] * 20 + ["val"] * n_val)
    table = pd.DataFrame(
        np.column_stack([a, rng.normal(size=(n, 3))]),
        index=pd.Index(ids, name="patient_id"),
        columns=["G0", "G1", "G2", "G3"],
    )
    npz = tmp_path / "rna.npz"
    train = np.array(ids)[roles == "train"]
    fit_transform_fold(table, train, OmicsParams(), name="rna").save(npz)
    bags = {
        p: rng.normal(size=(int(rng.integers(3, 9)), 4)) + np.array([b[i], 0.0, 0.0, 0.0])
        for i, p in enumerate(ids)
        if p not in no_slides
    }
    _write_bags(tmp_path / "bags.h5", bags)
    means = tmp_path / "slide_means.tsv"
    write_slide_means(bags_h5=tmp_path / "bags.h5", out_tsv=means)
    return ids, roles, outcomes, str(npz), str(means)


def _split(ids, roles) -> pd.DataFrame:
    return pd.DataFrame({"patient_id": ids, "role": roles})


def _cindex(preds: pd.DataFrame) -> float:
    return concordance_index_censored(
        preds["event"].astype(bool).to_numpy(), preds["time"].to_numpy(), preds["risk"].to_numpy()
    )[0]


# ------------------------------------------------------------------------------ pooled slides


def test_slide_means_are_the_mean_patch_of_each_patient(tmp_path):
    bags = {
        "B": np.array([[1.0, 2.0], [3.0, 6.0]]),
        "A": np.array([[0.5, -1.0]]),
        "C": np.zeros((0, 2)),  # a bag without tiles: the patient lacks slides
    }
    _write_bags(tmp_path / "bags.h5", bags)
    pooled = pool_patient_bags(tmp_path / "bags.h5")
    assert list(pooled.index) == ["A", "B"] and list(pooled.columns) == ["f0", "f1"]
    np.testing.assert_allclose(pooled.loc["B"], [2.0, 4.0])
    np.testing.assert_allclose(pooled.loc["A"], [0.5, -1.0])
    write_slide_means(bags_h5=tmp_path / "bags.h5", out_tsv=tmp_path / "m.tsv")
    again = read_feature_table(tmp_path / "m.tsv", what="slides")
    pd.testing.assert_frame_equal(again, pooled, check_names=False)


def test_mixed_feature_widths_name_the_file_and_patient(tmp_path):
    _write_bags(tmp_path / "bags.h5", {"A": np.ones((2, 3)), "B": np.ones((2, 4))})
    with pytest.raises(ValueError, match=r"bags\.h5.*patient 'B' has 4 features"):
        pool_patient_bags(tmp_path / "bags.h5")


def test_pooled_slides_are_standardised_with_training_patients_only(tmp_path):
    means = pd.DataFrame(
        {"f0": [1.0, 3.0, 5.0, 100.0], "f1": [2.0, 2.0, 2.0, 7.0]},
        index=pd.Index(["t1", "t2", "u1", "v1"], name="patient_id"),
    )
    write_tsv(means, tmp_path / "m.tsv", index=True)
    table = FeatureBlock(
        name="rna",
        frame=pd.DataFrame({"g": [0.1, 0.2, 0.3, 0.4, 0.9]}, index=["t1", "t2", "u1", "v1", "v2"]),
        standardise=False,
    )
    blocks = [table, *slide_mean_blocks(str(tmp_path / "m.tsv"), ["wsi"])]
    X, mods = design_matrix(blocks, ["t1", "t2", "u1"])  # train + tune patients
    mu, sd = 3.0, np.std([1.0, 3.0, 5.0])  # training patients only: v1's 100 plays no part
    np.testing.assert_allclose(X.loc[["t1", "t2", "u1", "v1"], "wsi:f0"], (means["f0"] - mu) / sd)
    assert X.loc["v1", "wsi:f1"] == pytest.approx(5.0)  # constant in training: SD taken as 1
    # v2 has no slides: filled with the training means (0 after z-scoring), not listed
    assert X.loc["v2", "wsi:f0"] == pytest.approx(0.0) and X.loc["v2", "wsi:f1"] == 0.0
    assert X.loc["v2", "rna:g"] == 0.9
    assert mods.to_dict() == {
        "t1": "rna+wsi",
        "t2": "rna+wsi",
        "u1": "rna+wsi",
        "v1": "rna+wsi",
        "v2": "rna",
    }
    assert list(X.columns) == ["rna:g", "wsi:f0", "wsi:f1"]


def test_a_block_no_training_patient_has_is_left_out():
    only_val = FeatureBlock("wsi", pd.DataFrame({"f": [1.0]}, index=["v"]), standardise=True)
    table = FeatureBlock("rna", pd.DataFrame({"g": [1.0, 2.0]}, index=["t", "v"]), False)
    X, mods = design_matrix([only_val, table], ["t"])
    assert list(X.columns) == ["rna:g"] and set(mods) == {"rna"}
    with pytest.raises(ValueError, match="no training patient"):
        design_matrix([only_val], ["t"])


def test_bad_feature_table_names_file_patient_and_column(tmp_path):
    (tmp_path / "m.tsv").write_text("patient_id\tf0\nA\t1.0\nB\tabc\n")
    with pytest.raises(ValueError, match=r"m\.tsv.*patient 'B', column 'f0'"):
        read_feature_table(tmp_path / "m.tsv", what="slides")


def test_linear_baseline_uses_tables_and_slides(tmp_path):
    ids, roles, outcomes, npz, means = _cohort(tmp_path, no_slides=("P140",))
    preds = linear_baseline_fold(
        data={"rna": npz},
        slide_means=means,
        slide_modalities=["wsi"],
        split=_split(ids, roles),
        outcomes=outcomes,
        task="survival",
        params=FAST,
        seed=0,
        out_predictions=str(tmp_path / "p.tsv"),
        out_cv=str(tmp_path / "cv.tsv"),
    )
    val = [p for p, r in zip(ids, roles, strict=True) if r == "val"]
    assert list(preds.columns) == ["patient_id", "time", "event", "risk", "modalities"]
    assert list(preds["patient_id"]) == val
    assert preds.set_index("patient_id")["modalities"].to_dict() == {
        p: "rna" if p == "P140" else "rna+wsi" for p in val
    }
    tables_only = linear_baseline_fold(
        data={"rna": npz},
        split=_split(ids, roles),
        outcomes=outcomes,
        task="survival",
        params=FAST,
        seed=0,
        out_predictions=str(tmp_path / "p2.tsv"),
        out_cv=str(tmp_path / "cv2.tsv"),
    )
    # the slides carry half the signal: the model with them ranks the val patients better
    assert _cindex(preds) > _cindex(tables_only) + 0.03
    assert set(tables_only["modalities"]) == {"rna"}


# ------------------------------------------------------------------------------ forests


def test_rsf_ranks_a_strong_signal_and_writes_the_deep_models_curve(tmp_path):
    ids, roles, outcomes, npz, means = _cohort(tmp_path, n=200, strength=3.0)
    split = _split(ids, roles)
    kwargs = dict(
        data={"rna": npz},
        slide_means=means,
        slide_modalities=["wsi"],
        split=split,
        outcomes=outcomes,
        task="survival",
        params=FAST,
        seed=3,
        n_bins=4,
    )
    preds = forest_baseline_fold(**kwargs, n_jobs=1, out_predictions=str(tmp_path / "a.tsv"))
    assert _cindex(preds) > 0.8
    # the curve columns are those of a deep survival model of this fold (same names, same times)
    train = [p for p, r in zip(ids, roles, strict=True) if r == "train"]
    task = SurvivalTask.fit(outcomes, train, n_bins=4, alpha=0.0)
    logits = torch.zeros(len(preds), task.n_outputs)
    deep = [c for c in task.scores(logits) if c.startswith("surv_at_")]
    curve = [c for c in preds.columns if c.startswith("surv_at_")]
    assert curve == deep and list(preds.columns[-1:]) == ["modalities"]
    S = preds[curve].to_numpy()  # (n, 3)
    assert ((S >= 0) & (S <= 1)).all() and (np.diff(S, axis=1) <= 1e-12).all()
    # a higher risk goes with a lower survival at the middle time
    assert np.corrcoef(preds["risk"], S[:, 1])[0, 1] < -0.8
    # deterministic, whatever the number of threads
    again = forest_baseline_fold(**kwargs, n_jobs=2, out_predictions=str(tmp_path / "b.tsv"))
    pd.testing.assert_frame_equal(preds, again)
    assert (tmp_path / "a.tsv").read_text() == (tmp_path / "b.tsv").read_text()


def test_curve_times_match_the_deep_models_bins():
    rng = np.random.default_rng(1)
    t, e = rng.exponential(10, 80), (rng.random(80) < 0.6).astype(int)
    np.testing.assert_array_equal(
        curve_times(t, e, n_bins=4), survival.fit_bins(t, e, n_bins=4)[1:-1]
    )
    assert curve_times(t[:3], np.ones(3, int), n_bins=4) is None


def test_random_forest_classifies(tmp_path):
    ids, roles, outcomes, npz, means = _cohort(tmp_path, n=160, seed=2)
    signal = read_feature_table(means, what="slides")["f0"].reindex(ids)  # the slides only
    outcomes["label"] = np.where(signal > signal.median(), "high", "low")
    preds = forest_baseline_fold(
        data={"rna": npz},
        slide_means=means,
        slide_modalities=["wsi"],
        split=_split(ids, roles),
        outcomes=outcomes,
        task="classification",
        params=FAST,
        seed=0,
        out_predictions=str(tmp_path / "p.tsv"),
    )
    assert list(preds.columns) == ["patient_id", "label", "prob_high", "prob_low", "modalities"]
    np.testing.assert_allclose(preds["prob_high"] + preds["prob_low"], 1.0)
    assert roc_auc_score(preds["label"] == "high", preds["prob_high"]) > 0.85
    assert read_tsv(tmp_path / "p.tsv")["label"].tolist() == preds["label"].tolist()


def test_random_forest_with_classes_that_look_like_numbers():
    """Classes coded 0 / 1 / 2 (text, as the cohort keeps them): the forest fits, balanced as
    for any labels (scikit-learn's own class balancing refuses such labels)."""
    rng = np.random.default_rng(0)
    labels = np.array(["0", "1", "2", "2", "2", "1"] * 5)
    X = rng.normal(size=(30, 4)) + labels.astype(float)[:, None]  # (30, 4)
    # 5 patients of class 0, 10 of 1, 15 of 2: weights 30 / (3 n_c)
    np.testing.assert_allclose(balanced_weights(labels)[:3], [2.0, 1.0, 2 / 3])
    model = fit_random_forest(X, labels, params=FAST, seed=0)
    assert list(model.classes_) == ["0", "1", "2"]
    assert model.predict_proba(X).shape == (30, 3)


def test_baseline_names_and_params():
    assert model_for("linear_baseline", "survival") == "coxnet"
    assert model_for("linear_baseline", "classification") == "logistic_enet"
    assert model_for("forest_baseline", "survival") == "rsf"
    assert model_for("forest_baseline", "classification") == "random_forest"
    assert BaselineParams.from_config({"forest_max_features": 1}).forest_max_features == 1.0
    for bad in ({"forest_max_features": "all"}, {"forest_max_features": 1.5}, {"trees": 3}):
        with pytest.raises(ValueError, match="baselines"):
            BaselineParams.from_config(bad)


def test_config_schema_and_defaults_agree():
    schema = yaml.safe_load((ROOT / "config/schemas/config.schema.yaml").read_text())
    sub = {"$defs": schema.get("$defs", {}), **schema["properties"]["baselines"]}
    config = yaml.safe_load((ROOT / "config/config.yaml").read_text())["baselines"]
    jsonschema.validate(config, sub)
    assert BaselineParams.from_config(config) == BaselineParams()
    for bad in ({"forest_trees": 0}, {"forest_max_features": "auto"}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({**config, **bad}, sub)


# ------------------------------------------------------------------------------ embeddings


def _blocks(tmp_path: Path, n_outputs: int = 4, members: int = 1) -> dict[str, Path]:
    """A block per modality (a seed ensemble of ``members`` blocks when more than one)."""
    model = {"latent_channels": 4, "latent_dim": 8, "depth": 2, "heads": 2, "dim_head": 4}
    specs = {
        "rna": (4, {"kind": "snn", "hidden": 8, "n_tokens": 2, "token_dim": 8, "dropout": 0.0}),
        "wsi": (4, {"kind": "abmil", "token_dim": 8, "attn_dim": 8, "dropout": 0.0}),
    }
    paths = {}
    for i, (name, (in_dim, encoder)) in enumerate(specs.items()):
        nets = []
        for m in range(members):
            torch.manual_seed(10 * m + i)
            nets.append(
                build_block(in_dim=in_dim, encoder=encoder, model=model, n_outputs=n_outputs)
            )
        paths[name] = tmp_path / f"{name}{members}.pt"
        save_model(nets[0] if members == 1 else ensemble(nets), paths[name])
    return paths


def _embed_fold(tmp_path: Path, blocks: dict[str, Path]):
    """(fold, split, outcomes, modality data, embedding TSVs) of a 120-patient fold whose
    patients P100 and P110 have no slides, embedded by ``blocks``."""
    ids, roles, outcomes, npz, _ = _cohort(tmp_path, n=120, no_slides=("P100", "P110"))
    split = _split(ids, roles)
    write_tsv(split, tmp_path / "split.tsv")
    write_tsv(outcomes.reset_index(), tmp_path / "patients.tsv")
    fold = Fold.read(split=tmp_path / "split.tsv", patients=tmp_path / "patients.tsv", index=0)
    data = {"rna": ("table", npz), "wsi": ("slides", str(tmp_path / "bags.h5"))}
    modalities = load_fold_modalities(fold, data)
    emb = {}
    for name, modality in modalities.items():
        emb[name] = str(tmp_path / f"emb_{name}.tsv")
        write_block_embeddings(load_model(blocks[name]), modality, fold, emb[name])
    return fold, split, outcomes, data, emb


def _late_fusion(
    tmp_path: Path, embeddings, split, outcomes, tag: str, task: str = "survival"
) -> pd.DataFrame:
    """late_fusion_concat_fold with the fast settings, written to <tag>.tsv / <tag>.cv.tsv."""
    return late_fusion_concat_fold(
        embeddings=embeddings,
        split=split,
        outcomes=outcomes,
        task=task,
        params=FAST,
        seed=0,
        out_predictions=str(tmp_path / f"{tag}.tsv"),
        out_cv=str(tmp_path / f"{tag}.cv.tsv"),
    )


def test_embedding_is_what_the_head_sees():
    torch.manual_seed(0)
    block = build_block(
        in_dim=4,
        encoder={"kind": "abmil", "token_dim": 8, "attn_dim": 8, "dropout": 0.0},
        model={"latent_channels": 4, "latent_dim": 8, "depth": 2, "heads": 2, "dim_head": 4},
        n_outputs=3,
    ).eval()
    x, mask = torch.randn(5, 6, 4), torch.ones(5, 6, dtype=torch.bool)
    mask[0, 4:] = False
    with torch.no_grad():
        z = embed(block, x, mask)
        assert z.shape == (5, 8)
        torch.testing.assert_close(block.head_module.linear(z), block(x, mask))


def test_late_fusion_concat_of_frozen_blocks(tmp_path):
    blocks = _blocks(tmp_path)
    fold, split, outcomes, data, emb = _embed_fold(tmp_path, blocks)
    for name in data:
        columns = list(read_tsv(emb[name]).columns)
        assert columns == ["patient_id", *[f"m0_z{j}" for j in range(8)]]
    wsi = read_feature_table(emb["wsi"], what="wsi")
    assert len(wsi) == 118 and "P100" not in wsi.index  # never an invented patient
    # the frozen block embeds each patient alike in any batch (float32 rounding aside)
    mod = load_fold_modalities(fold, {"rna": data["rna"]})["rna"]
    again = block_embeddings(load_model(blocks["rna"]), mod, ["P003", "P001"])
    rna = read_feature_table(emb["rna"], what="rna")
    np.testing.assert_allclose(again, rna.loc[["P003", "P001"]].to_numpy(), atol=1e-5)

    first, second = (_late_fusion(tmp_path, emb, split, outcomes, tag) for tag in ("a", "b"))
    assert (tmp_path / "a.tsv").read_text() == (tmp_path / "b.tsv").read_text()
    pd.testing.assert_frame_equal(first, second)
    mods = first.set_index("patient_id")["modalities"]
    assert mods["P100"] == "rna" and mods["P110"] == "rna" and mods["P101"] == "rna+wsi"
    assert np.isfinite(first["risk"]).all() and len(first) == 30


def test_late_fusion_concat_averages_one_model_per_ensemble_member(tmp_path):
    """Each member has its own latent space: member m's embeddings of every modality feed one
    Coxnet, and the risks are the members' mean (not one model on all members side by side)."""
    _, split, outcomes, _, emb = _embed_fold(tmp_path, _blocks(tmp_path, members=2))
    for name in emb:
        columns = list(read_tsv(emb[name]).columns)
        assert columns == ["patient_id", *[f"m{m}_z{j}" for m in (0, 1) for j in range(8)]]

    def fit(paths: dict[str, str], tag: str) -> pd.DataFrame:
        return _late_fusion(tmp_path, paths, split, outcomes, tag)

    both = fit(emb, "both")
    alone, single = [], []  # single[m]: modality -> member m's embeddings alone
    for m in (0, 1):  # member m's columns alone, renamed as a one-member ensemble's
        paths = {}
        for name, path in emb.items():
            table = read_tsv(path)
            keep = table[["patient_id", *[f"m{m}_z{j}" for j in range(8)]]]
            paths[name] = str(tmp_path / f"member{m}_{name}.tsv")
            write_tsv(
                keep.set_axis(["patient_id", *[f"m0_z{j}" for j in range(8)]], axis=1), paths[name]
            )
        single.append(paths)
        alone.append(fit(paths, f"member{m}"))
    assert not np.allclose(alone[0]["risk"], alone[1]["risk"])
    np.testing.assert_allclose(both["risk"], (alone[0]["risk"] + alone[1]["risk"]) / 2)
    cv = read_tsv(tmp_path / "both.cv.tsv")
    assert cv.columns[0] == "member" and sorted(set(cv["member"])) == [0, 1]
    assert cv.groupby("member")["chosen"].sum().tolist() == [1, 1]

    # blocks of different ensemble sizes: named, not silently fitted on the members they share
    one = single[0]
    with pytest.raises(ValueError, match="different ensemble sizes") as err:
        fit({"rna": emb["rna"], "wsi": one["wsi"]}, "mixed")
    assert one["wsi"] in str(err.value) and emb["rna"] in str(err.value)


def test_late_fusion_concat_names_a_foreign_embedding_column(tmp_path):
    ids, roles, outcomes, _, _ = _cohort(tmp_path, n=40)
    frame = pd.DataFrame(np.zeros((40, 2)), columns=["m0_z0", "latent_1"])
    frame.insert(0, "patient_id", ids)
    write_tsv(frame, tmp_path / "rna.tsv")
    with pytest.raises(ValueError, match=r"rna\.tsv.*m<member>_z<j>.*latent_1"):
        _late_fusion(
            tmp_path, {"rna": str(tmp_path / "rna.tsv")}, _split(ids, roles), outcomes, "p"
        )
    assert not (tmp_path / "p.tsv").exists()


def test_late_fusion_concat_classification(tmp_path):
    ids, roles, outcomes, _, _ = _cohort(tmp_path, n=80)
    outcomes["label"] = np.where(outcomes["time"] > outcomes["time"].median(), "long", "short")
    rng = np.random.default_rng(0)
    emb = {}
    for name in ("rna", "wsi"):
        frame = pd.DataFrame(rng.normal(size=(80, 3)), columns=["m0_z0", "m0_z1", "m0_z2"])
        frame.insert(0, "patient_id", ids)
        emb[name] = str(tmp_path / f"{name}.tsv")
        write_tsv(frame, emb[name])
    preds = _late_fusion(tmp_path, emb, _split(ids, roles), outcomes, "p", task="classification")
    assert list(preds.columns) == ["patient_id", "label", "prob_long", "prob_short", "modalities"]
    np.testing.assert_allclose(preds[["prob_long", "prob_short"]].sum(axis=1), 1.0)
    assert set(preds["modalities"]) == {"rna+wsi"}
