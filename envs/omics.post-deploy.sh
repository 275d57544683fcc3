#!/usr/bin/env bash
# Run by Snakemake inside the new `omics` env, from the workflow's working directory (the
# repository root): installs mmlego (editable, so jobs run the checkout's code) with the pinned
# dependencies of its `omics` extra (pyproject.toml).
set -euo pipefail
if ! grep -qs '^name = "mmlego"' pyproject.toml; then
    echo "envs/omics.post-deploy.sh: run snakemake from the mmlego checkout (no pyproject.toml of mmlego in $PWD)" >&2
    exit 1
fi
python -m pip install --no-cache-dir --editable ".[omics]"
