"""The WSI stage in shards: one job tiles and encodes (or imports) a fixed group of slides.

A cohort of 30,000 slides as one job per slide and step is 60,000 Snakemake jobs (and as many
Python, Snakemake and encoder start-ups on a cluster). Here the workflow runs one job per shard
of ``wsi.shard_size`` slides instead; the job keeps the per-slide outputs
(``wsi/coords/<slide>.h5``, ``wsi/qc/<slide>.png``, ``wsi/features/<slide>.h5`` or
``wsi/imported/<slide>.h5``, each written atomically) and declares one output of its own, the
shard's manifest (a TSV, one row per slide: :data:`MANIFEST_COLUMNS`).

Shard membership (:func:`assign_shards`): the slide ids sorted, cut into consecutive chunks of
``shard_size``. It depends only on the set of slide ids (not on the sheet's row order), every
shard but the last is full (so a cohort of n slides is exactly ceil(n / shard_size) jobs), and
a slide's shard is its rank // shard_size. Adding slides moves the later slides of the sorted
order into other shards; those shard jobs rerun, but each recomputes only the slides whose
files are missing or stale (below), so a move costs a few file checks, not recomputation. (A
hash of the slide id would keep membership fixed but give shards of uneven, unbounded size.)

Resume (:func:`run_feature_shard`, :func:`run_import_shard`): Snakemake deletes a job's
declared outputs before running it, so the per-slide files are not declared; a shard job skips
each slide whose finished files exist and carry the current settings' hash (HDF5 attribute
:data:`SETTINGS_ATTR`, see :func:`settings_hash`; it covers the tiling or encoder settings and
the source file's path as the sheet gives it, size and modification time; ``coarser_slides``
only for a slide coarser than the target, the only slides it changes: :func:`tiling_stamps`).
A slide recorded as failed is always retried.

Failure isolation: with ``fail_fast`` False an unusable slide is recorded (empty files with
``status='failed'`` and the reason, as the per-slide functions write them) and the shard goes
on; with ``fail_fast`` True the first unusable slide fails the job, with an error naming the
slide (the slides finished before it are kept and skipped on the rerun).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import time
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import pandas as pd

from mmlego.io import atomic_path, write_tsv

log = logging.getLogger(__name__)

#: HDF5 attribute of a per-slide file: the hash of the settings (and source) it was made with.
SETTINGS_ATTR = "mmlego_settings"
#: Columns of a shard manifest, one row per slide of the shard.
MANIFEST_COLUMNS = [
    "slide_id",
    "patient_id",
    "status",
    "reason",
    "n_tiles",
    "coords",
    "qc",
    "features",
    "action",
    "seconds",
]


@dataclass(frozen=True)
class SlideTask:
    """One slide of a shard: ids, the slide file and its resolution override (or None)."""

    slide_id: str
    patient_id: str
    path: str
    mpp: float | None = None

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SlideTask:
        mpp = d.get("mpp")
        if mpp is not None and (mpp != mpp or mpp == ""):  # NaN or empty: from the metadata
            mpp = None
        return cls(str(d["slide_id"]), str(d["patient_id"]), str(d["path"]), mpp and float(mpp))


# ----------------------------------------------------------------------------- membership


def shard_name(index: int, n_shards: int) -> str:
    """A shard's name: its index zero-padded to at least 4 digits (sorts as it numbers)."""
    return f"{index:0{max(4, len(str(max(n_shards - 1, 0))))}d}"


