"""Patient bags streamed to and from disk: the assembly equals the in-memory concatenation, the
streaming tile statistics equal numpy's, and a training step caps the tiles of a bag while
evaluation sees them all."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from mmlego.pipeline.config import base_defaults
from mmlego.training import data as bagdata
from mmlego.training.blocks import block_forward, build_block
from mmlego.training.data import (
    BagModality,
    H5Bags,
    TileSampler,
    bag_statistics,
    load_bag_modality,
)
from mmlego.wsi import bags as bagmod
from mmlego.wsi.bags import write_patient_bags

SLIDES = {  # slide -> (patient, tiles)
    "s0": ("P1", 7),
    "s1": ("P1", 0),
    "s2": ("P1", 5),
    "s3": ("P2", 11),
    "s4": ("P3", 0),
    "s5": ("P4", 3),
}
D = 6


def write_slides(folder, *, dtype=np.float32) -> list[str]:
    """CLAM-style feature files with distinct, reproducible values; an empty slide has another
    width (a failed slide may carry any)."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for slide, (_, n) in SLIDES.items():
        path = folder / f"{slide}.h5"
        with h5py.File(path, "w") as f:
            feats = rng.normal(3.0, 2.0, (n, D)) if n else np.zeros((0, 2))
            f.create_dataset("features", data=feats.astype(dtype))  # (n, d)
            f.create_dataset("coords", data=np.zeros((n, 2), np.int64))
        paths.append(str(path))
    return paths


def in_memory_bags(paths: list[str]) -> dict[str, tuple[np.ndarray, np.ndarray, list[str]]]:
    """The reference: every slide loaded, concatenated per patient."""
    per: dict[str, list[tuple[str, np.ndarray]]] = {}
    for path in sorted(paths):
        slide = path.rsplit("/", 1)[-1][:-3]
        with h5py.File(path) as f:
            per.setdefault(SLIDES[slide][0], []).append((slide, f["features"][()]))
    out = {}
    for p, slides in per.items():
        kept = [x.astype(np.float32) for _, x in slides if len(x)]
        if kept:
            index = np.concatenate([np.full(len(x), i) for i, (_, x) in enumerate(slides)])
            out[p] = (np.concatenate(kept), index, [s for s, _ in slides])
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_streamed_assembly_equals_in_memory_concatenation(tmp_path, monkeypatch, dtype):
    monkeypatch.setattr(bagmod, "COPY_ROWS", 4)  # several blocks per slide
    paths = write_slides(tmp_path / "features", dtype=dtype)
    out = tmp_path / "bags.h5"
    counts = write_patient_bags(
        feature_files=paths[::-1], patient_of={s: p for s, (p, _) in SLIDES.items()}, out_h5=out
    )
    assert counts == {"P1": 12, "P2": 11, "P3": 0, "P4": 3}
    want = in_memory_bags(paths)
    with h5py.File(out) as f:
        assert sorted(f) == sorted(want) == ["P1", "P2", "P4"]  # P3 has no tiles: no group
        for p, (feats, index, slides) in want.items():
            got = f[p]["features"]
            assert got.dtype == np.float32 and got.chunks is not None
            np.testing.assert_array_equal(got[()], feats)
            np.testing.assert_array_equal(f[p]["slide_index"][()], index)
            assert list(f[p].attrs["slides"]) == slides
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bags.h5", "features"]  # no temp file


def test_patients_without_tiles_are_counted_and_named(tmp_path, caplog):
    """Seven patients whose slides have no tiles: five named, and the rest counted."""
    paths = []
    for i in range(8):
        paths.append(str(tmp_path / f"s{i}.h5"))
        with h5py.File(paths[-1], "w") as f:
            f.create_dataset("features", data=np.ones((3 if i == 7 else 0, D), np.float32))
    patient_of = {f"s{i}": f"P{i}" for i in range(8)}
    with caplog.at_level("WARNING", logger=bagmod.__name__):
        write_patient_bags(feature_files=paths, patient_of=patient_of, out_h5=tmp_path / "b.h5")
    assert "7 patient(s) have slides but no tiles" in caplog.text
    assert caplog.text.rstrip().endswith("P0, P1, P2, P3, P4 and 2 more")


