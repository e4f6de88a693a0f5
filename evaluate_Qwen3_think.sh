#!/usr/bin/env bash
# bash evaluate_Qwen3_think.sh [extra evaluate.py flags]
# Thinking evaluation: generate the reasoning (greedy; NUM_REASONING_PATHS>1 samples at TEMPERATURE),
# force-close </think>, then the trie-constrained beam search. vLLM generates the
# reasoning when installed and on GPU. Knobs (env): BASE_MODEL BACKEND DATA_DIR CATEGORY SPLIT OUTPUT_DIR
#   NUM_BEAMS BATCH_SIZE MAX_THINK_TOKENS NUM_REASONING_PATHS TEMPERATURE REPETITION_PENALTY PYTHON,
#   PROMPT_STYLE (auto: the style the model was trained with; release: the SIDReasoner release's wording),
#   NPROC (processes; >1 runs torchrun, one data-parallel shard per process, merged at the end),
#   GPUS (comma-separated device ids, exported as CUDA_VISIBLE_DEVICES; default: all visible).
# Flags after the script name go last, so they override these defaults (e.g. --limit 100 --resume).
set -euo pipefail
cd "$(dirname "$0")"
DATA_DIR=${DATA_DIR:-data/Amazon}
CATEGORY=${CATEGORY:-Office_Products}
BACKEND=${BACKEND:-verl}                 # stage 3's backend (RL_training_script.sh BACKEND): names the default model
# default: stage 3's output folder; evaluate.py loads its final_checkpoint (TRL) or its newest merged
# global_step_N/actor_merged (verl)
BASE_MODEL=${BASE_MODEL:-checkpoints/grpo_${BACKEND}_${CATEGORY}}
SPLIT=${SPLIT:-test}
NUM_BEAMS=${NUM_BEAMS:-10}
PROMPT_STYLE=${PROMPT_STYLE:-auto}
BATCH_SIZE=${BATCH_SIZE:-8}
MAX_THINK_TOKENS=${MAX_THINK_TOKENS:-512}
NUM_REASONING_PATHS=${NUM_REASONING_PATHS:-1}
TEMPERATURE=${TEMPERATURE:-1.0}
REPETITION_PENALTY=${REPETITION_PENALTY:-1.0}
OUTPUT_DIR=${OUTPUT_DIR:-results/${CATEGORY}_think_beams${NUM_BEAMS}}
NPROC=${NPROC:-1}
PYTHON=${PYTHON:-python}
source scripts/knobs.sh
int_knob NPROC 1
if [ -n "${GPUS:-}" ]; then export CUDA_VISIBLE_DEVICES="$GPUS"; fi
LAUNCH=("$PYTHON")
if [ "$NPROC" -gt 1 ]; then LAUNCH=("$PYTHON" -m torch.distributed.run --standalone --nproc_per_node "$NPROC"); fi
exec "${LAUNCH[@]}" evaluate.py --think --base_model "$BASE_MODEL" --data_dir "$DATA_DIR" --category "$CATEGORY" \
  --split "$SPLIT" --num_beams "$NUM_BEAMS" --prompt_style "$PROMPT_STYLE" --batch_size "$BATCH_SIZE" \
  --max_think_tokens "$MAX_THINK_TOKENS" \
  --num_reasoning_paths "$NUM_REASONING_PATHS" --temperature "$TEMPERATURE" \
  --repetition_penalty "$REPETITION_PENALTY" --output_dir "$OUTPUT_DIR" "$@"
