"""LegoMerge and LegoFuse: merge maths, head merges, missing modalities, checkpoints."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from mmlego.config import MIN_MODALITIES
from mmlego.models import LegoBlock, LegoFuse, LegoMerge, build_encoder, load_model, save_model
from mmlego.models.lego_merge import merge_latents, merge_state, slerp, spherical_mean

SMALL = dict(latent_channels=8, latent_dim=16, depth=2, heads=2, dim_head=8, ff_mult=2)
# modality name -> (encoder kind, input width); five modalities of different kinds
SPECS = {
    "wsi": ("abmil", 10),
    "rna": ("snn", 12),
    "cnv": ("snn", 7),
    "clin": ("mlp", 5),
    "raw": (None, 6),
}
ENC_KW = {
    "abmil": dict(token_dim=8, attn_dim=8, dropout=0.0),
    "snn": dict(hidden=16, n_tokens=4, token_dim=8, dropout=0.0),
    "mlp": dict(hidden=16, n_tokens=3, token_dim=8),
}


def make_blocks(names, *, seed: int = 0, **kw) -> dict[str, LegoBlock]:
    torch.manual_seed(seed)
    blocks = {}
    for name in names:
        kind, d = SPECS[name]
        if kind is None:
            blocks[name] = LegoBlock(None, in_dim=d, n_outputs=4, **(SMALL | kw))
        else:
            blocks[name] = LegoBlock(
                build_encoder(kind, d, **ENC_KW[kind]), n_outputs=4, **(SMALL | kw)
            )
    return {n: b.eval() for n, b in blocks.items()}


def make_inputs(names, b: int = 5, *, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    inputs = {}
    for name in names:
        kind, d = SPECS[name]
        if kind in ("abmil", None):
            x = torch.randn(b, 6, d, generator=g)
            mask = torch.ones(b, 6, dtype=torch.bool)
            mask[0, 2:] = False
            inputs[name] = (x, mask)
        else:
            inputs[name] = (torch.randn(b, d, generator=g), None)
    return inputs


NAMES_BY_N = {2: ["wsi", "rna"], 3: ["wsi", "rna", "cnv"], 5: list(SPECS)}


# ----------------------------------------------------------------------------- head merging
def test_slerp_end_points_norms_and_angle():
    a, b = torch.tensor([2.0, 0.0]), torch.tensor([0.0, 4.0])
    assert torch.allclose(slerp(a, b, 0.0), a) and torch.allclose(slerp(a, b, 1.0), b)
    mid = slerp(a, b, 0.5)
    assert torch.allclose(mid, 3.0 * torch.tensor([1.0, 1.0]) / math.sqrt(2), atol=1e-6)
    for t in (0.1, 0.3, 0.8):
        out = slerp(a, b, t)
        assert math.isclose(float(out.norm()), (1 - t) * 2 + t * 4, rel_tol=1e-6)
        assert math.isclose(math.atan2(float(out[1]), float(out[0])), t * math.pi / 2, rel_tol=1e-6)


def test_slerp_fallbacks_give_no_nan():
    a = torch.randn(3, 4)
    assert torch.allclose(slerp(a, 2 * a, 0.25), 1.25 * a, atol=1e-6)  # parallel
    assert torch.allclose(slerp(a, torch.zeros_like(a), 0.5), 0.5 * a)  # zero tensor
    assert torch.isfinite(slerp(a, -a, 0.3)).all()  # anti-parallel


@pytest.mark.parametrize("t", [0.25, 0.5, 0.7])
@pytest.mark.parametrize("angle", [0.4, 1.5, 2.8])
def test_spherical_mean_of_two_is_slerp(t, angle):
    g = torch.Generator().manual_seed(2)
    u, v = torch.linalg.qr(torch.randn(20, 2, generator=g))[0].T  # orthonormal pair
    a = 1.5 * u
    b = 0.5 * (math.cos(angle) * u + math.sin(angle) * v)
    assert torch.allclose(spherical_mean([a, b], [1 - t, t]), slerp(a, b, t), atol=1e-6)


def test_spherical_mean_is_order_independent_and_interpolates_norms():
    g = torch.Generator().manual_seed(3)
    ts = [torch.randn(4, 16, generator=g) * s for s in (0.5, 1.0, 2.0, 3.0)]
    w = [0.1, 0.2, 0.3, 0.4]
    out = spherical_mean(ts, w)
    perm = [2, 0, 3, 1]
    assert torch.allclose(
        spherical_mean([ts[i] for i in perm], [w[i] for i in perm]), out, atol=1e-6
    )
    expected_norm = sum(wi * float(t.norm()) for wi, t in zip(w, ts, strict=True))
    assert math.isclose(float(out.norm()), expected_norm, rel_tol=1e-5)
    # the Karcher mean is a stationary point: weighted tangent vectors sum to zero
    x = (out / out.norm()).flatten().double()
    tangent = sum(
        wi
        * (th := torch.arccos((u := t.flatten().double() / t.norm()) @ x))
        / torch.sin(th)
        * (u - (u @ x) * x)
        for wi, t in zip(w, ts, strict=True)
    )
    assert float(tangent.norm()) < 1e-6


# ----------------------------------------------------------------------------- latent merging
def test_harmonic_merge_matches_hand_computation():
    z1 = torch.polar(torch.tensor([[[2.0]]]), torch.tensor([[[0.3]]]))
    z2 = torch.polar(torch.tensor([[[1.0]]]), torch.tensor([[[-0.5]]]))
    out = merge_latents([z1, z2], [1.0, 3.0], method="harmonic")  # weights 0.25, 0.75
    magnitude = 1.0 / (0.25 / 2.0 + 0.75 / 1.0)
    phase = math.atan2(
        0.25 * math.sin(0.3) + 0.75 * math.sin(-0.5), 0.25 * math.cos(0.3) + 0.75 * math.cos(-0.5)
    )
    assert math.isclose(float(out.abs()), magnitude, rel_tol=1e-6)
    assert math.isclose(float(out.angle()), phase, abs_tol=1e-6)


def test_harmonic_phase_has_no_wrap_around_bug():
    z1 = torch.polar(torch.ones(1, 1, 1), torch.full((1, 1, 1), 3.1))
    z2 = torch.polar(torch.ones(1, 1, 1), torch.full((1, 1, 1), -3.1))
    out = merge_latents([z1, z2], [1.0, 1.0], method="harmonic")
    assert math.isclose(abs(float(out.angle())), math.pi, abs_tol=1e-6)  # not 0


def test_other_latent_merges():
    z = [torch.randn(2, 3, 4, dtype=torch.complex64) for _ in range(3)]
    assert torch.allclose(merge_latents(z, [1, 1, 2], method="mean"), (z[0] + z[1] + 2 * z[2]) / 4)
    assert torch.allclose(merge_latents(z, [1, 1, 1], method="sum"), z[0] + z[1] + z[2])
    assert torch.allclose(merge_latents(z, [1, 1, 1], method="product"), z[0] * z[1] * z[2])


def _spread(z: torch.Tensor) -> torch.Tensor:
    """(b, 1, 1): the standard deviation of a latent's readout, its channel mean of Re z."""
    return z.real.mean(dim=-2).std(dim=-1, correction=0)[:, None, None]


