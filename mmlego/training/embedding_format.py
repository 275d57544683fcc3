"""The columns of a block-embeddings file (``baselines/embeddings/<m>/fold<k>.tsv``).

``patient_id``, then ``m<member>_z<j>``: coordinate j of the embedding of the block's seed
ensemble member ``member``. Written by :mod:`mmlego.training.embeddings` (torch), read by
:func:`mmlego.training.baselines.late_fusion_concat_fold` (scikit-survival); this module imports
neither, so that both environments share it.
"""

from __future__ import annotations

import re

EMBEDDING_COLUMN = re.compile(r"m(?P<member>\d+)_z(?P<j>\d+)")


def embedding_column(member: int, j: int) -> str:
    """The name of coordinate ``j`` of ensemble member ``member``'s embedding."""
    return f"m{member}_z{j}"
