"""Patch encoders: the weight-free hed_texture internals, the registry of neural encoders
(ResNet50 truncated after layer3 with torchvision's parameter names, TorchScript files, timm),
and feature extraction with DataLoader worker processes."""

from __future__ import annotations

import warnings

import h5py
import numpy as np
import pytest
import torch
from scipy import ndimage

from mmlego.demo.slides import write_synthetic_slide
from mmlego.wsi import encoders as E
from mmlego.wsi import torch_encoders as T
from mmlego.wsi.encoders import available_encoders, get_encoder
from mmlego.wsi.features import extract_features
from mmlego.wsi.loader import Progress, iter_tile_batches
from mmlego.wsi.tiling import tile_slide
from mmlego.wsi.tissue import TissueParams


@pytest.fixture(scope="module")
def slide(tmp_path_factory):
    """A small synthetic slide and its coordinates (64 px tiles at 1 µm/px)."""
    d = tmp_path_factory.mktemp("enc")
    write_synthetic_slide(d / "s.tiff", seed=4, factor=1.0, width=1024, height=768)
    res = tile_slide(d / "s.tiff", d / "s.h5", target_mpp=1.0, tile_size=64, tissue=TissueParams())
    assert res.n_tiles >= 10
    return d


def _tiles(slide, k=8):
    with h5py.File(slide / "s.h5") as f:
        coords = f["coords"][:k]
    return next(
        iter_tile_batches(
            slide / "s.tiff", coords, level=0, read_size=128, out_size=64, batch_size=k
        )
    )


# --- hed_texture internals ----------------------------------------------------------------


def test_hist_quantiles_match_numpy():
    rng = np.random.default_rng(0)
    x = np.abs(rng.normal(0.3, 0.2, size=(5, 4096))).astype(np.float32)
    got = E._hist_quantiles(x, (0.1, 0.5, 0.9))
    want = np.quantile(x, [0.1, 0.5, 0.9], axis=1).T
    np.testing.assert_allclose(got, want, atol=E._Q_STEP)


def test_opening_survival_keeps_objects_larger_than_the_square():
    mask = np.zeros((2, 32, 32), dtype=bool)
    mask[0, 4:14, 4:14] = True  # 10 x 10: survives 3, 5 and 7 px squares
    mask[1, 4:8, 4:8] = True  # 4 x 4: survives 3 px, not 5 or 7
    mask[1, 20:30, 20:30] = True  # plus a 10 x 10 (100 of 116 px)
    got = E._opening_survival(mask, radii=(1, 2, 3))
    np.testing.assert_allclose(got[0], [1, 1, 1])
    np.testing.assert_allclose(got[1], [1, 100 / 116, 100 / 116])
    # Same as scipy's opening with squares, tile by tile.
    for r in (1, 2, 3):
        ref = ndimage.binary_opening(mask[1], structure=np.ones((2 * r + 1,) * 2))
        assert ref.sum() / mask[1].sum() == pytest.approx(got[1, r - 1])


def test_blob_stats_per_tile():
    mask = np.zeros((3, 20, 20), dtype=bool)
    mask[0, 2:4, 2:4] = True  # one blob of 4
    mask[0, 10:13, 10:13] = True  # one of 9
    mask[2, 5, 5] = mask[2, 6, 6] = True  # diagonal: one 8-connected blob of 2
    out = E._blob_stats(mask, np.full(3, 1e4))
    np.testing.assert_allclose(out[0], [2, 6.5, 2.5, np.log([4, 9]).mean(), 9])
    np.testing.assert_allclose(out[1], 0)
    np.testing.assert_allclose(out[2], [1, 2, 0, np.log(2), 2])


def test_hed_texture_chunking_and_batch_do_not_change_features(slide):
    tiles = _tiles(slide, k=8)  # (8, 64, 64, 3): one internal chunk (16 tiles of 64 px)
    enc = get_encoder("hed_texture")
    together = enc(tiles)
    alone = np.concatenate([enc(tiles[i : i + 1]) for i in range(len(tiles))])
    np.testing.assert_allclose(together, alone, rtol=1e-5, atol=1e-6)
    big = np.concatenate([tiles] * 40)  # 320 tiles: several internal chunks
    np.testing.assert_allclose(enc(big)[-8:], together, rtol=1e-5, atol=1e-6)
    assert together.dtype == np.float32 and np.isfinite(together).all()


