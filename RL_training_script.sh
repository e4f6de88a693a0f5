#!/usr/bin/env bash
# Stage 3: GRPO with the hierarchical SID-match reward, from the stage-2 model.
#   NGPUS=8 CATEGORY=Office_Products bash RL_training_script.sh               # verl on a GPU node (the paper)
#   NNODES=2 NGPUS=8 bash RL_training_script.sh trainer.resume_mode=disable   # extra args go to verl (hydra overrides)
#   BACKEND=trl MODEL_PATH=... ROLLOUT_N=4 TRAIN_BATCH_SIZE=8 bash RL_training_script.sh --max_steps 20   # one machine
#   DRY_RUN=1 bash RL_training_script.sh                                       # print the commands only
# BACKEND=verl (default): builds the RL parquet if missing (rl/prepare_data.py), checks data, catalogue, SID
# tokens and verl's config (sidreasoner.rl.verl_config check), runs `python -m verl.trainer.main_ppo` with the
# overrides made from the knobs below + "$@", merges every saved global_step_*/actor into actor_merged, and writes
# OUTPUT_DIR/diagnostics.json + .png (sidreasoner.rl.diagnostics over verl's verl_log.jsonl and rollouts/).
# BACKEND=trl: the same data, reward and knobs on TRL's GRPOTrainer (CPU or one GPU); "$@" go to rl/trl_grpo.py;
# the model lands in OUTPUT_DIR/final_checkpoint.
# Knobs are environment variables; the script passes each on as its flag (ROLLOUT_N=4 -> --rollout_n 4) before "$@",
# and no Python reads them from the environment. Defaults are the paper's (16 rollouts at T=1.0, 256 prompts per step,
# lr 5e-7, low-variance KL 0.001, 10 epochs, a checkpoint every 100 steps). `python rl/trl_grpo.py --help` explains
# each.
# Devices: verl takes the GPUs Ray sees (set CUDA_VISIBLE_DEVICES yourself to restrict them); nothing is hard-coded.
set -euo pipefail
cd "$(dirname "$0")"

