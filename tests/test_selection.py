"""Settings chosen per fold: the search space, successive halving, and that the race sees only
the fold's train and tune patients."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from mmlego.config import ConfigError
from mmlego.io import read_tsv
from mmlego.omics.preprocess import OmicsParams, fit_transform_fold
from mmlego.pipeline.config import load_config
from mmlego.pipeline.fold import Fold
from mmlego.pipeline.selection import (
    apply_candidate,
    draw_candidates,
    rung_epochs,
    score_se,
    successive_halving,
)

# ---------------------------------------------------------------- the race, on toy runs


def test_rungs_keep_the_best_third_and_the_last_trains_in_full():
    quality = [0.50, 0.70, 0.60, 0.90, 0.55, 0.65]  # candidate 3 is best
    calls = []

    def run(candidate, epochs):
        calls.append((candidate["i"], epochs))
        # a longer budget helps every candidate the same: the ranking is the quality's
        return quality[candidate["i"]] + epochs / 1000, f"model {candidate['i']} @ {epochs}"

    cands = [{"i": i} for i in range(6)]
    outcome = successive_halving(cands, run, epochs=30, eta=3)
    assert rung_epochs(30, 6, 3) == [10, 30]
    assert calls[:6] == [(i, 10) for i in range(6)]
    assert calls[6:] == [(1, 30), (3, 30)]  # the best 2 of 6 go on, in candidate order
    assert outcome.chosen == 3 and outcome.result == "model 3 @ 30"
    assert [(t.candidate, t.rung) for t in outcome.trials][-2:] == [(1, 1), (3, 1)]


def test_one_candidate_is_one_ordinary_run_and_nan_scores_lose():
    outcome = successive_halving([{"a": 1}], lambda c, e: (0.5, e), epochs=12, eta=3)
    assert outcome.result == 12 and len(outcome.trials) == 1
    scores = [math.nan, 0.6, 0.6]
    outcome = successive_halving(
        [{"i": i} for i in range(3)], lambda c, e: (scores[c["i"]], c["i"]), epochs=0, eta=3
    )
    assert outcome.chosen == 1  # NaN is the worst; a tie goes to the lower index
    with pytest.raises(ValueError, match="eta"):
        successive_halving([{}], lambda c, e: (0.0, None), epochs=1, eta=1)


def test_a_challenger_must_beat_the_configured_settings_by_the_margin():
    scores = [0.60, 0.65, 0.58, 0.70]

    def run(candidate, epochs):
        return scores[candidate["i"]], candidate["i"]

    cands = [{"i": i} for i in range(4)]
    assert successive_halving(cands, run, epochs=0, eta=3).chosen == 3
    assert successive_halving(cands, run, epochs=0, eta=3, margin=0.09).chosen == 3
    assert successive_halving(cands, run, epochs=0, eta=3, margin=0.11).chosen == 0
    # over rungs too: the configured settings go on unless beaten by the margin
    outcome = successive_halving(cands, run, epochs=9, eta=3, margin=0.11)
    assert outcome.chosen == 0 and outcome.trials[-1].candidate in (0, 3)
    with pytest.raises(ValueError, match="margin"):
        successive_halving(cands, run, epochs=0, eta=3, margin=-0.1)
    # the standard error of a c-index / AUC between uninformative scores
    assert score_se(30, 50) == pytest.approx(math.sqrt(81 / (12 * 30 * 50)))
    assert score_se(10, 9) > score_se(30, 50) and score_se(0, 20) == math.inf


def test_candidates_start_with_the_configured_settings_and_are_seeded():
    base = {"training": {"lr": 0.001, "weight_decay": 0.0}, "encoder": {"kind": "mlp"}}
    space = {"training.lr": [0.0003, 0.001], "training.weight_decay": [0.0, 0.01, 0.1]}
    a = draw_candidates(base, space, 4, seed=0, key=("block", "rna", 0))
    assert a[0] == {"training.lr": 0.001, "training.weight_decay": 0.0}
    assert len(a) == 4 and len({tuple(sorted(c.items())) for c in a}) == 4
    assert a == draw_candidates(base, space, 4, seed=0, key=("block", "rna", 0))
    others = [draw_candidates(base, space, 4, seed=0, key=("block", "rna", f)) for f in range(5)]
    assert len({str(o) for o in others}) > 1  # each fold draws its own order
    assert len(draw_candidates(base, space, 99, seed=0, key=())) == 6  # the whole grid
    # an option this modality's encoder does not have is left out, not invented
    assert draw_candidates(base, {"encoder.dropout": [0.1]}, 3, seed=0, key=()) == [{}]
    applied = apply_candidate(base, {"training.lr": 0.01})
    assert applied["training"] == {"lr": 0.01, "weight_decay": 0.0}
    assert base["training"]["lr"] == 0.001  # a copy


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ({"block": {"merge.latent": ["mean"]}}, "selection.space.block.merge.latent"),
        ({"block": {"model.latent_dim": [8, 16]}}, "shares the latent"),
        ({"block": {"training.lr": [-1.0]}}, r"selection.space.block.training.lr = -1.0"),
        ({"fuse": {"fuse.mode": ["sideways"]}}, "selection.space.fuse.fuse.mode"),
        ({"block": {"encoder.no_such_option": [1]}}, "no modality's encoder has option"),
        ({"fuse": {"fuse.patients": ["paired", "all"]}}, "selection.space.fuse.fuse.patients"),
        ({"fuse": {"fuse.refit": [False, True]}}, "selection.space.fuse.fuse.refit"),
        # the survival head is one for the whole fold: a block race does not change it
        ({"block": {"survival.alpha": [0.0, 0.4]}}, "selection.space.block.survival.alpha"),
    ],
)
def test_a_bad_search_space_is_refused_naming_the_key(space, message):
    with pytest.raises(ConfigError, match=message):
        load_config({"selection": {"space": space}})


# ---------------------------------------------------------------- fold safety, real training


def _cohort(n: int = 60, seed: int = 0):
    rng = np.random.default_rng(seed)
    ids = [f"P{i:03d}" for i in range(n)]
    risk = rng.normal(size=n)
    time = np.exp(-risk + rng.normal(scale=0.5, size=n)) * 50
    outcomes = pd.DataFrame(
        {"time": time, "event": rng.integers(0, 2, n) | (risk > 0)},
        index=pd.Index(ids, name="patient_id"),
    )
    tables = {
        m: pd.DataFrame(
            np.c_[risk[:, None] * w + rng.normal(size=(n, 6))],
            index=outcomes.index,
            columns=[f"{m}{j}" for j in range(6)],
        )
        for m, w in (("rna", 1.0), ("cnv", 0.5))
    }
    roles = pd.Series(["train"] * 36 + ["tune"] * 12 + ["val"] * 12, index=outcomes.index)
    return tables, outcomes, roles


def _run_fold(
    tmp_path,
    tables,
    outcomes,
    roles,
    record=None,
    members=1,
    fuse=None,
    member_tune="fixed",
    paired_fraction=1.0,
):
    from mmlego.training.blocks import train_block
    from mmlego.training.combine import fuse_blocks, merge_blocks

    fold = Fold(index=0, roles=roles.rename("role"), outcomes=outcomes)
    fit_ids = fold.ids("train")
    config = load_config(
        {
            "training": {
                "epochs": 3,
                "batch_size": 16,
                "patience": 3,
                "members": members,
                "member_tune": member_tune,
            },
            "fuse": {"epochs": 2, **(fuse or {})},
            "selection": {"candidates": 3},
            "model": {"latent_channels": 4, "latent_dim": 8, "depth": 1, "heads": 2},
        }
    )
    settings = {k: config[k] for k in config}
    spec = {"type": "table", "encoder": {"kind": "mlp", "hidden": 8, "n_tokens": 2}}
    spec["encoder"]["token_dim"], spec["encoder"]["dropout"] = 8, 0.1
    paths = {}
    for m, table in tables.items():
        paths[m] = str(tmp_path / f"{m}.npz")
        fit = [p for p in fit_ids if p in table.index]
        fit_transform_fold(table, fit, OmicsParams.from_config({}), name=m).save(paths[m])
        train_block(
            name=m,
            modality_spec=spec,
            data_path=paths[m],
            fold=fold,
            settings=settings,
            out_model=str(tmp_path / f"{m}.pt"),
            out_history=str(tmp_path / f"{m}.history.tsv"),
            out_predictions=str(tmp_path / f"{m}.tsv"),
            out_selection=str(tmp_path / f"{m}.selection.tsv"),
            out_embeddings=str(tmp_path / f"{m}.embeddings.tsv"),
        )
    names = sorted(tables)
    common = {
        "block_paths": [str(tmp_path / f"{m}.pt") for m in names],
        "names": names,
        "data": {m: ("table", paths[m]) for m in names},
        "fold": fold,
        "settings": settings,
    }
    merge_blocks(
        **common,
        out_model=str(tmp_path / "merge.pt"),
        out_predictions=str(tmp_path / "merge.tsv"),
        out_selection=str(tmp_path / "merge.selection.tsv"),
    )
    fuse_blocks(
        **common,
        out_model=str(tmp_path / "fuse.pt"),
        out_history=str(tmp_path / "fuse.history.tsv"),
        out_predictions=str(tmp_path / "fuse.tsv"),
        out_selection=str(tmp_path / "fuse.selection.tsv"),
        paired_fraction=paired_fraction,
    )
    return {
        name: read_tsv(tmp_path / f"{name}.selection.tsv") for name in [*names, "merge", "fuse"]
    }


@pytest.fixture
def recorder(monkeypatch):
    """The patients whose data any race (block, merge or fuse) asked for."""
    import mmlego.training.loop as loop
    from mmlego.training.data import TableModality

    seen: set[str] = set()
    racing = [False]
    original_batch = TableModality.batch

    def batch(self, ids, *args, **kwargs):
        if racing[0]:
            seen.update(ids)
        return original_batch(self, ids, *args, **kwargs)

    def racing_halving(*args, **kwargs):
        racing[0] = True
        try:
            return successive_halving(*args, **kwargs)
        finally:
            racing[0] = False

    monkeypatch.setattr(TableModality, "batch", batch)
    monkeypatch.setattr(loop, "successive_halving", racing_halving)
    return seen


def test_the_race_never_reads_validation_patients(tmp_path, recorder):
    tables, outcomes, roles = _cohort()
    first = _run_fold(tmp_path / "a", tables, outcomes, roles)
    val = set(roles.index[roles == "val"])
    assert recorder and not recorder & val
    assert recorder <= set(roles.index[roles != "val"])
    for name, table in first.items():  # a real race ran, and one candidate was chosen
        assert table["candidate"].nunique() > 1, name
        assert table["chosen"].astype(str).str.lower().eq("true").sum() == 1, name

    # the validation patients' data and outcomes replaced by noise: the same choices, same models
    noisy = {m: t.copy() for m, t in tables.items()}
    rng = np.random.default_rng(1)
    for t in noisy.values():
        t.loc[sorted(val)] = rng.normal(scale=10, size=(len(val), t.shape[1]))
    shuffled = outcomes.copy()
    shuffled.loc[sorted(val), "time"] = rng.uniform(1, 500, len(val))
    shuffled.loc[sorted(val), "event"] = 1 - shuffled.loc[sorted(val), "event"]
    second = _run_fold(tmp_path / "b", noisy, shuffled, roles)
    for name in first:
        pd.testing.assert_frame_equal(first[name], second[name])
    for name in ("rna", "cnv", "fuse"):
        a = torch.load(tmp_path / "a" / f"{name}.pt", weights_only=False)["state_dict"]
        b = torch.load(tmp_path / "b" / f"{name}.pt", weights_only=False)["state_dict"]
        assert all(torch.equal(a[k], b[k]) for k in a), name


def test_members_rotate_their_tune_set_over_the_development_patients():
    """Member 0 sees the fold as it is; member m holds out the m-th group of about the tune
    set's size; the groups cover the development patients once, share the events, and never
    touch a validation patient."""
    rng = np.random.default_rng(0)
    ids = pd.Index([f"P{i:03d}" for i in range(100)], name="patient_id")
    outcomes = pd.DataFrame({"time": rng.uniform(1, 99, 100), "event": rng.integers(0, 2, 100)})
    outcomes.index = ids
    roles = pd.Series(["train"] * 64 + ["tune"] * 16 + ["val"] * 20, index=ids)
    fold = Fold(index=3, roles=roles.rename("role"), outcomes=outcomes)
    assert fold.for_member(0, seed=0) is fold
    tunes = [fold.for_member(m, seed=0).ids("tune") for m in range(5)]  # 80 / 16: 5 groups
    assert tunes[0] == fold.ids("tune")
    assert sorted(p for t in tunes for p in t) == fold.ids_in(["train", "tune"])  # a partition
    assert all(len(t) == 16 for t in tunes)
    events = [int(outcomes.loc[t, "event"].sum()) for t in tunes[1:]]
    assert max(events) - min(events) <= 1  # dealt by event
    for m in range(1, 7):
        member = fold.for_member(m, seed=0)
        assert member.ids("val") == fold.ids("val")
        assert sorted(member.ids("train") + member.ids("tune")) == fold.ids_in(["train", "tune"])
        assert member.ids("tune") == tunes[m % 5]  # member 5 is member 0's fold again
        assert member.ids("tune") == fold.for_member(m, seed=0).ids("tune")  # seeded
    assert fold.for_member(1, seed=1).ids("tune") != tunes[1]
    # no tune patients: nothing to rotate
    no_tune = Fold(index=0, roles=roles.replace("tune", "train").rename("role"), outcomes=outcomes)
    assert no_tune.for_member(2, seed=0) is no_tune


def test_members_of_a_classification_fold_rotate_tune_sets_that_share_each_class():
    """A classification cohort's patients may also have an event (an MCAT CSV's): the rotated
    tune sets are dealt by the class, so a rare class is in each of them, not by chance."""
    rng = np.random.default_rng(1)
    ids = pd.Index([f"P{i:03d}" for i in range(100)], name="patient_id")
    label = np.where(np.arange(100) % 10 == 0, "rare", np.where(np.arange(100) % 2, "a", "b"))
    outcomes = pd.DataFrame({"event": rng.integers(0, 2, 100), "label": label}, index=ids)
    roles = pd.Series(["train"] * 80 + ["val"] * 20, index=ids).rename("role")
    roles.iloc[rng.choice(80, 16, replace=False)] = "tune"
    fold = Fold(index=0, roles=roles, outcomes=outcomes)
    train = outcomes.loc[fold.ids("train"), "label"].value_counts()
    for m in range(1, 5):
        tune = outcomes.loc[fold.for_member(m, seed=0, by="label").ids("tune"), "label"]
        # each class's share of the train patients, to within one patient
        assert ((tune.value_counts() - train / 4).abs() <= 1).all(), m
        assert set(tune) == set(train.index)


def test_rotating_members_never_see_validation_patients(tmp_path):
    """Seed ensembles whose members rotate their tune sets: the validation patients' data and
    outcomes replaced by noise give the same models, member by member."""
    tables, outcomes, roles = _cohort()
    val = sorted(roles.index[roles == "val"])
    _run_fold(tmp_path / "a", tables, outcomes, roles, members=3, member_tune="rotate")
    rng = np.random.default_rng(2)
    noisy = {m: t.copy() for m, t in tables.items()}
    for t in noisy.values():
        t.loc[val] = rng.normal(scale=10, size=(len(val), t.shape[1]))
    shuffled = outcomes.copy()
    shuffled.loc[val, "event"] = 1 - shuffled.loc[val, "event"]
    _run_fold(tmp_path / "b", noisy, shuffled, roles, members=3, member_tune="rotate")
    for name in ("rna", "cnv", "merge", "fuse"):
        a = torch.load(tmp_path / "a" / f"{name}.pt", weights_only=False)["state_dict"]
        b = torch.load(tmp_path / "b" / f"{name}.pt", weights_only=False)["state_dict"]
        assert any(".2." in k or "members.2" in k for k in a), name  # three members
        assert all(torch.equal(a[k], b[k]) for k in a), name
    # and the rotation took place: fixed tune sets give other members 1 and 2
    _run_fold(tmp_path / "c", tables, outcomes, roles, members=3)
    a = torch.load(tmp_path / "a" / "rna.pt", weights_only=False)["state_dict"]
    c = torch.load(tmp_path / "c" / "rna.pt", weights_only=False)["state_dict"]
    assert all(torch.equal(a[k], c[k]) for k in a if "members.0." in k)
    assert any(not torch.equal(a[k], c[k]) for k in a if "members.2." in k)


def test_a_seed_ensemble_extends_the_models_without_one(tmp_path):
    """training.members 2: every block, LegoMerge and LegoFuse is an ensemble of 2. The first
    member of each block and of LegoFuse is the model of the run without an ensemble (same
    seeds, same race); LegoMerge merges member m of every block; the second members differ."""
    from mmlego.models.checkpoint import load_model
    from mmlego.models.ensemble import Ensemble
    from mmlego.models.lego_merge import LegoMerge
    from mmlego.training.embeddings import embedding_table
    from mmlego.training.fold import load_fold_modalities

    tables, outcomes, roles = _cohort()
    single = _run_fold(tmp_path / "one", tables, outcomes, roles)
    pair = _run_fold(tmp_path / "two", tables, outcomes, roles, members=2)
    for name in ("rna", "cnv", "fuse"):
        pd.testing.assert_frame_equal(single[name], pair[name])  # the same race
    for name in ("rna", "cnv", "merge", "fuse"):
        one, two = (
            load_model(tmp_path / "one" / f"{name}.pt"),
            load_model(tmp_path / "two" / f"{name}.pt"),
        )
        assert isinstance(two, Ensemble) and len(two.members) == 2, name
        first, second = (m.state_dict() for m in two.members)
        assert any(not torch.equal(first[k], second[k]) for k in first), name
        if name != "merge":  # LegoMerge's weights come from the ensembles' tune scores
            assert all(torch.equal(first[k], v) for k, v in one.state_dict().items()), name
    merged = load_model(tmp_path / "two" / "merge.pt")
    blocks = {m: load_model(tmp_path / "two" / f"{m}.pt") for m in ("cnv", "rna")}
    for i, member in enumerate(merged.members):
        assert isinstance(member, LegoMerge)
        for m, block in blocks.items():  # member i merges member i of every block
            theirs = block.members[i].encoder.state_dict()
            ours = member.blocks[m].encoder.state_dict()
            assert all(torch.equal(ours[k], theirs[k]) for k in theirs), (i, m)
    preds = read_tsv(tmp_path / "two" / "fuse.tsv")
    assert preds["risk"].notna().all() and len(preds) == (roles == "val").sum()
    # the embeddings train_block writes are those of the block it saved, member by member
    fold = Fold(index=0, roles=roles.rename("role"), outcomes=outcomes)
    for m, block in blocks.items():
        data = {m: ("table", str(tmp_path / "two" / f"{m}.npz"))}
        again = embedding_table(block, load_fold_modalities(fold, data)[m], fold)
        written = read_tsv(tmp_path / "two" / f"{m}.embeddings.tsv")
        assert list(written.columns[1:3]) == ["m0_z0", "m0_z1"] and len(written) == len(roles)
        assert written.columns[-1] == "m1_z7"
        pd.testing.assert_frame_equal(written, again, check_exact=False, atol=1e-6, rtol=0)


@pytest.mark.parametrize("patients", ["paired", "all"])
def test_lego_fuse_fine_tunes_on_the_patients_asked_for(tmp_path, monkeypatch, patients):
    """fuse.patients paired: LegoFuse fine-tunes (and is tuned) on the training patients with
    every modality only; all: also on those with some of them, each through its own blocks."""
    import mmlego.training.combine as combine

    tables, outcomes, roles = _cohort()
    partial = set(roles.index[roles != "val"][::4])  # no CNV for these
    tables["cnv"] = tables["cnv"].drop(sorted(partial))
    seen = {"train": set(), "tune": set()}
    original = combine.fit_and_score

    def spy(model, **fit_args):
        seen["train"].update(fit_args["train_ids"])
        seen["tune"].update(fit_args["tune_ids"])
        return original(model, **fit_args)

    monkeypatch.setattr(combine, "fit_and_score", spy)
    _run_fold(tmp_path, tables, outcomes, roles, fuse={"patients": patients})
    for role in ("train", "tune"):
        everyone = set(roles.index[roles == role])
        expected = everyone if patients == "all" else everyone - partial
        assert seen[role] == expected, role
    preds = read_tsv(tmp_path / "fuse.tsv")
    assert preds["risk"].notna().all() and len(preds) == (roles == "val").sum()


def test_report_table_lists_each_folds_choice_as_the_config_writes_it():
    from mmlego.report.tables import selection_table

    race = pd.DataFrame(
        {
            "stage": ["block"] * 3,
            "candidate": [0, 1, 1],
            "rung": [0, 0, 1],
            "epochs": [4, 4, 12],
            "tune_score": [0.61, 0.66, 0.68],
            "chosen": [False, False, True],
            "training.lr": [0.001, 0.0003, 0.0003],
            "training.weight_decay": [0.0001, 0.01, 0.01],
        }
    )
    merge = pd.DataFrame(
        {
            "stage": ["merge"],
            "candidate": [0],
            "rung": [0],
            "epochs": [0],
            "tune_score": [0.6],
            "chosen": ["true"],
            "merge.latent": ["mean"],
        }
    )
    header, rows = selection_table({"block_rna": [race], "lego_merge": [merge]})
    assert header == [
        "model", "fold", "training.lr", "training.weight_decay", "merge.latent",
        "tune score", "candidates",
    ]  # fmt: skip
    assert rows == [
        ["block_rna", 0, "0.0003", "0.01", "", 0.68, 2],
        ["lego_merge", 0, "", "", "mean", 0.6, 1],
    ]


@pytest.fixture
def fine_tunings(monkeypatch):
    """(train ids, tune ids) of every LegoFuse fine-tuning run."""
    import mmlego.training.combine as combine

    runs: list[tuple[list[str], list[str]]] = []
    original = combine.fit_and_score

    def spy(model, **kwargs):
        if isinstance(model, combine.LegoFuse):
            runs.append((list(kwargs["train_ids"]), list(kwargs["tune_ids"])))
        return original(model, **kwargs)

    monkeypatch.setattr(combine, "fit_and_score", spy)
    return runs


def test_fuse_refit_fine_tunes_the_kept_models_on_train_and_tune_patients(tmp_path, fine_tunings):
    """fuse.refit: the race as before (train patients, scored on tune), then every ensemble
    member fine-tuned afresh on train + tune with no tune patients; never a validation patient."""
    tables, outcomes, roles = _cohort()
    train, tune, val = (set(roles.index[roles == r]) for r in ("train", "tune", "val"))
    _run_fold(tmp_path / "a", tables, outcomes, roles, members=2, fuse={"refit": True})
    *race, m0, m1 = fine_tunings
    assert race and all(set(t) == train and set(u) == tune for t, u in race)
    for ids, no_tune in (m0, m1):
        assert ids == sorted(train | tune) and no_tune == []
    assert not {p for t, u in fine_tunings for p in t + u} & val
    history = read_tsv(tmp_path / "a" / "fuse.history.tsv")  # the kept model's: no tune scores
    assert len(history) == 2 and history["tune_score"].isna().all()

    fine_tunings.clear()  # without refit: member 0 is the race's model, member 1 on train
    _run_fold(tmp_path / "b", tables, outcomes, roles, members=2)
    assert set(fine_tunings[-1][0]) == train and set(fine_tunings[-1][1]) == tune
    a = torch.load(tmp_path / "a" / "fuse.pt", weights_only=False)["state_dict"]
    b = torch.load(tmp_path / "b" / "fuse.pt", weights_only=False)["state_dict"]
    assert any(not torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("fraction", [0.0, 0.5])
def test_fuse_refit_keeps_the_paired_data_budget(tmp_path, fine_tunings, fraction):
    """A paired-data budget thins the tune patients of the refit as it thins the train
    patients; a budget of 0 still fine-tunes nothing."""
    from mmlego.training.fold import paired_subset

    tables, outcomes, roles = _cohort()
    train, tune = (sorted(roles.index[roles == r]) for r in ("train", "tune"))
    _run_fold(tmp_path, tables, outcomes, roles, fuse={"refit": True}, paired_fraction=fraction)
    if fraction == 0:
        assert fine_tunings == []
        return
    kept = paired_subset(train, fraction, seed=0, fold=0)
    kept += paired_subset(tune, fraction, seed=0, fold=0)
    assert fine_tunings[-1] == (sorted(kept), [])
    assert len(kept) == round(fraction * len(train)) + round(fraction * len(tune))
