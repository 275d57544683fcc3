"""Training glue: modality batches, tasks, the early-stopping loop and late fusion."""

from __future__ import annotations

import h5py
import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mmlego.evaluation.evaluate import curve_columns
from mmlego.evaluation.prediction_format import is_score_column
from mmlego.io import read_tsv, write_tsv
from mmlego.pipeline.config import load_config
from mmlego.training.baselines import late_fusion
from mmlego.training.blocks import build_block
from mmlego.training.data import BagModality, TableModality, load_bag_modality, multimodal_batch
from mmlego.training.loop import FitParams, fit, predict
from mmlego.training.tasks import (
    ClassificationTask,
    SurvivalTask,
    make_task,
    prediction_table,
)


@pytest.fixture
def outcomes() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    ids = [f"P{i:02d}" for i in range(40)]
    return pd.DataFrame(
        {
            "time": rng.uniform(1, 100, 40),
            "event": rng.integers(0, 2, 40),
            "label": rng.choice(["a", "b"], 40),
        },
        index=pd.Index(ids, name="patient_id"),
    )


def test_table_batch_marks_absent_patients():
    table = TableModality(
        name="rna", index={"A": 0, "B": 1}, X=np.arange(6, dtype=np.float32).reshape(2, 3)
    )
    x, mask, present = table.batch(["B", "Z", "A"])
    assert mask is None
    assert present.tolist() == [True, False, True]
    np.testing.assert_array_equal(x[0].numpy(), [3, 4, 5])
    np.testing.assert_array_equal(x[2].numpy(), [0, 1, 2])


def test_bag_batch_pads_with_mask_and_standardises():
    bags = {"A": np.ones((3, 2), np.float32), "B": np.full((1, 2), 3.0, np.float32)}
    mod = BagModality(
        name="wsi", bags=bags, mean=np.ones(2, np.float32), std=np.full(2, 2.0, np.float32)
    )
    x, mask, present = mod.batch(["A", "B", "C"])
    assert x.shape == (3, 3, 2)
    assert mask.tolist() == [[True] * 3, [True, False, False], [False] * 3]
    assert present.tolist() == [True, True, False]
    np.testing.assert_allclose(x[1, 0].numpy(), [1.0, 1.0])  # (3 - 1) / 2
    assert float(x[1, 1:].abs().sum()) == 0.0  # padding carries nothing of other patients


def test_bag_scaling_is_fitted_on_training_patients_only(tmp_path):
    path = tmp_path / "bags.h5"
    with h5py.File(path, "w") as f:
        f.create_group("T").create_dataset("features", data=np.array([[0.0], [2.0]], np.float32))
        f.create_group("V").create_dataset("features", data=np.array([[100.0]], np.float32))
        f.create_group("E").create_dataset("features", data=np.zeros((0, 1), np.float32))
    mod = load_bag_modality("wsi", str(path), train_ids=["T"])
    assert float(mod.mean[0]) == 1.0 and float(mod.std[0]) == 1.0
    assert "E" not in mod.patients  # a slide without tiles counts as a missing modality


def test_survival_task_bins_from_training_patients(outcomes):
    train = list(outcomes.index[:30])
    task = SurvivalTask.fit(outcomes, train, n_bins=4, alpha=0.0)
    assert task.n_outputs == 4
    t = task.targets(list(outcomes.index), torch.device("cpu"))
    assert t["y"].min() >= 0 and t["y"].max() <= 3
    np.testing.assert_array_equal(t["c"].numpy(), 1 - outcomes["event"].to_numpy())
    # changing a validation patient's time does not move the bins
    moved = outcomes.copy()
    moved.loc[outcomes.index[35], "time"] = 1e6
    np.testing.assert_array_equal(
        SurvivalTask.fit(moved, train, n_bins=4, alpha=0).edges, task.edges
    )


def test_classification_task_probabilities(outcomes):
    task = ClassificationTask.fit(outcomes, list(outcomes.index))
    assert task.classes == ("a", "b")
    scores = task.scores(torch.tensor([[0.0, 0.0], [10.0, -10.0]]))
    np.testing.assert_allclose(scores["prob_a"], [0.5, 1.0], atol=1e-6)


