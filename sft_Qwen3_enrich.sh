#!/usr/bin/env bash
# Stage 1: multi-task SID-language alignment SFT (sft.py --stage alignment).
#   CATEGORY=Office_Products NPROC=4 ./sft_Qwen3_enrich.sh            # the paper's setting on 4 GPUs
#   BASE_MODEL=checkpoints/tiny_qwen3 ./sft_Qwen3_enrich.sh --max_steps 20   # extra flags go to sft.py
# Knobs (environment variables, defaults as in the paper: Qwen3-1.7B, batch 1024, lr 3e-4, 10 epochs).
# Teacher corpora and general data that are absent turn their tasks off (sft.py says which).
set -euo pipefail
cd "$(dirname "$0")"

CATEGORY=${CATEGORY:-Office_Products}
BASE_MODEL=${BASE_MODEL:-Qwen/Qwen3-1.7B}
DATA_DIR=${DATA_DIR:-data/Amazon}
OUTPUT_DIR=${OUTPUT_DIR:-checkpoints/sft_enrich_Qwen3_${CATEGORY}}
NPROC=${NPROC:-1}                        # processes (GPUs); torchrun when > 1
# GPUS: optional comma-separated device ids (exported as CUDA_VISIBLE_DEVICES)
MASTER_PORT=${MASTER_PORT:-29500}
BATCH_SIZE=${BATCH_SIZE:-1024}           # examples per optimiser step, all processes together
MICRO_BATCH_SIZE=${MICRO_BATCH_SIZE:-8}  # examples per forward pass per process
LEARNING_RATE=${LEARNING_RATE:-3e-4}
NUM_EPOCHS=${NUM_EPOCHS:-10}
CUTOFF_LEN=${CUTOFF_LEN:-1024}
SEED=${SEED:-42}
PROMPT_STYLE=${PROMPT_STYLE:-auto}   # native | compact | release | auto (as the base model was trained)
GENERAL_REASONING_PATH=${GENERAL_REASONING_PATH:-}  # optional general chat data (JSONL/parquet/arrow)
WANDB_PROJECT=${WANDB_PROJECT:-}         # empty: no wandb
REPORT_TO=${REPORT_TO:-}                 # none | wandb | tensorboard (comma-separated; empty: wandb iff WANDB_PROJECT)
PYTHON=${PYTHON:-python}
LOG_FILE=${LOG_FILE:-logs/$(basename "$OUTPUT_DIR").txt}  # stdout+stderr, appended (progress bars: final state only, sidreasoner.logfilter)

source scripts/knobs.sh
int_knob NPROC 1
int_knob MASTER_PORT 1 65535
if [ -n "${GPUS:-}" ]; then export CUDA_VISIBLE_DEVICES="$GPUS"; fi
LAUNCH=("$PYTHON")
if [ "$NPROC" -gt 1 ]; then LAUNCH=("$PYTHON" -m torch.distributed.run --nproc_per_node "$NPROC" --master_port "$MASTER_PORT"); fi
mkdir -p "$(dirname "$LOG_FILE")"

"${LAUNCH[@]}" sft.py --stage alignment \
    --base_model "$BASE_MODEL" --data_dir "$DATA_DIR" --category "$CATEGORY" --output_dir "$OUTPUT_DIR" \
    --batch_size "$BATCH_SIZE" --micro_batch_size "$MICRO_BATCH_SIZE" --learning_rate "$LEARNING_RATE" \
    --num_epochs "$NUM_EPOCHS" --cutoff_len "$CUTOFF_LEN" --seed "$SEED" --prompt_style "$PROMPT_STYLE" \
    --general_reasoning_path "$GENERAL_REASONING_PATH" --wandb_project "$WANDB_PROJECT" --report_to "$REPORT_TO" \
    "$@" 2>&1 | "$PYTHON" -m sidreasoner.logfilter -a "$LOG_FILE"
