"""The model layer: chat rendering (prompts, the Qwen3 chat template) and loading/saving models and tokenizers.

Below both ``train`` and ``eval`` (each loads models through it), so neither needs the other for that.
"""
