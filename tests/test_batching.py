"""Token-budget batching: coverage, budget, determinism, bucketing."""

import numpy as np
import pytest

from dgl_transformer.mt.batching import group_updates, make_batches

RNG = np.random.default_rng(123)
SRC = RNG.integers(3, 40, size=3000).tolist()
TGT = RNG.integers(3, 40, size=3000).tolist()
MODES = [
    pytest.param(dict(bucketed=True, shuffle=True), id="bucketed-shuffled"),
    pytest.param(dict(bucketed=True, shuffle=False), id="bucketed-sorted"),
    pytest.param(dict(bucketed=False, shuffle=True), id="random"),
    pytest.param(dict(bucketed=False, shuffle=False), id="in-order"),
]


def tokens(batch: list[int], src=SRC, tgt=TGT) -> int:
    return sum(src[i] + tgt[i] for i in batch)


@pytest.mark.parametrize("mode", MODES)
def test_every_index_once_and_budget_respected(mode):
    batches = make_batches(SRC, TGT, 600, seed=7, epoch=3, **mode)
    flat = [i for batch in batches for i in batch]
    assert sorted(flat) == list(range(len(SRC)))
    assert all(tokens(batch) <= 600 for batch in batches)
    assert all(isinstance(i, int) for i in flat)
    if not (mode["bucketed"] and mode["shuffle"]):  # batches still in cutting order
        # greedy: each batch was closed only because the next pair did not fit
        neighbours = zip(batches[:-1], batches[1:], strict=True)
        assert all(tokens(a) + tokens(b[:1]) > 600 for a, b in neighbours)


@pytest.mark.parametrize("mode", MODES)
def test_overlong_pair_gets_its_own_batch(mode):
    src, tgt = [5, 500, 5, 5], [5, 400, 5, 5]
    batches = make_batches(src, tgt, 100, seed=0, **mode)
    assert [1] in batches
    assert sorted(i for b in batches for i in b) == [0, 1, 2, 3]


@pytest.mark.parametrize("bucketed", [True, False])
def test_deterministic_per_seed_and_epoch(bucketed):
    def run(seed, epoch):
        return make_batches(SRC, TGT, 600, shuffle=True, seed=seed, epoch=epoch, bucketed=bucketed)

    assert run(1, 0) == run(1, 0)
    assert run(1, 0) != run(1, 1)
    assert run(1, 0) != run(2, 0)


def test_bucketing_groups_similar_lengths_and_ties_are_random():
    bucketed = make_batches(SRC, TGT, 600, shuffle=True, seed=0)
    random = make_batches(SRC, TGT, 600, shuffle=True, seed=0, bucketed=False)

    def spread(batches):
        return np.mean([np.ptp([SRC[i] + TGT[i] for i in b]) for b in batches if len(b) > 1])

    assert spread(bucketed) <= 2 < 20 < spread(random)
    # many pairs share a length: which ones share a batch changes with the epoch
    epoch0 = {frozenset(b) for b in bucketed}
    epoch1 = {frozenset(b) for b in make_batches(SRC, TGT, 600, shuffle=True, seed=0, epoch=1)}
    assert epoch0 != epoch1


def test_unshuffled_bucketed_batches_are_sorted_by_length():
    batches = make_batches(SRC, TGT, 600, shuffle=False)
    totals = [SRC[i] + TGT[i] for b in batches for i in b]
    assert totals == sorted(totals)


def test_edge_cases_and_bad_input():
    assert make_batches([], [], 100, shuffle=True) == []
    with pytest.raises(ValueError, match="target lengths"):
        make_batches([1, 2], [1], 100, shuffle=True)
    with pytest.raises(ValueError, match="max_tokens"):
        make_batches([1], [1], 0, shuffle=True)
    with pytest.raises(ValueError, match=">= 0"):
        make_batches([1, -2], [1, 1], 10, shuffle=True)


def fairseq_reference(src: list[int], tgt: list[int], order: list[int], max_tokens: int):
    """fairseq's ``batch_by_size`` as its docs state it, written plainly: add pairs in order;
    when ``(sentences + 1) * longest`` would pass the budget, emit the largest multiple of 8
    sentences (or the remainder below 8) and carry the rest over."""
    batches, batch, lens = [], [], []
    for i in order:
        lens.append(max(src[i], tgt[i]))
        if batch and (len(batch) + 1) * max(lens) > max_tokens:
            keep = max(8 * (len(batch) // 8), len(batch) % 8)
            batches.append(batch[:keep])
            batch, lens = batch[keep:], lens[keep:]
        batch.append(i)
    return batches + [batch] if batch else batches


def test_fairseq_rule_matches_a_plain_reference_and_its_budget():
    batches = make_batches(SRC, TGT, 600, shuffle=False, rule="fairseq")
    order = sorted(range(len(SRC)), key=lambda i: (SRC[i], TGT[i], i))
    assert batches == fairseq_reference(SRC, TGT, order, 600)
    assert sorted(i for b in batches for i in b) == list(range(len(SRC)))
    assert all(len(b) * max(max(SRC[i], TGT[i]) for i in b) <= 600 for b in batches)
    # full batches hold a multiple of 8 sentences; the rule is not the token count's
    assert all(len(b) % 8 == 0 for b in batches[:-1] if len(b) >= 8)
    assert batches != make_batches(SRC, TGT, 600, shuffle=False)


def test_fairseq_rule_shuffles_batches_not_their_contents():
    a = make_batches(SRC, TGT, 600, shuffle=True, seed=1, epoch=0, rule="fairseq")
    b = make_batches(SRC, TGT, 600, shuffle=True, seed=1, epoch=1, rule="fairseq")
    assert a != b
    for batches in (a, b):  # each batch is still a run of similar lengths
        assert np.mean([np.ptp([SRC[i] for i in x]) for x in batches if len(x) > 1]) <= 1


def test_unknown_rule_is_refused():
    with pytest.raises(ValueError, match="rule must be one of tokens, fairseq"):
        make_batches(SRC, TGT, 600, shuffle=False, rule="sentences")


def test_group_updates_joins_consecutive_batches():
    batches = [[0, 1], [2], [3, 4, 5], [6], [7]]
    assert group_updates(batches, 2) == [[0, 1, 2], [3, 4, 5, 6], [7]]
    assert group_updates(batches, 1) == batches
    with pytest.raises(ValueError, match="per_update must be >= 1"):
        group_updates(batches, 0)
