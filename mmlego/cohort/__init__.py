"""mmlego.cohort: load and validate a cohort's sheets, and make patient-level folds.

- :mod:`mmlego.cohort.sheets`: :func:`load_cohort` / :func:`load_cohort_folder` -> :class:`Cohort`
  (patients, slides, omics tables, modality availability), :class:`CohortError`.
- :mod:`mmlego.cohort.splits`: :func:`make_folds`, :func:`write_folds`, :func:`read_split_files`,
  :func:`check_folds`.
"""

from mmlego.cohort.sheets import Cohort, CohortError, load_cohort, load_cohort_folder
from mmlego.cohort.splits import (
    SplitError,
    check_folds,
    make_folds,
    read_split_files,
    write_folds,
)

__all__ = [
    "Cohort",
    "CohortError",
    "SplitError",
    "check_folds",
    "load_cohort",
    "load_cohort_folder",
    "make_folds",
    "read_split_files",
    "write_folds",
]
