"""Speed of the model library: LegoBlock training steps against a naive implementation, and the
cost of LegoMerge / LegoFuse as the number of modalities grows.

Run::

    python -m mmlego.bench.models [--threads 2] [--repeats 20] [--warmup 3]
                                  [--device cpu|cuda] [--amp] [--json out.json]

What is timed (median of ``repeats`` timed calls after ``warmup`` untimed ones, one process):

1. forward + backward of one batch (``loss = mean(logits ** 2)``; gradients zeroed before each)
   for

   - an SNN LegoBlock on an omics table (64, 1, 2814),
   - an ABMIL LegoBlock on one bag of patch features (1, 4000, 1024) with its mask,

   each as the library's :class:`~mmlego.models.LegoBlock` and as
   :class:`~mmlego.bench.naive.NaiveLegoBlock` holding the same weights (a Python loop over the
   batch, the encoder re-run at every step, FFTs recomputed per use, complex copies, attention
   written out), plus the naive version without its batch loop. Before timing, the logits, the
   complex latent and every parameter gradient of the two are checked to agree (``atol``,
   relative above magnitude 1), and the benchmark stops if they do not. Target: library / naive
   <= 0.5.
2. LegoMerge inference on a batch and a LegoFuse (stack) training step for N = 2, 3, 4, 6, 8
   SNN modalities, with a least-squares line ``t = a + b N``: its R^2, the per-modality slope b
   and t(N) / N. Growth counts as linear when R^2 >= 0.95.

The block shapes follow the reference implementation's defaults: latent 64 x 64, depth 2, 8 heads of
64, a 4x SELU-GLU feed-forward; SNN 2814 -> 256 -> 8 tokens of 32; ABMIL 1024 -> 256-wide tokens.
Dropout is 0 so that the naive version (which re-runs the encoder) computes the same numbers.

On a GPU machine: ``python -m mmlego.bench.models --device cuda [--amp]``; the report names
the device with its figures.
(``tests/test_bench.py`` has CUDA tests that run only where ``torch.cuda.is_available()``.)
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from mmlego.bench.naive import NaiveLegoBlock
from mmlego.io import write_json
from mmlego.models import LegoBlock, LegoFuse, LegoMerge, build_encoder
from mmlego.models.lego_merge import Inputs

__all__ = [
    "BenchConfig",
    "amp_context",
    "bench_block",
    "bench_scaling",
    "check_agreement",
    "format_report",
    "linear_fit",
    "main",
    "make_block",
    "make_input",
    "median_ms",
    "run_benchmark",
    "time_calls",
    "train_step",
]

LINEAR_R2 = 0.95
"""R^2 of the straight-line fit above which merge / fuse growth counts as linear."""


@dataclass(frozen=True)
class BenchConfig:
    """Shapes of the benchmark (defaults: the paper's / reference code's)."""

    latent_channels: int = 64
    latent_dim: int = 64
    depth: int = 2
    heads: int = 8
    dim_head: int = 64
    ff_mult: int = 4
    n_outputs: int = 4
    omics_batch: int = 64
    omics_dim: int = 2814
    snn_hidden: int = 256
    snn_tokens: int = 8
    snn_token_dim: int = 32
    wsi_bags: int = 1
    wsi_patches: int = 4000
    wsi_dim: int = 1024
    abmil_token_dim: int = 256
    abmil_attn_dim: int = 256
    modalities: tuple[int, ...] = (2, 3, 4, 6, 8)
    scaling_batch: int = 64
    atol: float = 1e-4

    @classmethod
    def tiny(cls) -> BenchConfig:
        """Small shapes for tests."""
        return cls(
            latent_channels=8,
            latent_dim=16,
            heads=2,
            dim_head=8,
            ff_mult=2,
            omics_batch=5,
            omics_dim=20,
            snn_hidden=16,
            snn_tokens=4,
            snn_token_dim=8,
            wsi_patches=30,
            wsi_dim=12,
            abmil_token_dim=8,
            abmil_attn_dim=8,
            scaling_batch=4,
        )


# ----------------------------------------------------------------------------- building
def make_block(
    kind: str, cfg: BenchConfig, *, seed: int = 0, in_dim: int | None = None
) -> LegoBlock:
    """An 'snn' or 'abmil' LegoBlock with the benchmark's shapes (dropout 0)."""
    torch.manual_seed(seed)
    if kind == "snn":
        encoder = build_encoder(
            "snn",
            cfg.omics_dim if in_dim is None else in_dim,
            hidden=cfg.snn_hidden,
            n_tokens=cfg.snn_tokens,
            token_dim=cfg.snn_token_dim,
            dropout=0.0,
        )
    elif kind == "abmil":
        encoder = build_encoder(
            "abmil",
            cfg.wsi_dim if in_dim is None else in_dim,
            token_dim=cfg.abmil_token_dim,
            attn_dim=cfg.abmil_attn_dim,
            dropout=0.0,
        )
    else:
        raise ValueError(f"benchmark block kind must be 'snn' or 'abmil', got {kind!r}")
    return LegoBlock(
        encoder,
        n_outputs=cfg.n_outputs,
        latent_channels=cfg.latent_channels,
        latent_dim=cfg.latent_dim,
        depth=cfg.depth,
        heads=cfg.heads,
        dim_head=cfg.dim_head,
        ff_mult=cfg.ff_mult,
        dropout=0.0,
    )


