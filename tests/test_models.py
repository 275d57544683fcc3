"""LegoBlock and encoders: shapes, the maths of one block, invariances, gradients, checkpoints."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mmlego.models import ABMIL, SNN, LegoBlock, MLPEncoder, build_encoder, load_model, save_model
from mmlego.models.encoders import BLOCK_ENCODERS, RawEncoder, register_block_encoder
from mmlego.models.ensemble import Ensemble, ensemble, member_sets
from mmlego.models.ensemble import members as ensemble_members
from mmlego.pipeline.config import load_config

SMALL = dict(latent_channels=8, latent_dim=16, depth=2, heads=2, dim_head=8, ff_mult=2, dropout=0.0)


def make_block(
    kind: str, in_dim: int = 12, *, n_outputs: int = 4, seed: int = 0, **kw
) -> LegoBlock:
    torch.manual_seed(seed)
    enc_kw = {
        "snn": dict(hidden=16, n_tokens=4, token_dim=8, dropout=0.0),
        "abmil": dict(token_dim=8, attn_dim=8, dropout=0.0),
        "mlp": dict(hidden=16, n_tokens=3, token_dim=8),
    }
    if kind == "raw":
        return LegoBlock(None, in_dim=in_dim, n_outputs=n_outputs, **(SMALL | kw))
    encoder = build_encoder(kind, in_dim, **enc_kw[kind])
    return LegoBlock(encoder, n_outputs=n_outputs, **(SMALL | kw))


def make_input(kind: str, b: int = 3, in_dim: int = 12, n: int = 6, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    if kind in ("snn", "mlp"):
        return torch.randn(b, in_dim, generator=g), None
    x = torch.randn(b, n, in_dim, generator=g)
    mask = torch.ones(b, n, dtype=torch.bool)
    mask[0, n // 2 :] = False  # a partly padded bag
    return x, mask


KINDS = ["snn", "abmil", "mlp", "raw"]


# ----------------------------------------------------------------------------- encoders
def test_encoder_shapes_and_declared_width():
    x = torch.randn(3, 12)
    tokens, mask = SNN(12, hidden=16, n_tokens=5, token_dim=7)(x)
    assert tokens.shape == (3, 5, 7) and mask is None
    tokens, mask = MLPEncoder(12, hidden=16, n_tokens=2, token_dim=9)(x[:, None])  # (b, 1, d)
    assert tokens.shape == (3, 2, 9) and mask is None
    bag, bag_mask = make_input("abmil")
    enc = ABMIL(12, token_dim=8, attn_dim=4, mean_token=False)
    tokens, mask = enc(bag, bag_mask)
    assert enc.out_dim == 8 and tokens.shape == (3, 7, 8)
    assert mask.shape == (3, 7) and mask[:, 0].all()  # the pooled token is always real
    assert torch.equal(mask[:, 1:], bag_mask)
    tokens, mask = RawEncoder(12, heads=2, dim_head=4)(bag, bag_mask)
    assert tokens.shape == (3, 6, 12) and torch.equal(mask, bag_mask)


def test_abmil_attention_is_over_patches_of_each_bag():
    torch.manual_seed(0)
    enc = ABMIL(5, token_dim=4, attn_dim=3, dropout=0.0)
    x = torch.randn(2, 4, 5)
    mask = torch.tensor([[True, True, True, False], [True, False, False, False]])
    tokens, _ = enc(x, mask)
    h = enc.project(x)
    scores = enc.attn_w(enc.attn_v(h) * enc.attn_u(h)).squeeze(-1)
    a0 = torch.softmax(scores[0, :3], dim=0)
    assert torch.allclose(tokens[0, 0], a0 @ h[0, :3], atol=1e-6)
    assert torch.allclose(tokens[1, 0], h[1, 0], atol=1e-6)  # all but one patch padded
    single, _ = enc(x[:1], mask[:1])  # b = 1: the pooled token does not depend on other bags
    assert torch.allclose(single[0, 0], tokens[0, 0], atol=1e-6)


def test_abmil_mean_token_is_the_mean_of_each_bags_real_patches():
    torch.manual_seed(0)
    enc = ABMIL(5, token_dim=4, attn_dim=3, dropout=0.0, mean_token=True)
    x = torch.randn(2, 4, 5)
    mask = torch.tensor([[True, True, True, False], [True, False, False, False]])
    tokens, tmask = enc(x, mask)
    h = enc.project(x)  # (b, n, token_dim)
    assert tokens.shape == (2, 2 + 4, 4) and tmask[:, :2].all()
    assert torch.equal(tmask[:, 2:], mask)
    assert torch.allclose(tokens[0, 1], h[0, :3].mean(dim=0), atol=1e-6)
    assert torch.allclose(tokens[1, 1], h[1, 0], atol=1e-6)
    unmasked, none_mask = enc(x[:1])  # without a mask every patch counts
    assert none_mask is None and unmasked.shape == (1, 2 + 4, 4)
    assert torch.allclose(unmasked[0, 1], h[0].mean(dim=0), atol=1e-6)
    cfg = dict(enc.config)  # saved with a block: the rebuilt encoder has the mean token too
    assert build_encoder(cfg.pop("kind"), cfg.pop("in_dim"), **cfg).mean_token


def test_build_encoder_registry_and_user_encoder():
    assert {"snn", "abmil", "mlp", "raw"} <= set(BLOCK_ENCODERS.names())
    with pytest.raises(ValueError, match=r"unknown block encoder 'nope'; available: abmil"):
        build_encoder("nope", 3)

    @register_block_encoder("test_pairs")
    class Pairs(nn.Module):
        def __init__(self, in_dim: int, *, width: int = 4):
            super().__init__()
            self.out_dim = width
            self.lin = nn.Linear(2, width)

        def forward(self, x, mask=None):
            return self.lin(x.unflatten(-1, (-1, 2))), None  # (b, d/2, width)

    enc = build_encoder("test_pairs", 6, width=5)
    assert enc.config == {"kind": "test_pairs", "in_dim": 6, "width": 5}
    block = LegoBlock(enc, n_outputs=2, **SMALL)
    assert LegoBlock.from_config(block.config).config == block.config
    assert block(torch.randn(3, 6)).shape == (3, 2)

    class NoWidth(nn.Module):
        def forward(self, x, mask=None):
            return x, mask

    with pytest.raises(ValueError, match="out_dim"):
        LegoBlock(NoWidth(), n_outputs=2)


def test_bad_inputs_raise_clear_errors():
    block = make_block("abmil")
    x, mask = make_input("abmil")
    mask[1] = False
    with pytest.raises(ValueError, match=r"rows \[1\] have no real token"):
        block(x, mask)
    with pytest.raises(ValueError, match="table"):
        make_block("snn")(torch.randn(2, 3, 12))
    with pytest.raises(ValueError, match="in_dim"):
        LegoBlock(None, n_outputs=2)


# ----------------------------------------------------------------------------- block maths
@pytest.mark.parametrize("kind", KINDS)
def test_block_shapes(kind):
    block = make_block(kind)
    x, mask = make_input(kind)
    assert block(x, mask).shape == (3, 4)
    z = block.latent(x, mask)
    assert z.shape == (3, 8, 16) and z.is_complex()
    assert torch.allclose(block.head(z.real), block(x, mask))
    assert block.initial_latent(3).shape == (3, 8, 16)


def reference_forward(block: LegoBlock, x, mask):
    """The block's maths written out explicitly."""
    tokens, tmask = block.encoder(x, mask)
    latent = block.latent0.expand(x.shape[0], -1, -1)
    for s in range(block.depth):
        step = block.steps[min(s, len(block.steps) - 1)]
        if block.frequency_domain:
            if block.normalise:
                latent = latent / latent.norm(dim=1, keepdim=True)
            z = torch.fft.fft(latent, dim=1)
            r, j = z.real, z.imag
        else:
            r, j = latent, torch.zeros_like(latent)
        # multi-head attention by hand (masked softmax over tokens)
        a = step.attn
        q = a.to_q(a.norm_q(r)).unflatten(-1, (a.heads, a.dim_head)).transpose(1, 2)
        k, v = a.to_kv(a.norm_c(tokens)).chunk(2, -1)
        k = k.unflatten(-1, (a.heads, a.dim_head)).transpose(1, 2)
        v = v.unflatten(-1, (a.heads, a.dim_head)).transpose(1, 2)
        scores = q @ k.transpose(-1, -2) / a.dim_head**0.5
        if tmask is not None:
            scores = scores.masked_fill(~tmask[:, None, None, :], float("-inf"))
        att = (scores.softmax(-1) @ v).transpose(1, 2).flatten(2)
        u = r + a.to_out(att)
        hidden, gate = step.ff.proj_in(step.ff.norm(u)).chunk(2, -1)
        u = u + step.ff.proj_out(hidden * F.selu(gate))
        if block.frequency_domain:
            zz = torch.complex(u, j) if block.track_imaginary else torch.complex(u, 0 * u)
            latent = torch.fft.ifft(zz, dim=1).real
        else:
            latent = u
    head = block.head_module
    return head.linear(head.norm(u.mean(1))), torch.complex(u, j)


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"frequency_domain": False},
        {"track_imaginary": False},
        {"normalise": False},
        {"share_weights": True, "depth": 3},
    ],
)
def test_block_matches_written_out_maths(options):
    block = make_block("abmil", **options).eval()
    x, mask = make_input("abmil")
    logits, z = reference_forward(block, x, mask)
    assert torch.allclose(block(x, mask), logits, atol=1e-5)
    assert torch.allclose(block.latent(x, mask), z, atol=1e-5)