def test_balanced_merge_counts_blocks_by_weight_not_by_scale():
    torch.manual_seed(0)
    z1 = torch.randn(3, 4, 6, dtype=torch.complex64)
    z2 = -50.0 * z1  # the same readout, opposite sign, 50 times the scale
    mean = merge_latents([z1, z2], [1.0, 1.0], method="mean")
    assert torch.allclose(mean, -24.5 * z1)  # the larger latent wins outright
    balanced = merge_latents([z1, z2], [1.0, 1.0], method="balanced")
    assert float(balanced.abs().max()) < 1e-4  # equal weights: the two cancel
    tilted = merge_latents([z1, z2], [3.0, 1.0], method="balanced")
    assert torch.allclose(tilted / _spread(tilted), z1 / _spread(z1), atol=1e-5)


def test_balanced_merge_ignores_each_blocks_scale_per_patient():
    torch.manual_seed(1)
    z = [torch.randn(4, 3, 8, dtype=torch.complex64) for _ in range(3)]
    scale = torch.tensor([0.01, 1.0, 7.0, 300.0])[:, None, None]  # one factor per patient
    out = merge_latents(z, [1.0, 2.0, 1.0], method="balanced")
    rescaled = merge_latents([z[0], scale * z[1], z[2]], [1.0, 2.0, 1.0], method="balanced")
    # the same direction for every patient (the head's LayerNorm ignores the overall scale)
    assert torch.allclose(out / _spread(out), rescaled / _spread(rescaled), atol=1e-4)
    assert torch.allclose(merge_latents([z[0]] * 3, [1, 2, 3], method="balanced"), z[0])


