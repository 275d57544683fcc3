"""Survival options of the MM-Lego models: Cox task, tune-score selection, weight averaging,
merge weights from the blocks' tune scores, keys/values computed once, and the benchmark's
helpers. All small and deterministic."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from torch import nn

from mmlego.bench import lego_survival as bench
from mmlego.evaluation.metrics import harrell_c
from mmlego.evaluation.prediction_format import RISK
from mmlego.models import LegoBlock, LegoFuse, LegoMerge, build_encoder, survival
from mmlego.models.lego_merge import score_weights
from mmlego.pipeline.config import load_config
from mmlego.training.blocks import build_block
from mmlego.training.data import TableModality
from mmlego.training.loop import FitParams, WeightAverage, average_states, fit
from mmlego.training.tasks import SurvivalTask


@pytest.fixture
def outcomes() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    ids = [f"P{i:02d}" for i in range(40)]
    return pd.DataFrame(
        {"time": rng.uniform(1, 100, 40), "event": rng.integers(0, 2, 40)},
        index=pd.Index(ids, name="patient_id"),
    )


# --------------------------------------------------------------------------- survival maths
def test_concordance_matches_scikit_survival():
    rng = np.random.default_rng(3)
    time = rng.integers(1, 20, 60).astype(float)  # ties in time
    event = rng.integers(0, 2, 60)
    risk = np.round(rng.normal(size=60), 1)  # ties in risk
    ours = survival.concordance(risk, time, event)
    assert ours == pytest.approx(harrell_c(time, event, risk), abs=1e-12)
    assert np.isnan(survival.concordance(risk[:3], time[:3], np.zeros(3)))


def test_cox_loss_breslow_by_hand_with_tied_times():
    risk = torch.tensor([0.5, -1.0, 2.0, 0.0])
    time = torch.tensor([2.0, 2.0, 5.0, 1.0])
    event = torch.tensor([1.0, 1.0, 0.0, 1.0])
    e = np.exp([0.5, -1.0, 2.0, 0.0])
    # Breslow: each tied death sees the whole risk set {t_j >= t_i}
    ll = (0.5 - np.log(e[0] + e[1] + e[2])) + (-1.0 - np.log(e[0] + e[1] + e[2]))
    ll += 0.0 - np.log(e.sum())
    assert float(survival.cox_loss(risk, time, event)) == pytest.approx(-ll / 3, rel=1e-6)


def test_cox_task_has_one_output_and_scores_its_logit(outcomes):
    ids = list(outcomes.index)
    task = SurvivalTask.fit(outcomes, ids, n_bins=4, alpha=0.0, loss="cox")
    assert task.n_outputs == 1
    logits = torch.linspace(-1, 1, 40)[:, None]  # (b, 1)
    scores = task.scores(logits)
    assert task.needs_baseline and list(scores) == ["risk"]  # no curve before with_baseline
    np.testing.assert_allclose(scores["risk"], logits[:, 0].numpy())
    targets = task.targets(ids, torch.device("cpu"))
    expected = harrell_c(outcomes["time"], outcomes["event"], logits[:, 0].numpy())
    assert task.score(logits, targets) == pytest.approx(expected)
    loss = task.loss(logits, targets)
    assert float(loss) == pytest.approx(
        float(survival.cox_loss(logits[:, 0], targets["time"], targets["event"]))
    )
    with pytest.raises(ValueError, match="survival loss"):
        SurvivalTask.fit(outcomes, ids, n_bins=4, alpha=0.0, loss="hinge")


def test_breslow_matches_scikit_survival_with_tied_times():
    from sksurv.linear_model.coxph import BreslowEstimator

    rng = np.random.default_rng(5)
    time = rng.integers(1, 30, 80).astype(float)  # many tied times
    event = rng.integers(0, 2, 80)
    risk = rng.normal(size=80)
    at = np.array([0.5, 3.0, 10.0, 17.5, 29.0, 40.0])
    ours = survival.breslow(risk, time, event, at)
    ref = BreslowEstimator().fit(risk, event.astype(bool), time).cum_baseline_hazard_
    expected = [ref.y[ref.x <= t][-1] if (ref.x <= t).any() else 0.0 for t in at]
    np.testing.assert_allclose(ours, expected, rtol=1e-10)
    assert ours[0] == 0.0 and np.all(np.diff(ours) >= 0)
    # a common shift of the risks scales H0 by exp(-shift): the curve exp(-H0 e^r) is unchanged
    shifted = survival.breslow(risk - 3.0, time, event, at)
    np.testing.assert_allclose(shifted * np.exp(-3.0), ours, rtol=1e-10)
    with pytest.raises(ValueError, match="breslow"):
        survival.breslow(np.r_[risk[:-1], np.nan], time, event, at)


def test_cox_task_with_baseline_writes_a_survival_curve(outcomes):
    """Fitted on training patients' risks, the Cox curve S(t | r) = exp(-H0(t) e^r) is a
    probability, falls with t and with the risk, and does not depend on where the risks of
    the fitting patients are centred."""
    ids = list(outcomes.index)
    task = SurvivalTask.fit(outcomes, ids[:30], n_bins=4, alpha=0.0, loss="cox")
    train = torch.linspace(-2, 2, 30)[:, None]  # (b, 1)
    fitted = task.with_baseline(train, ids[:30])
    assert not fitted.needs_baseline and len(fitted.baseline) == len(task.edges) - 2
    val = torch.tensor([[-3.0], [0.0], [5.0]])
    scores = fitted.scores(val)
    curve = np.stack([v for k, v in scores.items() if k.startswith("surv_at_")], axis=1)  # (3, K-1)
    assert list(scores)[1:] == [f"surv_at_{t:.6g}" for t in task.edges[1:-1]]
    assert ((curve >= 0) & (curve <= 1)).all()
    assert (np.diff(curve, axis=1) <= 0).all() and (np.diff(curve, axis=0) <= 0).all()
    r = train[:, 0].numpy()
    rows = outcomes.loc[ids[:30]]
    h0 = survival.breslow(r, rows["time"].to_numpy(), rows["event"].to_numpy(), task.edges[1:-1])
    np.testing.assert_allclose(curve[1], np.exp(-h0), rtol=1e-9)  # r = 0: the baseline curve
    again = task.with_baseline(train + 4.0, ids[:30]).scores(val + 4.0)
    for k in scores:
        if k != "risk":
            np.testing.assert_allclose(again[k], scores[k], rtol=1e-6)
    nll = SurvivalTask.fit(outcomes, ids, n_bins=4, alpha=0.0)
    assert not nll.needs_baseline and nll.with_baseline(train, ids[:30]) is nll


def test_nll_task_score_uses_the_nll_risk(outcomes):
    ids = list(outcomes.index)
    task = SurvivalTask.fit(outcomes, ids, n_bins=4, alpha=0.0)
    logits = torch.randn(40, 4, generator=torch.Generator().manual_seed(0))
    risk = survival.risk(logits).numpy()
    score = task.score(logits, task.targets(ids, torch.device("cpu")))
    assert score == pytest.approx(harrell_c(outcomes["time"], outcomes["event"], risk))


# --------------------------------------------------------------------------- training loop
def test_weight_average_is_the_exponential_moving_average():
    model = nn.Linear(2, 1)
    avg = WeightAverage(model, decay=0.5)
    w0 = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.fill_(1.0)
    avg.update(model)
    with torch.no_grad():
        model.weight.fill_(3.0)
    avg.update(model)
    expected = 0.5 * (0.5 * w0 + 0.5 * 1.0) + 0.5 * 3.0
    torch.testing.assert_close(avg.state["weight"], expected)


def test_average_states_is_the_entrywise_mean():
    a, b = nn.Linear(3, 2), nn.Linear(3, 2)
    avg = average_states([a.state_dict(), b.state_dict()])
    torch.testing.assert_close(avg["weight"], (a.weight + b.weight).detach() / 2)


def _table_and_block(outcomes, n_outputs):
    ids = list(outcomes.index)
    rng = np.random.default_rng(1)
    X = np.c_[np.log(outcomes["time"].to_numpy()), rng.normal(size=(40, 3))].astype(np.float32)
    table = TableModality(name="t", index={p: i for i, p in enumerate(ids)}, X=X)
    torch.manual_seed(0)
    block = build_block(
        in_dim=4,
        encoder={"kind": "snn", "hidden": 8, "n_tokens": 2, "token_dim": 8, "dropout": 0.0},
        model={"latent_channels": 4, "latent_dim": 8, "depth": 1, "heads": 2, "dim_head": 4},
        n_outputs=n_outputs,
    )
    return ids, table, block


def test_fit_keeps_the_mean_of_the_best_epochs(outcomes):
    """With average_best = epochs every epoch is among the best: the kept weights are the mean
    of the weights each epoch was scored with."""
    task = SurvivalTask.fit(outcomes, list(outcomes.index), n_bins=4, alpha=0.0, loss="cox")
    ids, table, block = _table_and_block(outcomes, task.n_outputs)
    scored = []

    def forward(model: nn.Module, batch):
        if not model.training:
            scored.append(copy.deepcopy(model.state_dict()))
        return model(table.batch(batch)[0])

    history = fit(
        block, forward=forward, task=task, train_ids=ids[:30], tune_ids=ids[30:],
        params=FitParams(epochs=3, batch_size=64, lr=1e-2, weight_decay=0.0, patience=9, seed=0,
                         select="score", average_best=3),
    )  # fmt: skip
    assert len(scored) == 3 and history["tune_score"].notna().all()
    expected = average_states(scored)
    for k, v in block.state_dict().items():
        torch.testing.assert_close(v, expected[k])


def test_fit_selects_the_best_tune_score_epoch(outcomes):
    task = SurvivalTask.fit(outcomes, list(outcomes.index), n_bins=4, alpha=0.0, loss="cox")
    ids, table, block = _table_and_block(outcomes, task.n_outputs)

    def forward(model, batch):
        return model(table.batch(batch)[0])

    history = fit(
        block, forward=forward, task=task, train_ids=ids[:30], tune_ids=ids[30:],
        params=FitParams(epochs=6, batch_size=10, lr=1e-2, weight_decay=0.0, patience=9, seed=0,
                         select="score", ema=0.5),
    )  # fmt: skip
    kept = task.score(
        torch.cat([forward(block.eval(), ids[30:])]).detach(),
        task.targets(ids[30:], torch.device("cpu")),
    )
    assert kept == pytest.approx(history["tune_score"].max())


def test_fit_params_read_the_optional_keys_and_default_to_the_workflows():
    base = {"epochs": 2, "batch_size": 4, "lr": 1e-3, "weight_decay": 0.0, "patience": 2}
    workflow = load_config()["training"]
    p = FitParams.from_settings(base, seed=0)
    assert (p.select, p.ema, p.average_best) == tuple(
        workflow[k] for k in ("select", "ema", "average_best")
    )
    p = FitParams.from_settings(base | {"select": "loss", "ema": 0.9, "average_best": 2}, seed=0,
                                lr=1e-4)  # fmt: skip
    assert (p.select, p.ema, p.lr, p.average_best) == ("loss", 0.9, 1e-4, 2)
    with pytest.raises(ValueError, match="select"):
        FitParams.from_settings(base | {"select": "auc"}, seed=0)


# --------------------------------------------------------------------------- merge weights
def test_score_weights_zero_for_a_block_at_chance():
    w = score_weights({"a": 0.70, "b": 0.50, "c": 0.60, "d": 0.42})
    assert w["b"] == 0.0 and w["d"] == 0.0
    assert w["a"] == pytest.approx(2 / 3) and w["c"] == pytest.approx(1 / 3)
    assert sum(w.values()) == pytest.approx(1.0)
    assert score_weights({"a": 0.5, "b": 0.4}) == {"a": 0.5, "b": 0.5}  # none above chance
    assert score_weights({"a": 0.6, "b": float("nan")}) == {"a": 1.0, "b": 0.0}
    floored = score_weights({"a": 0.6, "b": 0.5}, floor=0.1)
    assert floored["b"] == pytest.approx(0.1 / 1.2)


def _blocks(n: int, seed: int = 0) -> dict[str, LegoBlock]:
    torch.manual_seed(seed)
    return {
        f"m{i}": LegoBlock(
            build_encoder("snn", 5, hidden=8, n_tokens=3, token_dim=8, dropout=0.0),
            n_outputs=1,
            latent_channels=4,
            latent_dim=8,
            depth=2,
            heads=2,
            dim_head=4,
        ).eval()
        for i in range(n)
    }


def test_merge_with_a_zero_weight_block_is_the_other_block():
    blocks = _blocks(3)
    x = {m: (torch.randn(6, 5), None) for m in blocks}
    merged = LegoMerge(blocks, weights={"m0": 1.0, "m1": 0.0, "m2": 0.0})
    with torch.no_grad():
        torch.testing.assert_close(merged(x), blocks["m0"](x["m0"][0]), atol=1e-5, rtol=1e-5)
        # a patient with only zero-weight blocks still gets a prediction (equal among them)
        present = {"m0": torch.tensor([False] * 6), "m1": torch.ones(6, dtype=torch.bool)}
        present["m2"] = torch.ones(6, dtype=torch.bool)
        equal = LegoMerge({m: blocks[m] for m in ("m1", "m2")})
        torch.testing.assert_close(merged(x, present), equal(x), atol=1e-5, rtol=1e-5)


# --------------------------------------------------------------------------- keys and values
def test_tied_steps_compute_keys_and_values_once_with_identical_output():
    torch.manual_seed(0)
    block = LegoBlock(
        build_encoder("snn", 5, hidden=8, n_tokens=3, token_dim=8, dropout=0.0),
        n_outputs=2, latent_channels=4, latent_dim=8, depth=4, heads=2, dim_head=4,
        share_weights=True,
    ).eval()  # fmt: skip
    calls = []
    for step in block.steps:
        step.attn.to_kv.register_forward_hook(lambda *_: calls.append(1))
    x = torch.randn(3, 5)
    with torch.no_grad():
        out = block(x)
        assert len(calls) == 2  # step 0 and the tied steps 1..3: once each per forward
        tokens, mask = block.encode(x)  # per-step recomputation, as the maths reads
        latent = block.initial_latent(3)
        for s in range(block.depth):
            u, j = block.layer(s, latent, tokens, mask)
            latent = block.to_time(u, j)
    torch.testing.assert_close(out, block.head(u), atol=0, rtol=0)


def test_weave_fuse_computes_each_blocks_keys_and_values_once():
    blocks = _blocks(2)
    for b in blocks.values():
        b.train(False)
    fuse = LegoFuse(blocks, mode="weave").eval()
    calls = []
    for block in fuse.blocks.values():
        for step in block.steps:
            step.attn.to_kv.register_forward_hook(lambda *_: calls.append(1))
    with torch.no_grad():
        fuse({m: (torch.randn(4, 5), None) for m in blocks})
    assert len(calls) == 4  # 2 blocks x 2 distinct steps, each once


# --------------------------------------------------------------------------- benchmark helpers
def test_bench_settings_helpers():
    assert bench.parse_folds("0-2,4") == [0, 1, 2, 4]
    assert bench.parse_set(["a.b=1", "c=[x, y]"]) == {"a": {"b": 1}, "c": ["x", "y"]}
    assert bench.deep_merge({"a": {"b": 1, "c": 2}}, {"a": {"b": 3}}) == {"a": {"b": 3, "c": 2}}


def test_bench_plans_cohorts_as_the_pancancer_workflow(tmp_path):
    """Column groups by usable columns and pancancer.min_columns, constant clinical columns
    dropped, the pan-cancer modality settings: the configuration the workflow would run."""
    from pancancer_data import synthetic_cohort, write_cohort

    df = synthetic_cohort(
        40, {"_rnaseq": 12, "_cnv": 12, "_mut": 10}, constant=["is_female"], seed=1
    )
    df[[f"G{j}_cnv" for j in range(6, 12)]] = 0.0  # constant: not usable
    write_cohort(tmp_path, "tcga_syn", df, folds=3)
    settings = bench.load_settings([], ["pancancer.min_columns=8", "training.epochs=3"])
    (cohort,) = bench.plan(settings, tmp_path)
    config = cohort.config
    assert cohort.name == "tcga_syn" and sorted(config["modalities"]) == [
        "clinical",
        "mut",
        "rnaseq",
    ]
    assert config["modalities"]["clinical"]["columns"] == {"names": ["age"]}
    assert config["modalities"]["rnaseq"]["encoder"] == settings["modalities"]["rnaseq"]["encoder"]
    assert len(config["inputs"]["split_files"]) == config["splits"]["k"] == 3
    defaults = yaml.safe_load((bench.ROOT / "config" / "config.yaml").read_text())
    assert config["training"] == {**defaults["training"], "epochs": 3}
    reason = {c.modality: c.reason for c in cohort.checks}["cnv"]
    assert reason.startswith("nearly empty: 6 usable of 12")


def test_fuse_head_weights_and_order_round_trip():
    blocks = _blocks(3)
    fuse = LegoFuse(
        blocks, order=["m2", "m0", "m1"], head_weights={"m0": 0.0, "m1": 1.0, "m2": 0.0}
    )
    for name, p in fuse.head.named_parameters():
        torch.testing.assert_close(p, dict(blocks["m1"].head_module.named_parameters())[name])
    again = LegoFuse.from_config(fuse.config)
    assert again.order == ["m2", "m0", "m1"] and again.head_weights == fuse.head_weights
    with pytest.raises(ValueError, match="head_weights"):
        LegoFuse(blocks, head_weights={"m0": 1.0})


class _Risk(nn.Module):
    """A stand-in block whose logit is a fixed column of its table."""

    def __init__(self, column: int) -> None:
        super().__init__()
        self.column = column
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, x, mask=None):
        return x[:, self.column : self.column + 1] + 0 * self.dummy


def test_merge_weights_from_each_blocks_own_tune_patients(outcomes):
    from mmlego.pipeline.fold import Fold
    from mmlego.training.combine import block_tune_scores, merge_weights

    ids = list(outcomes.index)
    roles = pd.Series(["train"] * 20 + ["tune"] * 20, index=pd.Index(ids, name="patient_id"))
    fold = Fold(index=0, roles=roles, outcomes=outcomes)
    rng = np.random.default_rng(5)
    X = np.c_[-outcomes["time"].to_numpy(), rng.normal(size=40)].astype(np.float32)
    good = TableModality(name="good", index={p: i for i, p in enumerate(ids)}, X=X)
    # the noise block's modality: only half of the tune patients have it
    half = ids[:30]
    noise = TableModality(name="noise", index={p: i for i, p in enumerate(half)}, X=X[:30])
    task = SurvivalTask.fit(outcomes, ids[:20], n_bins=4, alpha=0.0, loss="cox")
    blocks = {"good": _Risk(0), "noise": _Risk(1)}
    mods = {"good": good, "noise": noise}
    scores = block_tune_scores(blocks, mods, [fold.ids("tune")], task)
    tune = ids[20:]
    assert scores["good"] == pytest.approx(1.0)  # risk = -time orders every pair
    expected = harrell_c(
        outcomes.loc[ids[20:30], "time"], outcomes.loc[ids[20:30], "event"], X[20:30, 1]
    )
    assert scores["noise"] == pytest.approx(expected)  # its own tune patients only
    held_out = [fold.ids("tune")]
    assert merge_weights(blocks, mods, held_out, task, {"weights": "equal"}) is None
    w = merge_weights(blocks, mods, held_out, task, {"weights": "tune_score", "weight_floor": 0})
    if scores["noise"] <= 0.5:
        assert w == {"good": 1.0, "noise": 0.0}
    assert w["good"] > w["noise"] and len(tune) == 20


def test_block_scores_judge_the_tune_patients_by_the_members_that_held_them_out(outcomes):
    """Seed ensembles: a block's tune score averages, per tune patient, the members that did not
    train on it. Members that rotated their tune set onto training patients do not judge: those
    patients' outcomes fitted the fold's feature selection."""
    from mmlego.models.ensemble import Ensemble
    from mmlego.pipeline.fold import Fold
    from mmlego.training.combine import block_tune_scores, tune_held_out

    ids = list(outcomes.index)
    index = pd.Index(ids, name="patient_id")
    rng = np.random.default_rng(7)
    X = np.c_[-outcomes["time"].to_numpy(), rng.normal(size=40)].astype(np.float32)
    # the modality lacks two tune patients
    mods = {"m": TableModality(name="m", index={p: i for i, p in enumerate(ids[:28])}, X=X)}
    task = SurvivalTask.fit(outcomes, ids[:20], n_bins=4, alpha=0.0, loss="cox")
    block = {"m": Ensemble([_Risk(1), _Risk(0)])}  # member 0 is noise, member 1 ranks by time

    def fold_holding(tune: list[str]) -> Fold:
        roles = pd.Series(["train"] * 30 + ["val"] * 10, index=index)
        roles[tune] = "tune"
        return Fold(index=0, roles=roles, outcomes=outcomes)

    fold = fold_holding(ids[20:30])
    rotated = fold_holding(ids[10:20])  # member 1 held out training patients instead
    assert tune_held_out(fold, [fold, rotated]) == [ids[20:30], []]
    assert tune_held_out(fold, [fold, fold]) == [ids[20:30]] * 2

    tune = ids[20:28]  # with the modality
    time, event = outcomes.loc[tune, "time"], outcomes.loc[tune, "event"]
    by_first = block_tune_scores(block, mods, tune_held_out(fold, [fold, rotated]), task)["m"]
    assert by_first == pytest.approx(harrell_c(time, event, X[20:28, 1])) and by_first < 1.0
    by_both = block_tune_scores(block, mods, tune_held_out(fold, [fold, fold]), task)["m"]
    assert by_both == pytest.approx(harrell_c(time, event, X[20:28].mean(1)))  # the ensemble
    by_second = block_tune_scores(block, mods, [[], ids[20:30]], task)["m"]
    assert by_second == pytest.approx(1.0)
    assert np.isnan(block_tune_scores(block, mods, [[], []], task)["m"])


def test_bench_variants_rerun_only_the_stage_they_change(tmp_path):
    """A merge-only variant adds lego_merge@<name> (no LegoFuse run), a fuse-only one
    lego_fuse@<name>; one synthetic PORPOISE-format cohort, one fold, one epoch."""
    from pancancer_data import synthetic_cohort, write_cohort

    df = synthetic_cohort(60, {"_rnaseq": 12, "_cnv": 12}, seed=3)
    write_cohort(tmp_path / "data", "tcga_syn", df, folds=5)
    quick = ["selection.candidates=1", "training.members=1", "training.epochs=1", "fuse.epochs=1"]
    quick += ["baselines.n_alphas=3", "baselines.inner_folds=2"]
    argv = ["--cohorts", "tcga_syn", "--folds", "0", "--data", str(tmp_path / "data")]
    argv += ["--out", str(tmp_path / "out"), "--set", "pancancer.min_columns=5"]
    argv += [a for s in quick for a in ("--set", s)]
    argv += ["--variant", "eq:merge.weights=equal", "--variant", "frozen:fuse.freeze_encoders=true"]
    assert bench.main([*argv, "--unimodal", "--rsf"]) == 0
    metrics = pd.read_csv(tmp_path / "out" / "metrics.tsv", sep="\t").set_index("model")
    models = set(metrics.index)
    assert {"lego_merge", "lego_fuse", "lego_merge@eq", "lego_fuse@frozen"} <= models
    assert not {"lego_fuse@eq", "lego_merge@frozen"} & models
    # --unimodal: a Coxnet on each table alone, scored on the block's patients, cached apart
    # from the Coxnet on every table (and from the forest, --rsf)
    assert {"coxnet_clinical", "coxnet_cnv", "coxnet_rnaseq", "rsf"} <= models
    assert metrics.loc["coxnet_cnv", "n"] == metrics.loc["block_cnv", "n"]
    (cached,) = (tmp_path / "baseline_cache").iterdir()
    cnv = pd.read_csv(cached / "coxnet_cnv.tsv", sep="\t")
    both = pd.read_csv(cached / "coxnet.tsv", sep="\t")
    assert set(cnv["patient_id"]) == set(both["patient_id"])
    assert not np.allclose(cnv[RISK], both.set_index("patient_id").loc[cnv["patient_id"], RISK])


def _bench_metrics(values: dict[tuple[str, str], list[float]]) -> pd.DataFrame:
    """A bench ``metrics.tsv`` frame: (cohort, model) -> c-index per fold."""
    rows = [
        {"cohort": c, "fold": k, "model": m, "c_index": v, "n": 50}
        for (c, m), folds in values.items()
        for k, v in enumerate(folds)
    ]
    return pd.DataFrame(rows)


def test_compare_runs_pairs_folds_within_cohorts_and_counts_cohorts():
    base = _bench_metrics(
        {
            ("tcga_a", "lego_fuse"): [0.60, 0.70],
            ("tcga_b", "lego_fuse"): [0.50, 0.60],
            ("tcga_c", "lego_fuse"): [0.65, 0.65],
            ("tcga_a", "coxnet"): [0.60, 0.60],
            ("tcga_b", "coxnet"): [0.55, 0.55],
            ("tcga_c", "coxnet"): [0.60, 0.60],
        }
    )
    other = base.copy()
    fuse = other["model"] == "lego_fuse"
    other.loc[fuse & (other["cohort"] == "tcga_a"), "c_index"] += [0.03, 0.01]  # up 0.02
    other.loc[fuse & (other["cohort"] == "tcga_b"), "c_index"] -= 0.015  # down
    other.loc[fuse & (other["cohort"] == "tcga_c"), "c_index"] += [0.004, 0.0]  # tie
    other = pd.concat([other, _bench_metrics({("tcga_a", "rsf"): [0.6, 0.6]})])
    overall, per_cohort = bench.compare_runs(base, other, tie=0.01)
    assert list(overall.index) == ["coxnet", "lego_fuse"]  # models both runs scored
    row = overall.loc["lego_fuse"]
    assert row["base"] == pytest.approx((0.65 + 0.55 + 0.65) / 3)
    assert row["diff"] == pytest.approx((0.02 - 0.015 + 0.002) / 3)
    assert row["other"] - row["base"] == pytest.approx(row["diff"])
    assert row["ci_low"] <= row["diff"] <= row["ci_high"]
    assert (row["up"], row["tie"], row["down"], row["cohorts"]) == (1, 1, 1, 3)
    assert per_cohort.loc["tcga_b", "lego_fuse"] == pytest.approx(-0.015)
    assert overall.loc["coxnet", ["diff", "up", "down"]].tolist() == [0.0, 0, 0]


def test_compare_runs_refuses_runs_of_other_folds_naming_them(tmp_path):
    base = _bench_metrics({("tcga_a", "lego_fuse"): [0.6, 0.7, 0.65]})
    other = base[base["fold"] < 2]
    with pytest.raises(ValueError, match=r"different cohort folds, e\.g\. \[\('tcga_a', 2\)\]"):
        bench.compare_runs(base, other)
    # the command line: two --out folders, a missing one named
    for name, frame in (("base", base), ("other", base)):
        (tmp_path / name).mkdir()
        frame.to_csv(tmp_path / name / "metrics.tsv", sep="\t", index=False)
    assert bench.main(["--compare", str(tmp_path / "base"), str(tmp_path / "other")]) == 0
    with pytest.raises(ValueError, match=r"nowhere[/\\]metrics\.tsv: no such file"):
        bench.compare_report(str(tmp_path / "base"), str(tmp_path / "nowhere"))