def test_classification_loss_smooths_the_targets_by_the_configured_share(outcomes):
    """Cross entropy against (1 - eps) one-hot + eps / K; make_task takes eps from the
    workflow's `classification` section; eps = 0 is plain cross entropy."""
    ids = list(outcomes.index)
    settings = load_config({"task": "classification"})
    task = make_task(settings, outcomes, ids)
    eps = settings["classification"]["label_smoothing"]
    assert task.label_smoothing == eps
    task = ClassificationTask.fit(outcomes, ids, label_smoothing=0.3)
    logits = torch.tensor([[2.0, -1.0], [0.5, 0.5], [-3.0, 1.0]])
    targets = task.targets(ids[:3], torch.device("cpu"))
    onehot = F.one_hot(targets["y"], 2).float()
    smoothed = 0.7 * onehot + 0.3 / 2
    expected = -(smoothed * torch.log_softmax(logits, -1)).sum(-1).mean()
    assert torch.allclose(task.loss(logits, targets), expected)
    plain = ClassificationTask.fit(outcomes, ids)
    assert torch.allclose(plain.loss(logits, targets), F.cross_entropy(logits, targets["y"]))
    assert not torch.allclose(plain.loss(logits, targets), expected)


def test_classification_score_counts_the_classes_it_scores():
    """The selection margin's counts: a training class without tune patients has no one-vs-rest
    AUC, so the rarest class is the rarest one present (not 0, an infinite standard error)."""
    labels = ["a"] * 6 + ["b"] * 4 + ["c"] * 2 + ["a", "a", "b", "a", "b"]
    ids = [f"P{i:02d}" for i in range(len(labels))]
    outcomes = pd.DataFrame({"label": labels}, index=ids)
    task = ClassificationTask.fit(outcomes, ids[:12])
    assert task.classes == ("a", "b", "c")
    assert task.score_counts(ids[12:]) == (2, 3)  # tune: a a b a b, no c
    assert task.score_counts(ids) == (2, 15)
    assert task.score_counts([]) == (0, 0)


def test_fit_learns_and_restores_the_best_tune_epoch(outcomes):
    """A block on a table whose first feature is the label must learn it; the restored weights
    are the best tune epoch's (its tune loss equals the minimum of the history)."""
    ids = list(outcomes.index)
    y = (outcomes["label"] == "b").to_numpy(np.float32)
    rng = np.random.default_rng(1)
    X = np.c_[y * 2 - 1, rng.normal(size=(40, 5))].astype(np.float32)
    table = TableModality(name="t", index={p: i for i, p in enumerate(ids)}, X=X)
    task = ClassificationTask.fit(outcomes, ids[:30])
    torch.manual_seed(0)
    block = build_block(
        in_dim=6,
        encoder={"kind": "snn", "hidden": 16, "n_tokens": 4, "token_dim": 8, "dropout": 0.0},
        model={"latent_channels": 4, "latent_dim": 8, "depth": 1, "heads": 2, "dim_head": 4},
        n_outputs=2,
    )

    def forward(model: nn.Module, batch):
        x, mask, _ = table.batch(batch)
        return model(x, mask)

    history = fit(
        block, forward=forward, task=task, train_ids=ids[:30], tune_ids=ids[30:],
        params=FitParams(epochs=30, batch_size=8, lr=3e-3, weight_decay=0.0, patience=30, seed=0,
                         select="loss", average_best=1),
    )  # fmt: skip
    probs = task.scores(predict(block, forward, ids[30:]))["prob_b"]
    assert ((probs > 0.5) == y[30:].astype(bool)).mean() >= 0.9
    from mmlego.training.loop import evaluate_loss

    restored = evaluate_loss(block, forward, task, ids[30:], batch_size=8)
    assert restored == pytest.approx(history["tune_loss"].min(), rel=1e-5)
    assert history["best"].sum() >= 1