# ----------------------------------------------------------------------------- LegoMerge
@pytest.mark.parametrize("n", [2, 3, 5])
@pytest.mark.parametrize("latent_merge", ["harmonic", "mean", "balanced", "sum", "product"])
def test_merge_shapes(n, latent_merge):
    names = NAMES_BY_N[n]
    merge = LegoMerge(make_blocks(names), latent_merge=latent_merge)
    out = merge(make_inputs(names))
    assert out.shape == (5, 4) and torch.isfinite(out).all()


@pytest.mark.parametrize("n", [2, 3, 5])
@pytest.mark.parametrize("latent_merge", ["harmonic", "mean", "balanced"])
@pytest.mark.parametrize("head_merge", ["slerp", "linear"])
def test_merging_copies_of_one_block_gives_that_block(n, latent_merge, head_merge):
    block = make_blocks(["wsi"])["wsi"]
    x, mask = make_inputs(["wsi"])["wsi"]
    copies = {f"m{i}": copy.deepcopy(block) for i in range(n)}
    weights = {f"m{i}": float(i + 1) for i in range(n)}
    merge = LegoMerge(copies, latent_merge=latent_merge, head_merge=head_merge, weights=weights)
    out = merge({m: (x, mask) for m in copies})
    assert torch.allclose(out, block(x, mask), atol=1e-5)


def test_merge_is_invariant_to_block_order():
    blocks = make_blocks(NAMES_BY_N[3])
    inputs = make_inputs(NAMES_BY_N[3])
    forward = LegoMerge(blocks, weights={"wsi": 1, "rna": 2, "cnv": 3})
    backward = LegoMerge(dict(reversed(blocks.items())), weights={"cnv": 3, "rna": 2, "wsi": 1})
    assert torch.equal(forward(inputs), backward(dict(reversed(inputs.items()))))


def test_missing_modality_equals_merge_of_present_blocks():
    names = NAMES_BY_N[3]
    blocks = make_blocks(names)
    inputs = make_inputs(names, b=5)
    present = {
        "wsi": torch.tensor([1, 1, 0, 1, 0], dtype=torch.bool),
        "rna": torch.tensor([1, 0, 1, 1, 0], dtype=torch.bool),
        "cnv": torch.tensor([1, 1, 1, 0, 1], dtype=torch.bool),
    }
    for name in names:  # absent rows hold NaN: they must never be read
        x, mask = inputs[name]
        x = x.clone()
        x[~present[name]] = float("nan")
        inputs[name] = (x, mask)
    weights = {"wsi": 1.0, "rna": 2.0, "cnv": 0.5}
    out = LegoMerge(blocks, weights=weights)(inputs, present)
    assert torch.isfinite(out).all()
    for row in range(5):
        have = [m for m in names if present[m][row]]
        sub = {
            m: (
                inputs[m][0][row : row + 1],
                None if inputs[m][1] is None else inputs[m][1][row : row + 1],
            )
            for m in have
        }
        if len(have) == 1:
            expected = blocks[have[0]](*sub[have[0]])
        else:
            sub_merge = LegoMerge(
                {m: blocks[m] for m in have}, weights={m: weights[m] for m in have}
            )
            expected = sub_merge(sub)
        assert torch.allclose(out[row], expected[0], atol=1e-5), row


