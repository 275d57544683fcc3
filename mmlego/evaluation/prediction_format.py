"""The score columns of a predictions file (``predictions/<model>/fold<k>.tsv``).

Besides ``patient_id``, the outcome and ``modalities``, a model writes its scores:

- survival: ``risk`` (higher = earlier event) and optionally ``surv_at_<t>``, the predicted
  probability of surviving past time ``t`` (``t`` written with 6 significant digits);
- classification: ``prob_<class>``, one probability per class.

Written by the torch models (:mod:`mmlego.training.tasks`), the penalised models and forests
(:mod:`mmlego.training.baselines`, :mod:`mmlego.training.forests`), read by the late fusion and
:mod:`mmlego.evaluation.evaluate`; this module imports nothing else, so every environment shares it.
"""

from __future__ import annotations

RISK = "risk"
SURV_PREFIX = "surv_at_"
PROB_PREFIX = "prob_"


def surv_column(t: float) -> str:
    """The name of the column of the survival probability at time ``t``."""
    return f"{SURV_PREFIX}{t:.6g}"


def surv_time(column: str) -> float:
    """The time ``t`` of a ``surv_at_<t>`` column (ValueError when ``<t>`` is not a number)."""
    return float(column.removeprefix(SURV_PREFIX))


def prob_column(label: object) -> str:
    """The name of the column of the probability of class ``label``."""
    return f"{PROB_PREFIX}{label}"


def prob_class(column: str) -> str:
    """The class of a ``prob_<class>`` column."""
    return column.removeprefix(PROB_PREFIX)


def is_score_column(column: str) -> bool:
    """Whether ``column`` holds a score (risk, survival probability or class probability)."""
    return column == RISK or column.startswith((SURV_PREFIX, PROB_PREFIX))