def assign_shards(slide_ids: Iterable[str], shard_size: int) -> dict[str, list[str]]:
    """Shard name -> its slide ids: the sorted ids in consecutive chunks of ``shard_size``.

    >>> assign_shards(["c", "a", "b"], 2)
    {'0000': ['a', 'b'], '0001': ['c']}
    """
    if shard_size < 1:
        raise ValueError(f"wsi.shard_size must be >= 1, got {shard_size}")
    ids = sorted(str(s) for s in slide_ids)
    if len(set(ids)) != len(ids):
        dup = sorted({a for a, b in itertools.pairwise(ids) if a == b})[:5]
        raise ValueError(f"duplicate slide ids: {dup}")
    n = -(-len(ids) // shard_size)
    return {shard_name(i, n): ids[i * shard_size : (i + 1) * shard_size] for i in range(n)}


def shard_of(shards: Mapping[str, Sequence[str]]) -> dict[str, str]:
    """Slide id -> the name of its shard."""
    return {slide: name for name, slides in shards.items() for slide in slides}


@dataclass(frozen=True)
class ShardPlan:
    """The slide sheet as look-ups built once, for the workflow's parse time: each job's inputs
    and params then cost O(shard size), not a scan of the sheet."""

    info: dict[str, dict[str, Any]]  # slide id -> slide_id, patient_id, path, mpp
    shards: dict[str, list[str]]  # shard name -> slide ids
    shard_of: dict[str, str]  # slide id -> shard name

    @classmethod
    def from_sheet(cls, sheet: pd.DataFrame | None, shard_size: int) -> ShardPlan:
        """From a slide sheet (``patient_id``, ``slide_id``, ``path``, ``mpp``; None: none)."""
        info: dict[str, dict[str, Any]] = {}
        if sheet is not None:
            mpps = sheet["mpp"] if "mpp" in sheet.columns else [None] * len(sheet)
            for sid, pid, path, mpp in zip(
                sheet["slide_id"], sheet["patient_id"], sheet["path"], mpps, strict=True
            ):
                task = SlideTask.from_dict(
                    {"slide_id": sid, "patient_id": pid, "path": path, "mpp": mpp}
                )
                info[task.slide_id] = dict(vars(task))
        ids = [] if sheet is None else [str(s) for s in sheet["slide_id"]]
        shards = assign_shards(ids, shard_size)  # raises on a duplicate slide id
        return cls(info, shards, shard_of(shards))

    def slides(self, shard: str) -> list[dict[str, Any]]:
        """The slides of a shard (the job's params), in shard order."""
        return [self.info[s] for s in self.shards[shard]]

    def paths(self, shard: str) -> list[str]:
        """The slide files of a shard (the job's inputs)."""
        return [self.info[s]["path"] for s in self.shards[shard]]

    def patient_of(self) -> dict[str, str]:
        """Slide id -> patient id, in sheet order."""
        return {s: d["patient_id"] for s, d in self.info.items()}

    def manifests(self, folder: str, slides: Iterable[str] | None = None) -> list[str]:
        """``<folder>/<shard>.tsv`` of every shard, or of the shards holding ``slides``."""
        names = self.shards if slides is None else {self.shard_of[s] for s in slides}
        return [f"{folder}/{name}.tsv" for name in sorted(names)]


# ----------------------------------------------------------------------------- resume


def settings_hash(settings: Mapping[str, Any]) -> str:
    """A short stable hash of JSON-able settings (key order does not matter)."""
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def source_signature(path: str | os.PathLike) -> str:
    """``size:mtime_ns`` of a file (symlinks followed), or ``missing``."""
    try:
        st = os.stat(path)
    except OSError:
        return "missing"
    return f"{st.st_size}:{st.st_mtime_ns}"


def tiling_stamps(settings: Mapping[str, Any], coarser_slides: str) -> dict[bool, str]:
    """The settings hash of a slide's coordinates file, by whether the slide is coarser than the
    target resolution (``True``) or not.

    ``wsi.coarser_slides`` changes the tiling of the coarser slides only: the others are stamped
    as under the default, ``skip``, so that switching the option redoes the coarser slides alone
    (under ``skip`` they are failed, and a failed slide is always retried).
    """
    return {
        coarser: settings_hash(
            {**settings, "coarser_slides": coarser_slides if coarser else "skip"}
        )
        for coarser in (False, True)
    }


def finished_attrs(
    path: str | os.PathLike, expected: str | Collection[str]
) -> dict[str, Any] | None:
    """The attributes of a finished per-slide HDF5 file made with settings hash ``expected``
    (or one of several), or None when it is missing, unreadable, made otherwise, or records a
    failed slide."""
    accepted = {expected} if isinstance(expected, str) else set(expected)
    try:
        with h5py.File(path, "r") as f:
            attrs = {k: (v.item() if hasattr(v, "item") else v) for k, v in f.attrs.items()}
    except (OSError, KeyError):
        return None
    if attrs.get(SETTINGS_ATTR) not in accepted or str(attrs.get("status", "ok")) == "failed":
        return None
    return attrs


@contextmanager
def stamped_path(out_h5: str | os.PathLike, stamp: str) -> Iterator[Path]:
    """Yield a temporary path for an HDF5 file; once the block has written it, stamp it with the
    settings hash and move it onto ``out_h5`` (atomically: a killed job leaves no file that
    looks finished)."""
    with atomic_path(out_h5, suffix=".h5") as tmp:
        yield tmp
        with h5py.File(tmp, "a") as f:
            f.attrs[SETTINGS_ATTR] = stamp


def _status(path: str | os.PathLike) -> tuple[str, str, int]:
    with h5py.File(path, "r") as f:
        status = str(f.attrs.get("status", "ok"))
        reason = str(f.attrs.get("reason", ""))
        n = int(f["features"].shape[0]) if "features" in f else int(f["coords"].shape[0])
    if status == "ok" and n == 0:
        status = "no_tissue"
    return status, reason, n


# ----------------------------------------------------------------------------- shard loops


def run_feature_shard(
    slides: Sequence[SlideTask | Mapping[str, Any]],
    *,
    wsi_dir: str | os.PathLike,
    manifest: str | os.PathLike,
    tiling: Mapping[str, Any],
    tissue: Mapping[str, Any],
    seed: int,
    encoder: str,
    encoder_options: Mapping[str, Any] | None = None,
    batch_size: int = 64,
    num_workers: int = 0,
    fail_fast: bool = False,
    coarser_slides: str = "skip",
    max_bad_tile_fraction: float = 0.1,
) -> pd.DataFrame:
    """Tile and encode the slides of one shard; write and return its manifest.

    Per slide: ``<wsi_dir>/coords/<slide>.h5`` and ``<wsi_dir>/qc/<slide>.png``
    (:func:`mmlego.wsi.tiling.tile_slide`), then ``<wsi_dir>/features/<slide>.h5``
    (:func:`mmlego.wsi.features.extract_features`), skipping what is finished with the same
    settings (module docstring). The encoder is built once, when the first slide needs it.
    """
    from mmlego.wsi.encoders import get_encoder
    from mmlego.wsi.features import extract_features
    from mmlego.wsi.slide import SlideError
    from mmlego.wsi.tiling import tile_slide
    from mmlego.wsi.tissue import tissue_params_from_config

    wsi = Path(wsi_dir)
    tissue_params = tissue_params_from_config(dict(tissue))
    opts = dict(encoder_options or {})
    tiling_settings = {
        "tiling": {k: tiling[k] for k in ("target_mpp", "tile_size", "min_tissue", "max_tiles")},
        "tissue": tissue_params.to_dict(),
        "seed": seed,
    }
    feature_settings = {
        "encoder": encoder,
        "encoder_options": opts,
        "batch_size": batch_size,
        "max_bad_tile_fraction": max_bad_tile_fraction,
    }
    enc = None
    rows = []
    for task in map(_task, slides):
        t0 = time.perf_counter()
        sid = task.slide_id
        coords = wsi / "coords" / f"{sid}.h5"
        qc = wsi / "qc" / f"{sid}.png"
        feats = wsi / "features" / f"{sid}.h5"
        # the path as the sheet gives it (the demo's are relative: a copied project resumes)
        source = {"path": task.path, "signature": source_signature(task.path)}
        stamps = tiling_stamps(
            {**tiling_settings, "mpp": task.mpp, "source": source}, coarser_slides
        )
        actions = []
        try:
            done = finished_attrs(coords, stamps.values())
            if done is not None and qc.is_file():
                tile_stamp = str(done[SETTINGS_ATTR])
            else:
                with atomic_path(coords, suffix=".h5") as tmp:
                    tiled = tile_slide(
                        task.path,
                        tmp,
                        target_mpp=tiling["target_mpp"],
                        tile_size=tiling["tile_size"],
                        tissue=tissue_params,
                        min_tissue=tiling["min_tissue"],
                        max_tiles=tiling["max_tiles"],
                        seed=seed,
                        mpp_override=task.mpp,
                        qc_png=qc,
                        slide_id=sid,
                        fail_fast=fail_fast,
                        coarser_slides=coarser_slides,
                    )
                    tile_stamp = stamps[tiled.upsampled]  # known once tiled
                    with h5py.File(tmp, "a") as f:
                        f.attrs[SETTINGS_ATTR] = tile_stamp
                actions.append("tiled")
            feat_stamp = settings_hash({**feature_settings, "coords": tile_stamp})
            if "tiled" in actions or finished_attrs(feats, feat_stamp) is None:
                if enc is None:
                    enc = get_encoder(encoder, **opts)
                    log.info("encoder %s loaded (dim %d)", encoder, enc.dim)
                with stamped_path(feats, feat_stamp) as tmp:
                    extract_features(
                        task.path,
                        coords,
                        tmp,
                        encoder=enc,
                        batch_size=batch_size,
                        encoder_options=opts,
                        num_workers=num_workers,
                        fail_fast=fail_fast,
                        max_bad_tile_fraction=max_bad_tile_fraction,
                    )
                actions.append("encoded")
        except Exception as e:
            if isinstance(e, SlideError | FileNotFoundError | OSError | ValueError):
                raise SlideError(f"slide {sid} ({task.path}): {e}") from e
            raise
        status, reason, n = _status(feats)
        rows.append(
            {
                "slide_id": sid,
                "patient_id": task.patient_id,
                "status": status,
                "reason": reason,
                "n_tiles": n,
                "coords": str(coords),
                "qc": str(qc),
                "features": str(feats),
                "action": "+".join(actions) or "reused",
                "seconds": round(time.perf_counter() - t0, 3),
            }
        )
        log.info("%s: %s, %d tiles (%s)", sid, status, n, rows[-1]["action"])
    return _write_manifest(rows, manifest)


def run_import_shard(
    slides: Sequence[SlideTask | Mapping[str, Any]],
    *,
    folder: str | os.PathLike,
    wsi_dir: str | os.PathLike,
    manifest: str | os.PathLike,
    sources: Mapping[str, str | None] | None = None,
    fail_fast: bool = False,
) -> pd.DataFrame:
    """Import the user's feature files of one shard's slides (``wsi.features_from``) into
    ``<wsi_dir>/imported/<slide>.h5`` (:func:`mmlego.wsi.byo.import_slide_features`), skipping
    files already imported from the same source file; write and return the manifest.

    ``sources`` (slide -> its feature file or None, :func:`feature_file_index`) saves the look-up.
    """
    from mmlego.wsi.byo import existing_feature_file, import_slide_features

    wsi = Path(wsi_dir)
    rows = []
    for task in map(_task, slides):
        t0 = time.perf_counter()
        sid = task.slide_id
        out = wsi / "imported" / f"{sid}.h5"
        src = sources.get(sid) if sources is not None else existing_feature_file(folder, sid)
        stamp = settings_hash(
            {
                "source": str(src) if src else None,
                "signature": source_signature(src) if src else "missing",
            }
        )
        action = "reused"
        if finished_attrs(out, stamp) is None:
            with stamped_path(out, stamp) as tmp:
                import_slide_features(folder, sid, tmp, fail_fast=fail_fast)
            action = "imported"
        status, reason, n = _status(out)
        rows.append(
            {
                "slide_id": sid,
                "patient_id": task.patient_id,
                "status": status,
                "reason": reason,
                "n_tiles": n,
                "coords": "",
                "qc": "",
                "features": str(out),
                "action": action,
                "seconds": round(time.perf_counter() - t0, 3),
            }
        )
        log.info("%s: %s, %d rows (%s)", sid, status, n, action)
    return _write_manifest(rows, manifest)


def _task(s: SlideTask | Mapping[str, Any]) -> SlideTask:
    return s if isinstance(s, SlideTask) else SlideTask.from_dict(s)


def _write_manifest(rows: list[dict[str, Any]], manifest: str | os.PathLike) -> pd.DataFrame:
    table = pd.DataFrame(rows, columns=MANIFEST_COLUMNS)
    write_tsv(table, manifest)
    return table


# ----------------------------------------------------------------------------- readers


def read_manifests(manifests: Iterable[str | os.PathLike]) -> pd.DataFrame:
    """The manifests of several shards as one table (slide order: as listed)."""
    tables = [pd.read_csv(p, sep="\t", dtype=str, keep_default_na=False) for p in manifests]
    if not tables:
        return pd.DataFrame(columns=MANIFEST_COLUMNS)
    table = pd.concat(tables, ignore_index=True)
    table["n_tiles"] = table["n_tiles"].astype(int)
    table["seconds"] = table["seconds"].astype(float)
    return table


def manifest_files(manifests: Iterable[str | os.PathLike], column: str) -> list[str]:
    """The per-slide files of one kind (``features``, ``coords`` or ``qc``) listed by the
    manifests, in the manifests' order (empty entries left out)."""
    table = read_manifests(manifests)
    return [str(p) for p in table[column] if str(p)]


def feature_file_index(folder: str | os.PathLike, slide_ids: Iterable[str]) -> dict[str, str]:
    """Slide id -> its feature file under ``folder`` (as :func:`mmlego.wsi.byo.
    existing_feature_file` finds it), for the slides that have one; the folder and its
    ``h5_files``/``pt_files`` subfolders are listed once instead of probing per slide."""
    from mmlego.wsi.byo import candidate_paths

    root = Path(folder)
    listed: dict[Path, set[str]] = {}
    for sub in (root, root / "h5_files", root / "pt_files"):
        try:
            with os.scandir(sub) as it:
                listed[sub] = {e.name for e in it if e.is_file()}
        except OSError:
            listed[sub] = set()
    found = {}
    for sid in slide_ids:
        for p in candidate_paths(root, sid):
            if p.name in listed.get(p.parent, ()):
                found[sid] = str(p)
                break
    return found
