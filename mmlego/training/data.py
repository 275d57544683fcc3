"""Per-patient model inputs of one modality, and how a batch of patients is assembled.

A modality is either a table (one preprocessed vector per patient, from the omics stage) or
bags of patch features (all tiles of all of a patient's slides). Both answer the same question:
for these patients, what goes into the encoder, with which padding mask, and who has it at all.
A patient without the modality is marked absent; the models never see a zero-filled stand-in.

Bags are not loaded with the cohort: :class:`H5Bags` reads a patient's bag from
``wsi/patient_bags.h5`` when a batch needs it, and the tile statistics of the fold's training
patients come from a streaming pass over the file (:func:`bag_statistics`), so a job's memory is
that of one batch, whatever the size of the cohort. During training a :class:`TileSampler` may
cap the tiles of each bag (``training.max_bag_tiles``); evaluation and prediction always see
every tile.
"""

from __future__ import annotations

import ctypes
import os
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import h5py
import numpy as np
import torch

from mmlego.omics.preprocess import load_omics_fold
from mmlego.pipeline.config import base_defaults, check_section

Batch = tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]  # x, mask, present (b,)

STATS_BYTES = 16 << 20  # float32 rows read at a time by the streaming statistics (16 MiB)
EVAL_BATCH_BYTES = 512 << 20  # most padded float32 bag input of one evaluation pass (512 MiB)
MMAP_THRESHOLD = 1 << 20  # allocations from 1 MiB up get their own mapping (fix_mmap_threshold)
_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number (malloc.h)
_TRAINING_DEFAULTS = base_defaults("training")