BACKEND=${BACKEND:-verl}                 # verl | trl
case "$BACKEND" in verl|trl) ;; *) echo "RL_training_script.sh: BACKEND must be verl or trl, got '$BACKEND'" >&2; exit 2;; esac
PYTHON=${PYTHON:-python}
DRY_RUN=${DRY_RUN:-0}
# -- data and model
CATEGORY=${CATEGORY:-Office_Products}
DATA_DIR=${DATA_DIR:-data/Amazon}
MODEL_PATH=${MODEL_PATH:-checkpoints/sft_reasoning_Qwen3_${CATEGORY}/final_checkpoint}  # stage 2's output
RL_DATA_DIR=${RL_DATA_DIR:-data/rl/${CATEGORY}}                  # train.parquet, valid.parquet
INFO_FILE=${INFO_FILE:-${DATA_DIR}/info/${CATEGORY}_5_2016-10-2018-11.txt}   # catalogue of the validity bonus and beams
if [[ "$CATEGORY" == *,* && "$INFO_FILE" == "${DATA_DIR}/info/${CATEGORY}_5_2016-10-2018-11.txt" ]]; then
    INFO_FILE=""  # several categories (CATEGORY=A,B): A=<its info file>,B=<its info file>
    for c in ${CATEGORY//,/ }; do INFO_FILE+="${INFO_FILE:+,}$c=${DATA_DIR}/info/${c}_5_2016-10-2018-11.txt"; done
fi
OUTPUT_DIR=${OUTPUT_DIR:-checkpoints/grpo_${BACKEND}_${CATEGORY}}
THINK=${THINK:-1}                        # 1: thinking-mode prompts; 0: non-thinking
PROMPT_STYLE=${PROMPT_STYLE:-auto}       # native | compact | release | auto (the style recorded in MODEL_PATH)
MAX_PROMPT_LENGTH=${MAX_PROMPT_LENGTH:-1024}
MAX_RESPONSE_LENGTH=${MAX_RESPONSE_LENGTH:-1024}
# -- GRPO
ROLLOUT_N=${ROLLOUT_N:-16}
TEMPERATURE=${TEMPERATURE:-1.0}
TRAIN_BATCH_SIZE=${TRAIN_BATCH_SIZE:-256}   # prompts per step
MICRO_BATCH_SIZE=${MICRO_BATCH_SIZE:-8}     # completions per forward/backward per device
LR=${LR:-5e-7}
KL_COEF=${KL_COEF:-0.001}                # low-variance KL loss to the stage-2 model
EPOCHS=${EPOCHS:-10}
MAX_STEPS=${MAX_STEPS:-0}                # 0: run the epochs
SAVE_FREQ=${SAVE_FREQ:-100}
TEST_FREQ=${TEST_FREQ:-100}              # validation reward every N steps (0: never)
VAL_MAX_ROWS=${VAL_MAX_ROWS:-0}          # 0: every validation prompt
# the reward's options (sidreasoner/rewards.py RewardConfig)
REQUIRE_THINK_CLOSED=${REQUIRE_THINK_CLOSED:-0}  # 1: reward 0 unless the reasoning was closed with </think>
LEVEL_WEIGHTS=${LEVEL_WEIGHTS:-0.25,0.5,1.0}     # REWARD=match: 1, 2, ... matching leading levels; last: exact match
VALID_BONUS=${VALID_BONUS:-0.1}                  # REWARD=match: added when the SID is a catalogue item
SID_ROLLOUT=${SID_ROLLOUT:-free}         # free (the paper) | constrained | beam (sampled reasoning, constrained SID beams)
REWARD=${REWARD:-match}                  # match (the release's) | rank (with SID_ROLLOUT=beam or constrained)
RANK_K=${RANK_K:-10}
TARGET_PROB_WEIGHT=${TARGET_PROB_WEIGHT:-0.5}
ANSWER_NLL_WEIGHT=${ANSWER_NLL_WEIGHT:-0}    # TRL, SID_ROLLOUT=beam: train the target after the rollout's own reasoning
BEAM_SID_LOSS=${BEAM_SID_LOSS:-1}        # SID_ROLLOUT=beam/constrained: 0 = the SID tokens carry no policy loss
MAX_THINK_TOKENS=${MAX_THINK_TOKENS:-0}  # 0: MAX_RESPONSE_LENGTH - 16
ROLLOUT_REPETITION_PENALTY=${ROLLOUT_REPETITION_PENALTY:-1.0}
DROP_ZERO_VARIANCE=${DROP_ZERO_VARIANCE:-0}
PROMPTS_FROM=${PROMPTS_FROM:-train}      # train (the paper) | valid (valid rows after VALID_HOLDOUT)
VALID_HOLDOUT=${VALID_HOLDOUT:-1000}
SEED=${SEED:-42}
LOGGER=${LOGGER:-console}                # e.g. console,wandb
# -- verl only
NGPUS=${NGPUS:-8}                        # GPUs per node
NNODES=${NNODES:-1}
PPO_MINI_BATCH_SIZE=${PPO_MINI_BATCH_SIZE:-0}   # 0: TRAIN_BATCH_SIZE (one actor update per step)
LOG_PROB_MICRO_BATCH_SIZE=${LOG_PROB_MICRO_BATCH_SIZE:-16}
ROLLOUT_ENGINE=${ROLLOUT_ENGINE:-vllm}
TENSOR_PARALLEL=${TENSOR_PARALLEL:-1}
GPU_MEMORY_UTILIZATION=${GPU_MEMORY_UTILIZATION:-0.6}
PROJECT_NAME=${PROJECT_NAME:-sidreasoner}
EXPERIMENT_NAME=${EXPERIMENT_NAME:-grpo_${CATEGORY}}
# -- TRL only
DEVICE=${DEVICE:-auto}                   # cpu | cuda | auto
LOGGING_STEPS=${LOGGING_STEPS:-1}
EVAL_ROWS=${EVAL_ROWS:-0}                # validation prompts scored before/after training (0: skip)
EVAL_SAMPLES=${EVAL_SAMPLES:-4}
LOG_COMPLETIONS=${LOG_COMPLETIONS:-0}    # print sampled completions and their rewards at every log step
RANK_EVAL_ROWS=${RANK_EVAL_ROWS:-0}      # valid NDCG@10 (both modes) on the first N valid rows every TEST_FREQ steps
LOG_FILE=${LOG_FILE:-logs/$(basename "$OUTPUT_DIR").txt}   # stdout+stderr, appended (progress bars: final state only, sidreasoner.logfilter)

# every knob as its flag (RLKnobs, sidreasoner/rl/knobs.py): --category "$CATEGORY" ... (booleans as 1/0)
KNOB_NAMES="CATEGORY DATA_DIR MODEL_PATH RL_DATA_DIR INFO_FILE OUTPUT_DIR THINK MAX_PROMPT_LENGTH MAX_RESPONSE_LENGTH
    ROLLOUT_N TEMPERATURE TRAIN_BATCH_SIZE MICRO_BATCH_SIZE LR KL_COEF EPOCHS MAX_STEPS SAVE_FREQ TEST_FREQ
    VAL_MAX_ROWS REQUIRE_THINK_CLOSED LEVEL_WEIGHTS VALID_BONUS SID_ROLLOUT REWARD RANK_K TARGET_PROB_WEIGHT
    ANSWER_NLL_WEIGHT BEAM_SID_LOSS MAX_THINK_TOKENS ROLLOUT_REPETITION_PENALTY DROP_ZERO_VARIANCE PROMPTS_FROM
    VALID_HOLDOUT SEED NGPUS NNODES PPO_MINI_BATCH_SIZE LOG_PROB_MICRO_BATCH_SIZE ROLLOUT_ENGINE TENSOR_PARALLEL
    GPU_MEMORY_UTILIZATION LOGGER PROJECT_NAME EXPERIMENT_NAME DEVICE LOGGING_STEPS EVAL_ROWS EVAL_SAMPLES
    RANK_EVAL_ROWS LOG_COMPLETIONS"
KNOBS=()
for name in $KNOB_NAMES; do KNOBS+=("--${name,,}" "${!name}"); done

run() {  # DRY_RUN=1 prints each command (shell-quoted) instead of running it
    if [ "$DRY_RUN" = 1 ]; then printf '%q ' "$@"; echo; else "$@"; fi
}

if [ "$PROMPT_STYLE" = auto ]; then
    PROMPT_STYLE=$("$PYTHON" -c 'import sys; from sidreasoner.model.chat import model_prompt_style as s; print(s(sys.argv[1]))' "$MODEL_PATH")
fi
mkdir -p "$(dirname "$LOG_FILE")"
run "$PYTHON" rl/prepare_data.py --data_dir "$DATA_DIR" --category "$CATEGORY" --output_dir "$RL_DATA_DIR" \
    --think "$THINK" --prompt_style "$PROMPT_STYLE" --info_file "$INFO_FILE" --train_from "$PROMPTS_FROM" \
    --valid_holdout "$VALID_HOLDOUT" --if_missing

case "$BACKEND" in
verl)
    run "$PYTHON" -m sidreasoner.rl.verl_config check "${KNOBS[@]}" -- "$@"
    OVERRIDES_TEXT=$("$PYTHON" -m sidreasoner.rl.verl_config overrides "${KNOBS[@]}")
    mapfile -t OVERRIDES <<< "$OVERRIDES_TEXT"
    run "$PYTHON" -m verl.trainer.main_ppo "${OVERRIDES[@]}" "$@" 2>&1 | "$PYTHON" -m sidreasoner.logfilter -a "$LOG_FILE"
    RUN_DIR=$("$PYTHON" -m sidreasoner.rl.verl_config run-dir "${KNOBS[@]}" -- "$@")
    run "$PYTHON" scripts/merge_fsdp_checkpoint.py --all "$RUN_DIR" --info_file "$INFO_FILE" 2>&1 | "$PYTHON" -m sidreasoner.logfilter -a "$LOG_FILE"
    # OUTPUT_DIR/diagnostics.json + .png from verl's verl_log.jsonl and rollouts/ (a run without them still succeeds)
    run "$PYTHON" -m sidreasoner.rl.diagnostics "$OUTPUT_DIR" 2>&1 | "$PYTHON" -m sidreasoner.logfilter -a "$LOG_FILE" \
        || echo "RL_training_script.sh: no stage-3 diagnostics (see above)" >&2
    ;;
trl)
    run "$PYTHON" rl/trl_grpo.py "${KNOBS[@]}" "$@" 2>&1 | "$PYTHON" -m sidreasoner.logfilter -a "$LOG_FILE"
    ;;
esac
