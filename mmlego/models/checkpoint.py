"""Saving and loading LegoBlock / LegoMerge / LegoFuse models.

A checkpoint is a ``torch.save`` of a plain dict readable with ``weights_only=True``::

    {"format": "mmlego-model", "version": 1,
     "config": "<JSON: the module's config, incl. encoder kinds and kwargs>",
     "extra": "<JSON: caller's metadata>",
     "state_dict": {name: tensor (CPU)}}
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from mmlego.io import atomic_path
from mmlego.models.concat_fusion import ConcatFusion
from mmlego.models.ensemble import Ensemble
from mmlego.models.lego_block import LegoBlock
from mmlego.models.lego_fuse import LegoFuse
from mmlego.models.lego_merge import LegoMerge

FORMAT, VERSION = "mmlego-model", 1
MODEL_TYPES: dict[str, Any] = {
    "LegoBlock": LegoBlock,
    "LegoMerge": LegoMerge,
    "LegoFuse": LegoFuse,
    "ConcatFusion": ConcatFusion,
    "Ensemble": Ensemble,
}


@dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint: the rebuilt module, its config and the caller's extra metadata."""

    model: nn.Module
    config: dict[str, Any]
    extra: dict[str, Any]


def build_model(config: dict[str, Any]) -> nn.Module:
    """A freshly initialised module from a config dict (its ``type`` picks the class)."""
    kind = config.get("type")
    if kind == "Ensemble":
        return Ensemble([build_model(member) for member in config["members"]])
    if kind not in MODEL_TYPES:
        raise ValueError(f"unknown model type {kind!r}; known: {sorted(MODEL_TYPES)}")
    return MODEL_TYPES[kind].from_config(config)


def save_model(module: nn.Module, path: str | os.PathLike, *, extra: dict | None = None) -> None:
    """Write ``module`` (weights + config that rebuilds it) and JSON-able ``extra`` atomically."""
    if not isinstance(module, tuple(MODEL_TYPES.values())):
        raise ValueError(
            f"{path}: can only save {sorted(MODEL_TYPES)}, got {type(module).__name__}"
        )
    try:
        config = json.dumps(module.config, sort_keys=True)
        extra_json = json.dumps(extra or {}, sort_keys=True)
    except TypeError as err:
        raise ValueError(f"{path}: model config or extra is not JSON-serialisable: {err}") from err
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "config": config,
        "extra": extra_json,
        "state_dict": {k: v.detach().cpu().clone() for k, v in module.state_dict().items()},
    }
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Read a checkpoint written by :func:`save_model` (``weights_only=True``); CPU tensors."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"model checkpoint not found: {path}")
    try:
        payload = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as err:  # unpickling errors of several kinds
        raise ValueError(f"{path}: not a readable mmlego checkpoint ({err})") from err
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{path}: not an mmlego model checkpoint (format field missing)")
    if payload.get("version") != VERSION:
        raise ValueError(f"{path}: checkpoint version {payload.get('version')}, expected {VERSION}")
    config = json.loads(payload["config"])
    model = build_model(config)
    try:
        model.load_state_dict(payload["state_dict"], strict=True)
    except RuntimeError as err:
        raise ValueError(f"{path}: weights do not match the saved config: {err}") from err
    return Checkpoint(model=model, config=config, extra=json.loads(payload["extra"]))


def load_model(path: str | os.PathLike) -> nn.Module:
    """The module saved at ``path`` (in eval mode is up to the caller; CPU tensors)."""
    return load_checkpoint(path).model
