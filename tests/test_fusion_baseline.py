"""The end-to-end concatenation fusion baseline: shapes, padding, checkpoint round trip."""

from __future__ import annotations

import pytest
import torch

from mmlego.models.checkpoint import load_model, save_model
from mmlego.models.concat_fusion import ConcatFusion
from mmlego.models.encoders import build_encoder


@pytest.fixture
def model() -> ConcatFusion:
    torch.manual_seed(0)
    encoders = {
        "wsi": build_encoder("abmil", 6, token_dim=8, attn_dim=8, dropout=0.0),
        "rna": build_encoder("snn", 10, hidden=16, n_tokens=4, token_dim=8, dropout=0.0),
    }
    return ConcatFusion(encoders, n_outputs=4, dropout=0.0).eval()


def inputs(b: int = 3, n: int = 5):
    x = torch.randn(b, n, 6)
    mask = torch.ones(b, n, dtype=torch.bool)
    mask[0, 3:] = False
    return {"wsi": (x, mask), "rna": (torch.randn(b, 10), None)}


def test_shapes_and_padding_invariance(model):
    data = inputs()
    out = model(data)
    assert out.shape == (3, 4)
    x, mask = data["wsi"]
    padded = {
        **data,
        "wsi": (
            torch.cat([x, torch.randn(3, 2, 6)], 1),
            torch.cat([mask, torch.zeros(3, 2, dtype=torch.bool)], 1),
        ),
    }
    torch.testing.assert_close(model(padded), out)


def test_missing_modality_is_refused(model):
    present = {"wsi": torch.tensor([True, False, True]), "rna": torch.ones(3, dtype=torch.bool)}
    with pytest.raises(ValueError, match="lack modality 'wsi'"):
        model(inputs(), present)


def test_checkpoint_round_trip(model, tmp_path):
    save_model(model, tmp_path / "m.pt")
    again = load_model(tmp_path / "m.pt").eval()
    data = inputs()
    torch.testing.assert_close(again(data), model(data))