def test_frequency_domain_switches_change_the_output():
    x, mask = make_input("abmil")
    base = make_block("abmil").eval()(x, mask)
    assert not torch.allclose(make_block("abmil", frequency_domain=False).eval()(x, mask), base)
    assert not torch.allclose(make_block("abmil", track_imaginary=False).eval()(x, mask), base)
    # with one step there is no inverse transform, so tracking the imaginary part is moot
    one = make_block("abmil", depth=1).eval()(x, mask)
    assert torch.allclose(make_block("abmil", depth=1, track_imaginary=False).eval()(x, mask), one)


def test_frequency_domain_false_gives_zero_imaginary_part():
    block = make_block("snn", frequency_domain=False).eval()
    z = block.latent(*make_input("snn"))
    assert torch.equal(z.imag, torch.zeros_like(z.imag))


def test_weight_sharing_ties_steps_after_the_first():
    assert len(make_block("snn", depth=4, share_weights=True).steps) == 2
    assert len(make_block("snn", depth=4, share_weights=False).steps) == 4
    block = make_block("snn", depth=3, share_weights=True)
    assert block.step_module(1) is block.step_module(2) is not block.step_module(0)


def test_raw_block_uses_its_self_attention():
    block = make_block("raw").eval()
    x, mask = make_input("raw")
    before = block(x, mask)
    with torch.no_grad():
        weight = block.encoder.attn.to_out[0].weight
        weight.add_(torch.randn(weight.shape, generator=torch.Generator().manual_seed(5)))
    assert not torch.allclose(block(x, mask), before, atol=1e-4)