def test_assembly_error_names_the_file(tmp_path):
    path = tmp_path / "flat.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("features", data=np.ones(4, np.float32))
    with pytest.raises(ValueError, match=r"flat\.h5: features of shape \(4,\)"):
        write_patient_bags(
            feature_files=[str(path)], patient_of={"flat": "P"}, out_h5=tmp_path / "b.h5"
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flat.h5"]  # nothing half-written


def test_streaming_statistics_equal_numpy_on_the_concatenated_train_tiles(tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    bags = {f"P{i}": (rng.normal(1e3, 1.0, (n, 5))).astype(np.float32) for i, n in
            enumerate([1, 17, 40, 3, 64])}  # fmt: skip
    path = tmp_path / "bags.h5"
    with h5py.File(path, "w") as f:
        for p, x in bags.items():
            f.create_group(p).create_dataset("features", data=x, chunks=(1, 5))
    monkeypatch.setattr(bagdata, "STATS_BYTES", 4 * 5 * 7)  # blocks of 7 rows
    train = ["P4", "P1", "P0", "P3"]
    mean, std, n = bag_statistics(H5Bags(path), train)
    tiles = np.concatenate([bags[p] for p in train]).astype(np.float64)  # (N, d)
    assert n == len(tiles)
    np.testing.assert_allclose(mean, tiles.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(std, tiles.std(axis=0), rtol=1e-9)
    mod = load_bag_modality("wsi", str(path), train_ids=train)
    np.testing.assert_allclose(mod.mean, tiles.mean(axis=0).astype(np.float32), rtol=1e-7)
    np.testing.assert_allclose(mod.std, tiles.std(axis=0).astype(np.float32), rtol=1e-6)
    # batches read from the file equal those of the bags held in memory
    held = BagModality(name="wsi", bags=bags, mean=mod.mean, std=mod.std)
    for got, want in zip(mod.batch(["P2", "X", "P0"]), held.batch(["P2", "X", "P0"]), strict=True):
        np.testing.assert_array_equal(got.numpy(), want.numpy())
    assert mod.patients == set(bags)


def test_tile_sampler_takes_k_distinct_tiles_of_larger_bags_only():
    sampler = TileSampler.from_settings({"max_bag_tiles": 4}, 0, "tiles")
    idx = sampler.pick(10)
    assert len(idx) == 4 and len(set(idx.tolist())) == 4 and (np.diff(idx) > 0).all()
    assert sampler.pick(4) is None and sampler.pick(1) is None
    again = TileSampler.from_settings({"max_bag_tiles": 4}, 0, "tiles")
    np.testing.assert_array_equal(again.pick(10), idx)  # seeded
    assert TileSampler.from_settings({"max_bag_tiles": None}, 0) is None
    default = base_defaults("training")["max_bag_tiles"]  # the workflow's, when absent
    assert TileSampler.from_settings({}, 0).k == default
    with pytest.raises(ValueError, match="max_bag_tiles"):
        TileSampler.from_settings({"max_bag_tiles": 0}, 0)


def test_training_steps_sample_k_tiles_and_evaluation_uses_all():
    rng = np.random.default_rng(2)
    bags = {"A": rng.normal(size=(30, 4)).astype(np.float32), "B": np.ones((3, 4), np.float32)}
    mod = BagModality(name="wsi", bags=bags, mean=np.zeros(4, np.float32), std=np.ones(4, "f4"))
    sampler = TileSampler.from_settings({"max_bag_tiles": 8}, 0, "tiles")
    x, mask, present = mod.batch(["A", "B", "C"], sampler)
    assert x.shape == (3, 8, 4) and present.tolist() == [True, True, False]
    assert mask.sum(dim=1).tolist() == [8, 3, 0]
    rows = {tuple(r) for r in bags["A"].tolist()}
    assert all(tuple(r) in rows for r in x[0].tolist())  # real tiles of A, each once
    assert len({tuple(r) for r in x[0].tolist()}) == 8
    np.testing.assert_array_equal(x[1, :3].numpy(), bags["B"])  # a small bag stays whole

    seen = []

    class Spy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def forward(self, x, mask):
            seen.append((self.training, tuple(x.shape), mask.sum(dim=1).tolist()))
            return torch.zeros(len(x), 2) + self.w

    forward = block_forward("wsi", mod, sampler)
    spy = Spy()
    forward(spy.train(), ["A", "B"])
    forward(spy.eval(), ["A", "B"])
    assert seen == [(True, (2, 8, 4), [8, 3]), (False, (2, 30, 4), [30, 3])]


def test_an_abmil_block_trains_on_sampled_bags_from_the_file(tmp_path):
    """End to end on bags read lazily: a training step with the cap, prediction without."""
    import pandas as pd

    from mmlego.training.loop import FitParams, fit, predict
    from mmlego.training.tasks import ClassificationTask

    rng = np.random.default_rng(3)
    ids = [f"P{i}" for i in range(6)]
    path = tmp_path / "bags.h5"
    with h5py.File(path, "w") as f:
        for i, p in enumerate(ids):
            f.create_group(p).create_dataset(
                "features", data=rng.normal(i % 2, 1, (5 + 4 * i, 8)).astype(np.float32)
            )
    mod = load_bag_modality("wsi", str(path), train_ids=ids[:4])
    outcomes = pd.DataFrame({"label": ["a", "b"] * 3}, index=pd.Index(ids, name="patient_id"))
    task = ClassificationTask.fit(outcomes, ids[:4])
    torch.manual_seed(0)
    block = build_block(
        in_dim=8,
        encoder={"kind": "abmil", "token_dim": 8, "attn_dim": 8, "dropout": 0.0},
        model={"latent_channels": 4, "latent_dim": 8, "depth": 1, "heads": 2, "dim_head": 4},
        n_outputs=task.n_outputs,
    )
    forward = block_forward("wsi", mod, TileSampler.from_settings({"max_bag_tiles": 6}, 0))
    params = FitParams(epochs=2, batch_size=2, lr=1e-2, weight_decay=0.0, patience=5, seed=0)
    history = fit(block, forward=forward, task=task, train_ids=ids[:4], tune_ids=ids[4:],
                  params=params)  # fmt: skip
    assert len(history) == 2 and np.isfinite(history["train_loss"]).all()
    assert predict(block, forward, ids[4:]).shape == (2, 2)


def test_evaluation_runs_a_batch_of_large_bags_in_parts_with_the_same_outputs():
    rng = np.random.default_rng(4)
    sizes = {"A": 5, "B": 30, "C": 2, "D": 12}
    bags = {p: rng.normal(size=(n, 4)).astype(np.float32) for p, n in sizes.items()}
    mod = BagModality(name="wsi", bags=bags, mean=np.zeros(4, np.float32), std=np.ones(4, "f4"))
    ids = ["A", "C", "B", "X", "D"]
    # 4 bytes x 4 features x 40 tiles: runs of at most 40 padded tiles, B (30) alone
    parts = bagdata.evaluation_parts({"wsi": mod}, ids, max_bytes=4 * 4 * 40)
    assert parts == [["A", "C"], ["B"], ["X", "D"]]
    assert bagdata.evaluation_parts({"wsi": mod}, ids) == [ids]  # small bags: one batch
    torch.manual_seed(0)
    block = build_block(
        in_dim=4,
        encoder={"kind": "abmil", "token_dim": 8, "attn_dim": 8, "dropout": 0.0},
        model={"latent_channels": 4, "latent_dim": 8, "depth": 1, "heads": 2, "dim_head": 4},
        n_outputs=3,
    ).eval()
    forward = block_forward("wsi", mod)
    ids = ["A", "C", "B", "D"]  # a block sees only patients with its modality
    with torch.no_grad():
        whole = forward(block, ids)
        bagdata.EVAL_BATCH_BYTES, saved = 4 * 4 * 40, bagdata.EVAL_BATCH_BYTES
        try:
            in_parts = forward(block, ids)
        finally:
            bagdata.EVAL_BATCH_BYTES = saved
    torch.testing.assert_close(in_parts, whole, rtol=1e-5, atol=1e-6)


def test_fixed_mmap_threshold_is_set_where_glibc_is():
    import platform

    assert bagdata.fix_mmap_threshold() or platform.libc_ver()[0] != "glibc"
