"""The config sections each training stage reads: the ``settings`` of its jobs.

One definition for the rules (``rules/*.smk``) and the survival bench. A change to any other
section never reruns a stage. Kept in a module of its own that no job script imports, so that
editing it does not change any script's code version (:mod:`mmlego.pipeline.code`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

STAGE_SECTIONS: dict[str, tuple[str, ...]] = {
    "block": ("task", "seed", "model", "survival", "classification", "training", "selection"),
    "merge": ("task", "seed", "survival", "classification", "training", "merge", "selection"),
    "fuse": ("task", "seed", "survival", "classification", "training", "fuse", "selection"),
    # the end-to-end concatenation baseline (trained like a block, no selection race)
    "concat_fusion": ("task", "seed", "survival", "classification", "training"),
}


def stage_settings(config: Mapping[str, Any], stage: str) -> dict[str, Any]:
    """The sections of ``config`` that stage ``stage`` reads (:data:`STAGE_SECTIONS`)."""
    return {k: config[k] for k in STAGE_SECTIONS[stage]}
