"""rl/reward.py as verl uses it: loaded by file path with verl's own loader (reward_kwargs merged in), called
with verl's keyword signature, and end to end through verl's naive reward manager (token ids decoded with
skip_special_tokens=True). Bad wiring (unknown data_source, missing catalogue) gets exact messages."""
from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from fixtures_model import tiny_model_dir  # noqa: F401  (pytest fixture)
from omegaconf import OmegaConf

from sidreasoner.data.formats import write_info
from sidreasoner.data.records import DataError, InfoRow
from sidreasoner.rl import verl_reward

REPO = Path(__file__).resolve().parents[1]
REWARD_FILE = REPO / "rl" / "reward.py"
GT = "<a_1><b_2><c_3>"
CATALOGUE = (GT, "<a_1><b_2><c_0>", "<a_3><b_3><c_3>")
SRC = "sidreasoner/Tiny"
KEYS = ["score", "match_reward", "valid_bonus", "prefix_levels", "parsed", "think_closed", "exact", "gt_error"]


@pytest.fixture(scope="module")
def info_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("cat") / "Tiny_5_2016-10-2018-11.txt"
    write_info(path, [InfoRow(sid, f"item {i}", f"I{i}") for i, sid in enumerate(CATALOGUE)])
    return str(path)


def _config(**reward_kwargs):
    fn = {"path": str(REWARD_FILE), "name": "compute_score"}
    if reward_kwargs:
        fn["reward_kwargs"] = reward_kwargs
    return OmegaConf.create({"reward": {"custom_reward_function": fn,
                                        "reward_manager": {"source": "register", "name": "naive"},
                                        "sandbox_fusion": {"url": None}}})


def _verl_loaded(**reward_kwargs):
    from verl.trainer.ppo.reward import get_custom_reward_fn
    return get_custom_reward_fn(_config(**reward_kwargs))


# (completion as verl decodes it, score, exact, prefix_levels, valid_bonus)
CASES = [
    (f"<think>\nthe user needs ink\n</think>\n\n{GT}", 1.1, 1, 3, 0.1),                  # exact, in the catalogue
    ("<think>\nx\n</think>\n\n<a_1><b_2><c_0>", 0.6, 0, 2, 0.1),                        # two levels, a real item
    ("<think>\nx\n</think>\n\n<a_1><b_0><c_3>", 0.25, 0, 1, 0.0),                       # one level, invalid path
    ("<think>\nx\n</think>\n\n<a_3><b_3><c_3>", 0.1, 0, 0, 0.1),                        # wrong item, but a real one
    ("<think>\nno answer yet", 0.0, 0, 0, 0.0),                                         # malformed: never closed
    (f"</think><br>{GT}<br/>", 1.1, 1, 3, 0.1),                                         # <br>-like tags around it
    ("</think><a_1><br><b_2><c_3>", 0.25, 0, 1, 0.0),                                   # a tag inside ends the SID
    ("x" * 2_000_000 + f"</think>{GT}", 1.1, 1, 3, 0.1),                                # huge string
]


@pytest.mark.parametrize("text, score, exact, levels, bonus", CASES)
def test_file_loaded_reward_table(info_file, text, score, exact, levels, bonus):
    fn = _verl_loaded(info_file=info_file)
    out = fn(data_source=SRC, solution_str=text, ground_truth=GT, extra_info={"split": "train", "index": 0,
                                                                              "num_turns": None})
    assert list(out) == KEYS
    assert (out["score"], out["exact"], out["prefix_levels"], out["valid_bonus"]) == \
        (pytest.approx(score), exact, levels, pytest.approx(bonus))
    assert all(type(v) in (int, float) for v in out.values())


def test_reward_kwargs_reach_the_reward(info_file):
    strict = _verl_loaded(info_file=info_file, require_think_closed=True)
    loose = _verl_loaded(info_file=info_file)
    assert strict(data_source=SRC, solution_str=GT, ground_truth=GT)["score"] == 0.0  # no </think>
    assert loose(data_source=SRC, solution_str=GT, ground_truth=GT)["score"] == pytest.approx(1.1)


