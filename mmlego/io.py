"""Atomic file output and small table helpers shared by every stage.

Every file the pipeline writes goes through :func:`atomic_path`: the content is written to a
temporary file in the destination folder and renamed into place only when complete, so a killed
job never leaves a partial file that looks finished.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd


@contextmanager
def atomic_path(path: str | os.PathLike, *, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds.

    The temporary file keeps the destination's suffix (``suffix`` overrides it) so that
    libraries that infer a format from the extension (HDF5, TIFF, PNG) still work.
    """
    dest = Path(path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{dest.name}.",
        suffix=suffix if suffix is not None else "".join(dest.suffixes),
        dir=dest.parent,
    )
    os.close(fd)
    tmp_path = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp creates 0600; give the usual permissions
    try:
        yield tmp_path
        os.replace(tmp_path, dest)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_tsv(df: pd.DataFrame, path: str | os.PathLike, *, index: bool = False) -> None:
    """Write a tab-separated table atomically."""
    with atomic_path(path) as tmp:
        df.to_csv(tmp, sep="\t", index=index)


#: Columns read as text whatever they hold: ids, and class labels ("01" is not the number 1).
TEXT_COLUMNS = ("patient_id", "slide_id", "label")


def read_tsv(path: str | os.PathLike, *, text: Iterable[str] = (), **kwargs: Any) -> pd.DataFrame:
    """Read a tab-separated table written by :func:`write_tsv`; the columns of
    :data:`TEXT_COLUMNS` and ``text`` are kept as strings."""
    dtype = dict.fromkeys((*TEXT_COLUMNS, *text), str)
    return pd.read_csv(path, sep="\t", dtype=dtype, **kwargs)


def write_json(obj: Any, path: str | os.PathLike) -> None:
    """Write JSON atomically (sorted keys, indented, so that diffs and checksums are stable)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")
