"""``python -m mmlego.bench``: the TCGA-BLCA survival and TCGA-UCEC subtype benchmarks in turn
(same options as each; ``--workdir`` gets one subfolder per benchmark)."""

from __future__ import annotations

import sys
from pathlib import Path

from mmlego.bench.tcga import BLCA, UCEC_SUBTYPE, main


def _run_all(argv: list[str]) -> int:
    for bench in (BLCA, UCEC_SUBTYPE):
        args = list(argv)
        if "--workdir" in args:
            i = args.index("--workdir") + 1
            args[i] = str(Path(args[i]) / bench.cohort)
        code = main(bench, args)
        if code:
            return code
    return 0


if __name__ == "__main__":
    raise SystemExit(_run_all(sys.argv[1:]))
