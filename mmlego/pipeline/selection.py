"""Settings chosen per fold on its training patients: successive halving over a declared space.

``selection.space.<stage>`` (stage: ``block``, ``merge``, ``fuse``) maps dotted setting keys to
the values to try, e.g. ``training.lr: [0.0003, 0.001]`` or ``encoder.dropout: [0.1, 0.3]``
(``encoder.*`` is the options of the modality's encoder). A *candidate* gives one value to each
key. Candidate 0 is always the configured settings; up to ``selection.candidates - 1`` others are
drawn from the grid without replacement, in an order seeded by the master seed, the stage and
the fold (:func:`draw_candidates`).

Successive halving (:func:`successive_halving`): with ``n`` candidates and ``eta``, there are
``R = max(1, ceil(log_eta n))`` rungs. At rung ``r`` every candidate still in the race is trained
from scratch for ``ceil(epochs / eta^(R-1-r))`` epochs (the last rung: the full budget) and
scored on the fold's ``tune`` patients; the best ``ceil(m / eta)`` of the ``m`` go on. The
model kept is the best of the last rung, trained with the full budget. The fold's validation
patients are never seen: the callers hand this module their train and tune patients only.

A tune set of tens of patients gives noisy scores, and the best of several candidates on it is
mostly the luckiest. So the configured settings (candidate 0) count as better than a challenger
unless the challenger's tune score beats theirs by more than ``selection.margin`` standard errors
of a c-index / AUC on that tune set (:func:`score_se`): a challenger is taken only on evidence.

With one candidate (an empty space or ``candidates: 1``) this is one ordinary training run.
Every function here is pure Python: the workflow checks the space at parse time with it.
"""

from __future__ import annotations

import copy
import itertools
import math
import random
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

STAGES = ("block", "merge", "fuse")
"""The stages whose settings the selection chooses, and the sections each stage's keys may name."""
SECTIONS: dict[str, tuple[str, ...]] = {
    "block": ("training", "model", "encoder"),
    "merge": ("merge",),
    "fuse": ("fuse", "training"),
}
SHARED_LATENT = ("latent_channels", "latent_dim", "frequency_domain", "track_imaginary")
"""``model`` keys that every block of a fold must share (LegoMerge / LegoFuse combine latents)."""

Candidate = dict[str, Any]  # dotted key -> value
T = TypeVar("T")


def get_dotted(settings: Mapping[str, Any], key: str) -> Any:
    """``settings["a"]["b"]`` for ``key == "a.b"``; KeyError naming the key when it is absent."""
    node: Any = settings
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise KeyError(key)
        node = node[part]
    return node


