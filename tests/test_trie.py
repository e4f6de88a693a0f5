"""SIDTrie: allowed-token sets (Python and batched tensor views), never empty, advance, variable length,
and the errors for catalogues a tokenizer cannot spell one token per level."""
from __future__ import annotations

import itertools

import pytest
import torch

from sidreasoner.sid.index import SIDIndex
from sidreasoner.sid.trie import END, ROOT, SIDTrie, TrieError

STOP = 2
# Two 3-token SIDs sharing a prefix, a 2-token SID that is also the prefix of a 3-token one, a 1-token SID.
SEQS = [(10, 20, 30), (10, 20, 31), (11, 21), (11, 21, 32), (12,)]


@pytest.fixture(scope="module")
def trie() -> SIDTrie:
    return SIDTrie.from_sequences(SEQS, STOP)


@pytest.mark.parametrize("prefix, allowed", [
    ((), [10, 11, 12]),
    ((10,), [20]),
    ((10, 20), [30, 31]),
    ((10, 20, 30), [STOP]),            # leaf: only the stop token
    ((10, 20, 30, STOP), [STOP]),      # after the stop token: stop/pad again
    ((10, 20, 30, STOP, STOP), [STOP]),
    ((11, 21), [STOP, 32]),            # a SID ends here AND a longer one continues (sorted ids)
    ((11, 21, 32), [STOP]),
    ((12,), [STOP]),
    ((13,), [STOP]),                   # not a catalogue prefix: only the stop token, never empty
    ((10, 99), [STOP]),
])
def test_allowed_table(trie, prefix, allowed):
    assert trie.allowed(prefix) == allowed


def test_never_empty_on_every_prefix(trie):
    vocab = [STOP, 10, 11, 12, 20, 21, 30, 31, 32, 99]
    for n in range(5):
        for prefix in itertools.product(vocab, repeat=n):
            assert trie.allowed(prefix), prefix


def test_tensor_views_match_python(trie):
    prefixes = [p for n in range(5) for p in itertools.product([STOP, 10, 11, 20, 21, 30, 32], repeat=n)]
    nodes = torch.tensor([trie.node_of(p) for p in prefixes])
    mask = trie.allowed_mask(nodes, vocab_size=40)
    assert mask.shape == (len(prefixes), 40)
    for row, p in zip(mask, prefixes):
        assert row.nonzero().flatten().tolist() == trie.allowed(p)
    tok, child, valid = trie.candidates(nodes)
    for i, p in enumerate(prefixes):
        assert tok[i][valid[i]].tolist() == trie.allowed(p)
        assert child[i][valid[i]].tolist() == [trie.node_of(list(p) + [t]) for t in trie.allowed(p)]
        assert (tok[i][~valid[i]] == STOP).all() and (child[i][~valid[i]] == END).all()


def test_advance_batched(trie):
    nodes = torch.tensor([ROOT, ROOT, trie.node_of([10]), trie.node_of([10, 20, 31]), END, ROOT])
    tokens = torch.tensor([10, 12, 20, STOP, STOP, 99])
    got = trie.advance(nodes, tokens).tolist()
    assert got == [trie.node_of([10]), trie.node_of([12]), trie.node_of([10, 20]), END, END, END]


def test_leaves_and_sids():
    trie = SIDTrie.from_sequences(SEQS, STOP)
    assert trie.max_depth == 3 and trie.n_first == 3 and len(trie) == 5
    assert trie.sid_of_ids([10, 20, 31, STOP, STOP]) == trie.sids[1]
    assert trie.sid_of_ids([11, 21, STOP]) == trie.sids[2]
    assert trie.sid_of_ids([10, 20, STOP]) is None    # prefix only, not a SID
    assert trie.sid_of_ids([10, 20, 31]) is None      # never stopped
    assert trie.sid_of_node(ROOT) is None and trie.sid_of_node(END) is None


def test_allowed_mask_needs_room_for_every_token(trie):
    with pytest.raises(TrieError, match=r"vocab_size 32 is too small for token id 32 in the trie"):
        trie.allowed_mask(torch.tensor([ROOT]), vocab_size=32)


@pytest.mark.parametrize("seqs, msg", [
    ([], "cannot build a SID trie from an empty catalogue"),
    ([(1, 3), (1, 3)], "duplicate SID in the catalogue: '1 3' (same tokens as '1 3'); pass distinct SIDs"),
    ([(1, STOP)], f"SID '1 {STOP}' contains the stop token id {STOP}"),
    ([()], "SID '' has no tokens"),
])
def test_bad_catalogues(seqs, msg):
    with pytest.raises(TrieError) as e:
        SIDTrie.from_sequences(seqs, STOP)
    assert str(e.value) == msg


# -- built from a catalogue and a real tokenizer ----------------------------------------------------
@pytest.fixture(scope="module")
def tokenizers():
    from sidreasoner.train.tokenizer import train_catalogue_tokenizer
    index = SIDIndex({"1": "<a_1><b_2><c_3>", "2": "<a_1><b_2><c_4>", "3": "<a_5><b_6>", "4": "<a_1><b_2><c_3>"})
    with_sids = train_catalogue_tokenizer(["red pen", "blue paper"], vocab_size=300, sid_tokens=index.tokens())
    without = train_catalogue_tokenizer(["red pen", "blue paper"], vocab_size=300)
    return index, with_sids, without


def test_from_index_uses_one_id_per_token(tokenizers):
    index, tok, _ = tokenizers
    stop = tok.convert_tokens_to_ids("<|im_end|>")
    trie = SIDTrie.from_index(index, tok, stop)
    assert trie.sids == ["<a_1><b_2><c_3>", "<a_1><b_2><c_4>", "<a_5><b_6>"]  # colliding items share a leaf
    ids = {t: tok.convert_tokens_to_ids(t) for t in index.tokens()}
    assert trie.allowed([]) == sorted([ids["<a_1>"], ids["<a_5>"]])
    assert trie.allowed([ids["<a_1>"], ids["<b_2>"]]) == sorted([ids["<c_3>"], ids["<c_4>"]])
    assert trie.sid_of_ids([ids["<a_5>"], ids["<b_6>"], stop]) == "<a_5><b_6>"


def test_tokenizer_without_sid_tokens_is_a_clear_error(tokenizers):
    index, _, tok = tokenizers
    with pytest.raises(TrieError) as e:
        SIDTrie.from_index(index, tok, tok.convert_tokens_to_ids("<|im_end|>"), source="info file x.txt")
    ids = tok.encode("<a_1>", add_special_tokens=False)
    assert str(e.value) == (
        f"SID token '<a_1>' from the info file x.txt is not a single token of this tokenizer (encodes to "
        f"{len(ids)} ids {ids[:8]}): the checkpoint lacks the SID vocabulary; use a model whose tokenizer has "
        f"the SID tokens added (sidreasoner.model.model_factory.add_sid_tokens, done by stage 1)")
