"""Bring your own features: CLAM / TRIDENT .h5 and .pt files read into this workflow's format."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch

from mmlego.demo.slides import write_synthetic_slide
from mmlego.wsi.bags import qc_table, write_patient_bags
from mmlego.wsi.byo import (
    FeatureFileError,
    find_feature_file,
    import_features,
    import_slide_features,
    read_feature_file,
)
from mmlego.wsi.features import extract_features
from mmlego.wsi.tiling import tile_slide
from mmlego.wsi.tissue import TissueParams

RNG = np.random.default_rng(0)


def clam_h5(path, n=5, d=1024):
    """As CLAM's extract_features_fp.py writes it: features (n, d) float32, coords (n, 2)."""
    feats = RNG.normal(size=(n, d)).astype(np.float32)
    coords = np.stack([np.arange(n) * 256, np.zeros(n)], axis=1).astype(np.int64)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.create_dataset("features", data=feats)
        c = f.create_dataset("coords", data=coords)
        c.attrs.update({"patch_level": 0, "patch_size": 256})
    return feats, coords


def trident_h5(path, n=4, d=1536):
    """As TRIDENT's save_h5 writes it: attributes on the datasets, chunked (1, ...) datasets."""
    feats = RNG.normal(size=(n, d)).astype(np.float32)
    coords = np.stack([np.arange(n) * 512, np.arange(n) * 512], axis=1).astype(np.int64)
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.create_dataset("features", data=feats, chunks=(1, d), maxshape=(None, d))
        f["features"].attrs.update({"name": path.stem, "savetodir": str(path.parent)})
        c = f.create_dataset("coords", data=coords, chunks=(1, 2), maxshape=(None, 2))
        c.attrs.update(
            {
                "patch_size": 256,
                "patch_size_level0": 512,
                "level0_magnification": 40,
                "target_magnification": 20,
                "overlap": 0,
                "name": path.stem,
            }
        )
    return feats, coords


def test_clam_h5(tmp_path):
    feats, coords = clam_h5(tmp_path / "clam" / "h5_files" / "s1.h5")
    src = find_feature_file(tmp_path / "clam", "s1")
    assert src.name == "s1.h5"
    n = import_features(src, tmp_path / "out" / "s1.h5", slide_id="s1")
    assert n == 5
    with h5py.File(tmp_path / "out" / "s1.h5") as f:
        np.testing.assert_array_equal(f["features"][:], feats)
        np.testing.assert_array_equal(f["coords"][:], coords)
        assert f["features"].dtype == np.float32 and f["coords"].dtype == np.int64
        assert f.attrs["dim"] == 1024 and f.attrs["status"] == "ok"
        assert f.attrs["source_format"] == "h5" and f.attrs["coords_known"]
        assert f["coords"].attrs["patch_level"] == 0


def test_trident_h5_keeps_patch_attributes_and_encoder_name(tmp_path):
    feats, coords = trident_h5(tmp_path / "job" / "features_uni_v1" / "s2.h5")
    got, got_coords, info = read_feature_file(tmp_path / "job" / "features_uni_v1" / "s2.h5")
    np.testing.assert_array_equal(got, feats)
    np.testing.assert_array_equal(got_coords, coords)
    assert info["encoder"] == "uni_v1"
    import_slide_features(tmp_path / "job" / "features_uni_v1", "s2", tmp_path / "s2.h5")
    with h5py.File(tmp_path / "s2.h5") as f:
        assert f.attrs["encoder"] == "uni_v1" and f.attrs["dim"] == 1536
        assert f["coords"].attrs["level0_magnification"] == 40
        assert f["coords"].attrs["patch_size_level0"] == 512


def test_pt_tensor_and_dict(tmp_path):
    feats = torch.randn(6, 768, generator=torch.Generator().manual_seed(1))
    (tmp_path / "pt_files").mkdir()
    torch.save(feats, tmp_path / "pt_files" / "s3.pt")
    n = import_slide_features(tmp_path, "s3", tmp_path / "out3.h5")
    with h5py.File(tmp_path / "out3.h5") as f:
        np.testing.assert_allclose(f["features"][:], feats.numpy())
        assert n == 6 and not f.attrs["coords_known"] and (f["coords"][:] == -1).all()
        assert f.attrs["encoder"] == "byo:pt" and f.attrs["source_format"] == "pt"
    coords = torch.arange(12).reshape(6, 2)
    torch.save({"features": feats.unsqueeze(0), "coords": coords}, tmp_path / "s4.pt")
    import_slide_features(tmp_path, "s4", tmp_path / "out4.h5")
    with h5py.File(tmp_path / "out4.h5") as f:
        assert f["features"].shape == (6, 768)  # (1, n, d) squeezed
        np.testing.assert_array_equal(f["coords"][:], coords.numpy())