def apply_candidate(settings: Mapping[str, Any], candidate: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of ``settings`` (plain dicts and lists) with each dotted key of ``candidate``
    set to its value."""
    out = _thaw(settings)
    for key, value in candidate.items():
        *parents, leaf = key.split(".")
        node = out
        for part in parents:
            node[part] = dict(node.get(part, {}))
            node = node[part]
        node[leaf] = value
    return out


def _thaw(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _thaw(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_thaw(v) for v in value]
    return copy.deepcopy(value)


def check_space(stage: str, space: Mapping[str, Sequence[Any]]) -> None:
    """Raise ValueError naming the key if ``space`` names a section its stage cannot change."""
    if stage not in STAGES:
        raise ValueError(f"selection.space: unknown stage {stage!r}; known: {list(STAGES)}")
    for key, values in space.items():
        section, _, name = key.partition(".")
        where = f"selection.space.{stage}.{key}"
        if section not in SECTIONS[stage] or not name:
            allowed = [f"{s}.<key>" for s in SECTIONS[stage]]
            raise ValueError(f"{where}: the {stage} stage chooses only {allowed}")
        if section == "model" and name in SHARED_LATENT:
            raise ValueError(
                f"{where}: every block of a fold shares the latent ({', '.join(SHARED_LATENT)}); "
                "set it once in `model`"
            )
        if key == "fuse.patients":
            raise ValueError(
                f"{where}: the patients LegoFuse is fine-tuned on are also the ones its race is "
                "scored on; set it once in `fuse`"
            )
        if key == "fuse.refit":
            raise ValueError(
                f"{where}: refit fine-tunes the race's winner on the tune patients, so no race "
                "can score it; set it once in `fuse`"
            )
        if not values:
            raise ValueError(f"{where}: give at least one value")


def draw_candidates(
    base: Mapping[str, Any],
    space: Mapping[str, Sequence[Any]],
    n: int,
    *,
    seed: int,
    key: Sequence[str | int],
) -> list[Candidate]:
    """Candidate 0 = ``base``'s own values of the space's keys, then up to ``n - 1`` other points
    of the grid in a seeded order (``seed`` and ``key``, e.g. stage and fold). Keys that ``base``
    does not have (an encoder without that option) are left out."""
    keys = []
    for k in sorted(space):
        try:
            get_dotted(base, k)
        except KeyError:
            continue
        keys.append(k)
    first = {k: get_dotted(base, k) for k in keys}
    grid = [
        dict(zip(keys, vals, strict=True)) for vals in itertools.product(*(space[k] for k in keys))
    ]
    others = [c for c in grid if c != first]
    order = random.Random(seed * 1_000_003 + zlib.crc32("/".join(map(str, key)).encode()))
    order.shuffle(others)
    return [first, *others[: max(n, 1) - 1]]


def stage_candidates(
    stage: str,
    base: Mapping[str, Any],
    settings: Mapping[str, Any],
    *key: str | int,
    race: bool = True,
) -> list[Candidate]:
    """The candidates of one stage's race, from a job's ``settings`` (their ``selection`` and
    ``seed``), drawn with the seed key ``(stage, *key)``; ``race=False`` (no patients to score
    on): the configured settings alone."""
    selection = settings["selection"]
    space = selection["space"][stage] if race else {}
    n, seed = selection["candidates"], settings["seed"]
    return draw_candidates(base, space, n, seed=seed, key=(stage, *key))


@dataclass(frozen=True)
class Trial:
    """One candidate trained (or scored) at one rung."""

    candidate: int
    rung: int
    epochs: int
    score: float


@dataclass(frozen=True)
class Outcome(Generic[T]):
    """The chosen candidate, what its run returned (the trained model), and every trial."""

    chosen: int
    result: T
    trials: list[Trial]


def rung_epochs(epochs: int, n: int, eta: int) -> list[int]:
    """The training budget of each rung: ``ceil(epochs / eta^(R-1-r))``, the last one in full."""
    rungs = max(1, math.ceil(math.log(n, eta) - 1e-9)) if n > 1 else 1
    return [max(1, math.ceil(epochs / eta ** (rungs - 1 - r))) for r in range(rungs)]


def score_se(n_positive: int, n_negative: int) -> float:
    """Standard error of a c-index / AUC on a tune set with ``n_positive`` events (or cases of
    the rarest class) and ``n_negative`` others: that of the Mann-Whitney statistic between
    uninformative scores, ``sqrt((n1 + n2 + 1) / (12 n1 n2))``; infinite without both kinds."""
    if n_positive < 1 or n_negative < 1:
        return math.inf
    return math.sqrt((n_positive + n_negative + 1) / (12 * n_positive * n_negative))


def successive_halving(
    candidates: Sequence[Candidate],
    run: Callable[[Candidate, int], tuple[float, T]],
    *,
    epochs: int,
    eta: int,
    margin: float = 0.0,
) -> Outcome[T]:
    """Race ``candidates``: ``run(candidate, epochs) -> (tune score, result)``, higher is better
    (NaN counts as the worst; ties go to the lower candidate index, the configured settings
    first). ``epochs == 0`` (nothing to train, e.g. LegoMerge) scores each candidate once.
    ``margin``: the configured settings (candidate 0) are ranked as if they scored this much
    more (a challenger must beat them by more than ``margin``)."""
    if not candidates:
        raise ValueError("no candidate settings to choose from")
    if eta < 2:
        raise ValueError(f"selection.eta must be >= 2, got {eta}")
    if not margin >= 0:
        raise ValueError(f"the configured settings' margin must be >= 0, got {margin}")
    budgets = rung_epochs(epochs, len(candidates), eta) if epochs > 0 else [0]
    alive = list(range(len(candidates)))
    trials: list[Trial] = []
    best: tuple[float, int, T] | None = None
    for rung, budget in enumerate(budgets):
        last = rung == len(budgets) - 1
        scored = []
        for i in alive:
            score, result = run(candidates[i], budget)
            score = float(score)
            trials.append(Trial(i, rung, budget, score))
            rank = score if math.isfinite(score) else -math.inf
            rank += margin if i == 0 else 0.0
            scored.append((rank, i))
            if last and (best is None or rank > best[0]):
                best = (rank, i, result)
        scored.sort(key=lambda s: (-s[0], s[1]))
        alive = sorted(i for _, i in scored[: math.ceil(len(scored) / eta)])
    assert best is not None
    return Outcome(chosen=best[1], result=best[2], trials=trials)


def trials_table(
    stage: str, candidates: Sequence[Candidate], outcome: Outcome[Any]
) -> list[dict[str, Any]]:
    """One row per trial: stage, candidate, rung, epochs, tune_score, chosen, and its settings."""
    return [
        {
            "stage": stage,
            "candidate": t.candidate,
            "rung": t.rung,
            "epochs": t.epochs,
            "tune_score": t.score,
            "chosen": t.candidate == outcome.chosen and t.rung == outcome.trials[-1].rung,
            **{k: _cell(v) for k, v in candidates[t.candidate].items()},
        }
        for t in outcome.trials
    ]


def _cell(value: Any) -> Any:
    return str(value).lower() if isinstance(value, bool) else value
