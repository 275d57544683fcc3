"""What one fold provides to training: its loaded modalities, patient subsets and seeds.

The fold itself (patients by role, outcomes) is :class:`mmlego.pipeline.fold.Fold`.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from mmlego.cohort.splits import tune_group_column
from mmlego.pipeline.fold import DEVELOPMENT_ROLES, FIT_ROLES, Fold
from mmlego.training.data import Modality, load_modality


def load_fold_modalities(fold: Fold, specs: Mapping[str, tuple[str, str]]) -> dict[str, Modality]:
    """Load modalities given as name -> (kind, path); bag scaling fitted on the fold's
    :data:`~mmlego.pipeline.fold.FIT_ROLES` patients."""
    fit = fold.ids_in(FIT_ROLES)
    return {
        name: load_modality(name, kind, path, train_ids=fit, fold=fold.index)
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
    for role in DEVELOPMENT_ROLES:
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


def derive_seed(seed: int, *names: str | int) -> int:
    """A seed from the master seed and a stable key (e.g. modality, fold); seeds nothing."""
    key = zlib.crc32("/".join(str(n) for n in names).encode()) if names else 0
    return (seed * 1_000_003 + key) % 2**31


def seed_everything(seed: int, *names: str | int) -> int:
    """Seed torch with :func:`derive_seed` of the master seed and a key; return the seed."""
    derived = derive_seed(seed, *names)
    torch.manual_seed(derived)
    return derived


def member_key(member: int) -> tuple[int, ...]:
    """The extra seed key of seed-ensemble member ``member``: none for the first, which is thus
    seeded as a model without an ensemble."""
    return (member,) if member else ()


def member_view(fold: Fold, member: int, settings: Mapping) -> Fold:
    """The fold as ensemble member ``member`` trains on it: the fold itself with
    ``training.member_tune: fixed``, its rotated tune set with ``rotate``
    (:meth:`~mmlego.pipeline.fold.Fold.for_member`)."""
    if settings["training"]["member_tune"] == "fixed":
        return fold
    return fold.for_member(member, seed=settings["seed"], by=tune_group_column(settings["task"]))