def test_merge_rejects_bad_input():
    blocks = make_blocks(NAMES_BY_N[2])
    inputs = make_inputs(NAMES_BY_N[2], b=2)
    merge = LegoMerge(blocks)
    with pytest.raises(ValueError, match="none of the modalities"):
        merge(inputs, {"wsi": torch.tensor([True, False]), "rna": torch.tensor([True, False])})
    with pytest.raises(ValueError, match="no input for modalities"):
        merge({"wsi": inputs["wsi"]})
    with pytest.raises(ValueError, match=f"at least {MIN_MODALITIES} blocks"):
        LegoMerge({"wsi": blocks["wsi"]})
    other = LegoBlock(build_encoder("snn", 12, **ENC_KW["snn"]), n_outputs=3, **SMALL)
    with pytest.raises(ValueError, match="differ"):
        LegoMerge({"wsi": blocks["wsi"], "rna": other})


@pytest.mark.parametrize("combine", ["merge", "fuse"])
def test_block_weights_are_checked_alike_by_merge_and_fuse(combine):
    blocks = make_blocks(NAMES_BY_N[2])

    def build(weights):
        if combine == "merge":
            return LegoMerge(blocks, weights=weights).weights
        return LegoFuse(blocks, head_weights=weights).head_weights

    what = "weights" if combine == "merge" else "head_weights"
    assert build(None) == {"rna": 1.0, "wsi": 1.0}
    assert build({"wsi": 3, "rna": 1}) == {"rna": 1.0, "wsi": 3.0}
    with pytest.raises(ValueError, match=rf"{what} must name exactly the blocks \['rna', 'wsi'\]"):
        build({"wsi": 1.0, "cnv": 1.0})
    for bad in (-1.0, float("nan")):
        with pytest.raises(ValueError, match="finite weights >= 0"):
            build({"wsi": 1.0, "rna": bad})
    with pytest.raises(ValueError, match="sum to zero"):
        build({"wsi": 0.0, "rna": 0.0})


# ----------------------------------------------------------------------------- LegoFuse
@pytest.mark.parametrize("n", [2, 3, 5])
@pytest.mark.parametrize("mode", ["stack", "weave"])
def test_fuse_shapes(n, mode):
    names = NAMES_BY_N[n]
    fuse = LegoFuse(make_blocks(names), mode=mode)
    assert fuse(make_inputs(names)).shape == (5, 4)


def test_fuse_head_starts_as_merged_head_and_blocks_are_copies():
    blocks = make_blocks(NAMES_BY_N[3])
    fuse = LegoFuse(blocks)
    merged = merge_state([blocks[n].head_module for n in sorted(blocks)], [1, 1, 1], method="slerp")
    assert all(torch.equal(p, merged[n]) for n, p in fuse.head.named_parameters())
    before = {n: copy.deepcopy(b.state_dict()) for n, b in blocks.items()}
    opt = torch.optim.SGD(fuse.parameters(), lr=0.1)
    fuse.train()(make_inputs(NAMES_BY_N[3])).sum().backward()
    opt.step()
    for n, block in blocks.items():
        assert all(torch.equal(v, before[n][k]) for k, v in block.state_dict().items())


def _by_hand(fuse: LegoFuse, inputs, mode: str):
    """Stack / weave for a batch where every patient has every modality, written out."""
    order = fuse.order
    enc = {m: fuse.blocks[m].encode(*inputs[m]) for m in order}
    b = next(iter(inputs.values()))[0].shape[0]
    latent = fuse.blocks[order[0]].initial_latent(b)
    if mode == "stack":
        for m in order:
            u, j = fuse.blocks[m].propagate(*enc[m], start=latent)
            latent = fuse.blocks[m].to_time(u, j)
    else:
        for s in range(fuse.blocks[order[0]].depth):
            for m in order:
                u, j = fuse.blocks[m].layer(s, latent, *enc[m])
                latent = fuse.blocks[m].to_time(u, j)
    return fuse.head(u)