def make_input(
    kind: str, cfg: BenchConfig, *, seed: int = 1, device: str | torch.device = "cpu"
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Input of the benchmark: omics (b, 1, d) for 'snn', a bag (bags, n, d) + mask for 'abmil'."""
    g = torch.Generator().manual_seed(seed)
    if kind == "snn":
        x = torch.randn(cfg.omics_batch, 1, cfg.omics_dim, generator=g)  # (b, 1, d)
        return x.to(device), None
    x = torch.randn(cfg.wsi_bags, cfg.wsi_patches, cfg.wsi_dim, generator=g)  # (b, n, d)
    mask = torch.ones(cfg.wsi_bags, cfg.wsi_patches, dtype=torch.bool)  # (b, n) every patch real
    return x.to(device), mask.to(device)


# ----------------------------------------------------------------------------- timing
def amp_context(device: torch.device, *, amp: bool) -> Any:
    """``torch.autocast`` in bfloat16 on ``device`` when ``amp``, else a no-op context."""
    if not amp:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16)


def train_step(
    model: nn.Module, x: torch.Tensor, mask: torch.Tensor | None, *, amp: bool = False
) -> torch.Tensor:
    """One forward + backward (loss = mean of squared logits); returns the logits."""
    for p in model.parameters():
        p.grad = None
    with amp_context(x.device, amp=amp):
        logits = model(x, mask)  # (b, n_outputs)
    logits.float().pow(2).mean().backward()
    return logits


def time_calls(
    fns: dict[str, Callable[[], Any]], *, repeats: int, warmup: int, device: torch.device
) -> dict[str, list[float]]:
    """Seconds of ``repeats`` calls of each function after ``warmup`` untimed ones.

    The functions are timed in turn (round-robin), so that a change of machine load during the
    run affects all of them alike and their ratios stay fair.
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0, got {repeats}, {warmup}")
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    sync()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            sync()
            times[name].append(time.perf_counter() - t0)
    return times


def median_ms(times: Sequence[float]) -> float:
    """Median of times in seconds, in milliseconds."""
    return 1000 * statistics.median(times)


# ----------------------------------------------------------------------------- block speed
def _scaled_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    """max |a - b| / max(1, max |a|): absolute for small values, relative for large ones."""
    return float((a - b).abs().max()) / max(1.0, float(a.abs().max()))


def check_agreement(
    block: LegoBlock,
    naive: NaiveLegoBlock,
    x: torch.Tensor,
    mask: torch.Tensor | None,
    *,
    atol: float,
) -> dict[str, float]:
    """Largest differences of logits, latents and parameter gradients of the two blocks.

    Each difference is ``max |library - naive| / max(1, max |library|)`` (absolute for values
    up to 1, relative above), taken over every tensor of its kind.

    Raises
    ------
    ValueError
        If a difference exceeds ``atol`` or a parameter gets a gradient in only one of them
        (the two do not compute the same maths).
    """
    logits = train_step(block, x, mask)
    naive_logits, naive_z = naive.forward_with_latent(x, mask)
    for p in naive.parameters():
        p.grad = None
    naive_logits.float().pow(2).mean().backward()
    naive_params = dict(naive.named_parameters())
    pairs = [(n, p.grad, naive_params[n].grad) for n, p in block.named_parameters()]
    missing = [n for n, g, h in pairs if (g is None) != (h is None)]
    with torch.no_grad():
        z = block.latent(x, mask)
        diffs = {
            "logits": _scaled_diff(logits, naive_logits),
            "latent": _scaled_diff(z, naive_z),
            "grad": max(
                (_scaled_diff(g, h) for _, g, h in pairs if g is not None and h is not None),
                default=0.0,
            ),
        }
    if missing or max(diffs.values()) > atol:
        raise ValueError(
            f"library and naive LegoBlock disagree (tolerance {atol}): differences {diffs}, "
            f"gradients present in only one of them: {missing}"
        )
    return diffs


def bench_block(
    kind: str,
    cfg: BenchConfig,
    *,
    repeats: int,
    warmup: int,
    device: torch.device,
    amp: bool = False,
) -> dict[str, Any]:
    """Training-step times (ms) of the library block and its naive versions, and their ratio."""
    block = make_block(kind, cfg).to(device).train()
    x, mask = make_input(kind, cfg, device=device)
    naive = NaiveLegoBlock.mirror(block, batch_loop=True).train()
    naive_batched = NaiveLegoBlock.mirror(block, batch_loop=False).train()
    diffs = check_agreement(block, naive, x, mask, atol=cfg.atol)
    check_agreement(block, naive_batched, x, mask, atol=cfg.atol)

    models = {"library": block, "naive": naive, "naive_batched": naive_batched}
    times = time_calls(
        {k: (lambda m=m: train_step(m, x, mask, amp=amp)) for k, m in models.items()},
        repeats=repeats,
        warmup=warmup,
        device=device,
    )
    library_ms, naive_ms, batched_ms = (median_ms(times[k]) for k in models)
    return {
        "kind": kind,
        "input_shape": list(x.shape),
        "library_ms": library_ms,
        "naive_ms": naive_ms,
        "naive_batched_ms": batched_ms,
        "ratio": library_ms / naive_ms,
        "ratio_batched": library_ms / batched_ms,
        "max_diff": diffs,
    }


# ----------------------------------------------------------------------------- scaling
def linear_fit(ns: Sequence[float], ts: Sequence[float]) -> dict[str, float]:
    """Least-squares ``t = intercept + slope * n``; R^2 of the fit."""
    n, t = np.asarray(ns, dtype=float), np.asarray(ts, dtype=float)
    if n.size < 2 or n.size != t.size:
        raise ValueError(f"linear_fit needs >= 2 paired points, got {n.size} and {t.size}")
    slope, intercept = np.polyfit(n, t, 1)
    resid = t - (intercept + slope * n)
    total = float(((t - t.mean()) ** 2).sum())
    r2 = 1.0 - float((resid**2).sum()) / total if total > 0 else 1.0
    return {"slope": float(slope), "intercept": float(intercept), "r2": r2}


def _scaling_inputs(
    n: int, cfg: BenchConfig, device: torch.device
) -> tuple[dict[str, LegoBlock], dict[str, tuple[torch.Tensor, None]]]:
    blocks, inputs = {}, {}
    g = torch.Generator().manual_seed(100 + n)
    for i in range(n):
        name = f"omics{i}"
        blocks[name] = make_block("snn", cfg, seed=i).to(device)
        x = torch.randn(cfg.scaling_batch, cfg.omics_dim, generator=g)  # (b, d)
        inputs[name] = (x.to(device), None)
    return blocks, inputs


def bench_scaling(
    cfg: BenchConfig, *, repeats: int, warmup: int, device: torch.device, amp: bool = False
) -> dict[str, Any]:
    """LegoMerge inference and LegoFuse (stack) training-step times for each N in the config."""
    calls: dict[str, Callable[[], None]] = {}
    for n in cfg.modalities:
        blocks, inputs = _scaling_inputs(n, cfg, device)
        merge = LegoMerge({k: b.eval() for k, b in blocks.items()})
        fuse = LegoFuse(copy.deepcopy(blocks)).train()

        def merge_call(merge: LegoMerge = merge, inputs: Inputs = inputs) -> None:
            with torch.no_grad(), amp_context(device, amp=amp):
                merge(inputs)

        def fuse_call(fuse: LegoFuse = fuse, inputs: Inputs = inputs) -> None:
            for p in fuse.parameters():
                p.grad = None
            with amp_context(device, amp=amp):
                logits = fuse(inputs)  # (b, n_outputs)
            logits.float().pow(2).mean().backward()

        calls[f"merge{n}"], calls[f"fuse{n}"] = merge_call, fuse_call
    times = time_calls(calls, repeats=repeats, warmup=warmup, device=device)
    rows = []
    for n in cfg.modalities:
        merge_ms, fuse_ms = median_ms(times[f"merge{n}"]), median_ms(times[f"fuse{n}"])
        rows.append(
            {
                "n_modalities": n,
                "merge_ms": merge_ms,
                "fuse_ms": fuse_ms,
                "merge_ms_per_modality": merge_ms / n,
                "fuse_ms_per_modality": fuse_ms / n,
            }
        )
    ns = [r["n_modalities"] for r in rows]
    fits = {}
    for key in ("merge_ms", "fuse_ms"):
        fit = linear_fit(ns, [r[key] for r in rows])
        fit["linear"] = fit["r2"] >= LINEAR_R2
        fits[key.removesuffix("_ms")] = fit
    return {"rows": rows, "fit": fits, "batch": cfg.scaling_batch}


# ----------------------------------------------------------------------------- report
def run_benchmark(
    cfg: BenchConfig,
    *,
    repeats: int,
    warmup: int = 2,
    device: str | torch.device = "cpu",
    amp: bool = False,
) -> dict[str, Any]:
    """The whole benchmark as a JSON-able dict (blocks, scaling, environment)."""
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda asked for, but torch.cuda.is_available() is False")
    blocks = [
        bench_block(kind, cfg, repeats=repeats, warmup=warmup, device=device, amp=amp)
        for kind in ("snn", "abmil")
    ]
    scaling = bench_scaling(cfg, repeats=repeats, warmup=warmup, device=device, amp=amp)
    return {
        "config": asdict(cfg),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "amp": amp,
        "repeats": repeats,
        "warmup": warmup,
        "blocks": blocks,
        "scaling": scaling,
        "target_ratio": 0.5,
        "target_met": all(b["ratio"] <= 0.5 for b in blocks),
    }


def format_report(report: dict[str, Any]) -> str:
    """Plain-text tables of :func:`run_benchmark`'s report."""
    amp = " amp(bf16)" if report["amp"] else ""
    lines = [
        f"device {report['device_name']} ({report['device']}{amp}), torch {report['torch']}, "
        f"{report['threads']} threads, median of {report['repeats']} after {report['warmup']} "
        "warm-up",
        "",
        "LegoBlock forward+backward per batch (ms)",
        f"{'block':<7}{'input':<18}{'library':>9}{'naive':>9}{'ratio':>7}"
        f"{'naive(no loop)':>16}{'ratio':>7}{'max diff':>11}",
    ]
    for b in report["blocks"]:
        shape = "x".join(str(s) for s in b["input_shape"])
        lines.append(
            f"{b['kind']:<7}{shape:<18}{b['library_ms']:>9.2f}{b['naive_ms']:>9.2f}"
            f"{b['ratio']:>7.3f}{b['naive_batched_ms']:>16.2f}{b['ratio_batched']:>7.3f}"
            f"{max(b['max_diff'].values()):>11.1e}"
        )
    met = "met" if report["target_met"] else "NOT met"
    lines += [f"target library/naive <= {report['target_ratio']}: {met}", ""]
    sc = report["scaling"]
    lines.append(
        f"Merge (inference) and fuse-stack (forward+backward) with N SNN modalities, batch "
        f"{sc['batch']} (ms)"
    )
    lines.append(f"{'N':>3}{'merge':>10}{'merge/N':>10}{'fuse':>10}{'fuse/N':>10}")
    for r in sc["rows"]:
        lines.append(
            f"{r['n_modalities']:>3}{r['merge_ms']:>10.2f}{r['merge_ms_per_modality']:>10.2f}"
            f"{r['fuse_ms']:>10.2f}{r['fuse_ms_per_modality']:>10.2f}"
        )
    for key, fit in sc["fit"].items():
        verdict = "linear" if fit["linear"] else "NOT linear"
        lines.append(
            f"{key}: t = {fit['intercept']:.2f} + {fit['slope']:.2f} N ms, R^2 = {fit['r2']:.4f} "
            f"-> {verdict} (R^2 >= {LINEAR_R2})"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(prog="python -m mmlego.bench.models", description=__doc__)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--repeats", type=int, default=20, help="timed calls per figure")
    parser.add_argument("--warmup", type=int, default=3, help="untimed calls before timing")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--amp", action="store_true", help="autocast to bfloat16")
    parser.add_argument("--tiny", action="store_true", help="tiny shapes (a smoke test)")
    parser.add_argument("--json", default=None, help="also write the report as JSON here")
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    torch.set_num_threads(args.threads)
    cfg = BenchConfig.tiny() if args.tiny else BenchConfig()
    try:
        report = run_benchmark(
            cfg, repeats=args.repeats, warmup=args.warmup, device=args.device, amp=args.amp
        )
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(format_report(report))
    if args.json:
        write_json(report, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