def test_hed_texture_blank_tiles_are_finite():
    enc = get_encoder("hed_texture")
    glass = np.full((2, 32, 32, 3), 245, dtype=np.uint8)
    out = enc(glass)
    assert np.isfinite(out).all()
    names = list(E.HED_FEATURES)
    assert out[0, names.index("tissue_frac")] == 0
    assert out[0, names.index("blob_density")] == 0
    with pytest.raises(ValueError, match="at least 8 x 8"):
        enc(np.zeros((1, 4, 4, 3), dtype=np.uint8))


# --- ResNet50 truncated after layer3 ------------------------------------------------------


def torchvision_resnet50_keys() -> dict[str, tuple[int, ...]]:
    """torchvision's resnet50 state-dict keys and shapes, written out from its definition
    (Bottleneck v1.5, layers 3, 4, 6, 3, expansion 4), independently of the module tested."""
    shapes: dict[str, tuple[int, ...]] = {}

    def bn(name, c):
        for k in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{name}.{k}"] = (c,)
        shapes[f"{name}.num_batches_tracked"] = ()

    shapes["conv1.weight"] = (64, 3, 7, 7)
    bn("bn1", 64)
    inplanes = 64
    for li, (planes, blocks) in enumerate(((64, 3), (128, 4), (256, 6), (512, 3)), start=1):
        for b in range(blocks):
            p = f"layer{li}.{b}"
            cin = inplanes if b == 0 else planes * 4
            shapes[f"{p}.conv1.weight"] = (planes, cin, 1, 1)
            bn(f"{p}.bn1", planes)
            shapes[f"{p}.conv2.weight"] = (planes, planes, 3, 3)
            bn(f"{p}.bn2", planes)
            shapes[f"{p}.conv3.weight"] = (planes * 4, planes, 1, 1)
            bn(f"{p}.bn3", planes * 4)
            if b == 0:
                shapes[f"{p}.downsample.0.weight"] = (planes * 4, cin, 1, 1)
                bn(f"{p}.downsample.1", planes * 4)
        inplanes = planes * 4
    shapes["fc.weight"] = (1000, 2048)
    shapes["fc.bias"] = (1000,)
    return shapes


@pytest.fixture(scope="module")
def resnet_file(tmp_path_factory):
    """A random state dict in torchvision's resnet50 format (all 320 keys, layer4 and fc too)."""
    gen = torch.Generator().manual_seed(0)
    state = {}
    for k, shape in torchvision_resnet50_keys().items():
        if k.endswith("num_batches_tracked"):
            state[k] = torch.tensor(7)
        elif k.endswith("running_var"):
            state[k] = torch.rand(shape, generator=gen) + 0.5
        else:
            state[k] = 0.05 * torch.randn(shape, generator=gen)
    assert len(state) == 320
    path = tmp_path_factory.mktemp("rn") / "resnet50-0676ba61.pth"
    torch.save(state, path)
    return path, state


def test_resnet50_trunc_has_torchvision_names_and_shapes():
    want = {
        k: v for k, v in torchvision_resnet50_keys().items() if not k.startswith(("layer4.", "fc."))
    }
    got = {k: tuple(v.shape) for k, v in T.ResNet50Trunc().state_dict().items()}
    assert got == want
    model = T.ResNet50Trunc()
    assert model.layer2[0].conv2.stride == (2, 2) and model.layer2[0].conv1.stride == (1, 1)


