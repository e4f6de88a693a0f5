#!/usr/bin/env bash
# Stage 2: reasoning activation SFT (sft.py --stage reasoning): from the stage-1 model,
# learn <think>reasoning_path</think> + SID from the narrative CSV.
#   CATEGORY=Office_Products NPROC=4 ./sft_reasoning_activation.sh
#   BASE_MODEL=checkpoints/my_stage1/final_checkpoint ./sft_reasoning_activation.sh --max_steps 20
# Knobs (environment variables, defaults as in the paper: batch 1024, lr 1e-5, 5 epochs, cutoff 2048).
set -euo pipefail
cd "$(dirname "$0")"

CATEGORY=${CATEGORY:-Office_Products}
BASE_MODEL=${BASE_MODEL:-checkpoints/sft_enrich_Qwen3_${CATEGORY}/final_checkpoint}  # stage 1's output
DATA_DIR=${DATA_DIR:-data/Amazon}
REASONING_FILE=${REASONING_FILE:-}       # default: DATA_DIR/index/CATEGORY.integrated_narrative.csv
OUTPUT_DIR=${OUTPUT_DIR:-checkpoints/sft_reasoning_Qwen3_${CATEGORY}}
NPROC=${NPROC:-1}                        # processes (GPUs); torchrun when > 1
# GPUS: optional comma-separated device ids (exported as CUDA_VISIBLE_DEVICES)
MASTER_PORT=${MASTER_PORT:-29501}
BATCH_SIZE=${BATCH_SIZE:-1024}           # examples per optimiser step, all processes together
MICRO_BATCH_SIZE=${MICRO_BATCH_SIZE:-8}  # examples per forward pass per process
LEARNING_RATE=${LEARNING_RATE:-1e-5}
NUM_EPOCHS=${NUM_EPOCHS:-5}
CUTOFF_LEN=${CUTOFF_LEN:-2048}           # reasoning paths are long
SEED=${SEED:-42}
PROMPT_STYLE=${PROMPT_STYLE:-auto}   # native | compact | release | auto (as the base model was trained)
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

"${LAUNCH[@]}" sft.py --stage reasoning \
    --base_model "$BASE_MODEL" --data_dir "$DATA_DIR" --category "$CATEGORY" --output_dir "$OUTPUT_DIR" \
    --reasoning_train_file "$REASONING_FILE" \
    --batch_size "$BATCH_SIZE" --micro_batch_size "$MICRO_BATCH_SIZE" --learning_rate "$LEARNING_RATE" \
    --num_epochs "$NUM_EPOCHS" --cutoff_len "$CUTOFF_LEN" --seed "$SEED" --prompt_style "$PROMPT_STYLE" \
    --wandb_project "$WANDB_PROJECT" --report_to "$REPORT_TO" \
    "$@" 2>&1 | "$PYTHON" -m sidreasoner.logfilter -a "$LOG_FILE"