def test_blocks_with_a_shared_seed_differ_only_in_their_encoders():
    """With one shared seed, blocks of two modalities (other input widths and encoders) start
    from the same latent, steps and head; torch's random state is left as the encoder left it;
    the seed is one per fold and member, not per modality, and None when shared_init is off."""
    from mmlego.models.encoders import build_encoder
    from mmlego.training.blocks import shared_init_seed

    model = {"latent_channels": 4, "latent_dim": 8, "depth": 2, "heads": 2, "dim_head": 4}
    encoders = {
        "rna": (30, {"kind": "snn", "hidden": 16, "n_tokens": 4, "token_dim": 8, "dropout": 0.1}),
        "cnv": (12, {"kind": "mlp", "hidden": 8, "n_tokens": 2, "token_dim": 8, "dropout": 0.1}),
    }
    blocks = {}
    for i, (name, (in_dim, enc)) in enumerate(encoders.items()):
        torch.manual_seed(i)
        blocks[name] = build_block(
            in_dim=in_dim, encoder=enc, model=model, n_outputs=1, shared_seed=7
        )
        after = torch.rand(3)
        torch.manual_seed(i)
        build_encoder(enc["kind"], in_dim, **{k: v for k, v in enc.items() if k != "kind"})
        assert torch.equal(after, torch.rand(3))  # the shared part drew nothing from torch's RNG
    shared = {
        name: {k: v for k, v in b.state_dict().items() if not k.startswith("encoder.")}
        for name, b in blocks.items()
    }
    assert len(shared["rna"]) > 10 and shared["rna"].keys() == shared["cnv"].keys()
    for k, v in shared["rna"].items():
        assert torch.equal(v, shared["cnv"][k]), k
    torch.manual_seed(0)
    other = build_block(in_dim=30, encoder=encoders["rna"][1], model=model, n_outputs=1)
    assert not torch.equal(other.latent0, blocks["rna"].latent0)

    settings = {"seed": 3, "training": {"shared_init": True}}
    seeds = {(f, m): shared_init_seed(settings, f, m) for f in range(2) for m in range(2)}
    assert len(set(seeds.values())) == 4
    assert shared_init_seed({**settings, "training": {"shared_init": False}}, 0, 0) is None


def test_late_fusion_averages_over_available_modalities(tmp_path):
    a = pd.DataFrame(
        {
            "patient_id": ["P1", "P2"],
            "time": [1.0, 2.0],
            "event": [1, 0],
            "risk": [1.0, 3.0],
            "modalities": ["wsi", "wsi"],
        }
    )
    b = pd.DataFrame(
        {
            "patient_id": ["P2", "P3"],
            "time": [2.0, 3.0],
            "event": [0, 1],
            "risk": [5.0, 7.0],
            "modalities": ["rna", "rna"],
        }
    )
    write_tsv(a, tmp_path / "a.tsv")
    write_tsv(b, tmp_path / "b.tsv")
    late_fusion(
        block_predictions=[str(tmp_path / "a.tsv"), str(tmp_path / "b.tsv")],
        task="survival",
        out_predictions=str(tmp_path / "o.tsv"),
    )
    out = read_tsv(tmp_path / "o.tsv").set_index("patient_id")
    assert (
        out.loc["P1", "risk"] == 1.0
        and out.loc["P2", "risk"] == 4.0
        and out.loc["P3", "risk"] == 7.0
    )
    assert out.loc["P2", "modalities"] == "rna+wsi"


def test_prediction_table_columns(outcomes):
    task = SurvivalTask.fit(outcomes, list(outcomes.index), n_bins=4, alpha=0.0)
    table = prediction_table(task, ["P00", "P01"], torch.zeros(2, 4), ["wsi", "cnv+wsi"])
    surv = [f"surv_at_{t:.6g}" for t in task.edges[1:-1]]
    assert list(table.columns) == ["patient_id", "time", "event", "risk", *surv, "modalities"]
    np.testing.assert_allclose(table[surv].to_numpy(), np.array([[0.5, 0.25, 0.125]] * 2))


def test_prediction_columns_read_back_by_the_evaluation(outcomes):
    """What the models write is what the evaluation and the late fusion read: the curve's
    times come back from the column names, and the scores are the risk and the curve."""
    task = SurvivalTask.fit(outcomes, list(outcomes.index), n_bins=4, alpha=0.0)
    table = prediction_table(task, ["P00", "P01"], torch.zeros(2, 4), ["wsi", "cnv+wsi"])
    times = curve_columns(table)
    np.testing.assert_allclose(list(times.values()), task.edges[1:-1], rtol=1e-5)
    assert [c for c in table.columns if is_score_column(c)] == ["risk", *times]


def test_multimodal_batch_presence():
    table = TableModality(name="rna", index={"A": 0}, X=np.ones((1, 2), np.float32))
    bags = BagModality(
        name="wsi",
        bags={"B": np.ones((2, 2), np.float32)},
        mean=np.zeros(2, np.float32),
        std=np.ones(2, np.float32),
    )
    inputs, present = multimodal_batch(
        {"rna": table, "wsi": bags}, ["A", "B"], device=torch.device("cpu")
    )
    assert present["rna"].tolist() == [True, False] and present["wsi"].tolist() == [False, True]
    assert inputs["wsi"][1].shape == (2, 2)
