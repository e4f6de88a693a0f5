"""Constrained beam search: valid distinct SIDs, exactly min(K, items), scores = full-vocab log-prob sums,
and parity with the reference path (HF generate + prefix_allowed_tokens_fn) on a tiny random Qwen3."""
from __future__ import annotations

import random

import pytest
import torch

from sidreasoner.eval.beam import BeamResult, constrained_beam_search, same_ranking
from sidreasoner.eval.reference import reference_beam_search
from sidreasoner.sid.trie import SIDTrie

V, STOP, PAD = 300, 2, 0
LENGTHS = [20, 13, 17, 9]  # prompt lengths of the batch: left padding up to 20


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model():
    from transformers import Qwen3Config, Qwen3ForCausalLM
    torch.manual_seed(0)
    cfg = Qwen3Config(vocab_size=V, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=256)
    return Qwen3ForCausalLM(cfg).eval()


def random_catalogue(n: int, seed: int = 0) -> list[tuple[int, ...]]:
    """n distinct 3-token SIDs: level tokens 10-29, 30-59, 60-99."""
    rnd, seqs = random.Random(seed), set()
    while len(seqs) < n:
        seqs.add((rnd.randrange(10, 30), rnd.randrange(30, 60), rnd.randrange(60, 100)))
    return sorted(seqs)


@pytest.fixture(scope="module")
def trie() -> SIDTrie:
    return SIDTrie.from_sequences(random_catalogue(120), STOP)


@pytest.fixture(scope="module")
def batch():
    gen = torch.Generator().manual_seed(1)
    L = max(LENGTHS)
    ids = torch.full((len(LENGTHS), L), PAD)
    mask = torch.zeros((len(LENGTHS), L), dtype=torch.long)
    for r, n in enumerate(LENGTHS):
        ids[r, L - n:] = torch.randint(100, V, (n,), generator=gen)
        mask[r, L - n:] = 1
    return ids, mask


def check_valid(results: list[BeamResult], trie: SIDTrie, k: int) -> None:
    for res in results:
        assert len(res.sids) == min(k, len(trie))
        assert len(set(res.sids)) == len(res.sids)
        assert set(res.sids) <= set(trie.sids)
        assert res.scores == sorted(res.scores, reverse=True)


@pytest.mark.parametrize("k", [1, 5, 10, 40])
def test_distinct_catalogue_sids_ranked_by_score(model, trie, batch, k):
    check_valid(constrained_beam_search(model, *batch, trie, k), trie, k)


def test_more_beams_than_items_and_first_tokens(model, batch):
    small = SIDTrie.from_sequences([(10, 30, 60), (10, 31, 61), (11, 30, 62)], STOP)  # 2 first tokens
    for search in (constrained_beam_search, reference_beam_search):
        results = search(model, *batch, small, 10)
        check_valid(results, small, 10)
        assert all(len(r.sids) == 3 for r in results)


def plain_score(model, prompt: list[int], seq: tuple[int, ...]) -> float:
    """Sum of full-vocabulary log-probs of the SID tokens and the stop token, one uncached forward."""
    ids = torch.tensor([prompt + list(seq) + [STOP]])
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids).logits[0].float(), -1)
    n = len(prompt)
    return sum(logp[n - 1 + i, t].item() for i, t in enumerate(list(seq) + [STOP]))


@pytest.mark.parametrize("mode", ["tree", "expand"])
def test_scores_are_full_vocab_log_prob_sums(model, trie, batch, mode):
    ids, mask = batch
    results = constrained_beam_search(model, ids, mask, trie, 5, mode=mode)
    seq_of = dict(zip(trie.sids, random_catalogue(120)))
    for r, res in enumerate(results):
        prompt = ids[r][mask[r].bool()].tolist()
        for sid, score in zip(res.sids, res.scores):
            assert score == pytest.approx(plain_score(model, prompt, seq_of[sid]), abs=1e-4)


@pytest.mark.parametrize("k", [5, 10])
@pytest.mark.parametrize("mode", ["tree", "expand"])
def test_parity_with_reference_path(model, trie, batch, k, mode):
    ours = constrained_beam_search(model, *batch, trie, k, mode=mode)
    ref = reference_beam_search(model, *batch, trie, k)
    assert len(ours) == len(ref) == len(LENGTHS)
    for a, b in zip(ours, ref):
        assert same_ranking(a, b), (a, b)


@pytest.mark.parametrize("k, length_penalty", [(3, 0.0), (5, 0.0), (10, 0.0), (4, 1.0)])
def test_parity_variable_length_catalogue(model, batch, k, length_penalty):
    # 1- to 4-token SIDs; (11, 30) is both a SID and the prefix of (11, 30, 60).
    seqs = [(10, 30), (11, 30), (11, 30, 60), (11, 31, 61, 70), (12, 35, 65, 71), (12, 35, 66), (13,), (14, 40)]
    small = SIDTrie.from_sequences(seqs, STOP)
    ours = constrained_beam_search(model, *batch, small, k, length_penalty=length_penalty)
    ref = reference_beam_search(model, *batch, small, k, length_penalty=length_penalty)
    for a, b in zip(ours, ref):
        assert same_ranking(a, b), (a, b)
        assert len(a.sids) == min(k, len(seqs))


def test_row_alone_equals_row_in_batch(model, trie, batch):
    ids, mask = batch
    together = constrained_beam_search(model, ids, mask, trie, 10)
    for r in range(len(LENGTHS)):
        n = LENGTHS[r]
        alone = constrained_beam_search(model, ids[r:r + 1, -n:], mask[r:r + 1, -n:], trie, 10)
        assert same_ranking(alone[0], together[r])


def test_bfloat16_model(model, trie, batch):
    import copy
    bf = copy.deepcopy(model).to(torch.bfloat16)
    ours = constrained_beam_search(bf, *batch, trie, 10)
    check_valid(ours, trie, 10)
    ref = reference_beam_search(bf, *batch, trie, 10)
    agree = sum(same_ranking(a, b, tol=1e-2) for a, b in zip(ours, ref))
    assert agree == len(LENGTHS)


def test_model_and_trie_from_different_vocabularies(model, batch):
    big = SIDTrie.from_sequences([(10, 30, V + 5)], STOP)
    with pytest.raises(ValueError, match=rf"the SID trie uses token id {V + 5} but the model's output layer has "
                                         rf"only {V} rows: the model and tokenizer do not belong together"):
        constrained_beam_search(model, *batch, big, 5)


def test_same_ranking_allows_only_near_tie_swaps():
    a = BeamResult(["x", "y", "z"], [-1.0, -2.0, -2.000001])
    assert same_ranking(a, BeamResult(["x", "z", "y"], [-1.0, -2.000001, -2.0]))
    assert not same_ranking(a, BeamResult(["y", "x", "z"], [-2.0, -1.0, -2.000001]))
    assert not same_ranking(a, BeamResult(["x", "y", "w"], [-1.0, -2.0, -2.000001]))
    assert not same_ranking(a, BeamResult(["x", "y", "z"], [-1.0, -2.0, -2.1]))


@pytest.mark.gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_parity_on_gpu(model, trie, batch, dtype):
    import copy
    gpu = copy.deepcopy(model).to("cuda", dtype)
    ids, mask = (t.to("cuda") for t in batch)
    ours = constrained_beam_search(gpu, ids, mask, trie, 10)
    check_valid(ours, trie, 10)
    ref = reference_beam_search(gpu, ids, mask, trie, 10)
    tol = 1e-4 if dtype == torch.float32 else 1e-2
    assert all(same_ranking(a, b, tol) for a, b in zip(ours, ref))
