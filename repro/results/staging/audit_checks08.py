"""Lesson 8's entries for ``CHECKS`` in ``notebooks/audit.py``: paste the ``_c(...)`` calls of
``CHECKS_08`` into ``CHECKS`` (after lesson 6's) when ``notebooks/08_heads_and_syntax.py`` lands.

They are the lesson's asserts on values computed from the live model (``repro/models/default.pt``
run on CPU in Section 2.1 and the solutions): attention shares, importance (loss increase with one
head masked) and greedy BLEU with one head off. The asserts on the JSON files do not vary and are
not listed, nor ``pruned_view.switched_off == {"enc": [tracker]}`` (which heads are off: no
number). An assert of identity (``tracker``, ``runner_up``, ``lean_back`` equal to heads that a
JSON file names) is measured by the gap that keeps the live ranking as it is. The lesson trains
nothing and has no quick mode: default mode only.

    PYTHONPATH=. python -c "from repro.results.staging.audit_checks08 import CHECKS_08"
"""

from notebooks.audit import _c

CHECKS_08 = [
    _c("08", "assert previous_share[tracker] > 5 * uniform_share",
       "a head tracks the previous token (its share / the uniform head's)",
       "previous_share[tracker].item() / uniform_share", ">", 5, modes=("default",)),
    _c("08", "assert next_share.max() < 0.5 * previous_share[tracker]",
       "no head tracks the next token (largest next share / the tracker's previous share)",
       "next_share.max().item() / previous_share[tracker].item()", "<", 0.5,
       modes=("default",)),
    _c("08", "assert any(layer == tracker[0] for layer, _ in right_leaners)",
       "a head of the tracker's layer leans right (next share - max(previous, 2 x uniform), best)",
       "(next_share[tracker[0]] - previous_share[tracker[0]].clamp(min=2 * uniform_share))"
       ".max().item()", ">", 0, modes=("default",)),
    _c("08", "assert max(0.5, 5 * uniform_share) < back_one < 0.9",
       "the previous token is the tracker's strongest in-edge for most tokens "
       "(share - max(0.5, 5 x uniform))",
       "back_one - max(0.5, 5 * uniform_share)", ">", 0, modes=("default",)),
    _c("08", "assert max(0.5, 5 * uniform_share) < back_one < 0.9",
       "... short of a positional head's 90% (share)", "back_one", "<", 0.9, modes=("default",)),
    _c("08", "assert most_important == tracker",
       "the tracker is the most important encoder head (its importance / the largest other)",
       "importance_200[tracker].item()"
       " / importance_200.masked_fill(is_tracker, -math.inf).max().item()", ">", 1,
       modes=("default",)),
    _c("08", "assert importance_200[tracker] > 1.4 * importance_200[runner_up]",
       "the tracker is well ahead of the runner-up (importance ratio)",
       "importance_200[tracker].item() / importance_200[runner_up].item()", ">", 1.4,
       modes=("default",)),
    _c("08", "assert importance_200[tracker] > 10 * importance_200.median()",
       "the tracker raises the loss many times as much as the median head (ratio)",
       "importance_200[tracker].item() / importance_200.median().item()", ">", 10,
       modes=("default",)),
    _c("08", "assert two_back_share[runner_up] > previous_share[runner_up] > 2.5 * uniform_share",
       "the runner-up looks further back (two back / previous share)",
       "two_back_share[runner_up].item() / previous_share[runner_up].item()", ">", 1,
       modes=("default",)),
    _c("08", "assert two_back_share[runner_up] > previous_share[runner_up] > 2.5 * uniform_share",
       "... and back (its previous share / the uniform head's)",
       "previous_share[runner_up].item() / uniform_share", ">", 2.5, modes=("default",)),
    _c("08", "assert (head_of(section_1[0]), head_of(section_1[1])) == (tracker, runner_up)",
       "the runner-up stays Section 1's (second / third importance)",
       "importance_200.flatten().sort().values[-2].item()"
       " / importance_200.flatten().sort().values[-3].item()", ">", 1, modes=("default",)),
    _c("08", "assert torch.allclose(weights, tracker_weights[in_example], atol=1e-5)",
       "the viewer draws the hook's weights (largest difference)",
       "(weights - tracker_weights[in_example]).abs().max().item()", "<", 1e-5,
       modes=("default",)),
    _c("08", "assert bleu_drop[tracker] > 1 and",
       "greedy BLEU falls without the tracker (BLEU drop)", "bleu_drop[tracker].item()", ">", 1,
       modes=("default",)),
    _c("08", "bleu_drop[tracker] > 2 * other_drops.abs().max()",
       "... twice as far as any other head moves it (ratio)",
       "bleu_drop[tracker].item() / other_drops.abs().max().item()", ">", 2,
       modes=("default",)),
    _c("08", "assert same == (layer <= tracker[0])",
       "the layers above the tracker hear something else (smallest largest weight change)",
       'min((pruned_view.graphs["enc"].weights[k] - view.graphs["enc"].weights[k]).abs().max()'
       ".item() for k in range(tracker[0] + 1, n_layers))", ">", 0, modes=("default",)),
    _c("08", "assert kept_last == lean_back",
       "the three heads leaning back most stay the three (third / fourth previous share)",
       "previous_share.flatten().sort().values[-3].item()"
       " / previous_share.flatten().sort().values[-4].item()", ">", 1, modes=("default",)),
    _c("08", "assert set(order[-2:]) == top(importance_200, 2) == {tracker, runner_up}",
       "the two heads pruning keeps last are the two most important (second / third)",
       "importance_200.flatten().sort().values[-2].item()"
       " / importance_200.flatten().sort().values[-3].item()", ">", 1, modes=("default",)),
    _c("08", "assert rank(importance_200, third) > n_layers * n_heads / 2",
       "the third head leaning back is in importance's lower half (rank of 16)",
       "rank(importance_200, third)", ">", 8, modes=("default",)),
    _c("08", 'assert lean["full"][0] == tracker',
       "the tracker is the head leaning back most (first / second previous share)",
       "previous_share.flatten().sort().values[-1].item()"
       " / previous_share.flatten().sort().values[-2].item()", ">", 1, modes=("default",)),
    _c("08", "assert bleu_drop[riser] < 0 < importance_200[riser]",
       "removing some head raises greedy BLEU (largest BLEU drop, negative: a rise)",
       "bleu_drop[riser].item()", "<", 0, modes=("default",)),
    _c("08", "assert bleu_drop[riser] < 0 < importance_200[riser]",
       "... yet that head raises the loss (its importance)",
       "importance_200[riser].item()", ">", 0, modes=("default",)),
]
