"""``python -m mmlego.bench.tcga_ucec_subtype``: TCGA-UCEC histological subtype (UEC vs USC)
classification from CNV and mutations, AUC per fold (see :mod:`mmlego.bench.tcga`)."""

from __future__ import annotations

import sys

from mmlego.bench.tcga import UCEC_SUBTYPE, main

if __name__ == "__main__":
    raise SystemExit(main(UCEC_SUBTYPE, sys.argv[1:]))
