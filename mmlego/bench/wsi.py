"""``python -m mmlego.bench.wsi``: speed and memory of the WSI stage on generated slides.

Writes (once, into ``--workdir``) two generated pyramidal TIFFs (:func:`write_large_slide`):

- ``typical.tiff``: 80,000 x 60,000 px at 0.25 µm/px (40x), three levels (downsamples 1, 4,
  16, as many 40x Aperio scans), about 40 % tissue; about 0.7 GB;
- ``empty.tiff``: 100,000 x 100,000 px at 0.25 µm/px, five levels, 1 % tissue (glass tiles
  stored empty).

and reports

1. tiling time per slide (coordinates only, and with the QC picture), median of ``--repeats``;
2. peak resident memory of a process tiling each slide (``ru_maxrss`` of a fresh interpreter);
3. feature extraction throughput of ``--encoder`` (with its factory's ``--encoder-option
   KEY=VALUE``, e.g. ``weights=``; built once, its load not timed) on ``--tiles`` tiles of the
   typical slide (:func:`extract_features` end to end, HDF5 output included), next to the raw
   OpenSlide read + decode rate of the same tiles (``read_region`` at the tiles' level and read
   size, converted to RGB arrays; no resizing, no encoding) measured in the same run, and their
   ratio. Modes:
   ``serial`` (one thread reads a batch, then encodes it), ``reader thread`` (the default: a
   thread reads ahead while the main thread encodes), and ``k worker processes``
   (``DataLoader``; the raw rate is then also measured with k reading processes).

Timings alternate raw reads and extraction after one warm-up pass (so both see the same warm
OS file cache); each figure is the median of ``--repeats`` runs. ``--json`` also writes them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from mmlego.bench.runner import json_child, parse_assignment
from mmlego.demo.slides import tissue_tile_layout, write_large_slide
from mmlego.io import write_json
from mmlego.wsi.encoders import Encoder, get_encoder
from mmlego.wsi.features import extract_features, read_coords
from mmlego.wsi.loader import iter_tile_batches
from mmlego.wsi.tiling import tile_slide
from mmlego.wsi.tissue import TissueParams

TILE = 256


def make_typical_slide(path: Path) -> Path:
    """80,000 x 60,000 px, 0.25 µm/px, levels 1/4/16, ~40 % tissue (written once)."""
    if not path.is_file():
        w, h = 80_000, 60_000
        tissue = tissue_tile_layout(-(-h // TILE), -(-w // TILE), seed=3)
        write_large_slide(path, width=w, height=h, tissue=tissue, blank="jpeg", n_levels=3)
    return path


def make_empty_slide(path: Path) -> Path:
    """100,000 x 100,000 px, 0.25 µm/px, ~1 % tissue in three islands (written once)."""
    if not path.is_file():
        w = h = 100_000
        tissue = np.zeros((-(-h // TILE), -(-w // TILE)), dtype=bool)
        tissue[100:130, 50:90] = True
        tissue[250:262, 300:340] = True
        tissue[20:24, 370:390] = True
        write_large_slide(path, width=w, height=h, tissue=tissue)
    return path


_RSS_SCRIPT = """
import json, resource, sys, time
from mmlego.wsi.tiling import tile_slide
from mmlego.wsi.tissue import TissueParams
args = json.loads(sys.argv[1])
t = time.perf_counter()
res = tile_slide(args["slide"], args["out"], target_mpp=args["target_mpp"],
                 tile_size=args["tile_size"], tissue=TissueParams(), qc_png=args["qc"])
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
try:  # VmHWM: this process image's own peak (ru_maxrss may include the parent's at fork)
    with open("/proc/self/status") as f:
        peak = next(int(l.split()[1]) for l in f if l.startswith("VmHWM:")) / 1024
except (OSError, StopIteration):
    pass
print(json.dumps({"seconds": time.perf_counter() - t, "n_tiles": res.n_tiles,
                  "tissue_fraction": res.tissue_fraction, "peak_rss_mb": peak}))
