"""``python -m mmlego.bench.tcga_blca``: the TCGA-BLCA survival benchmark (see
:mod:`mmlego.bench.tcga`)."""

from __future__ import annotations

import sys

from mmlego.bench.tcga import BLCA, main

if __name__ == "__main__":
    raise SystemExit(main(BLCA, sys.argv[1:]))
