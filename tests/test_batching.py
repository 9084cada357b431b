"""Token-budget batching: coverage, budget, determinism, bucketing."""

import numpy as np
import pytest

from dgl_transformer.mt.batching import make_batches

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
