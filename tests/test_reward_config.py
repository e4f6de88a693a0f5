"""The reward's one config (sidreasoner.rewards.RewardConfig) reaches both backends and reward_eval: the same
non-default weights, set as RL knobs / flags, give the same hand-computed rewards through TRL's SIDReward,
through verl (its own config composition of our overrides and its own loader of rl/verl_entry.py, called with
the reward_kwargs it composed) and through reward_eval's flags."""
from __future__ import annotations

import argparse
import dataclasses

import pytest

from sidreasoner.data.formats import write_info
from sidreasoner.data.records import InfoRow
from sidreasoner.rewards import RewardConfig, add_reward_flags, config_from_args
from sidreasoner.rl.knobs import RLKnobs

GT = "<a_1><b_2><c_3>"
CATALOGUE = (GT, "<a_1><b_2><c_0>", "<a_3><b_3><c_3>")
SRC = "sidreasoner/Tiny"
#: the knobs (and reward_eval flags) of every case: LEVEL_WEIGHTS=0.1,0.4,2 VALID_BONUS=0.3
WEIGHTS, BONUS = "0.1,0.4,2", "0.3"

# (completion, REQUIRE_THINK_CLOSED, reward by hand with weights 0.1 / 0.4 / 2.0 and bonus 0.3)
CASES = [
    (f"<think>x</think>{GT}", "0", 2.3),             # exact: 2.0 + 0.3 (a catalogue item)
    ("</think><a_1><b_2><c_0>", "0", 0.7),           # two levels: 0.4 + 0.3 (a real item)
    ("</think><a_1><b_0><c_3>", "0", 0.1),           # one level: 0.1, no item
    ("</think><a_3><b_3><c_3>", "0", 0.3),           # no level, a real item: the bonus only
    ("</think><a_1><b_2>", "0", 0.4),                # a prefix of two levels, no item
    (GT, "0", 2.3),                                  # no reasoning block: the whole text is the answer
    (GT, "1", 0.0),                                  # ... refused when the reasoning must be closed
    (f"<think>x</think>{GT}", "1", 2.3),             # closed: full reward
    (f"<think>it is {GT}", "0", 0.0),                # never closed: no answer
]


@pytest.fixture(scope="module")
def info_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("cat") / "Tiny_5_2016-10-2018-11.txt"
    write_info(path, [InfoRow(sid, f"item {i}", f"I{i}") for i, sid in enumerate(CATALOGUE)])
    return str(path)


def _knobs(info_file, require, backend):
    return RLKnobs(category="Tiny", info_file=info_file, level_weights=WEIGHTS, valid_bonus=float(BONUS),
                   require_think_closed=require == "1").resolved(backend)


@pytest.mark.parametrize("text, require, score", CASES)
def test_trl_reward(info_file, text, require, score):
    from sidreasoner.rl.trl_grpo import SIDReward
    k = _knobs(info_file, require, "trl")
    reward = SIDReward(k.info_file, k.reward_config())
    assert reward(prompts=["p"], completions=[text], ground_truth=[GT], data_source=[SRC]) == [pytest.approx(score)]


@pytest.fixture(scope="module")
def verl_reward_fn(info_file):
    """verl's reward function for each REQUIRE_THINK_CLOSED, as main_ppo builds it: our overrides composed
    into verl's trainer config, then verl's loader (reward_kwargs bound)."""
    pytest.importorskip("verl")
    from verl.trainer.ppo.reward import get_custom_reward_fn
    from sidreasoner.rl.verl_compose import compose
    from sidreasoner.rl.verl_config import verl_overrides
    return {req: get_custom_reward_fn(compose(verl_overrides(_knobs(info_file, req, "verl")))) for req in "01"}


@pytest.mark.parametrize("text, require, score", CASES)
def test_verl_reward(verl_reward_fn, text, require, score):
    out = verl_reward_fn[require](data_source=SRC, solution_str=text, ground_truth=GT,
                                  extra_info={"split": "train", "index": 0})
    assert out["score"] == pytest.approx(score)


@pytest.mark.parametrize("text, require, score", CASES)
def test_reward_eval_flags(info_file, text, require, score):
    from sidreasoner.rl.reward_eval import score_completions
    from sidreasoner.rl.verl_reward import load_catalogue
    parser = argparse.ArgumentParser()
    add_reward_flags(parser)
    config = config_from_args(parser.parse_args(["--level_weights", WEIGHTS, "--valid_bonus", BONUS,
                                                 "--require_think_closed", require]))
    records = [{"reward_model": {"ground_truth": GT}}]
    mean, _ = score_completions(records, [[text]], load_catalogue(info_file), config)
    assert mean == pytest.approx(score)


def test_every_reward_option_is_a_knob_a_verl_kwarg_and_a_flag():
    """A new RewardConfig field must be an RL knob of the same name (and type of default), which verl's
    reward_kwargs and the TRL reward then carry, and a reward_eval flag."""
    knob_defaults = {f.name: f.default for f in dataclasses.fields(RLKnobs)}
    assert set(RewardConfig().kwargs()) == {f.name for f in dataclasses.fields(RewardConfig)}
    assert RLKnobs().reward_config() == RewardConfig()
    for f in dataclasses.fields(RewardConfig):
        assert f.name in knob_defaults, f.name
    parser = argparse.ArgumentParser()
    add_reward_flags(parser)
    assert config_from_args(parser.parse_args([])) == RewardConfig()


@pytest.mark.parametrize("knobs, message", [
    ({"level_weights": "0.5,0.25,1"}, r"^LEVEL_WEIGHTS must not decrease with depth, got \(0\.5, 0\.25, 1\.0\)$"),
    ({"level_weights": "a,b"}, r"^LEVEL_WEIGHTS must be comma-separated numbers, got 'a,b'$"),
    ({"level_weights": ""}, r"^LEVEL_WEIGHTS needs at least one weight"),
    ({"valid_bonus": -0.1}, r"^VALID_BONUS must be >= 0, got -0\.1$"),
])
def test_bad_reward_knobs_name_the_knob(knobs, message):
    with pytest.raises(ValueError, match=message):
        RLKnobs(**knobs).resolved("trl")
