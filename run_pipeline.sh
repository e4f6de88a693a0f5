#!/usr/bin/env bash
# The whole pipeline: data -> SIDs -> model -> stage 1 -> teacher corpus -> stage 2 -> stage 3, with
# evaluation in both modes after each stage and a results table at the end (sidreasoner/pipeline.py).
#   bash run_pipeline.sh                     # the embedded demo (synthetic catalogue, tiny model, CPU)
#   DATA_DIR=data/Amazon CATEGORY=Office_Products bash run_pipeline.sh
#   BASE_MODEL=Qwen/Qwen3-1.7B DATA_DIR=data/Amazon CATEGORY=Office_Products bash run_pipeline.sh
# Knobs are environment variables (DATA_DIR CATEGORY BASE_MODEL RUN_DIR RESULTS_DIR STAGE1_STEPS ...);
# `python -m sidreasoner.pipeline --help` lists them all. Finished steps are skipped on a rerun.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python}
exec "$PYTHON" -m sidreasoner.pipeline "$@"