@pytest.mark.parametrize("mode", ["stack", "weave"])
def test_fuse_matches_written_out_schedule(mode):
    names = NAMES_BY_N[3]
    order = ["cnv", "wsi", "rna"]
    fuse = LegoFuse(make_blocks(names), mode=mode, order=order).eval()
    inputs = make_inputs(names)
    assert torch.allclose(fuse(inputs), _by_hand(fuse, inputs, mode), atol=1e-5)
    other = LegoFuse(make_blocks(names), mode=mode, order=["rna", "cnv", "wsi"]).eval()
    assert not torch.allclose(other(inputs), fuse(inputs), atol=1e-4)  # order matters here


@pytest.mark.parametrize("mode", ["stack", "weave"])
def test_fuse_skips_missing_blocks(mode):
    names = NAMES_BY_N[3]
    fuse = LegoFuse(make_blocks(names), mode=mode).eval()  # order: cnv, rna, wsi
    inputs = make_inputs(names, b=3)
    present = {
        "cnv": torch.tensor([False, True, True]),
        "rna": torch.tensor([True, True, False]),
        "wsi": torch.tensor([True, False, True]),
    }
    for name in names:
        x, mask = inputs[name]
        x = x.clone()
        x[~present[name]] = float("nan")
        inputs[name] = (x, mask)
    out = fuse(inputs, present)
    assert torch.isfinite(out).all()
    for row in range(3):
        have = [m for m in fuse.order if present[m][row]]
        sub = copy.copy(fuse)  # same modules, only the present blocks in the schedule
        sub.order = have
        one = {
            m: (
                inputs[m][0][row : row + 1],
                None if inputs[m][1] is None else inputs[m][1][row : row + 1],
            )
            for m in have
        }
        assert torch.allclose(out[row], _by_hand(sub, one, mode)[0], atol=1e-5), row


@pytest.mark.parametrize("mode", ["stack", "weave"])
def test_fuse_gradients_and_freeze(mode):
    names = NAMES_BY_N[3]
    fuse = LegoFuse(make_blocks(names), mode=mode).train()
    fuse(make_inputs(names)).pow(2).sum().backward()
    first = fuse.order[0]
    # later blocks' initial latents only serve patients lacking the earlier modalities
    expected_unused = {f"blocks.{m}.latent0" for m in fuse.order[1:]}
    trainable = {n: p for n, p in fuse.named_parameters() if p.requires_grad}
    assert not any(".head_module." in n for n in trainable)  # replaced by the fused head
    no_grad = {n for n, p in trainable.items() if p.grad is None or not p.grad.abs().sum() > 0}
    assert no_grad == expected_unused and f"blocks.{first}.latent0" not in no_grad

    fuse.zero_grad(set_to_none=True)
    fuse.freeze(encoders=True, blocks=["rna"])
    fuse(make_inputs(names)).pow(2).sum().backward()
    for n, p in fuse.named_parameters():
        frozen = ".encoder." in n or n.startswith("blocks.rna.") or ".head_module." in n
        assert p.requires_grad != frozen, n
        if frozen:
            assert p.grad is None, n
    fuse.freeze()
    assert all(p.requires_grad != (".head_module." in n) for n, p in fuse.named_parameters())
    with pytest.raises(ValueError, match="unknown blocks"):
        fuse.freeze(blocks=["nope"])


# ----------------------------------------------------------------------------- checkpoints
def test_merge_and_fuse_checkpoint_round_trip(tmp_path):
    names = NAMES_BY_N[5]
    inputs = make_inputs(names)
    present = {m: torch.tensor([True, m != "rna", True, m in ("wsi", "raw"), True]) for m in names}
    merge = LegoMerge(
        make_blocks(names),
        latent_merge="harmonic",
        weights={m: 1.0 + i for i, m in enumerate(names)},
    )
    fuse = LegoFuse(make_blocks(names, seed=4), mode="weave", order=list(reversed(names))).eval()
    with torch.no_grad():  # weights the constructor would not produce
        fuse.head.linear.bias.add_(0.5)
    for model, fname in ((merge, "merge.pt"), (fuse, "fuse.pt")):
        save_model(model, tmp_path / fname, extra={"fold": 1})
        loaded = load_model(tmp_path / fname).eval()
        assert type(loaded) is type(model) and loaded.config == model.config
        assert torch.equal(loaded(inputs, present), model(inputs, present))
