"""mmlego.bench: benchmarks of the workflow on real TCGA cohorts (MCAT's files and splits).

- ``python -m mmlego.bench.tcga_blca``: TCGA-BLCA survival, 5 folds, each model's c-index next to
  MCAT's published numbers and a Coxnet baseline on the same folds.
- ``python -m mmlego.bench.tcga_ucec_subtype``: TCGA-UCEC histological subtype (UEC vs USC), AUC.
- ``python -m mmlego.bench``: both, one after the other.
- ``python -m mmlego.bench.scale --part memory``: peak memory of bag assembly and of one ABMIL
  training epoch as the cohort grows (generated feature files; no data needed, several GB of
  temporary disk at full size, so not part of ``python -m mmlego.bench``).

Each takes ``--data`` (default ``../shared/data/tcga`` beside the checkout), ``--workdir``,
``--cores``, ``--folds`` and ``--inner`` (inner folds of training patients only: for tuning).
See :mod:`mmlego.bench.tcga` for the protocol.
"""
