"""The model registry: every model the workflow scores, and what the workflow needs to know of it.

A model name is a template when it stands for a family: ``block_{modality}`` is one unimodal
LegoBlock per modality, ``lego_fuse_paired{pct}`` one LegoFuse per paired-data budget. Adding a
model means adding its :class:`ModelSpec` here, its rule (writing :meth:`Paths.predictions`)
and its code; the rule lists, evaluation, report and cluster profile checks read this table.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

TASKS = ("survival", "classification")
#: The patient columns that each task's models learn from (and its features are chosen by).
OUTCOME_COLUMNS = {"survival": ("time", "event"), "classification": ("label",)}


@dataclass(frozen=True)
class ModelSpec:
    """One model (or family of models) scored by the evaluation."""

    name: str  # model name, or a template with {modality} / {pct}
    rule: str  # the Snakemake rule that writes its predictions
    label: str  # how the report names it
    artifacts: str | None = None  # folder (under results/<cohort>) of fold<k>.pt / .history.tsv
    tasks: tuple[str, ...] = TASKS
    gpu: bool = False  # its rule trains on a GPU (resources: gpu=1)
    history: bool = False  # writes a training history (fold<k>.history.tsv)
    selects: bool = False  # chooses its settings on the tune patients (fold<k>.selection.tsv)
    lego: bool = False  # an MM-Lego model (LegoMerge / LegoFuse), not a baseline
    experiment: bool = False  # one of the modality-imbalance experiments
    cost_rules: tuple[str, ...] = ()  # rules whose benchmarks make up its compute cost
    reuses_blocks: bool = False  # built from the trained LegoBlocks (cost includes them)
    cost_label: str | None = None  # its row in the report's compute-cost table (default: label)

    @property
    def family(self) -> bool:
        return "{" in self.name

    @property
    def pattern(self) -> re.Pattern[str]:
        """Matches the concrete names of this spec (a wildcard such as ``{fold}`` included)."""
        regex = re.escape(self.name)
        for key, part in (("modality", r"[A-Za-z0-9._{}-]+"), ("pct", r"\d+|\{pct\}")):
            regex = regex.replace(re.escape("{" + key + "}"), f"(?P<{key}>{part})")
        return re.compile(regex)


MODELS: tuple[ModelSpec, ...] = (
    ModelSpec(
        "block_{modality}",
        rule="train_block",
        label="LegoBlock ({modality})",
        artifacts="blocks/{modality}",
        cost_label="LegoBlocks (unimodal training)",
        gpu=True,
        history=True,
        cost_rules=("train_block",),
        selects=True,
    ),
    ModelSpec(
        "late_fusion_mean_risk",
        rule="late_fusion",
        label="Late fusion (mean risk of the blocks)",
    ),
    ModelSpec(
        "lego_merge",
        rule="merge",
        label="LegoMerge (no training)",
        artifacts="merge",
        lego=True,
        cost_rules=("merge",),
        reuses_blocks=True,
        selects=True,
    ),
    ModelSpec(
        "lego_fuse",
        rule="fuse",
        label="LegoFuse (fine-tuning)",
        artifacts="fuse",
        gpu=True,
        history=True,
        lego=True,
        cost_rules=("fuse",),
        reuses_blocks=True,
        selects=True,
    ),
    ModelSpec(
        "coxnet",
        rule="linear_baseline",
        label="Penalised linear model (tables + slide means)",
        artifacts="baselines/coxnet",
        tasks=("survival",),
        cost_rules=("linear_baseline",),
    ),
    ModelSpec(
        "logistic_enet",
        rule="linear_baseline",
        label="Penalised linear model (tables + slide means)",
        artifacts="baselines/logistic_enet",
        tasks=("classification",),
        cost_rules=("linear_baseline",),
    ),
    ModelSpec(
        "rsf",
        rule="forest_baseline",
        label="Random (survival) forest (tables + slide means)",
        tasks=("survival",),
        cost_rules=("forest_baseline",),
    ),
    ModelSpec(
        "random_forest",
        rule="forest_baseline",
        label="Random (survival) forest (tables + slide means)",
        tasks=("classification",),
        cost_rules=("forest_baseline",),
    ),
    ModelSpec(
        "e2e_concat_fusion",
        rule="concat_fusion",
        label="End-to-end concatenation fusion",
        artifacts="baselines/e2e_concat_fusion",
        gpu=True,
        history=True,
        cost_rules=("concat_fusion",),
    ),
    ModelSpec(
        "late_fusion_concat",
        rule="late_fusion_concat",
        label="Late fusion of block embeddings",
        artifacts="baselines/late_fusion_concat",
        cost_rules=("late_fusion_concat",),
        reuses_blocks=True,
    ),
    ModelSpec(
        "lego_fuse_paired{pct}",
        rule="fuse_budget",
        label="LegoFuse on {pct} % of the paired patients",
        artifacts="experiments/budget/paired{pct}",
        gpu=True,
        history=True,
        lego=True,
        experiment=True,
        selects=True,
    ),
    ModelSpec(
        "disjoint_block_{modality}",
        rule="train_block_disjoint",
        label="LegoBlock ({modality}) on disjoint patients",
        artifacts="experiments/disjoint/blocks/{modality}",
        gpu=True,
        history=True,
        experiment=True,
        selects=True,
    ),
    ModelSpec(
        "disjoint_lego_merge",
        rule="merge_disjoint",
        label="LegoMerge of blocks on disjoint patients",
        artifacts="experiments/disjoint/merge",
        lego=True,
        experiment=True,
        selects=True,
    ),
    ModelSpec(
        "disjoint_lego_fuse",
        rule="fuse_disjoint",
        label="LegoFuse of blocks on disjoint patients",
        artifacts="experiments/disjoint/fuse",
        gpu=True,
        history=True,
        lego=True,
        experiment=True,
        selects=True,
    ),
)

ORACLE_MODEL = "oracle_synthetic_true_risk"  # the synthetic cohort's true risk, scored like a model


def spec_of(model: str) -> tuple[ModelSpec, dict[str, str]]:
    """The spec of a concrete model name (or template) and its parameters (modality, pct)."""
    for spec in MODELS:
        match = spec.pattern.fullmatch(str(model))
        if match:
            return spec, match.groupdict()
    raise KeyError(f"unknown model {model!r}; known: {[s.name for s in MODELS]}")


def is_lego(model: str) -> bool:
    """Whether a model is an MM-Lego model (LegoMerge / LegoFuse and their experiment variants)."""
    try:
        return spec_of(model)[0].lego
    except KeyError:
        return False


def model_for(rule: str, task: str) -> str:
    """The one model that ``rule`` writes for ``task`` (e.g. linear_baseline -> coxnet)."""
    names = [s.name for s in MODELS if s.rule == rule and task in s.tasks and not s.family]
    if len(names) != 1:
        raise KeyError(f"rule {rule!r} writes {len(names)} models for task {task!r}: {names}")
    return names[0]


def expand_name(spec: ModelSpec, **params: Any) -> str:
    return spec.name.format(**params) if spec.family else spec.name


def model_names(
    *,
    task: str,
    modalities: Sequence[str],
    experiments: Mapping[str, Any] | None = None,
    include_experiments: bool = True,
) -> list[str]:
    """Every model the evaluation scores for this configuration, in registry order.

    Per-modality families are expanded over the sorted ``modalities``; ``lego_fuse_paired{pct}``
    over ``experiments.paired_budget``; the disjoint-patient models only when
    ``experiments.disjoint`` is true.
    """
    experiments = experiments or {}
    budget = [int(p) for p in experiments.get("paired_budget", [])]
    names: list[str] = []
    for spec in MODELS:
        if task not in spec.tasks or (spec.experiment and not include_experiments):
            continue
        if spec.experiment and "pct" not in spec.name and not experiments.get("disjoint"):
            continue
        if "{modality}" in spec.name:
            names += [expand_name(spec, modality=m) for m in sorted(modalities)]
        elif "{pct}" in spec.name:
            names += [expand_name(spec, pct=p) for p in budget]
        else:
            names.append(spec.name)
    return names


def compute_approaches() -> tuple[tuple[str, str, bool], ...]:
    """Rows of the report's compute-cost table: (label, rules joined by ``+``, adds the
    blocks' cost), one per distinct set of rules, in registry order."""
    rows: dict[str, tuple[str, str, bool]] = {}
    for spec in MODELS:
        if spec.cost_rules:
            rules = "+".join(spec.cost_rules)
            label = spec.cost_label or spec.label
            rows.setdefault(rules, (label, rules, spec.reuses_blocks))
    return tuple(rows.values())


def gpu_rules() -> set[str]:
    """Rules that train on a GPU (the cluster profile must give them one)."""
    return {s.rule for s in MODELS if s.gpu}


def history_models(names: Sequence[str]) -> list[str]:
    """The models among ``names`` that write a training history."""
    return [n for n in names if spec_of(n)[0].history]


def selecting_models(names: Sequence[str]) -> list[str]:
    """The models among ``names`` that choose their settings on the tune patients."""
    return [n for n in names if spec_of(n)[0].selects]
