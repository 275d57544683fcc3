"""``python -m mmlego.bench.scale --part memory``: memory of the slide stage as the cohort grows.

Generates CLAM-style feature files (``features`` (tiles, dim) float32 and ``coords``; by default
4,000 x 1,024 per slide, 16 MB) for the largest cohort of ``--n`` (default 50, 100, 200, 400
slides: 6.5 GB at 400), one slide per patient, into a temporary folder (under ``--workdir``,
default the system's), written a block at a time; each smaller cohort uses the first slides.
For every cohort size it measures, each in a fresh Python process:

1. bag assembly: :func:`mmlego.wsi.bags.write_patient_bags` over the cohort's feature files
   (the ``patient_bags`` job);
2. one training epoch of an ABMIL LegoBlock over those bags: :func:`train_block` with the
   model and encoder of ``config/config.yaml`` and ``epochs: 1`` (the ``train_block`` job:
   streaming tile statistics of the training patients, one epoch, the tune loss, the
   predictions of the validation patients; 60 / 20 / 20 % of the patients; two classes: the
   memory does not depend on the task);

and prints a table of the peak resident memory of each (``VmHWM`` of that process: interpreter,
imports and all; ``ru_maxrss`` where /proc is absent) and its seconds, then the ratio of the
largest cohort to the smallest. Targets: flat in the cohort size (at most 1.2x from 50 to 400
slides) and at most 2 GB. Everything generated is deleted at the end (``--keep`` keeps it).
``--tiles``, ``--dim`` and ``--n`` make a quick run possible; ``--json`` also writes the figures.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from mmlego.bench.runner import json_child
from mmlego.io import write_json

PARTS = ("memory",)
WRITE_ROWS = 1000  # rows generated and written at a time per feature file

_PEAK = """
def _peak_mb():
    import resource
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    try:  # VmHWM: this process image's own peak (ru_maxrss may include the parent's at fork)
        with open("/proc/self/status") as f:
            peak = next(int(l.split()[1]) for l in f if l.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration):
        pass
    return peak
"""

_ASSEMBLY = (
    _PEAK
    + """
import json, sys, time
from pathlib import Path
args = json.loads(sys.argv[1])
from mmlego.wsi.bags import write_patient_bags
t = time.perf_counter()
files = args["files"]
counts = write_patient_bags(
    feature_files=files, patient_of={Path(p).stem: args["patient_of"][Path(p).stem] for p in files},
    out_h5=args["out"],
)
print(json.dumps({"seconds": time.perf_counter() - t, "peak_rss_mb": _peak_mb(),
                  "tiles": sum(counts.values())}))
"""
)

_EPOCH = (
    _PEAK
    + """
import json, sys, time
args = json.loads(sys.argv[1])
import torch
torch.set_num_threads(args["threads"])
import pandas as pd
from mmlego.training.blocks import train_block
from mmlego.pipeline.fold import Fold
ids = args["patients"]
roles = pd.Series([("train", "train", "train", "tune", "val")[i % 5] for i in range(len(ids))],
                  index=pd.Index(ids, name="patient_id"), name="role")
outcomes = pd.DataFrame({"label": [("a", "b")[i % 2] for i in range(len(ids))]},
                        index=roles.index)
fold = Fold(index=0, roles=roles, outcomes=outcomes)
t = time.perf_counter()
train_block(name="wsi", modality_spec=args["spec"], data_path=args["bags"], fold=fold,
            settings=args["settings"], out_model=args["out"] + "/block.pt",
            out_history=args["out"] + "/history.tsv", out_predictions=args["out"] + "/val.tsv",
            out_selection=args["out"] + "/selection.tsv")