def fix_mmap_threshold(nbytes: int = MMAP_THRESHOLD) -> bool:
    """Have glibc serve every allocation of ``nbytes`` or more with a mapping of its own, given
    back to the system when freed; True when set (False without glibc: nothing to do).

    By default glibc raises that threshold each time a large block is freed (up to 32 MiB),
    after which the arrays and tensors of a few MiB that every batch of bags allocates come
    from the heap, which fragments: the peak memory of a training job then creeps up with the
    number of batches, that is with the cohort. A fixed threshold turns the adjustment off.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, int(nbytes)))
    except (OSError, AttributeError):
        return False


@dataclass
class TileSampler:
    """At most ``k`` tiles of each bag per training step: a bag larger than ``k`` gives ``k``
    distinct tiles drawn at random (from ``rng``, so seeded runs repeat), kept in bag order;
    a smaller bag is used whole (and draws nothing from ``rng``)."""

    k: int
    rng: np.random.Generator

    @classmethod
    def from_settings(cls, training: Mapping[str, Any], *key: str | int) -> TileSampler | None:
        """From the config's ``training.max_bag_tiles`` (``None``: whole bags; absent: the
        workflow's default), seeded with ``key`` (the master seed, the block's name and fold,
        ...)."""
        k = training.get("max_bag_tiles", _TRAINING_DEFAULTS["max_bag_tiles"])
        check_section({"max_bag_tiles": k}, "training")
        if k is None:
            return None
        seed = zlib.crc32("/".join(str(x) for x in key).encode())
        return cls(k=int(k), rng=np.random.default_rng(seed))

    def pick(self, n: int) -> np.ndarray | None:
        """Sorted indices of the tiles to use of a bag of ``n`` (``None``: all of them)."""
        if n <= self.k:
            return None
        return np.sort(self.rng.choice(n, size=self.k, replace=False))


@dataclass(frozen=True)
class TableModality:
    """One row per patient: ``X`` (p, d) already transformed with training-fold statistics."""

    name: str
    index: Mapping[str, int]
    X: np.ndarray  # (p, d) float32

    @property
    def in_dim(self) -> int:
        return int(self.X.shape[1])

    @property
    def patients(self) -> set[str]:
        return set(self.index)

    def batch(self, patient_ids: Sequence[str], sampler: TileSampler | None = None) -> Batch:
        """``sampler`` is for bags and is ignored here."""
        present = torch.tensor([p in self.index for p in patient_ids], dtype=torch.bool)
        x = np.zeros((len(patient_ids), self.in_dim), dtype=np.float32)  # (b, d)
        rows = [self.index[p] for p in patient_ids if p in self.index]
        x[present.numpy()] = self.X[rows]
        return torch.from_numpy(x), None, present


class H5Bags(Mapping[str, np.ndarray]):
    """The bags of a ``patient_bags.h5`` (see :mod:`mmlego.wsi.bags`) as a read-only mapping
    patient -> (n_i, d) float32, read from the file when asked for (one patient at a time).

    Only patients with at least one tile are keys. The sizes come from the file's metadata.
    The file stays open in the process that opened it (reopened after a fork).
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = str(path)
        self._file: h5py.File | None = None
        self._pid = -1
        f = self._h5()
        sizes = {}
        for p in f:
            group = f[p]
            if not isinstance(group, h5py.Group) or "features" not in group:
                raise ValueError(f"{self.path}: patient {p!r} has no 'features' dataset")
            shape = group["features"].shape
            if shape[0] > 0 and len(shape) != 2:
                raise ValueError(
                    f"{self.path}: patient {p!r}: features of shape {shape}, expected (n, d)"
                )
            if shape[0] > 0:
                sizes[str(p)] = int(shape[0])
        self.sizes: dict[str, int] = sizes  # patient -> tiles (>= 1)

    def _h5(self) -> h5py.File:
        if self._file is None or self._pid != os.getpid() or not self._file.id.valid:
            self._file = h5py.File(self.path, "r")
            self._pid = os.getpid()
        return self._file

    def dataset(self, patient: str) -> h5py.Dataset:
        """The patient's ``features`` dataset (n, d), unread."""
        return self._h5()[patient]["features"]

    def __getitem__(self, patient: str) -> np.ndarray:
        if patient not in self.sizes:
            raise KeyError(patient)
        return self.dataset(patient)[()].astype(np.float32, copy=False)  # (n, d)

    def __contains__(self, patient: object) -> bool:
        return patient in self.sizes

    def __iter__(self) -> Iterator[str]:
        return iter(self.sizes)

    def __len__(self) -> int:
        return len(self.sizes)

    def close(self) -> None:
        if self._file is not None and self._pid == os.getpid():
            self._file.close()
        self._file = None

    def __getstate__(self) -> dict[str, Any]:  # a pickled copy reopens the file itself
        return {**self.__dict__, "_file": None, "_pid": -1}


def _bag_size(bags: Mapping[str, np.ndarray], patient: str) -> int:
    if isinstance(bags, H5Bags):
        return bags.sizes.get(patient, 0)
    return len(bags[patient]) if patient in bags else 0


def _read_rows(data: h5py.Dataset | np.ndarray, start: int, out: np.ndarray) -> None:
    """Rows ``start : start + len(out)`` of ``data`` into ``out`` (float32, C-contiguous),
    straight from the file for a dataset."""
    if isinstance(data, h5py.Dataset):
        data.read_direct(out, np.s_[start : start + len(out)])
    else:
        out[...] = data[start : start + len(out)]


