"""mmlego.models: the MM-Lego model library (torch).

Modules, each named for what it holds:

- :mod:`~mmlego.models.attention` -- pre-norm multi-head attention (SDPA, key mask) and the
  SELU-gated feed-forward.
- :mod:`~mmlego.models.encoders` -- modality encoders (``SNN``, ``ABMIL``, ``MLPEncoder``,
  ``RawEncoder``), the registry ``build_encoder`` / ``register_block_encoder`` and the encoder
  interface.
- :mod:`~mmlego.models.lego_block` -- ``LegoBlock``: encoder + frequency-domain latent
  cross-attention + head.
- :mod:`~mmlego.models.lego_merge` -- ``LegoMerge`` (no training): harmonic / mean / balanced /
  sum / product latent merges, SLERP and spherical-mean head merges.
- :mod:`~mmlego.models.lego_fuse` -- ``LegoFuse`` (fine-tuning): stack and weave.
- :mod:`~mmlego.models.ensemble` -- ``Ensemble``: a seed ensemble (mean of its members' logits).
- :mod:`~mmlego.models.survival` -- discrete-time hazard bins, NLL, survival curve, risk.
- :mod:`~mmlego.models.checkpoint` -- ``save_model`` / ``load_model``.
"""

from mmlego.models.checkpoint import load_checkpoint, load_model, save_model
from mmlego.models.encoders import ABMIL, SNN, MLPEncoder, build_encoder, register_block_encoder
from mmlego.models.ensemble import Ensemble
from mmlego.models.lego_block import LegoBlock
from mmlego.models.lego_fuse import LegoFuse
from mmlego.models.lego_merge import LegoMerge

__all__ = [
    "ABMIL",
    "SNN",
    "Ensemble",
    "LegoBlock",
    "LegoFuse",
    "LegoMerge",
    "MLPEncoder",
    "build_encoder",
    "load_checkpoint",
    "load_model",
    "register_block_encoder",
    "save_model",
]
