import torch

from dgl_transformer import GraphTransformer, TransformerConfig
from dgl_transformer.nn.decoding import beam_search, greedy, naive_greedy


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


def test_greedy_stops_at_eos_in_a_trained_model():
    from dgl_transformer.toy import make_task, toy_config, train_toy

    torch.manual_seed(0)
    model = GraphTransformer(toy_config())
    src, tgt = make_task("copy", 2000, 1, 6, seed=3)
    train_toy(model, src, tgt, steps=150)
    out = greedy(model, src[:50], 30)
    assert sum(len(o) < 30 for o in out) >= 45, "outputs should end with EOS, not at max_len"
    assert as_lists(out) == as_lists(naive_greedy(model, src[:50], 30))


def test_beam_one_equals_greedy():
    for seed in range(3):
        model, src = random_model(seed), sources()
        assert as_lists(beam_search(model, src, 1, 25)) == as_lists(greedy(model, src, 25))


def test_beam_search_is_batch_independent_and_scores_no_worse():
    model, src = random_model(1), sources()
    together = as_lists(beam_search(model, src, 4, 20, length_penalty=0.0))
    alone = [as_lists(beam_search(model, [s], 4, 20, length_penalty=0.0))[0] for s in src]
    assert together == alone

    def logprob(s, y):
        batch = model.collate([s], [torch.tensor(y, dtype=torch.int64)])
        lp = torch.log_softmax(model(batch), -1)
        return lp[torch.arange(len(batch.gold)), batch.gold].sum().item()

    # with no length penalty, beam 4 finds a sequence at least as likely as greedy's
    for s, b, g in zip(src, together, as_lists(greedy(model, src, 20)), strict=True):
        if len(b) < 20 and len(g) < 20:
            assert logprob(s, b) >= logprob(s, g) - 1e-4


def test_translate_respects_max_len_and_dispatches():
    model, src = random_model(2), sources()
    out = model.translate(src, beam_size=3, max_len=5)
    assert len(out) == len(src) and all(len(o) <= 5 for o in out)
    assert as_lists(model.translate(src, beam_size=1, max_len=9)) == as_lists(greedy(model, src, 9))
