"""Per-patient model inputs of one modality, and how a batch of patients is assembled.

A modality is either a table (one preprocessed vector per patient, from the omics stage) or
bags of patch features (all tiles of all of a patient's slides). Both answer the same question:
for these patients, what goes into the encoder, with which padding mask, and who has it at all.
A patient without the modality is marked absent; the models never see a zero-filled stand-in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import h5py
import numpy as np
import torch

from mmlego.omics.preprocess import load_omics_fold

Batch = tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]  # x, mask, present (b,)


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

    def batch(self, patient_ids: Sequence[str]) -> Batch:
        present = torch.tensor([p in self.index for p in patient_ids], dtype=torch.bool)
        x = np.zeros((len(patient_ids), self.in_dim), dtype=np.float32)  # (b, d)
        rows = [self.index[p] for p in patient_ids if p in self.index]
        x[present.numpy()] = self.X[rows]
        return torch.from_numpy(x), None, present


@dataclass(frozen=True)
class BagModality:
    """A bag of patch features per patient, standardised with training-patient tile statistics."""

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

    def batch(self, patient_ids: Sequence[str]) -> Batch:
        sizes = [len(self.bags[p]) if p in self.bags else 0 for p in patient_ids]
        n = max(1, *sizes) if sizes else 1
        x = np.zeros((len(patient_ids), n, self.in_dim), dtype=np.float32)  # (b, n, d)
        mask = np.zeros((len(patient_ids), n), dtype=bool)  # (b, n), True = real patch
        for i, (p, k) in enumerate(zip(patient_ids, sizes, strict=True)):
            if k:
                x[i, :k] = (self.bags[p] - self.mean) / self.std
                mask[i, :k] = True
        present = torch.tensor([k > 0 for k in sizes], dtype=torch.bool)
        return torch.from_numpy(x), torch.from_numpy(mask), present


Modality = TableModality | BagModality


def load_table_modality(name: str, path: str) -> TableModality:
    """Load a per-fold preprocessed table (the omics stage's ``fold<k>.npz``)."""
    fold = load_omics_fold(path)
    ids = [str(p) for p in fold.patient_ids]
    return TableModality(name=name, index={p: i for i, p in enumerate(ids)}, X=fold.X)


def load_bag_modality(
    name: str, path: str, *, train_ids: Sequence[str], fold: int | None = None
) -> BagModality:
    """Load per-patient bags (``patient_bags.h5``) and fit the feature scaling on ``train_ids``.

    Patients whose slides gave no tiles are treated as not having the modality. ``fold`` (the
    fold's number) is for messages.
    """
    with h5py.File(path, "r") as f:
        bags = {
            str(p): f[p]["features"][()].astype(np.float32)
            for p in f
            if f[p]["features"].shape[0] > 0
        }
    train = [bags[p] for p in train_ids if p in bags]
    if not train:
        which = "this fold" if fold is None else f"fold {fold}"
        raise ValueError(
            f"{path}: none of the {len(train_ids)} training patient(s) of {which} has tiles for "
            f"modality {name!r} ({len(bags)} patient(s) in all have tiles); the block of "
            f"{name!r} cannot be trained in {which}"
        )
    tiles = np.concatenate(train)  # (N, d)
    mean = tiles.mean(axis=0)
    std = tiles.std(axis=0)
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
    modalities: Mapping[str, Modality], patient_ids: Sequence[str], *, device: torch.device
) -> tuple[dict[str, tuple[torch.Tensor, torch.Tensor | None]], dict[str, torch.Tensor]]:
    """Inputs and presence masks of several modalities, as LegoMerge and LegoFuse take them."""
    inputs, present = {}, {}
    for name, modality in modalities.items():
        x, mask, has = modality.batch(patient_ids)
        inputs[name] = (x.to(device), None if mask is None else mask.to(device))
        present[name] = has.to(device)
    return inputs, present


def modalities_used(modalities: Mapping[str, Modality], patient_ids: Sequence[str]) -> list[str]:
    """For each patient the '+'-joined sorted names of the modalities it has."""
    return [
        "+".join(sorted(m for m, mod in modalities.items() if p in mod.patients))
        for p in patient_ids
    ]