print(json.dumps({"seconds": time.perf_counter() - t, "peak_rss_mb": _peak_mb()}))
"""
)


def write_feature_files(
    folder: str | os.PathLike, n_slides: int, *, tiles: int, dim: int, seed: int = 0
) -> list[Path]:
    """``n_slides`` CLAM-style feature files ``slide_<i>.h5`` in ``folder``: ``features``
    (tiles, dim) float32 (normal, a mean per slide) and ``coords`` (tiles, 2), written
    :data:`WRITE_ROWS` rows at a time (an existing file of the right shape is kept)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n_slides):
        path = folder / f"slide_{i:04d}.h5"
        paths.append(path)
        if path.is_file():
            with h5py.File(path, "r") as f:
                if f["features"].shape == (tiles, dim):
                    continue
        rng = np.random.default_rng([seed, i])
        with h5py.File(path, "w") as f:
            feats = f.create_dataset("features", shape=(tiles, dim), dtype=np.float32)
            coords = f.create_dataset("coords", shape=(tiles, 2), dtype=np.int64)
            shift = np.float32(rng.normal())
            for start in range(0, tiles, WRITE_ROWS):
                r = min(WRITE_ROWS, tiles - start)
                feats[start : start + r] = rng.standard_normal((r, dim), dtype=np.float32) + shift
                grid = np.arange(start, start + r)
                coords[start : start + r] = np.stack([grid % 100, grid // 100], axis=1) * 256
    return paths


def _child(script: str, args: dict[str, Any], *, threads: int) -> dict[str, Any]:
    """Run ``script`` in a fresh interpreter with ``threads`` threads; its JSON result."""
    return json_child(script, args, env={"OMP_NUM_THREADS": str(threads)})


def _settings(batch_size: int, seed: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``train_block`` settings and slide modality of ``config/config.yaml``, one epoch of
    one training run (no settings raced)."""
    from mmlego.pipeline.config import resolve_config
    from mmlego.pipeline.stages import stage_settings

    cfg = resolve_config()
    spec = next(s for s in cfg["modalities"].values() if s["type"] == "slides")
    settings = stage_settings(cfg, "block") | {
        "task": "classification",
        "seed": seed,
        "training": dict(cfg["training"], epochs=1, batch_size=batch_size),
        "selection": dict(cfg["selection"], candidates=1),
    }
    return settings, {"type": "slides", "encoder": spec["encoder"]}


def run_memory(
    *,
    n_slides: Sequence[int],
    tiles: int,
    dim: int,
    workdir: str | None = None,
    batch_size: int = 32,
    threads: int = 1,
    keep: bool = False,
    out=print,
) -> dict[str, Any]:
    """Peak RSS of bag assembly and of one ABMIL training epoch for each cohort size; the
    figures (also printed through ``out``)."""
    sizes = sorted(set(int(n) for n in n_slides))
    if not sizes or sizes[0] < 5:
        raise ValueError(f"--n: cohort sizes of at least 5 slides (train/tune/val), got {sizes}")
    per_slide = tiles * dim * 4
    need = 2 * sizes[-1] * per_slide * 1.05  # the features, and the bags of the largest cohort
    parent = Path(workdir) if workdir else Path(tempfile.gettempdir())
    parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(parent).free
    if free < need:
        raise SystemExit(
            f"{parent}: {free / 1e9:.1f} GB free, the benchmark needs {need / 1e9:.1f} GB "
            f"({sizes[-1]} slides x {tiles} tiles x {dim} float32, twice): use fewer --tiles "
            "or --n, or another --workdir"
        )
    work = Path(tempfile.mkdtemp(prefix="mmlego_scale_", dir=parent))
    settings, spec = _settings(batch_size, seed=0)
    rows = []
    try:
        t = time.perf_counter()
        files = write_feature_files(work / "features", sizes[-1], tiles=tiles, dim=dim)
        out(
            f"{sizes[-1]} feature files of {tiles} x {dim} float32 "
            f"({sizes[-1] * per_slide / 1e9:.2f} GB) written in {time.perf_counter() - t:.0f} s "
            f"to {work}; training batch {batch_size} patients, {threads} thread(s), "
            f"max_bag_tiles {settings['training'].get('max_bag_tiles')}"
        )
        patient_of = {p.stem: f"P{p.stem.split('_')[1]}" for p in files}
        for n in sizes:
            chosen = [str(p) for p in files[:n]]
            bags = work / f"bags_{n}.h5"
            asm = _child(
                _ASSEMBLY,
                {"files": chosen, "patient_of": patient_of, "out": str(bags)},
                threads=threads,
            )
            run_dir = work / f"epoch_{n}"
            run_dir.mkdir()
            epoch = _child(
                _EPOCH,
                {
                    "bags": str(bags),
                    "patients": sorted(patient_of[Path(p).stem] for p in chosen),
                    "spec": spec,
                    "settings": settings,
                    "out": str(run_dir),
                    "threads": threads,
                },
                threads=threads,
            )
            bags.unlink()
            shutil.rmtree(run_dir)
            rows.append(
                {
                    "n_slides": n,
                    "features_gb": n * per_slide / 1e9,
                    "assembly_peak_rss_mb": asm["peak_rss_mb"],
                    "assembly_seconds": asm["seconds"],
                    "epoch_peak_rss_mb": epoch["peak_rss_mb"],
                    "epoch_seconds": epoch["seconds"],
                }
            )
            r = rows[-1]
            out(
                f"  N={n}: assembly {r['assembly_peak_rss_mb']:.0f} MB, "
                f"epoch {r['epoch_peak_rss_mb']:.0f} MB"
            )
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    result = {"tiles": tiles, "dim": dim, "batch_size": batch_size, "rows": rows}
    first, last = rows[0], rows[-1]
    result["ratio_assembly"] = last["assembly_peak_rss_mb"] / first["assembly_peak_rss_mb"]
    result["ratio_epoch"] = last["epoch_peak_rss_mb"] / first["epoch_peak_rss_mb"]
    peak = max(max(r["assembly_peak_rss_mb"], r["epoch_peak_rss_mb"]) for r in rows)
    result["max_peak_rss_mb"] = peak
    out(format_table(result))
    return result


def format_table(result: dict[str, Any]) -> str:
    """The benchmark's table: one row per cohort size, then the ratios and the targets."""
    rows = result["rows"]
    lines = [
        f"peak RSS per job, slides of {result['tiles']} x {result['dim']} float32 features "
        "(one slide per patient):",
        "| slides | features (GB) | bag assembly peak RSS (MB) | s | "
        "ABMIL epoch peak RSS (MB) | s |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['n_slides']} | {r['features_gb']:.2f} | {r['assembly_peak_rss_mb']:.0f} | "
            f"{r['assembly_seconds']:.1f} | {r['epoch_peak_rss_mb']:.0f} | "
            f"{r['epoch_seconds']:.1f} |"
        )
    a, b = rows[0]["n_slides"], rows[-1]["n_slides"]
    flat = max(result["ratio_assembly"], result["ratio_epoch"]) <= 1.2
    small = result["max_peak_rss_mb"] <= 2048
    lines.append(
        f"ratio N={b} / N={a}: assembly {result['ratio_assembly']:.2f}x, epoch "
        f"{result['ratio_epoch']:.2f}x (target <= 1.2x: {'met' if flat else 'NOT met'}); "
        f"largest peak {result['max_peak_rss_mb']:.0f} MB (target <= 2048 MB: "
        f"{'met' if small else 'NOT met'})"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Command line (see the module docstring)."""
    ap = argparse.ArgumentParser(
        prog="python -m mmlego.bench.scale", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--part", choices=PARTS, default="memory", help="what to measure")
    ap.add_argument(
        "--n", type=int, nargs="+", default=[50, 100, 200, 400], help="slides per cohort"
    )
    ap.add_argument("--tiles", type=int, default=4000, help="tiles per slide")
    ap.add_argument("--dim", type=int, default=1024, help="feature width")
    ap.add_argument("--batch-size", type=int, default=32, help="patients per training batch")
    ap.add_argument("--threads", type=int, default=1, help="torch threads of the epoch")
    ap.add_argument("--workdir", help="where the temporary folder goes (default: system temp)")
    ap.add_argument("--keep", action="store_true", help="keep the generated files")
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args(argv)
    result = run_memory(
        n_slides=args.n,
        tiles=args.tiles,
        dim=args.dim,
        workdir=args.workdir,
        batch_size=args.batch_size,
        threads=args.threads,
        keep=args.keep,
    )
    if args.json:
        write_json(result, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
