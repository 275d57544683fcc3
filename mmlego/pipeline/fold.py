"""One fold's patients by role, and which roles each use of "training patients" means.

A split file (``splits/fold<k>.tsv``) gives each patient one :class:`Role`:

- ``train``: fits the models, and every statistic a model sees (bin edges, scalers,
  feature selection, tile statistics): :data:`FIT_ROLES`;
- ``tune``: held out of fitting for early stopping and the choice of settings;
- ``val``: scored once.

Models without early stopping (the penalised and forest baselines, late fusion of
embeddings) fit on every non-validation patient, :data:`DEVELOPMENT_ROLES`, choosing their
penalty by inner cross-validation; the evaluation's censoring and time grid come from the same
development patients.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import pandas as pd

from mmlego.io import read_tsv


class Role(StrEnum):
    TRAIN = "train"
    TUNE = "tune"
    VAL = "val"


ROLES: tuple[str, ...] = tuple(r.value for r in Role)
FIT_ROLES: tuple[str, ...] = (Role.TRAIN.value,)
DEVELOPMENT_ROLES: tuple[str, ...] = (Role.TRAIN.value, Role.TUNE.value)


@dataclass(frozen=True)
class Fold:
    """The patients of one fold by role (train / tune / val) and their outcomes."""

    index: int
    roles: pd.Series  # patient_id -> role
    outcomes: pd.DataFrame  # index patient_id: time, event, label, ...

    @classmethod
    def read(cls, *, split: str, patients: str, index: int) -> Fold:
        roles = read_split(split)
        outcomes = read_tsv(patients).set_index("patient_id")
        unknown = sorted(set(roles.index) - set(outcomes.index))
        if unknown:
            raise ValueError(
                f"{split}: patients not in {patients}: {unknown[:5]} ({len(unknown)} in all)"
            )
        return cls(index=index, roles=roles, outcomes=outcomes)

    def ids(self, role: str, *, having: Iterable = ()) -> list[str]:
        """Sorted patients of a role that have every modality in ``having`` (``.patients``)."""
        having = list(having)
        ids = sorted(self.roles.index[self.roles == Role(role).value])
        return [p for p in ids if all(p in m.patients for m in having)]

    def for_member(self, member: int, *, seed: int, by: str = "event") -> Fold:
        """The fold as seed-ensemble member ``member`` sees it when members rotate their tune set.

        The development patients fall into ``G`` groups of about the tune set's size: group 0 is
        the fold's tune set, the train patients are dealt to the other ``G - 1`` (a seeded
        shuffle, then by the outcome column ``by``, the task's
        :func:`~mmlego.cohort.splits.tune_group_column`, so that each group gets its share of
        events or of each class). Member ``m`` holds out group ``m mod G`` as its tune set and
        trains on the rest: member 0 is the fold as it is, and with ``G`` members or more every
        development patient trains all but one in ``G``. Validation patients keep their role.
        """
        tune, train = self.ids(Role.TUNE), self.ids(Role.TRAIN)
        n_groups = max(2, round((len(train) + len(tune)) / len(tune))) if tune else 1
        group = member % n_groups
        if group == 0:  # member 0, every n_groups-th member, or no tune set to rotate
            return self
        rng = np.random.default_rng([seed, self.index, n_groups])
        shuffled = [train[i] for i in rng.permutation(len(train))]
        if by in self.outcomes.columns:  # stable: each stratum dealt round-robin in turn
            code, _ = pd.factorize(self.outcomes[by].reindex(shuffled).astype(str), sort=True)
            shuffled = [shuffled[i] for i in np.argsort(-code, kind="stable")]  # events first
        held = set(shuffled[group - 1 :: n_groups - 1])
        roles = self.roles.copy()
        roles[roles.index.isin(tune)] = Role.TRAIN.value
        roles[roles.index.isin(held)] = Role.TUNE.value
        return Fold(index=self.index, roles=roles, outcomes=self.outcomes)

    def ids_in(self, roles: Iterable[str]) -> list[str]:
        """Sorted patients of any of ``roles`` (e.g. :data:`DEVELOPMENT_ROLES`)."""
        wanted = {Role(r).value for r in roles}
        return sorted(self.roles.index[self.roles.isin(wanted)])


def read_split(path: str) -> pd.Series:
    """A split file as ``patient_id -> role`` (str ids), checking the roles."""
    split = read_tsv(path)
    missing = {"patient_id", "role"} - set(split.columns)
    if missing:
        raise ValueError(f"{path}: split file lacks column(s) {sorted(missing)}")
    bad = sorted(set(split["role"].astype(str)) - set(ROLES))
    if bad:
        raise ValueError(f"{path}: unknown role(s) {bad}; roles are {list(ROLES)}")
    return split.assign(patient_id=split["patient_id"].astype(str)).set_index("patient_id")["role"]


def patients_in(split: pd.DataFrame, roles: Iterable[str]) -> pd.Series:
    """The ``patient_id`` column of a split table, restricted to ``roles``."""
    wanted = {Role(r).value for r in roles}
    return split.loc[split["role"].isin(wanted), "patient_id"]