def test_start_latent_replaces_the_learned_one():
    block = make_block("mlp").eval()
    x, _ = make_input("mlp")
    same = block.latent(x, start=block.initial_latent(3).clone())
    assert torch.allclose(same, block.latent(x), atol=1e-6)
    other = block.latent(x, start=torch.randn(3, 8, 16))
    assert not torch.allclose(other, same, atol=1e-4)
    with pytest.raises(ValueError, match="start latent has shape"):
        block.latent(x, start=torch.randn(3, 8, 15))


# ----------------------------------------------------------------------------- invariances
@pytest.mark.parametrize("kind", ["abmil", "raw"])
def test_bag_permutation_invariance(kind):
    block = make_block(kind).eval()
    x, mask = make_input(kind)
    perm = torch.randperm(x.shape[1], generator=torch.Generator().manual_seed(3))
    assert torch.allclose(block(x[:, perm], mask[:, perm]), block(x, mask), atol=1e-5)


@pytest.mark.parametrize("kind", ["abmil", "raw"])
def test_padding_invariance(kind):
    block = make_block(kind).eval()
    x, mask = make_input(kind)
    pad = torch.randn(x.shape[0], 4, x.shape[2]) * 100  # junk features in padded positions
    xp = torch.cat([x, pad], dim=1)
    mp = torch.cat([mask, torch.zeros(x.shape[0], 4, dtype=torch.bool)], dim=1)
    assert torch.allclose(block(xp, mp), block(x, mask), atol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_batch_of_one_and_rows_independent(kind):
    block = make_block(kind).eval()
    x, mask = make_input(kind)
    full = block(x, mask)
    one = block(x[:1], None if mask is None else mask[:1])
    assert one.shape == (1, 4)
    assert torch.allclose(one, full[:1], atol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_forward_does_not_change_state(kind):
    block = make_block(kind)
    params = {n: p for n, p in block.named_parameters()}
    before = {k: v.clone() for k, v in block.state_dict().items()}
    x, mask = make_input(kind)
    block(x, mask)
    block.latent(x[:1], None if mask is None else mask[:1])
    after = block.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p is params[n] for n, p in block.named_parameters())


# ----------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("frequency_domain", [True, False])
def test_gradients_reach_every_parameter(kind, frequency_domain):
    block = make_block(kind, frequency_domain=frequency_domain).train()
    x, mask = make_input(kind)
    block(x, mask).pow(2).sum().backward()
    missing = [
        n for n, p in block.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0
    ]
    assert missing == []


# ----------------------------------------------------------------------------- checkpoints
@pytest.mark.parametrize("kind", KINDS)
def test_block_checkpoint_round_trip(kind, tmp_path):
    block = make_block(kind, depth=3, share_weights=True, track_imaginary=False).eval()
    x, mask = make_input(kind)
    path = tmp_path / f"{kind}.pt"
    save_model(block, path, extra={"modality": kind, "fold": 0})
    loaded = load_model(path).eval()
    assert isinstance(loaded, LegoBlock) and loaded.config == block.config
    assert torch.equal(loaded(x, mask), block(x, mask))
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # no temp files left


# ----------------------------------------------------------------------------- speed paths
def written_out_attention(a, x, context, mask):
    """Multi-head cross-attention by hand (the plain form)."""
    q = a.to_q(a.norm_q(x)).unflatten(-1, (a.heads, a.dim_head)).transpose(1, 2)
    k, v = a.to_kv(a.norm_c(context)).chunk(2, -1)
    k = k.unflatten(-1, (a.heads, a.dim_head)).transpose(1, 2)
    v = v.unflatten(-1, (a.heads, a.dim_head)).transpose(1, 2)
    scores = q @ k.transpose(-1, -2) / a.dim_head**0.5
    if mask is not None:
        scores = scores.masked_fill(~mask[:, None, None, :], float("-inf"))
    return a.to_out((scores.softmax(-1) @ v).transpose(1, 2).flatten(2))


def test_absorbed_attention_for_few_tokens_matches_the_plain_maths():
    from mmlego.models.attention import Attention

    torch.manual_seed(0)
    attn = Attention(32, 16, heads=4, dim_head=16)
    x, context = torch.randn(3, 24, 32), torch.randn(3, 3, 16)
    mask = torch.tensor([[True, True, False], [True, True, True], [False, True, False]])
    assert attn._absorbed_is_cheaper(24, 3, 32)  # the fast form is the one exercised here
    assert not attn._absorbed_is_cheaper(24, 500, 32)  # and not for long contexts
    out = attn(x, context, mask)
    expected = written_out_attention(attn, x, context, mask)
    assert torch.allclose(out, expected, atol=1e-5)
    grads = torch.autograd.grad(out.square().sum(), list(attn.parameters()))
    expected_grads = torch.autograd.grad(expected.square().sum(), list(attn.parameters()))
    for g, e in zip(grads, expected_grads, strict=True):
        assert torch.allclose(g, e, atol=1e-4)


@pytest.mark.parametrize(
    "options", [{}, {"track_imaginary": False}, {"share_weights": True, "depth": 3}]
)
@pytest.mark.parametrize("kind", ["snn", "abmil"])
def test_block_with_few_tokens_matches_written_out_maths(kind, options):
    # a wide attention (4 heads of 16) on a 24-row latent and 3-4 tokens: the absorbed form
    wide = dict(latent_channels=24, latent_dim=32, heads=4, dim_head=16) | options
    block = make_block(kind, **wide).eval()
    assert block.steps[0].attn._absorbed_is_cheaper(24, 4, 32)
    x, mask = make_input(kind, n=3)
    logits, z = reference_forward(block, x, mask)
    assert torch.allclose(block(x, mask), logits, atol=1e-5)
    assert torch.allclose(block.latent(x, mask), z, atol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_training_under_bfloat16_autocast(kind):
    block = make_block(kind, latent_channels=24, latent_dim=32, heads=4, dim_head=16).train()
    x, mask = make_input(kind)
    full = block(x, mask).detach()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = block(x, mask)
        z = block.latent(x, mask)
    assert z.dtype == torch.complex64  # the transforms ran in float32
    logits.float().square().mean().backward()
    assert torch.isfinite(logits.float()).all()
    for name, p in block.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    # bfloat16 keeps about 3 significant digits: close to, not equal to, float32
    assert torch.allclose(logits.float(), full, atol=0.05 * float(full.abs().max()) + 0.02)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_latent_is_transformed_in_float32(dtype):
    block = make_block("snn").eval()
    x, _ = make_input("snn")
    start = torch.randn(3, 8, 16).to(dtype)  # e.g. a latent handed over by an autocast region
    z = block.latent(x, start=start)
    assert z.dtype == torch.complex64
    assert torch.equal(z, block.latent(x, start=start.float()))


# ---------------------------------------------------------------- seed ensembles


def test_ensemble_averages_its_members_and_round_trips(tmp_path):
    members = [make_block("snn", seed=s) for s in (0, 1, 2)]
    model = Ensemble(members).eval()
    x, mask = make_input("snn")
    with torch.no_grad():
        expected = torch.stack([m.eval()(x, mask) for m in members]).mean(0)  # (b, k)
        torch.testing.assert_close(model(x, mask), expected)
        save_model(model, tmp_path / "e.pt")
        loaded = load_model(tmp_path / "e.pt").eval()
        assert isinstance(loaded, Ensemble) and len(loaded.members) == 3
        torch.testing.assert_close(loaded(x, mask), expected)
    assert ensemble(members[:1]) is members[0] and ensemble_members(members[0]) == [members[0]]
    with pytest.raises(ValueError, match="at least 2"):
        Ensemble(members[:1])


def test_blocks_with_different_numbers_of_members_are_refused_naming_the_files():
    blocks = {"rna": Ensemble([make_block("snn", seed=0), make_block("snn", seed=1)])}
    blocks["cnv"] = make_block("snn", seed=2)
    sets = member_sets({"rna": blocks["rna"]}, sources={"rna": "rna.pt"})
    assert [list(s) for s in sets] == [["rna"], ["rna"]]
    assert sets[1]["rna"] is blocks["rna"].members[1]
    with pytest.raises(ValueError, match=r"cnv\.pt: 1, rna\.pt: 2"):
        member_sets(blocks, sources={"rna": "rna.pt", "cnv": "cnv.pt"})


def test_a_block_built_with_the_library_defaults_is_the_workflows_block():
    model = load_config()["model"]
    block = LegoBlock(build_encoder("snn", 12, hidden=16, n_tokens=4, token_dim=8), n_outputs=1)
    assert {k: block.config[k] for k in model} == dict(model)
