"""Speed benchmark of the model library: the naive reference agrees with the library, the report
is complete (no timing assertions: the figures depend on the machine)."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from mmlego.bench import models as bench
from mmlego.bench.naive import NaiveLegoBlock
from mmlego.models import LegoBlock, build_encoder

TINY = bench.BenchConfig.tiny()
CPU = torch.device("cpu")
CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One CPU thread: tiny ops gain nothing from more, and a busy shared machine stalls them."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def small_block(kind: str, **options) -> LegoBlock:
    torch.manual_seed(0)
    enc = {
        "snn": ("snn", dict(hidden=16, n_tokens=4, token_dim=8, dropout=0.0)),
        "abmil": ("abmil", dict(token_dim=8, attn_dim=8, dropout=0.0)),
        "mlp": ("mlp", dict(hidden=16, n_tokens=3, token_dim=8)),
    }
    kw = dict(
        latent_channels=8, latent_dim=16, depth=2, heads=2, dim_head=8, ff_mult=2, dropout=0.0
    )
    kw |= options
    if kind == "raw":
        return LegoBlock(None, in_dim=12, n_outputs=4, **kw)
    name, enc_kw = enc[kind]
    return LegoBlock(build_encoder(name, 12, **enc_kw), n_outputs=4, **kw)


def small_input(kind: str):
    g = torch.Generator().manual_seed(1)
    if kind in ("snn", "mlp"):
        return torch.randn(4, 12, generator=g), None
    mask = torch.ones(4, 6, dtype=torch.bool)
    mask[0, 3:] = False
    mask[2, 1:] = False
    return torch.randn(4, 6, 12, generator=g), mask


@pytest.mark.parametrize("batch_loop", [True, False])
@pytest.mark.parametrize(
    "options",
    [
        {},
        {"frequency_domain": False},
        {"track_imaginary": False},
        {"normalise": False},
        {"share_weights": True, "depth": 3},
        {"latent_channels": 24, "latent_dim": 32, "heads": 4, "dim_head": 16},  # absorbed form
    ],
)
@pytest.mark.parametrize("kind", ["snn", "abmil", "mlp", "raw"])
def test_naive_block_computes_the_library_maths(kind, options, batch_loop):
    block = small_block(kind, **options).train()
    naive = NaiveLegoBlock.mirror(block, batch_loop=batch_loop).train()
    x, mask = small_input(kind)
    diffs = bench.check_agreement(block, naive, x, mask, atol=1e-5)
    assert set(diffs) == {"logits", "latent", "grad"}
    assert max(diffs.values()) <= 1e-5


def test_agreement_check_catches_different_maths():
    block = small_block("abmil").train()
    naive = NaiveLegoBlock.mirror(block)
    with torch.no_grad():
        naive.steps[1].ff.proj_in.weight.mul_(1.01)
    with pytest.raises(ValueError, match="disagree"):
        bench.check_agreement(block, naive, *small_input("abmil"), atol=1e-5)


def test_naive_block_refuses_dropout():
    cfg = small_block("snn").config
    cfg["encoder"]["dropout"] = 0.1
    with pytest.raises(ValueError, match="without dropout"):
        NaiveLegoBlock(cfg)
    with pytest.raises(ValueError, match="dropout 0"):
        NaiveLegoBlock(small_block("snn", dropout=0.2).config)


def test_linear_fit():
    fit = bench.linear_fit([2, 3, 4, 6, 8], [5.0, 7.0, 9.0, 13.0, 17.0])
    assert math.isclose(fit["slope"], 2.0) and math.isclose(fit["intercept"], 1.0, abs_tol=1e-9)
    assert math.isclose(fit["r2"], 1.0)
    quadratic = bench.linear_fit([2, 3, 4, 6, 8], [n**3 for n in (2, 3, 4, 6, 8)])
    assert quadratic["r2"] < 0.95
    with pytest.raises(ValueError, match="paired points"):
        bench.linear_fit([2], [1.0])


def test_time_calls_round_robin():
    order: list[str] = []
    times = bench.time_calls(
        {"a": lambda: order.append("a"), "b": lambda: order.append("b")},
        repeats=3,
        warmup=1,
        device=CPU,
    )
    assert order == ["a", "b"] * 4
    assert [len(t) for t in times.values()] == [3, 3]
    assert all(t >= 0 for ts in times.values() for t in ts)


def check_report(report: dict, cfg: bench.BenchConfig) -> None:
    assert [b["kind"] for b in report["blocks"]] == ["snn", "abmil"]
    for b in report["blocks"]:
        assert max(b["max_diff"].values()) <= cfg.atol
        for key in ("library_ms", "naive_ms", "naive_batched_ms"):
            assert b[key] > 0
        assert math.isclose(b["ratio"], b["library_ms"] / b["naive_ms"])
    assert report["blocks"][0]["input_shape"] == [cfg.omics_batch, 1, cfg.omics_dim]
    assert report["blocks"][1]["input_shape"] == [cfg.wsi_bags, cfg.wsi_patches, cfg.wsi_dim]
    rows = report["scaling"]["rows"]
    assert [r["n_modalities"] for r in rows] == list(cfg.modalities)
    for r in rows:
        assert r["merge_ms"] > 0 and r["fuse_ms"] > 0
        assert math.isclose(r["merge_ms_per_modality"], r["merge_ms"] / r["n_modalities"])
    for fit in report["scaling"]["fit"].values():
        assert set(fit) == {"slope", "intercept", "r2", "linear"}
        assert fit["linear"] == (fit["r2"] >= bench.LINEAR_R2)
    text = bench.format_report(report)
    assert all(f"\n{n:>3}" in text for n in cfg.modalities)
    assert "snn" in text and "abmil" in text and "R^2" in text


def test_benchmark_cli_on_tiny_shapes(tmp_path, capsys):
    out = tmp_path / "bench.json"
    args = ["--tiny", "--threads", "1", "--repeats", "1", "--warmup", "0", "--json", str(out)]
    assert bench.main(args) == 0
    report = json.loads(out.read_text())
    assert report["threads"] == 1 and report["device"] == "cpu" and report["repeats"] == 1
    check_report(report, TINY)
    assert "LegoBlock forward+backward" in capsys.readouterr().out


def test_benchmark_under_autocast_runs():
    cfg = dataclasses.replace(TINY, modalities=(2, 3))
    report = bench.run_benchmark(cfg, repeats=1, warmup=0, device="cpu", amp=True)
    assert report["amp"] is True
    check_report(report, cfg)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message without CUDA")
def test_cuda_request_without_cuda_is_a_clear_error(capsys):
    assert bench.main(["--tiny", "--device", "cuda", "--repeats", "1"]) == 2
    assert "torch.cuda.is_available() is False" in capsys.readouterr().err


@CUDA
@pytest.mark.parametrize("amp", [False, True])
def test_benchmark_on_cuda(amp):
    report = bench.run_benchmark(TINY, repeats=1, warmup=1, device="cuda", amp=amp)
    assert report["device"] == "cuda"
    check_report(report, TINY)


@CUDA
def test_block_training_on_cuda_matches_cpu():
    block = small_block("abmil", latent_channels=24, latent_dim=32, heads=4, dim_head=16).train()
    x, mask = small_input("abmil")
    cpu_logits = bench.train_step(block, x, mask)
    cpu_grads = [p.grad.clone() for p in block.parameters()]
    gpu = block.to("cuda")
    logits = bench.train_step(gpu, x.cuda(), mask.cuda())
    assert torch.allclose(logits.cpu(), cpu_logits, atol=1e-4)
    for p, g in zip(gpu.parameters(), cpu_grads, strict=True):
        assert torch.allclose(p.grad.cpu(), g, atol=1e-3)