def bag_statistics(
    bags: Mapping[str, np.ndarray], patients: Sequence[str]
) -> tuple[np.ndarray, np.ndarray, int]:
    """Mean and (population) standard deviation over all tiles of ``patients``, float64 (d,),
    and the number of tiles, in one streaming pass.

    The tiles are read a block at a time (:data:`STATS_BYTES`); each block's mean and sum of
    squared deviations are merged into the running ones (Chan et al.'s parallel update), in
    float64, so the result is that of numpy on the concatenated tiles to float precision
    without ever holding them.
    """
    count, mean, m2 = 0, None, None
    buf32 = buf64 = np.empty((0, 0))  # reused block buffers: no allocation per block
    for p in patients:
        data = bags.dataset(p) if isinstance(bags, H5Bags) else bags[p]  # (n, d)
        n, d = data.shape
        step = max(1, STATS_BYTES // (4 * max(d, 1)))
        if buf32.shape != (step, d):
            buf32 = np.empty((step, d), dtype=np.float32)
            buf64 = np.empty((step, d), dtype=np.float64)
        for start in range(0, n, step):
            r = min(step, n - start)
            _read_rows(data, start, buf32[:r])
            block = buf64[:r]  # (r, d)
            block[...] = buf32[:r]
            b_mean = block.mean(axis=0)  # (d,)
            np.subtract(block, b_mean, out=block)
            b_m2 = np.square(block, out=block).sum(axis=0)  # (d,)
            if mean is None:
                count, mean, m2 = r, b_mean, b_m2
                continue
            total = count + r
            delta = b_mean - mean
            mean = mean + delta * (r / total)
            m2 = m2 + b_m2 + np.square(delta) * (count * r / total)
            count = total
    if mean is None:
        raise ValueError("no tiles to compute statistics over")
    return mean, np.sqrt(m2 / count), count


@dataclass(frozen=True)
class BagModality:
    """A bag of patch features per patient, standardised with training-patient tile statistics.

    ``bags`` is any mapping patient -> (n_i, d) float32 (n_i >= 1): an :class:`H5Bags` reads a
    bag from disk when a batch needs it, a dict holds them in memory.
    """

    name: str
    bags: Mapping[str, np.ndarray]  # patient -> (n_i, d) float32, n_i >= 1
    mean: np.ndarray  # (d,)
    std: np.ndarray  # (d,)

    @property
    def in_dim(self) -> int:
        return int(self.mean.shape[0])

    @property
    def patients(self) -> set[str]:
        return set(self.bags)

    def batch(self, patient_ids: Sequence[str], sampler: TileSampler | None = None) -> Batch:
        """Padded, standardised bags x (b, n, d) with mask (b, n) (True = real tile) and
        presence (b,); n is the largest bag of the batch. With ``sampler`` (training) each bag
        larger than ``sampler.k`` is replaced by ``sampler.k`` random tiles of it."""
        picks = []
        for p in patient_ids:
            size = _bag_size(self.bags, p)
            picks.append((size, sampler.pick(size) if sampler is not None and size else None))
        sizes = [size if idx is None else len(idx) for size, idx in picks]
        n = max(1, *sizes) if sizes else 1
        x = np.zeros((len(patient_ids), n, self.in_dim), dtype=np.float32)  # (b, n, d)
        mask = np.zeros((len(patient_ids), n), dtype=bool)  # (b, n), True = real patch
        for i, (p, k, (_, idx)) in enumerate(zip(patient_ids, sizes, picks, strict=True)):
            if k:
                rows = x[i, :k]  # (k, d), filled in place: no copy of a bag per patient
                if idx is not None:
                    rows[...] = self.bags[p][idx]
                elif isinstance(self.bags, H5Bags):
                    _read_rows(self.bags.dataset(p), 0, rows)
                else:
                    rows[...] = self.bags[p]
                rows -= self.mean
                rows /= self.std
                mask[i, :k] = True
        present = torch.tensor([k > 0 for k in sizes], dtype=torch.bool)
        return torch.from_numpy(x), torch.from_numpy(mask), present


Modality = TableModality | BagModality


def evaluation_parts(
    modalities: Mapping[str, Modality],
    patient_ids: Sequence[str],
    max_bytes: int | None = None,
) -> list[list[str]]:
    """``patient_ids`` cut into consecutive runs whose padded float32 bags (patients x the
    largest bag of the run x the widest bag modality) take at most ``max_bytes``
    (:data:`EVAL_BATCH_BYTES` by default); a patient whose bag alone is larger gets a run of its
    own. An evaluation batch of whole bags is run part by part, so its memory does not grow with
    the bags (in eval mode a patient's output does not depend on the others of its batch).
    Batches of small bags (the demo's) stay whole."""
    bag_mods = [m for m in modalities.values() if isinstance(m, BagModality)]
    if not bag_mods or not patient_ids:
        return [list(patient_ids)]
    max_bytes = EVAL_BATCH_BYTES if max_bytes is None else max_bytes
    max_tiles = max(1, max_bytes // (4 * max(m.in_dim for m in bag_mods)))
    parts: list[list[str]] = [[]]
    widest = 0
    for p in patient_ids:
        size = max((_bag_size(m.bags, p) for m in bag_mods), default=0)
        if parts[-1] and (len(parts[-1]) + 1) * max(widest, size) > max_tiles:
            parts.append([])
            widest = 0
        parts[-1].append(p)
        widest = max(widest, size)
    return parts


def load_table_modality(name: str, path: str) -> TableModality:
    """Load a per-fold preprocessed table (the omics stage's ``fold<k>.npz``)."""
    fold = load_omics_fold(path)
    ids = [str(p) for p in fold.patient_ids]
    return TableModality(name=name, index={p: i for i, p in enumerate(ids)}, X=fold.X)


def load_bag_modality(
    name: str, path: str, *, train_ids: Sequence[str], fold: int | None = None
) -> BagModality:
    """Open per-patient bags (``patient_bags.h5``) and fit the feature scaling on ``train_ids``.

    The bags stay on disk (:class:`H5Bags`); the scaling is the mean and standard deviation of
    the training patients' tiles from one streaming pass (:func:`bag_statistics`). Patients
    whose slides gave no tiles are treated as not having the modality. ``fold`` (the fold's
    number) is for messages.
    """
    fix_mmap_threshold()  # batches of bags: memory given back after each (see there)
    bags = H5Bags(path)
    train = [p for p in train_ids if p in bags]
    if not train:
        which = "this fold" if fold is None else f"fold {fold}"
        raise ValueError(
            f"{path}: none of the {len(train_ids)} training patient(s) of {which} has tiles for "
            f"modality {name!r} ({len(bags)} patient(s) in all have tiles); the block of "
            f"{name!r} cannot be trained in {which}"
        )
    mean, std, _ = bag_statistics(bags, train)
    std = np.where(std > 1e-6, std, 1.0).astype(np.float32)
    return BagModality(name=name, bags=bags, mean=mean.astype(np.float32), std=std)


def load_modality(
    name: str, kind: str, path: str, *, train_ids: Sequence[str], fold: int | None = None
) -> Modality:
    """Load one modality for one fold; ``kind`` is the config's ``slides`` or ``table``;
    ``fold`` (the fold's number) is for messages."""
    if kind == "slides":
        return load_bag_modality(name, path, train_ids=train_ids, fold=fold)
    return load_table_modality(name, path)


def multimodal_batch(
    modalities: Mapping[str, Modality],
    patient_ids: Sequence[str],
    *,
    device: torch.device,
    sampler: TileSampler | None = None,
) -> tuple[dict[str, tuple[torch.Tensor, torch.Tensor | None]], dict[str, torch.Tensor]]:
    """Inputs and presence masks of several modalities, as LegoMerge and LegoFuse take them;
    ``sampler`` caps the tiles of the bags (training steps only)."""
    inputs, present = {}, {}
    for name, modality in modalities.items():
        x, mask, has = modality.batch(patient_ids, sampler)
        inputs[name] = (x.to(device), None if mask is None else mask.to(device))
        present[name] = has.to(device)
    return inputs, present


def modalities_used(modalities: Mapping[str, Modality], patient_ids: Sequence[str]) -> list[str]:
    """For each patient the '+'-joined sorted names of the modalities it has."""
    return [
        "+".join(sorted(m for m, mod in modalities.items() if p in mod.patients))
        for p in patient_ids
    ]