def test_our_own_features_round_trip(tmp_path):
    write_synthetic_slide(tmp_path / "s.tiff", seed=2, factor=0.0, width=768, height=512)
    tile_slide(tmp_path / "s.tiff", tmp_path / "c.h5", target_mpp=1.0, tile_size=64,
               tissue=TissueParams())  # fmt: skip
    n = extract_features(tmp_path / "s.tiff", tmp_path / "c.h5", tmp_path / "feat" / "s.h5")
    assert import_slide_features(tmp_path / "feat", "s", tmp_path / "back.h5") == n
    with h5py.File(tmp_path / "feat" / "s.h5") as a, h5py.File(tmp_path / "back.h5") as b:
        np.testing.assert_array_equal(a["features"][:], b["features"][:])
        assert b.attrs["encoder"] == "hed_texture"
        assert b["coords"].attrs["patch_size"] == 64  # TRIDENT attrs carried over


def test_bad_files_are_named(tmp_path):
    with pytest.raises(FeatureFileError, match=r"no feature file for slide 'zz'.*zz\.h5.*zz\.pt"):
        find_feature_file(tmp_path, "zz")
    with h5py.File(tmp_path / "a.h5", "w") as f:
        f.create_dataset("feats", data=np.zeros((2, 3)))
    with pytest.raises(FeatureFileError, match=r"a\.h5: no 'features' dataset"):
        read_feature_file(tmp_path / "a.h5")
    with h5py.File(tmp_path / "b.h5", "w") as f:
        f.create_dataset("features", data=np.array([[1.0, np.nan]]))
    with pytest.raises(FeatureFileError, match=r"b\.h5: 1 feature row\(s\) contain NaN"):
        read_feature_file(tmp_path / "b.h5")
    with h5py.File(tmp_path / "c.h5", "w") as f:
        f.create_dataset("features", data=np.zeros((3, 4)))
        f.create_dataset("coords", data=np.zeros((2, 2)))
    with pytest.raises(FeatureFileError, match=r"c\.h5: coords shape \(2, 2\) does not match 3"):
        read_feature_file(tmp_path / "c.h5")
    (tmp_path / "d.h5").write_bytes(b"junk")
    with pytest.raises(FeatureFileError, match=r"d\.h5: cannot read as HDF5"):
        read_feature_file(tmp_path / "d.h5")
    torch.save([1, 2], tmp_path / "e.pt")
    with pytest.raises(FeatureFileError, match=r"e\.pt: expected a tensor"):
        read_feature_file(tmp_path / "e.pt")
    clam_h5(tmp_path / "w.h5", d=8)
    with pytest.raises(FeatureFileError, match=r"w\.h5: features have 8 columns, expected 16"):
        import_features(tmp_path / "w.h5", tmp_path / "o.h5", slide_id="w", expected_dim=16)


def test_missing_files_recorded_when_not_fail_fast(tmp_path):
    feats_dir = tmp_path / "features"
    clam_h5(feats_dir / "ok1.h5", n=3, d=16)
    clam_h5(feats_dir / "ok2.h5", n=2, d=16)
    out = tmp_path / "wsi" / "features"
    for sid in ("ok1", "ok2", "gone"):
        import_slide_features(feats_dir, sid, out / f"{sid}.h5", fail_fast=False)
    with pytest.raises(FeatureFileError, match="gone"):
        import_slide_features(feats_dir, "gone", out / "x.h5")
    with h5py.File(out / "gone.h5") as f:
        assert f.attrs["status"] == "failed" and "gone" in f.attrs["reason"]
    files = sorted(str(p) for p in out.glob("*.h5"))
    patient_of = {"ok1": "P1", "ok2": "P1", "gone": "P2"}
    counts = write_patient_bags(
        feature_files=files, patient_of=patient_of, out_h5=str(tmp_path / "bags.h5")
    )
    assert counts == {"P1": 5, "P2": 0}
    with h5py.File(tmp_path / "bags.h5") as f:
        assert f["P1"]["features"].shape == (5, 16) and "P2" not in f
    qc = qc_table(coords_files=[], feature_files=files, patient_of=patient_of)
    qc = qc.set_index("slide_id")
    assert qc.loc["gone", "status"] == "failed" and qc.loc["ok1", "status"] == "ok"
    assert qc.loc["ok1", "n_tiles"] == 3 and qc.loc["gone", "patient_id"] == "P2"


def test_bags_refuse_mixed_feature_widths(tmp_path):
    clam_h5(tmp_path / "a.h5", d=8)
    clam_h5(tmp_path / "b.h5", d=16)
    with pytest.raises(ValueError, match=r"mixed encoders.*8 in .*a\.h5.*16 in .*b\.h5"):
        write_patient_bags(
            feature_files=[str(tmp_path / "a.h5"), str(tmp_path / "b.h5")],
            patient_of={"a": "P", "b": "P"},
            out_h5=str(tmp_path / "bags.h5"),
        )