"""


def tiling_peak_rss(
    slide: str | os.PathLike,
    out_h5: str | os.PathLike,
    *,
    target_mpp: float = 0.5,
    tile_size: int = 256,
    qc_png: str | os.PathLike | None = None,
) -> dict[str, float]:
    """Tile ``slide`` in a fresh Python process; its peak RSS (MB: ``VmHWM`` of that process,
    interpreter and imports included; ``ru_maxrss`` where /proc is absent), seconds, tiles and
    tissue fraction."""
    args = {
        "slide": str(slide),
        "out": str(out_h5),
        "target_mpp": target_mpp,
        "tile_size": tile_size,
        "qc": None if qc_png is None else str(qc_png),
    }
    try:
        return json_child(_RSS_SCRIPT, args)
    except RuntimeError as err:
        raise RuntimeError(f"tiling {slide} failed: {err}") from None


def time_tiling(slide: Path, work: Path, *, repeats: int, qc: bool) -> list[float]:
    """Seconds of each of ``repeats`` runs of :func:`tile_slide` on ``slide`` (0.5 µm/px,
    256 px tiles)."""
    times = []
    for i in range(repeats):
        t = time.perf_counter()
        tile_slide(
            slide,
            work / f"tiling_{i}.h5",
            target_mpp=0.5,
            tile_size=256,
            tissue=TissueParams(),
            qc_png=work / f"tiling_{i}.png" if qc else None,
        )
        times.append(time.perf_counter() - t)
    return times


def raw_read_rate(
    slide: Path, coords_h5: Path, *, batch_size: int, num_workers: int
) -> tuple[float, float]:
    """Tiles/s of OpenSlide ``read_region`` + RGB conversion of the coordinates file's tiles at
    their level and read size (no resize, no encoder): one thread reading in turn
    (``num_workers=0``) or ``num_workers`` reading processes; and this process's CPU
    milliseconds per tile."""
    coords, attrs = read_coords(coords_h5)
    size = int(attrs["read_size"])
    t, c = time.perf_counter(), time.process_time()
    n = 0
    for tiles in iter_tile_batches(
        slide,
        coords,
        level=int(attrs["patch_level"]),
        read_size=size,
        out_size=size,
        batch_size=batch_size,
        num_workers=num_workers,
        prefetch=0,
    ):
        n += len(tiles)
    return n / (time.perf_counter() - t), 1e3 * (time.process_time() - c) / max(n, 1)


def extraction_rate(
    slide: Path,
    coords_h5: Path,
    out: Path,
    *,
    encoder: str | Encoder,
    batch_size: int,
    num_workers: int,
    prefetch: int,
) -> tuple[float, float]:
    """Tiles/s of :func:`extract_features` end to end (read, resize, encode, write HDF5), and
    the main process's CPU milliseconds per tile. An ``encoder`` built beforehand keeps the
    model load out of the figure, as the workflow's shard jobs load it once for many slides."""
    t, c = time.perf_counter(), time.process_time()
    n = extract_features(
        slide,
        coords_h5,
        out,
        encoder=encoder,
        batch_size=batch_size,
        num_workers=num_workers,
        prefetch=prefetch,
    )
    return n / (time.perf_counter() - t), 1e3 * (time.process_time() - c) / max(n, 1)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the benchmark; return the figures (also printed)."""
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="mmlego_wsi_"))
    work.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    typical = make_typical_slide(work / "typical.tiff")
    empty = make_empty_slide(work / "empty.tiff")
    print(f"slides ready in {work} ({time.perf_counter() - t:.1f} s)")
    out: dict[str, Any] = {"workdir": str(work)}

    for name, slide in (("typical", typical), ("empty", empty)) if not args.skip_tiling else ():
        s_coords = time_tiling(slide, work, repeats=args.repeats, qc=False)
        s_qc = time_tiling(slide, work, repeats=args.repeats, qc=True)
        rss = tiling_peak_rss(slide, work / f"rss_{name}.h5", qc_png=work / f"rss_{name}.png")
        out[f"tiling_{name}"] = {
            "seconds_coords_only_median": statistics.median(s_coords),
            "seconds_coords_only_best": min(s_coords),
            "seconds_with_qc_median": statistics.median(s_qc),
            "seconds_with_qc_best": min(s_qc),
            "peak_rss_mb": rss["peak_rss_mb"],
            "n_tiles": rss["n_tiles"],
            "tissue_fraction": rss["tissue_fraction"],
        }
        print(
            f"tiling {name}: {statistics.median(s_coords):.2f} s/slide coordinates only (best "
            f"{min(s_coords):.2f}), {statistics.median(s_qc):.2f} s with the QC picture (best "
            f"{min(s_qc):.2f}); peak RSS {rss['peak_rss_mb']:.0f} MB; {rss['n_tiles']} tiles "
            "of 256 px at 0.5 µm/px"
        )

    coords_h5 = work / "bench_coords.h5"
    res = tile_slide(
        typical,
        coords_h5,
        target_mpp=args.target_mpp,
        tile_size=args.tile_size,
        tissue=TissueParams(),
        max_tiles=args.tiles,
        seed=0,
    )
    with h5py.File(coords_h5) as f:
        level, read_size = int(f.attrs["patch_level"]), int(f.attrs["read_size"])
    print(
        f"extraction: {res.n_tiles} tiles of {args.tile_size} px at {args.target_mpp} µm/px "
        f"(read {read_size} px at level {level}), encoder {args.encoder}, "
        f"batch {args.batch_size}, {os.cpu_count()} CPUs"
    )
    t = time.perf_counter()
    options = dict(args.encoder_option)
    encoder = get_encoder(args.encoder, **options)
    print(f"encoder {args.encoder} built in {time.perf_counter() - t:.1f} s (once, not timed)")
    raw_read_rate(typical, coords_h5, batch_size=args.batch_size, num_workers=0)  # warm-up
    rows = []
    modes = [("serial", 0, 0), ("reader thread", 0, 2)] + [
        (f"{w} worker processes", w, 0) for w in args.workers if w > 0
    ]
    for label, workers, prefetch in modes:
        raw, ext, cpu, raw_cpu = [], [], [], []
        for _ in range(args.repeats):
            r, rc = raw_read_rate(
                typical, coords_h5, batch_size=args.batch_size, num_workers=workers
            )
            raw.append(r)
            raw_cpu.append(rc)
            rate, ms = extraction_rate(
                typical,
                coords_h5,
                work / "bench_features.h5",
                encoder=encoder,
                batch_size=args.batch_size,
                num_workers=workers,
                prefetch=prefetch,
            )
            ext.append(rate)
            cpu.append(ms)
        row = {
            "mode": label,
            "workers": workers,
            "prefetch": prefetch,
            "raw_read_tiles_per_s": statistics.median(raw),
            "extraction_tiles_per_s": statistics.median(ext),
            "extraction_cpu_ms_per_tile": statistics.median(cpu),
            "raw_read_cpu_ms_per_tile": statistics.median(raw_cpu),
        }
        row["ratio"] = row["extraction_tiles_per_s"] / row["raw_read_tiles_per_s"]
        rows.append(row)
        cpu_note = ""
        if workers == 0:  # one process: CPU time is what an idle core would take
            row["ratio_cpu"] = row["raw_read_cpu_ms_per_tile"] / row["extraction_cpu_ms_per_tile"]
            cpu_note = (
                f"; CPU ms/tile: read {row['raw_read_cpu_ms_per_tile']:.2f}, extraction "
                f"{row['extraction_cpu_ms_per_tile']:.2f}"
            )
        print(
            f"  {label}: raw OpenSlide read+decode {row['raw_read_tiles_per_s']:.0f} tiles/s, "
            f"extraction {row['extraction_tiles_per_s']:.0f} tiles/s, ratio {row['ratio']:.0%}"
            + cpu_note
        )
    out["extraction"] = {
        "encoder": args.encoder,
        "encoder_options": options,
        "n_tiles": res.n_tiles,
        "tile_size": args.tile_size,
        "target_mpp": args.target_mpp,
        "read_size": read_size,
        "patch_level": level,
        "batch_size": args.batch_size,
        "cpus": os.cpu_count(),
        "runs": rows,
    }
    if args.json:
        write_json(out, args.json)
    return out


def _option(text: str) -> tuple[str, Any]:
    """``--encoder-option KEY=VALUE`` (:func:`parse_assignment`), as an argparse type."""
    try:
        return parse_assignment(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def main(argv: list[str] | None = None) -> int:
    """Command line (see the module docstring)."""
    ap = argparse.ArgumentParser(
        prog="python -m mmlego.bench.wsi", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--workdir", help="where slides and outputs go (kept; default: a temp dir)")
    ap.add_argument("--encoder", default="hed_texture")
    ap.add_argument(
        "--encoder-option",
        type=_option,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="an option of the encoder's factory (repeatable), e.g. weights=/path/to/file",
    )
    ap.add_argument("--tiles", type=int, default=2000, help="tiles to encode")
    ap.add_argument("--target-mpp", type=float, default=1.0)
    ap.add_argument("--tile-size", type=int, default=128)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument(
        "--workers",
        type=int,
        nargs="*",
        default=[1],
        help="also run with these numbers of DataLoader worker processes",
    )
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-tiling", action="store_true", help="only the extraction figures")
    ap.add_argument("--json", help="also write the figures here")
    run(ap.parse_args(argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