def test_without_info_file_no_bonus_and_one_warning(caplog, monkeypatch):
    monkeypatch.setattr(verl_reward, "_warned", set())
    fn = _verl_loaded()
    with caplog.at_level(logging.WARNING, logger="sidreasoner.rl.verl_reward"):
        a = fn(data_source=SRC, solution_str=f"</think>{GT}", ground_truth=GT)
        b = fn(data_source=SRC, solution_str=f"</think>{GT}", ground_truth=GT)
    assert (a["score"], a["valid_bonus"], b["score"]) == (1.0, 0.0, 1.0)
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and warnings[0].startswith("SID reward: no info_file given, so the validity bonus is 0")


def test_release_and_unknown_data_sources_are_scored(info_file, tmp_path, caplog):
    """The release's parquet (data_source rec/Amazon_mix3_IOV, extra_info {split, index, answer, question})
    scores like ours; an unknown data_source is logged once and scored by the same rule, never a crash."""
    fn = _verl_loaded(info_file=info_file)
    ours = fn(data_source=SRC, solution_str=f"</think>{GT}", ground_truth=GT)
    release_extra = {"split": "train", "index": 0, "answer": GT, "question": [{"role": "user", "content": "q"}]}
    with caplog.at_level(logging.WARNING):
        release = fn(data_source="rec/Amazon_mix3_IOV", solution_str=f"</think>{GT}", ground_truth=GT,
                     extra_info=release_extra)
        assert not caplog.records
        unknown = [fn(data_source="openai/gsm8k", solution_str=f"</think>{GT}", ground_truth=GT) for _ in range(3)]
    assert release == ours == unknown[0] and ours["score"] == pytest.approx(1.1)
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "unknown data_source 'openai/gsm8k'" in warnings[0]
    gone = _verl_loaded(info_file=str(tmp_path / "nope.txt"))
    with pytest.raises(DataError, match=r"nope\.txt: catalogue \(info_file of the SID reward\) not found; set "
                                        r"\+reward\.custom_reward_function\.reward_kwargs\.info_file="):
        gone(data_source=SRC, solution_str=GT, ground_truth=GT)


def test_verl_naive_reward_manager_end_to_end(tiny_model_dir, info_file):
    """verl's reward manager decodes the response ids (special tokens skipped) and calls our file's function."""
    from transformers import AutoTokenizer
    from verl import DataProto
    from verl.trainer.ppo.reward import load_reward_manager
    tok = AutoTokenizer.from_pretrained(tiny_model_dir[0])
    manager = load_reward_manager(_config(info_file=info_file), tok)
    prompt = tok("<|im_start|>user\nnext?<|im_end|>\n<|im_start|>assistant\n", add_special_tokens=False)["input_ids"]
    answer = tok(f"<think>\nink\n</think>\n\n{GT}<|im_end|>", add_special_tokens=False)["input_ids"]
    pad = [tok.pad_token_id] * 3  # right padding of the response, masked out
    data = DataProto.from_dict(
        tensors={"prompts": torch.tensor([prompt]), "responses": torch.tensor([answer + pad]),
                 "attention_mask": torch.tensor([[1] * (len(prompt) + len(answer)) + [0] * 3])},
        non_tensors={"data_source": np.array([SRC], dtype=object),
                     "reward_model": np.array([{"style": "rule", "ground_truth": GT}], dtype=object),
                     "extra_info": np.array([{"split": "train", "index": 0}], dtype=object)})
    out = manager.loop.run_until_complete(manager.run_single(data))
    assert out["reward_score"] == pytest.approx(1.1)
    assert out["reward_extra_info"] == {"score": pytest.approx(1.1), "match_reward": 1.0, "valid_bonus": 0.1,
                                        "prefix_levels": 3, "parsed": 1, "think_closed": 1, "exact": 1, "gt_error": 0}


def test_shim_falls_back_to_its_checkout_without_the_package(info_file):
    """A Ray worker without `pip install -e .`: `python -S` has no site-packages, so sidreasoner comes from
    the repository rl/reward.py sits in."""
    code = ("import importlib.util as u; s = u.spec_from_file_location('r', %r); m = u.module_from_spec(s); "
            "s.loader.exec_module(m); print(m.compute_score('sidreasoner/T', '</think>%s', '%s', None, "
            "info_file=%r)['score'])" % (str(REWARD_FILE), GT, GT, info_file))
    out = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, cwd="/")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "1.1"
