"""What one fold of one cohort provides to training: outcomes, roles and loaded modalities."""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from mmlego.io import read_tsv
from mmlego.training.data import Modality, load_modality


@dataclass(frozen=True)
class Fold:
    """The patients of one fold by role (train / tune / val) and their outcomes."""

    index: int
    roles: pd.Series  # patient_id -> role
    outcomes: pd.DataFrame  # index patient_id: time, event, label, ...

    @classmethod
    def read(cls, *, split: str, patients: str, index: int) -> Fold:
        roles = read_tsv(split).set_index("patient_id")["role"]
        outcomes = read_tsv(patients).set_index("patient_id")
        unknown = sorted(set(roles.index) - set(outcomes.index))
        if unknown:
            raise ValueError(
                f"{split}: patients not in {patients}: {unknown[:5]} ({len(unknown)} in all)"
            )
        return cls(index=index, roles=roles, outcomes=outcomes)

    def ids(self, role: str, *, having: Sequence[Modality] = ()) -> list[str]:
        """Sorted patients of a role that have every modality in ``having``."""
        ids = sorted(self.roles.index[self.roles == role])
        return [p for p in ids if all(p in m.patients for m in having)]

    def load(self, specs: Mapping[str, tuple[str, str]]) -> dict[str, Modality]:
        """Load modalities given as name -> (kind, path); bag scaling fitted on train patients."""
        train = self.ids("train")
        return {
            name: load_modality(name, kind, path, train_ids=train, fold=self.index)
            for name, (kind, path) in sorted(specs.items())
        }


def disjoint_assignment(
    fold: Fold, modalities: Mapping[str, Modality], *, seed: int
) -> dict[str, set[str]]:
    """Split the fold's train and tune patients so that each serves exactly one modality.

    For the modality-imbalance experiment of the MM-Lego paper: blocks trained on
    non-overlapping patients. Patients are visited in a seeded random order and given to the
    modality, among those they have, with the fewest patients so far (ties by name), which
    balances the blocks. Validation patients are untouched.
    """
    rng = np.random.default_rng([seed, fold.index])
    out: dict[str, set[str]] = {m: set() for m in modalities}
    for role in ("train", "tune"):
        counts = dict.fromkeys(modalities, 0)
        ids = fold.ids(role)
        for i in rng.permutation(len(ids)):
            have = [m for m, mod in modalities.items() if ids[i] in mod.patients]
            if have:
                pick = min(sorted(have), key=lambda m: counts[m])
                counts[pick] += 1
                out[pick].add(ids[i])
    return out


def paired_subset(ids: Sequence[str], fraction: float, *, seed: int, fold: int) -> list[str]:
    """A seeded ``fraction`` of ``ids`` (sorted), nested: a larger fraction keeps the smaller's."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"paired fraction must be in [0, 1], got {fraction}")
    order = np.random.default_rng([seed, fold]).permutation(len(ids))
    keep = order[: round(fraction * len(ids))]
    return sorted(ids[i] for i in keep)


def seed_everything(seed: int, *names: str | int) -> int:
    """Seed torch from the master seed and a stable key (e.g. modality, fold); return the seed."""
    key = zlib.crc32("/".join(str(n) for n in names).encode()) if names else 0
    derived = (seed * 1_000_003 + key) % 2**31
    torch.manual_seed(derived)
    return derived
