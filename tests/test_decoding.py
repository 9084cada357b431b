import itertools

import torch

from dgl_transformer import GraphTransformer, TransformerConfig
from dgl_transformer.nn.decoding import beam_search, greedy, naive_greedy, translate
from dgl_transformer.tokens import BOS, EOS, PAD, UNK


def random_model(seed: int = 0, **variant) -> GraphTransformer:
    torch.manual_seed(seed)
    cfg = TransformerConfig(
        src_vocab=30, tgt_vocab=30, d_model=32, n_heads=4, d_ff=64, n_enc_layers=2,
        n_dec_layers=2, dropout=0.1, max_len=48, share_embeddings=True, **variant,
    )
    return GraphTransformer(cfg).eval()


def sources():
    return [torch.randint(4, 30, (n,)) for n in (1, 5, 12, 30, 7, 2)]


def as_lists(seqs):
    return [s.tolist() for s in seqs]


def test_cached_greedy_equals_naive_greedy():
    for seed in range(3):
        model, src = random_model(seed), sources()
        assert as_lists(greedy(model, src, 25)) == as_lists(naive_greedy(model, src, 25))


def test_cache_equals_naive_for_the_essay_variants():
    for variant in ({"norm_first": False}, {"dec_aggregator": "mean"},
                    {"encoder_graph": "hierarchy:1"}):
        model, src = random_model(1, **variant), sources()
        assert as_lists(greedy(model, src, 25)) == as_lists(naive_greedy(model, src, 25))
        assert (as_lists(beam_search(model, src, 3, 25))
                == as_lists(beam_search(model, src, 3, 25, incremental=False)))


def test_greedy_stops_at_eos_in_a_trained_model(train_seed, record_property):
    from dgl_transformer.toy import make_task, toy_config, train_toy

    torch.manual_seed(train_seed)
    model = GraphTransformer(toy_config())
    src, tgt = make_task("copy", 2000, 1, 6, seed=3)
    train_toy(model, src, tgt, steps=150, seed=train_seed)
    out = greedy(model, src[:50], 30)
    ended = sum(len(o) < 30 for o in out)
    record_property("ended", ended)
    assert ended >= 45, "outputs should end with EOS, not at max_len"
    assert as_lists(out) == as_lists(naive_greedy(model, src[:50], 30))


def test_beam_one_equals_greedy():
    for seed in range(3):
        model, src = random_model(seed), sources()
        assert as_lists(beam_search(model, src, 1, 25)) == as_lists(greedy(model, src, 25))


def test_beam_search_is_batch_independent():
    model, src = random_model(1), sources()
    together = as_lists(beam_search(model, src, 4, 20, length_penalty=0.0))
    alone = [as_lists(beam_search(model, [s], 4, 20, length_penalty=0.0))[0] for s in src]
    assert together == alone


def test_a_beam_that_keeps_every_hypothesis_finds_the_most_likely_output():
    """Beam search is approximate: a beam of 4 may score worse than greedy. A beam wider than
    the number of possible outputs keeps them all, and must return the most likely one, found
    here by scoring every output of a 3-symbol vocabulary with teacher forcing."""
    torch.manual_seed(0)
    cfg = TransformerConfig(src_vocab=7, tgt_vocab=7, d_model=16, n_heads=2, d_ff=32,
                            n_enc_layers=1, n_dec_layers=1, dropout=0.0, max_len=8,
                            share_embeddings=True)
    model, symbols, steps = GraphTransformer(cfg).eval(), [4, 5, 6], 3

    @torch.no_grad()
    def logprob(s, y, finished):
        logits = model([s], [torch.tensor([BOS, *y])])  # decoder inputs: [BOS] + y
        logits[:, [PAD, BOS, UNK]] = float("-inf")  # as the decoders mask them
        lp = torch.log_softmax(logits, -1)[torch.arange(len(y) + 1), torch.tensor([*y, EOS])]
        return float(lp.sum() if finished else lp[:-1].sum())  # [:-1]: no EOS yet

    outputs = [([], True)]
    for n in range(1, steps + 1):  # ended by EOS before the limit, or cut at it
        outputs += [(list(y), n < steps) for y in itertools.product(symbols, repeat=n)]
    for s in [torch.tensor([4, 5, 6, 4]), torch.tensor([6]), torch.tensor([5, 5])]:
        exact = max(outputs, key=lambda o: logprob(s, *o))[0]
        assert beam_search(model, [s], 500, steps, length_penalty=0.0)[0].tolist() == exact


def test_translate_respects_max_len_and_dispatches():
    model, src = random_model(2), sources()
    out = translate(model, src, beam_size=3, max_len=5)
    assert len(out) == len(src) and all(len(o) <= 5 for o in out)
    greedy_out = as_lists(greedy(model, src, 9))
    assert as_lists(translate(model, src, beam_size=1, max_len=9)) == greedy_out


def test_decoding_is_inference_whatever_mode_the_model_is_in():
    """A freshly built model is in training mode (dropout on): decoding still runs without
    dropout and gradients, gives the eval-mode output, and hands the mode back."""
    model, src = random_model(1), sources()
    expected = as_lists(beam_search(model, src, 3, 12))
    model.train()
    assert as_lists(beam_search(model, src, 3, 12)) == expected
    assert as_lists(greedy(model, src, 12)) == as_lists(greedy(model.eval(), src, 12))
    assert not model.training
    model.train()
    greedy(model, src, 12)
    assert model.training
