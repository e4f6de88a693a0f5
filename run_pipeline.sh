#!/usr/bin/env bash
# The whole pipeline: data -> SIDs -> model -> stage 1 -> teacher corpus -> stage 2 -> stage 3, with
# evaluation in both modes after each stage and a results table at the end (sidreasoner/pipeline.py).
#   bash run_pipeline.sh                     # the embedded demo (synthetic catalogue, tiny model, CPU)
#   DATA_DIR=data/Amazon CATEGORY=Office_Products bash run_pipeline.sh
#   BASE_MODEL=Qwen/Qwen3-1.7B DATA_DIR=data/Amazon CATEGORY=Office_Products bash run_pipeline.sh
#   STAGE1_STEPS=600 bash run_pipeline.sh --dry_run     # flags ("$@") come last and win
# Knobs are environment variables (DATA_DIR CATEGORY BASE_MODEL RUN_DIR RESULTS_DIR STAGE1_STEPS ...); each one set
# (and not empty) is passed on as its flag (STAGE1_STEPS=600 -> --stage1_steps 600), the rest keep the defaults of
# `python -m sidreasoner.pipeline --help`, which lists them all. Finished steps are skipped on a rerun.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python}
# every field of PipelineConfig (sidreasoner/pipeline.py), in upper case
KNOB_NAMES="DATA_DIR CATEGORY BASE_MODEL TINY_UNTIED RUN_DIR RESULTS_DIR SEED STAGES BATCH_SIZE MICRO_BATCH_SIZE
    STAGE1_STEPS STAGE1_EPOCHS STAGE1_EVAL_STEPS STAGE1_LR STAGE1_TASK_WEIGHTS PROMPT_STYLE STAGE1_TASKS
    HISTORY_LOSS HISTORY_LOSS_WEIGHT RECENT_CROPS KEEP_COVERED_ROWS DROPOUT WEIGHT_DECAY RANK_EVAL_ROWS
    EARLY_STOPPING_PATIENCE STAGE2_STEPS STAGE2_EPOCHS STAGE2_LR STAGE2_REPLAY STAGE2_THINK_PROBE_ROWS
    STAGE2_SELECT_ON SFT_EVAL_STEPS WARMUP_STEPS RL_STEPS RL_ROLLOUT_N RL_BATCH_SIZE RL_LR RL_MAX_RESPONSE_LENGTH
    RL_SID_ROLLOUT RL_REWARD RL_TARGET_PROB_WEIGHT RL_PROMPTS_FROM RL_BEAM_SID_LOSS RL_ANSWER_NLL_WEIGHT
    RL_DROP_ZERO_VARIANCE RL_VALID_ROWS RL_TEMPERATURE RL_KL_COEF EVAL_LIMIT THINK_EVAL_LIMIT EVAL_BATCH_SIZE
    NUM_BEAMS FUSION_VALID_ROWS THINK_REPETITION_PENALTY MAX_THINK_TOKENS BASELINES THREADS"
KNOBS=()
for name in $KNOB_NAMES; do
    if [ -n "${!name:-}" ]; then KNOBS+=("--${name,,}=${!name}"); fi
done
exec "$PYTHON" -m sidreasoner.pipeline "${KNOBS[@]}" "$@"