def test_resnet50_weights_load_strictly_and_give_1024_features(resnet_file, slide):
    path, state = resnet_file
    model = T.load_resnet50_trunc(path)
    sd = model.state_dict()
    assert torch.equal(sd["layer3.5.conv3.weight"], state["layer3.5.conv3.weight"])
    assert torch.equal(sd["bn1.running_var"], state["bn1.running_var"])
    enc = get_encoder("resnet50_trunc", weights=str(path), device="cpu")
    tiles = _tiles(slide, k=4)  # (4, 64, 64, 3)
    feats = enc(tiles)
    assert feats.shape == (4, 1024) and feats.dtype == np.float32
    # ImageNet normalisation of 0..1 RGB, then the network.
    x = torch.from_numpy(tiles).permute(0, 3, 1, 2).float() / 255
    mean = torch.tensor(T.IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(T.IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        ref = model((x - mean) / std).numpy()
    np.testing.assert_allclose(feats, ref, rtol=1e-4, atol=1e-5)
    assert np.abs(feats - feats[0]).max() > 0  # tiles differ


def test_mixed_precision_gives_float32_features_close_to_full_precision(resnet_file, slide):
    """The autocast path that GPUs take by default (float16 there), run here in bfloat16."""
    path = str(resnet_file[0])
    tiles = _tiles(slide, k=4)
    full = get_encoder("resnet50_trunc", weights=path, device="cpu", precision="fp32")(tiles)
    half = get_encoder("resnet50_trunc", weights=path, device="cpu", precision="bf16")(tiles)
    assert half.shape == full.shape == (4, 1024) and half.dtype == np.float32
    err = np.linalg.norm(half - full) / np.linalg.norm(full)
    assert 0 < err < 0.05  # bfloat16 arithmetic did run, and only rounded the features


def test_resnet50_weights_from_the_torch_cache(resnet_file, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(T.MissingWeightsError) as err:
        get_encoder("resnet50_trunc", device="cpu")
    msg = str(err.value)
    assert str(tmp_path / "torch" / "hub" / "checkpoints") in msg
    assert "resnet50" in msg and "weights" in msg and "download" in msg
    cache = tmp_path / "torch" / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    (cache / "resnet50-0676ba61.pth").write_bytes(resnet_file[0].read_bytes())
    assert T.resnet50_weights_path() == cache / "resnet50-0676ba61.pth"
    assert get_encoder("resnet50_trunc", device="cpu").dim == 1024


def test_bad_resnet50_files_name_the_file(resnet_file, tmp_path):
    _, state = resnet_file
    missing = {k: v for k, v in state.items() if k != "layer2.1.bn2.weight"}
    torch.save(missing, tmp_path / "missing.pth")
    with pytest.raises(ValueError, match=r"missing\.pth.*layer2\.1\.bn2\.weight"):
        T.load_resnet50_trunc(tmp_path / "missing.pth")
    wrong = dict(state, **{"conv1.weight": torch.zeros(64, 3, 3, 3)})
    torch.save(wrong, tmp_path / "wrong.pth")
    with pytest.raises(ValueError, match=r"wrong\.pth.*wrong shapes \['conv1\.weight'\]"):
        T.load_resnet50_trunc(tmp_path / "wrong.pth")
    (tmp_path / "junk.pth").write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match=r"junk\.pth.*weights_only=True"):
        T.load_resnet50_trunc(tmp_path / "junk.pth")
    with pytest.raises(T.MissingWeightsError, match=r"nope\.pth"):
        get_encoder("resnet50_trunc", weights=str(tmp_path / "nope.pth"), device="cpu")


class _Thing:
    """An arbitrary object: only ``torch.load(weights_only=False)`` would unpickle it."""


def test_checkpoints_with_pickled_objects_are_refused(tmp_path):
    torch.save({"conv1.weight": torch.zeros(1), "x": _Thing()}, tmp_path / "obj.pth")
    with pytest.raises(ValueError, match=r"obj\.pth.*weights_only=True"):
        T.load_state_dict_file(tmp_path / "obj.pth")


# --- TorchScript, checkpoint and timm kinds -----------------------------------------------


class _MeanStd(torch.nn.Module):
    """Tiny feature extractor: per-channel mean and std of the normalised image -> (b, 6)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x.mean(dim=(2, 3)), x.std(dim=(2, 3))], dim=1)


@pytest.fixture(scope="module")
def scripted(tmp_path_factory):
    path = tmp_path_factory.mktemp("ts") / "meanstd.pt"
    with warnings.catch_warnings():  # torch >= 2.10 marks TorchScript as deprecated
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(_MeanStd()).save(str(path))
    return path


def test_torchscript_encoder_runs_the_saved_model(scripted, slide):
    enc = get_encoder(f"torchscript:{scripted}", device="cpu")
    assert enc.name == "torchscript:meanstd.pt" and enc.dim == 6
    tiles = _tiles(slide, k=3)
    x = torch.from_numpy(tiles).permute(0, 3, 1, 2).float() / 255
    x = (x - torch.tensor(T.IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(T.IMAGENET_STD).view(
        1, 3, 1, 1
    )
    np.testing.assert_allclose(enc(tiles), _MeanStd()(x).numpy(), rtol=1e-5, atol=1e-5)
    resized = get_encoder(f"torchscript:{scripted}", device="cpu", img_size=32)
    assert resized(tiles).shape == (3, 6)
    # checkpoint:<path> recognises the TorchScript archive.
    assert get_encoder(f"checkpoint:{scripted}", device="cpu").dim == 6


def test_checkpoint_and_timm_errors(tmp_path, resnet_file):
    with pytest.raises(ValueError, match=r"state dict, not a TorchScript.*'arch'"):
        get_encoder(f"checkpoint:{resnet_file[0]}", device="cpu")
    with pytest.raises(T.MissingWeightsError, match="'weights'"):
        get_encoder("timm:vit_small_patch16_224")
    with pytest.raises(T.MissingWeightsError, match=r"none\.bin"):
        get_encoder("uni", weights=str(tmp_path / "none.bin"))
    try:
        import timm  # noqa: F401
    except Exception:
        with pytest.raises(T.MissingDependencyError, match="pip install timm"):
            get_encoder("timm:vit_small_patch16_224", weights=str(resnet_file[0]))
    (tmp_path / "x.pt").write_bytes(b"junk")
    with pytest.raises(ValueError, match=r"x\.pt.*not a TorchScript"):
        get_encoder(f"torchscript:{tmp_path / 'x.pt'}")
    with pytest.raises(ValueError, match=r"empty"):
        get_encoder("torchscript:")
    assert {"hed_texture", "resnet50_trunc", "uni", "timm:...", "torchscript:..."} <= set(
        available_encoders()
    )


def test_unknown_encoder_options_are_named():
    with pytest.raises(ValueError, match=r"'hed_texture' does not take these options \['device'\]"):
        get_encoder("hed_texture", device="cpu")


def test_torchscript_precision_must_be_known(scripted):
    with pytest.raises(ValueError, match="precision must be one of"):
        get_encoder(f"torchscript:{scripted}", device="cpu", precision="int4")


# --- extraction with worker processes -------------------------------------------------------


def test_dataloader_workers_give_the_same_features(slide, scripted, tmp_path):
    n0 = extract_features(slide / "s.tiff", slide / "s.h5", tmp_path / "a.h5", prefetch=0)
    n1 = extract_features(
        slide / "s.tiff", slide / "s.h5", tmp_path / "b.h5", num_workers=2, batch_size=5
    )
    n2 = extract_features(slide / "s.tiff", slide / "s.h5", tmp_path / "c.h5", batch_size=3)
    assert n0 == n1 == n2 > 0
    with h5py.File(tmp_path / "a.h5") as a, h5py.File(tmp_path / "b.h5") as b:
        np.testing.assert_allclose(a["features"][:], b["features"][:], rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(a["coords"][:], b["coords"][:])
    n = extract_features(
        slide / "s.tiff",
        slide / "s.h5",
        tmp_path / "ts.h5",
        encoder=f"torchscript:{scripted}",
        encoder_options={"device": "cpu"},
        num_workers=1,
        batch_size=4,
    )
    with h5py.File(tmp_path / "ts.h5") as f:
        assert f["features"].shape == (n, 6) and f.attrs["encoder"] == "torchscript:meanstd.pt"
        assert f.attrs["dim"] == 6 and f.attrs["tiles_per_s"] > 0


def test_worker_read_errors_name_the_slide(slide, tmp_path):
    data = (slide / "s.tiff").read_bytes()
    bad = tmp_path / "cut.tiff"
    bad.write_bytes(data[: len(data) // 2])
    with h5py.File(slide / "s.h5") as f:
        coords = f["coords"][:]
    for workers in (0, 1):
        with pytest.raises(ValueError, match=r"cut\.tiff"):
            for _ in iter_tile_batches(
                bad,
                coords,
                level=0,
                read_size=128,
                out_size=64,
                batch_size=8,
                num_workers=workers,
            ):
                pass


def test_progress_lines(caplog):
    import logging

    p = Progress(100, label="s1", every_s=0.0, logger=logging.getLogger("mmlego.test"))
    with caplog.at_level(logging.INFO, logger="mmlego.test"):
        p.update(40)
        p.update(60)
        rate = p.finish()
    assert "s1: 40/100 tiles (40%)" in caplog.text
    assert "s1: 100 tiles in" in caplog.text and rate > 0
