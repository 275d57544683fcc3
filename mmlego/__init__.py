"""mmlego: MM-Lego (Hemker, Simidjievski, Jamnik; ICLR 2025) for slides and omics.

The model API, usable outside the workflow::

    from mmlego import LegoBlock, LegoMerge, LegoFuse

The names are imported lazily so that light modules (config, demo design, sheets) can be used
without importing torch, e.g. by the Snakefile at parse time.
"""

from importlib import import_module

__all__ = ["LegoBlock", "LegoFuse", "LegoMerge"]
__version__ = "0.1.0"

_LAZY = {
    "LegoBlock": "mmlego.models.lego_block",
    "LegoMerge": "mmlego.models.lego_merge",
    "LegoFuse": "mmlego.models.lego_fuse",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'mmlego' has no attribute {name!r}")
