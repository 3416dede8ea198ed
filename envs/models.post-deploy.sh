#!/usr/bin/env bash
# Snakemake (--sdm conda) runs this once in the new environment, from the folder it runs in
# (the project folder): it installs the project's `serhpo` command, which the rules call. The
# environment file above it pins the dependencies; nothing else is installed here.
set -euo pipefail
if ! grep -qs '^name = "serhpo"' pyproject.toml; then
  echo "post-deploy: found no serhpo pyproject.toml in $PWD; run snakemake from the serhpo" \
    "project folder, or install it by hand: conda run -p \$CONDA_PREFIX pip install --no-deps -e <project>" >&2
  exit 1
fi
python -m pip install --no-deps --editable .
