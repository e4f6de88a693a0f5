"""Batching: padding collator, step-grouped sampler, and packing with exact attention boundaries
(packed loss == padded loss == per-example loss on a tiny Qwen3)."""
from __future__ import annotations

import random

import pytest
import torch

from sidreasoner.train.collate import PackCollator, PadCollator, StepGroupedSampler, make_collator, padding_stats

IGN = -100


def test_pad_collator_right_pads_ids_mask_and_labels():
    batch = PadCollator(pad_id=0, pad_to_multiple_of=4)([
        {"input_ids": [5, 6, 7], "labels": [IGN, 6, 7]}, {"input_ids": [8], "labels": [8]}])
    assert batch["input_ids"].tolist() == [[5, 6, 7, 0], [8, 0, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 0], [1, 0, 0, 0]]
    assert batch["labels"].tolist() == [[IGN, 6, 7, IGN], [8, IGN, IGN, IGN]]


def test_pack_collator_restarts_positions_and_masks_first_labels():
    batch = PackCollator()([{"input_ids": [5, 6, 7], "labels": [5, 6, 7]}, {"input_ids": [8, 9], "labels": [8, 9]}])
    assert batch["input_ids"].tolist() == [[5, 6, 7, 8, 9]]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 0, 1]]
    assert batch["labels"].tolist() == [[IGN, 6, 7, IGN, 9]]
    assert batch["use_cache"] is False  # with a KV cache transformers ignores the position restarts
    assert "cu_seq_lens_q" in make_collator("pack", 0, "flash_attention_2")([{"input_ids": [1], "labels": [1]}])
    with pytest.raises(ValueError, match=r"unknown batching mode 'zip'; choose one of \('group', 'pack', 'pad'\)"):
        make_collator("zip", 0)


def test_padding_stats_by_hand():
    # batches [1, 4] -> 2 x 4 = 8 slots, [2, 3] -> 2 x 3 = 6 slots; 10 real tokens of 14
    assert padding_stats([1, 4, 2, 3], [0, 1, 2, 3], 2) == {"real_tokens": 10, "padded_tokens": 14,
                                                             "padding_fraction": 1 - 10 / 14}


def _order(sampler, epoch=0):
    sampler.set_epoch(epoch)
    return list(iter(sampler))


def test_step_grouped_sampler_groups_lengths_inside_each_step():
    rng = random.Random(0)
    lengths = [rng.randint(10, 500) for _ in range(1000)]
    s = StepGroupedSampler(lengths, micro_batch_size=8, group_size=64, seed=1)
    order = _order(s)
    assert sorted(order) == list(range(1000))
    for g in range(0, 1000, 64):  # micro-batches of one step cover disjoint length ranges
        micro = [sorted(lengths[i] for i in order[k:k + 8]) for k in range(g, min(g + 64, 1000), 8)]
        spans = sorted((m[0], m[-1]) for m in micro)
        assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))
    grouped = padding_stats(lengths, order, 8)["padding_fraction"]
    plain = padding_stats(lengths, list(range(1000)), 8)["padding_fraction"]
    assert grouped < 0.1 < plain  # ~0.03 vs ~0.45 padding for uniform lengths
    assert order == _order(s) and order != _order(s, epoch=1)  # deterministic per epoch, reshuffled across


def test_step_grouped_sampler_keeps_the_step_sets_of_a_random_sampler():
    """Grouping only reorders examples inside an optimiser step: the step's example set is a random
    draw, independent of length (the same sets for any lengths, given seed and epoch)."""
    s1 = _order(StepGroupedSampler(list(range(100)), 4, 20, seed=3))
    s2 = _order(StepGroupedSampler(list(range(100, 0, -1)), 4, 20, seed=3))
    assert [set(s1[g:g + 20]) for g in range(0, 100, 20)] == [set(s2[g:g + 20]) for g in range(0, 100, 20)]


def test_step_grouped_sampler_short_tail_stays_last():
    order = _order(StepGroupedSampler([5] * 10, micro_batch_size=4, group_size=12, seed=0))
    assert len(order) == 10 and sorted(order) == list(range(10))
    s = StepGroupedSampler([1] * 10, micro_batch_size=4, group_size=10, seed=0)
    assert s.group == 12  # rounded up to whole micro-batches


# -- packed vs padded vs one-by-one loss on a tiny Qwen3 ------------------------------------------------
def _tiny_qwen3(attn):
    from transformers import Qwen3Config, Qwen3ForCausalLM
    torch.manual_seed(0)
    cfg = Qwen3Config(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, head_dim=8, max_position_embeddings=128)
    model = Qwen3ForCausalLM(cfg).eval()
    model.set_attn_implementation(attn)
    return model


def _features():
    g = torch.Generator().manual_seed(0)
    feats = []
    for n, n_prompt in ((7, 4), (12, 6), (3, 0), (9, 2)):
        ids = torch.randint(1, 64, (n,), generator=g).tolist()
        feats.append({"input_ids": ids, "labels": [IGN] * n_prompt + ids[n_prompt:]})
    return feats


def _per_example_loss(model, feats):
    total = count = 0.0
    for f in feats:
        n = sum(1 for x in f["labels"][1:] if x != IGN)
        out = model(input_ids=torch.tensor([f["input_ids"]]), labels=torch.tensor([f["labels"]]))
        total, count = total + out.loss.item() * n, count + n
    return total / count


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_packed_and_padded_losses_equal_per_example_loss(attn):
    model, feats = _tiny_qwen3(attn), _features()
    feats[2]["labels"][0] = IGN  # position 0 is never predicted in any mode; keep the reference comparable
    with torch.no_grad():
        ref = _per_example_loss(model, feats)
        padded = model(**PadCollator(pad_id=0)(feats)).loss.item()
        packed_batch = PackCollator()(feats)
        packed = model(**packed_batch).loss.item()
        # without the position restarts the examples would attend to each other: a different loss
        leaky = model(input_ids=packed_batch["input_ids"], labels=packed_batch["labels"], use_cache=False).loss.item()
        # nor with a KV cache: the collator's use_cache=False is what makes packing exact
        cached = model(**{**packed_batch, "use_cache": True}).loss.item()
    assert padded == pytest.approx(ref, abs=1e-5)
    assert packed == pytest.approx(ref, abs=1e-5)
    assert abs(leaky - ref) > 1e-3 and abs(cached - ref) > 1e-3


def test_packed_gradients_equal_padded_gradients():
    model, feats = _tiny_qwen3("sdpa"), _features()
    grads = []
    for batch in (PadCollator(pad_id=0)(feats), PackCollator()(feats)):
        model.zero_grad()
        model(**batch).loss.backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    assert torch.allclose(grads[0], grads[1], atol=1e-6)
