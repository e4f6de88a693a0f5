"""The evaluation's configuration: ``EvalConfig`` (every field has help text; ``eval/cli.py`` makes each one a flag
of ``evaluate.py`` through ``sidreasoner.flags``) and the fields a resumed run must agree on. Imports no torch,
so ``evaluate.py --help`` and a bad flag are answered at once."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from ..data.records import SPLITS, ReleasePaths
from ..paths import DEFAULT_PROMPT_STYLE, DEFAULT_SEED, NUM_BEAMS

#: config fields that change the predictions: a resumed run must agree on all of them
RESULT_FIELDS = ("base_model", "test_data_path", "info_file", "num_beams", "length_penalty", "think", "prompt_style",
                 "max_think_tokens", "num_reasoning_paths", "temperature", "repetition_penalty", "seed", "search",
                 "limit", "shard", "batch_size", "dtype", "calibrate")


def _f(default, help_text: str, **meta):
    return field(default=default, metadata={"help": help_text, **meta})


def _required(help_text: str, **meta):
    return field(metadata={"help": help_text, **meta})


@dataclass
class EvalConfig:
    """One evaluation run (resolved: paths filled in, ``shard`` and ``ks`` parsed)."""

    base_model: str = _required("model folder (Hugging Face format) with the SID tokens in its tokenizer, or a "
                                "stage's output folder: its final_checkpoint, else verl's newest "
                                "global_step_N/actor_merged")
    output_dir: str = _required("where predictions.jsonl, metrics.json, config.json go "
                                "(default results/<category>_<think|nothink>_beams<num_beams>)")
    test_data_path: str = _required("split CSV to evaluate (overrides --data_dir/--split)")
    info_file: str = _required("catalogue 'SID<TAB>title<TAB>item_id' for constrained decoding "
                               "(overrides --data_dir)")
    category: str = _f("", "category name in the release layout, e.g. Office_Products")
    split: str = _f("test", "split to evaluate with --data_dir", choices=SPLITS)
    batch_size: int = _f(8, "test rows per forward batch")
    num_beams: int = _f(NUM_BEAMS, f"beams = SIDs returned per row (paper: {NUM_BEAMS}, up to 50)")
    max_new_tokens: Optional[int] = _f(None, "reference compatibility: must hold the SID tokens + stop token (the "
                                             "search stops at the SID's end)")
    length_penalty: float = _f(0.0, "HF length penalty on finished beams (paper: 0)")
    think: bool = _f(False, "thinking mode: generate reasoning, close </think>, then search")
    prompt_style: str = _f(DEFAULT_PROMPT_STYLE, "wording of the prompt (sidreasoner.tasks.prompts; release: the SIDReasoner "
                                   "release's prompts, byte for byte); auto: the style recorded in the model "
                                   "folder's prompt_style.json, native for a folder without one. A style other "
                                   "than the recorded one is used with a warning",
                           choices=("auto", "native", "compact", "release"))
    max_think_tokens: int = _f(512, "reasoning budget; unclosed reasoning is force-closed")
    num_reasoning_paths: int = _f(1, "sampled reasoning paths per row (1 = greedy); beams merged by score")
    temperature: float = _f(1.0, "sampling temperature when --num_reasoning_paths > 1")
    repetition_penalty: float = _f(1.0, "repetition penalty of the reasoning's generation (1: off, as the release "
                                        "decodes; ~1.3 stops the loops a tiny model falls into when it reasons "
                                        "greedily)")
    reasoning_backend: str = _f("auto", "reasoning generator: vLLM when installed and on GPU (auto), else HF "
                                        "generate", choices=("auto", "hf", "vllm"))
    search: str = _f("ours", "ours: prefill-once tensor beam search; reference: HF generate + "
                             "prefix_allowed_tokens_fn", choices=("ours", "reference"))
    beam_mode: str = _f("auto", "how beams share the prompt: tree attention (sdpa/eager) or per-beam cache copies",
                        choices=("auto", "tree", "expand"))
    limit: Optional[int] = _f(None, "evaluate only the first N rows of the split")
    # the flag is the text i/n, parsed by eval/cli.py (a bad one answered by main() as a usage error)
    shard: Optional[tuple[int, int]] = _f(None, "i/n: evaluate rows i, i+n, i+2n, ... (one process per GPU)",
                                          type=str, metavar="i/n")
    resume: bool = _f(False, "continue an interrupted run: skip rows already in the predictions file")
    device: str = _f("auto", "cpu, cuda, cuda:1, ... (auto: cuda when available)")
    dtype: str = _f("auto", "model dtype (auto: bfloat16 on GPU, float32 on CPU)",
                    choices=("auto", "float32", "bfloat16", "float16"))
    seed: int = _f(DEFAULT_SEED, "seed for sampled reasoning paths")
    # the flag is the text 1,5,10, parsed by eval/cli.py
    ks: Optional[list[int]] = _f(None, "comma-separated K for HR@K/NDCG@K (default 1,3,5,10,20,50 up to num_beams)",
                                 type=str)
    result_json_data: Optional[str] = _f(None, "also write the reference-format JSON list {user_id, output, "
                                               "predict} here")
    calibrate: float = _f(0.0, "calibrated SID scores (LICD-style, sidreasoner.eval.calibration): every search "
                               "step subtracts ALPHA x the token's log-probability under the same prompt with an "
                               "empty history, so SIDs the model favours whatever the history get less of a head "
                               "start; predictions also carry each SID's prior. 0: plain scores. Choose ALPHA on "
                               "valid (python -m sidreasoner.eval.fusion --method calibrated does it on saved "
                               "lists)", metavar="ALPHA")

    @classmethod
    def from_release(cls, data_dir, category: str, split: str = "test", **kw) -> "EvalConfig":
        paths = ReleasePaths(Path(data_dir), category)
        return cls(test_data_path=str(paths.split(split)), info_file=str(paths.info), category=category,
                   split=split, **kw)

    def suffix(self) -> str:
        return "" if self.shard is None else f".shard{self.shard[0]}of{self.shard[1]}"
