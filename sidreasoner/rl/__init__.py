"""Stage 3 (GRPO with the SID-match reward): RL data, the verl reward and config, TRL glue, FSDP merge.

- ``data``: split CSV -> verl parquet rows (``data_source``, chat ``prompt``, ``reward_model``, ``extra_info``)
- ``verl_reward``: the reward verl loads through ``verl_entry.py`` (a file of the installed package; TRL calls it directly)
- ``knobs``: the run settings shared by both backends (environment variables / flags of the same name)
- ``verl_config``: knobs -> hydra overrides of ``verl.trainer.main_ppo``; composition and pre-flight checks
- ``trl_grpo``: the one-machine backend on TRL's GRPOTrainer
- ``reward_eval``: mean reward of sampled completions on a set of prompts (before/after comparisons)
- ``merge``: verl FSDP actor shards -> Hugging Face folder, checked against the shards
"""
