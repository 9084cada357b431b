# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Lesson 5 — Translating English to German on Multi30k
#
# *Reading time: about 75 minutes, exercises included. Running time: three to four minutes, most
# of it training a small model (less if `make repro` has left one).*
#
# Lessons 3 and 4 built the Transformer as message passing on three graphs and trained it on
# a toy task. Now the real thing: translating English image descriptions into German, on
# **Multi30k** (Elliott et al., 2016; 29,000 training pairs, derived from Flickr30K, for
# non-commercial research and education). This lesson also takes up two of the questions at
# the end of Joshi's essay (*Transformers are Graph Neural Networks*, The Gradient, 2020):
# "Why is training Transformers so hard?" (section 3: the warm-up the essay names, and two
# related training tricks, label smoothing and checkpoint averaging, each measured) and "Why
# multiple heads of attention?" (section 6: what the heads of a trained encoder look at, word
# by word). The essay's "neural syntax" question needs a better-trained model than this
# lesson's; it is left to a later lesson.
#
# | step | project code |
# |---|---|
# | read and verify the data files | `dgl_transformer.mt.data` |
# | split words into subwords (BPE) | `dgl_transformer.mt.text` |
# | group sentences into batches = graphs | `dgl_transformer.mt.batching`, `PackedBatch` |
# | one training update | `dgl_transformer.training.train_step` (what `make repro` runs) |
# | translate (greedy, beam search), score with BLEU | `nn.decoding`, `mt.generate`, `mt.evaluate` |
#
# If a model trained by `make repro` exists (`runs/*/final.pt`), the lesson studies it;
# otherwise it trains a small model for a few minutes on the CPU, with a training loop written
# out in the lesson — enough for recognisable German, not for a good score.

# %%
import copy
import logging
import os
import time
from pathlib import Path

import matplotlib.pyplot as plt
import sacrebleu
import spacy
import torch
import torch.nn.functional as F
from IPython.display import display
from torch.overrides import TorchFunctionMode

import dgl_transformer
from dgl_transformer import (
    BOS,
    EOS,
    PAD,
    UNK,
    DenseTransformer,
    GraphTransformer,
    PackedBatch,
    TransformerConfig,
)
from dgl_transformer.mt.batching import make_batches
from dgl_transformer.mt.bleu import bleu_tok_lc
from dgl_transformer.mt.checkpoint import CheckpointError, TrainedModel
from dgl_transformer.mt.data import read_parallel, read_split
from dgl_transformer.mt.generate import Translator, translate_ids
from dgl_transformer.mt.text import TextPipeline, preprocess
from dgl_transformer.nn.decoding import beam_search, greedy, translate
from dgl_transformer.nn.hooks import observe_attention
from dgl_transformer.training import (
    label_smoothed_loss,
    smoothed_and_nll,
    train_step,
    warmup_inverse_sqrt,
)
from dgl_transformer.viewer import show_attention

QUICK = os.environ.get("DGLT_QUICK") == "1"  # CI: shorter training, same lesson
logging.getLogger("sacrebleu").setLevel(logging.ERROR)  # no advice on tokenised input
SEED = int(os.environ.get("DGLT_SEED", "0"))  # another seed: run_notebooks.py --seed N
torch.manual_seed(SEED)
torch.set_num_threads(1)  # robust on a busy machine; see the project's BENCHMARKS notes
NEVER = [PAD, BOS, UNK]  # ids a decoder must never write

# %% [markdown]
# ## 1. The data
#
# The project reads Multi30k from a data directory with the layout of the official
# repository (`raw/` cased text, `tok/` lowercased tokenised text) and checks every file
# against SHA-256 sums kept in the repository. It looks first in the directory named by the
# environment variable `MULTI30K_DIR` (a local copy), then in `data/multi30k` in the
# repository, where `make data` puts it — `make notebooks` and `make test` run `make data`
# first, so on a machine with internet the data is simply there.

# %%
ROOT = Path(dgl_transformer.__file__).resolve().parents[1]  # the repository
candidates = [os.environ.get("MULTI30K_DIR"), ROOT / "data" / "multi30k"]
DATA = next((Path(c) for c in candidates if c and (Path(c) / "raw" / "train.en.gz").exists()),
            None)
if DATA is None:
    raise FileNotFoundError("Multi30k not found: run `make data` in the repository (it "
                            "downloads and verifies it) or set MULTI30K_DIR to a local copy")

train_en, train_de = read_parallel(DATA, "train", "en", "de", "raw")
test_en, test_de = read_parallel(DATA, "test_2016_flickr", "en", "de", "raw")
assert (len(train_en), len(read_split(DATA, "val", "en")), len(test_en)) == (29000, 1014, 1000)
for k in (0, 1, 2):
    print(f"EN: {train_en[k]}\nDE: {train_de[k]}\n")

# %% [markdown]
# ## 2. Subwords, and a batch as a graph
#
# The model does not see words but **subword pieces** from a byte-pair encoding learnt on the
# training text: frequent words stay whole, rare ones are split ("▁" marks the start of a
# word). Both languages share one vocabulary. The lesson's model reads the official
# lowercased, tokenised text (`lc_tok`) with 2,000 pieces. If `make repro` has trained a
# model (a `runs/*/final.pt` whose recorded validation BLEU is at least 20, so that a quick
# smoke-test run is not mistaken for a model), we study that one and its vocabulary instead;
# `DGLT_CHECKPOINT=path/to/final.pt` picks one, `DGLT_CHECKPOINT=none` trains here anyway.

# %%
def recorded_bleu(path):
    """The validation BLEU a final.pt records for the weights it holds (0 if unusable)."""
    try:
        state = TrainedModel.load(path)
    except CheckpointError:
        return 0.0
    if state.pipeline.get("variant") == "word":
        return 0.0  # this lesson studies subword models
    return float(state.candidates.get(state.chosen, {}).get("val_bleu_greedy", 0.0))


def find_checkpoint():
    chosen = os.environ.get("DGLT_CHECKPOINT")
    if chosen:
        return None if chosen == "none" else Path(chosen)
    scored = [(recorded_bleu(p), p) for p in sorted((ROOT / "runs").glob("*/final.pt"))]
    scored = [(b, p) for b, p in scored if b >= 20]
    return max(scored)[1] if scored else None


checkpoint_path = find_checkpoint()
chosen_by_user = bool(os.environ.get("DGLT_CHECKPOINT")) and checkpoint_path is not None
if checkpoint_path is not None:
    translator = Translator.from_checkpoint(checkpoint_path)
    model, pipeline = translator.model, translator.pipeline
    cfg = model.cfg
    print("studying", os.path.relpath(checkpoint_path, ROOT))
else:
    pipeline = TextPipeline.train(DATA, "lc_tok", "en", "de", vocab_size=2000)
    cfg = TransformerConfig(src_vocab=2000, tgt_vocab=2000, d_model=128, n_heads=4, d_ff=256,
                            n_enc_layers=2, n_dec_layers=2, dropout=0.1, max_len=64,
                            share_embeddings=True)
    torch.manual_seed(SEED)
    model = GraphTransformer(cfg)  # trained in section 3
    print("no make-repro model found: training a small one here")
print(f"text variant {pipeline.variant}, {pipeline.tokenizer.vocab_size} pieces; {cfg}")


def corpus_form(text, lang="en"):
    """Plain text in the form the vocabulary was learnt on."""
    return preprocess(text, lang) if pipeline.variant == "lc_tok" else text


sentence = "Two young children are playing the xylophone on the beach."
print(corpus_form(sentence))
print(pipeline.tokenizer.pieces(corpus_form(sentence), "en"))
ids = pipeline.encode_src(sentence)
assert pipeline.tokenizer.decode(ids, "en") == corpus_form(sentence)  # lossless
assert len(pipeline.tokenizer.pieces(corpus_form("the"), "en")) == 1  # a frequent word
assert len(pipeline.tokenizer.pieces(corpus_form("xylophone"), "en")) > 1  # a rare one

# %% [markdown]
# For training, sentences are grouped into batches by a **token budget**: a batch holds as
# many pairs as fit in `max_tokens` source + decoder tokens — the number of nodes of the
# batch's graph. Pairs of similar length go together ("bucketing"). We encode the training
# pairs (dropping the few with a side longer than 40 pieces), draw the first batch of an
# epoch, and collate it into a `PackedBatch` with its three graphs.
#
# How much would padding cost on *this* batch? We run it through the graph model and through
# its padded twin `DenseTransformer`, and count what each computes: for the graph model, the
# edges of every graph its attention kernel is called on; for the padded model, the scores of
# every `F.scaled_dot_product_attention` call — one per (query, key) pair of the padded
# grid, per head. (A `TorchFunctionMode` sees every call of a torch function.)

# %%
train_src_tok, train_tgt_tok = pipeline.read(DATA, "train")
pairs_ids = [(pipeline.encode(s, "en"), pipeline.encode(t, "de"))
             for s, t in zip(train_src_tok, train_tgt_tok, strict=True)]
kept = [(s, t) for s, t in pairs_ids if 0 < len(s) <= 40 and 0 < len(t) <= 40]
train_src = [torch.tensor(s) for s, _ in kept]
train_tgt = [torch.tensor(t) for _, t in kept]
lengths = ([len(s) for s in train_src], [PackedBatch.decoder_length(len(t)) for t in train_tgt])
print(f"{len(kept):,} of {len(pairs_ids):,} training pairs kept")

MAX_TOKENS = 4000
first = make_batches(*lengths, MAX_TOKENS, shuffle=True, seed=1 + SEED)[0]
batch = model.collate([train_src[i] for i in first], [train_tgt[i] for i in first])


class CountDenseScores(TorchFunctionMode):
    """Records batch x queries x keys of every scaled_dot_product_attention call."""

    def __init__(self):
        super().__init__()
        self.scores = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func is F.scaled_dot_product_attention:
            q, k = args[0], args[1]  # (batch, heads, queries, d_k), (batch, heads, keys, d_k)
            self.scores.append(q.shape[0] * q.shape[2] * k.shape[2])
        return func(*args, **(kwargs or {}))


dense = DenseTransformer(cfg).eval()
dense.load_state_dict(model.state_dict())
model.eval()
# observe_attention reports every attention computation of the graph model (its graph too)
with torch.no_grad(), observe_attention(model) as events, CountDenseScores() as counter:
    graph_logits = model(batch)
    dense_logits = dense(batch)
graph_edges = [event.graph.num_edges() for event in events]  # in call order
assert torch.allclose(graph_logits, dense_logits, atol=1e-3)  # the same translation model

L_enc = cfg.n_enc_layers  # calls: the encoder's layers, then (self, cross) per decoder layer
kinds = {"encoder (complete)": 0, "decoder (causal)": L_enc, "encoder-decoder (bipartite)":
         L_enc + 1}
print(f"{len(batch)} sentence pairs, {batch.num_nodes} nodes "
      f"({len(batch.src)} source, {batch.num_target_tokens} decoder)")
ratio = {}
for name, call in kinds.items():
    ratio[name] = counter.scores[call] / graph_edges[call]
    print(f"  {name:<28s} {graph_edges[call]:>7,d} edges   padded: {counter.scores[call]:>7,d} "
          f"scores per head   ({ratio[name]:.2f}x)")
assert batch.num_nodes <= MAX_TOKENS
# a padded decoder computes the whole square of which the causal graph is a triangle ...
assert ratio["decoder (causal)"] > 1.7
# ... and that costs far more than what bucketing leaves of the other two graphs' padding
padded_most = max(ratio["encoder (complete)"], ratio["encoder-decoder (bipartite)"])
assert ratio["decoder (causal)"] > 1.5 * padded_most

# %% [markdown]
# Bucketing works: the pairs of this batch have nearly the same total length, so padding adds
# little to the encoder's and the cross graph's work (the ratios above; pairs are sorted by
# their total length, so how it splits between source and target still varies a little, and
# more with some vocabularies than with others). The decoder is another matter: its causal
# graph is a triangle of $m(m+1)/2$ edges, while a dense decoder that computes the full masked
# square has $m^2$ scores — $2m/(m+1)$ times the work, close to twice even with perfect
# bucketing, and more once padding adds to it. Random batches pad much more: exercise 3
# measures it for the encoder.
#
# ## 3. Training, opened up
#
# One update of the project's trainer (and of `make repro`) is one call of `train_step`: the
# logits of a `PackedBatch`, the loss against `batch.gold`, backward, gradient clipping, an
# Adam step and one step of the learning-rate schedule. The essay's question "Why is training
# Transformers so hard?" points at learning-rate schedules, the **warm-up**, and where the
# normalisation goes (lesson 3 measured the last). The warm-up is part of this update, with
# two related training tricks: **label smoothing**, and, after training, **checkpoint
# averaging**. We look at each, measure what it does, then train.
#
# ### 3.1 Warm-up
#
# The learning rate of update $s$ is the base rate $\eta$ times
# $$f(s) = \begin{cases} s / w & s < w \\ \sqrt{w / s} & s \ge w \end{cases}$$
# a linear ramp over the first $w$ updates, then a slow decay (Vaswani et al., 2017).
# `warmup_inverse_sqrt(optimizer, w)` builds it around the optimiser.

# %%
LR, WARMUP, EPS = 3e-3, 100, 0.1
UPDATES, SNAPSHOT_EVERY, SNAPSHOTS = (200, 10, 4) if QUICK else (360, 20, 4)

sketch = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=LR)
schedule_sketch = warmup_inverse_sqrt(sketch, WARMUP)
rates = []
for _ in range(UPDATES):
    rates.append(schedule_sketch.get_last_lr()[0])  # the rate update s+1 will use
    sketch.step()
    schedule_sketch.step()
fig, ax = plt.subplots(figsize=(6.5, 2.8))
ax.plot(range(1, UPDATES + 1), rates)
ax.axvline(WARMUP, color="#bbb", lw=0.8)
ax.set_xlabel("update")
ax.set_ylabel("learning rate")
ax.set_title(f"warm-up over {WARMUP} updates, then inverse square root", fontsize=9)
plt.show()
assert abs(rates[0] - LR / WARMUP) < 1e-12  # update 1: a hundredth of the rate
assert abs(max(rates) - LR) < 1e-12 and rates.index(max(rates)) == WARMUP - 1  # peak at w
assert abs(rates[-1] - LR * (WARMUP / UPDATES) ** 0.5) < 1e-9  # then sqrt(w / s)

# %% [markdown]
# Why start small? Adam divides each gradient coordinate by a running estimate of its size.
# At the first update that estimate is built from one batch, so every weight that received
# any gradient moves by almost exactly the learning rate, in the direction of one batch's
# noisy gradient (Liu et al., 2020, analyse this in detail). We measure it: one update of a
# fresh copy of the model at the full rate.

# %%
probe = GraphTransformer(cfg)  # a fresh, untrained model
before = {n: p.detach().clone() for n, p in probe.named_parameters()}
probe.train()
train_step(probe, batch, torch.optim.Adam(probe.parameters(), lr=LR, betas=(0.9, 0.98)),
           label_smoothing=EPS)
moved = torch.cat([(p.detach() - before[n]).abs().flatten() for n, p in probe.named_parameters()])
touched = moved > 0
at_lr = ((moved[touched] - LR).abs() < 0.01 * LR).float().mean().item()
typical = torch.cat([p.flatten() for p in before.values()]).abs().median().item()
print(f"{touched.float().mean():.0%} of the weights moved; {at_lr:.0%} of those by the "
      f"learning rate (within 1%): {LR:g}, against a median weight size of {typical:.3f}")
assert at_lr > 0.9

# %% [markdown]
# So a first update at the full rate moves most weights by a few percent of their size at
# once, on the evidence of a single batch. The warm-up makes the first step a hundredth of
# that, and lets Adam's estimates settle before the steps get large. (Lesson 3 showed, in a
# controlled run, a post-norm stack that learns nothing without a warm-up at a high rate.)
#
# ### 3.2 Label smoothing
#
# The cross-entropy of lesson 4 asks the model to put probability 1 on the reference token.
# Label smoothing (Szegedy et al., 2016) replaces that one-hot target by a mixture with the
# uniform distribution over the $V$ pieces of the vocabulary:
# $$q(v) = (1 - \varepsilon)\, [v = y] + \frac{\varepsilon}{V}, \qquad
#   \mathcal L = -\sum_v q(v) \log p(v)
#   = (1-\varepsilon)\,\big(-\log p(y)\big)
#     + \varepsilon \cdot \frac1V \sum_v \big(-\log p(v)\big),$$
# which is the formula of `label_smoothed_loss` (the project, like `make repro`, uses
# $\varepsilon = 0.1$). We check the two forms agree on the first batch, and draw $q$.

# %%
V = cfg.tgt_vocab
with torch.no_grad():
    logits = model(batch)
gold = batch.gold
q = torch.full((len(gold), V), EPS / V)
q[torch.arange(len(gold)), gold] += 1 - EPS
by_hand = -(q * torch.log_softmax(logits, -1)).sum(-1).mean()
assert torch.allclose(label_smoothed_loss(logits, gold, EPS), by_hand, atol=1e-5)

fig, ax = plt.subplots(figsize=(6.5, 2.6))
shown = torch.arange(int(gold[0]) - 5, int(gold[0]) + 6)
ax.bar(shown - 0.2, (shown == gold[0]).float(), width=0.4, label="one-hot target")
ax.bar(shown + 0.2, q[0, shown], width=0.4, label=rf"smoothed, $\varepsilon$ = {EPS}")
ax.set_yscale("log")
ax.set_ylim(1e-5, 2)
ax.set_xlabel(f"vocabulary id (the reference piece is {int(gold[0])}; {V} ids in all)")
ax.set_ylabel("target probability")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# What does it change? With a one-hot target, the loss keeps falling as long as the
# reference's logit keeps growing away from the others: the best model is infinitely sure of
# itself. With smoothing, the loss has a finite optimum, $p = q$: probability
# $1 - \varepsilon + \varepsilon/V$ on the reference and a little on everything else. We
# measure both by minimising each loss over a free vector of logits for one token.

# %%
for eps in (0.0, EPS):
    z = torch.zeros(1, V, requires_grad=True)
    opt = torch.optim.Adam([z], lr=0.5)
    for _ in range(400):
        loss = label_smoothed_loss(z, gold[:1], eps)
        opt.zero_grad()
        loss.backward()
        opt.step()
    p = torch.softmax(z.detach(), -1)[0]
    gap = (z[0, gold[0]] - z[0].detach().clone().index_fill_(0, gold[:1], -1e9).max()).item()
    print(f"epsilon {eps}: p(reference) = {p[gold[0]]:.4f}, logit gap to the next piece "
          f"{gap:.1f}")
    if eps == 0.0:
        assert p[gold[0]] > 0.99  # ever more confident
    else:
        assert abs(p[gold[0]].item() - (1 - eps + eps / V)) < 0.01  # the optimum is q

# %% [markdown]
# A smoothed model stays a little unsure, and that uncertainty is useful: it leaves the
# decoder real alternatives to weigh, which beam search (section 5) exploits. (Müller et al.,
# 2019, show that it also makes the probabilities better calibrated.)
#
# ### 3.3 The training run
#
# Here is the whole loop; `make repro`'s trainer adds logging, validation and checkpoints
# around the same `train_step`. The model is small ($d = 128$, 2 encoder and 2 decoder
# layers, 4 heads) and trains for a fixed number of updates: 360, about 1.4 passes over the
# data (200, under one pass, with `DGLT_QUICK=1`). Near the end we keep a few snapshots of the
# weights, for section 3.4.

# %%
snapshots = []
if checkpoint_path is None:
    opt = torch.optim.Adam(model.parameters(), lr=LR, betas=(0.9, 0.98))
    schedule = warmup_inverse_sqrt(opt, WARMUP)
    history, step, epoch, start = [], 0, 0, time.perf_counter()
    model.train()
    while step < UPDATES:
        for pairs in make_batches(*lengths, MAX_TOKENS, shuffle=True, seed=1 + SEED, epoch=epoch):
            batch_s = model.collate([train_src[i] for i in pairs], [train_tgt[i] for i in pairs])
            lr_now = schedule.get_last_lr()[0]
            stats = train_step(model, batch_s, opt, schedule, label_smoothing=EPS, clip_norm=1.0)
            step += 1
            history.append((stats.nll, lr_now))
            if step > UPDATES - SNAPSHOTS * SNAPSHOT_EVERY and step % SNAPSHOT_EVERY == 0:
                snapshots.append(copy.deepcopy(model.state_dict()))
            if step == UPDATES:
                break
        epoch += 1
    model.eval()
    seconds = time.perf_counter() - start
    passes = UPDATES / len(make_batches(*lengths, MAX_TOKENS, shuffle=False))
    print(f"{UPDATES} updates ({passes:.1f} passes over the data) in {seconds:.0f} s")

    fig, ax = plt.subplots(figsize=(6.5, 3))
    ax.plot(range(1, UPDATES + 1), [h[0] for h in history], lw=0.8)
    ax.set_xlabel("update")
    ax.set_ylabel("training NLL (nats / token)")
    plt.show()
    first_nll = sum(h[0] for h in history[:10]) / 10
    last_nll = sum(h[0] for h in history[-10:]) / 10
    assert last_nll < first_nll * (0.6 if QUICK else 0.5)  # halved (less in quick mode)
    assert [h[1] for h in history] == rates  # the run used the schedule drawn in 3.1
else:
    state = TrainedModel.load(checkpoint_path)
    print(f"loaded: {state.steps} updates in {state.train_seconds / 60:.0f} min "
          f"({state.stopped or 'ran to the end'})")

# %% [markdown]
# ### 3.4 Checkpoint averaging
#
# Towards the end of training the weights wander around a valley of the loss, pushed each
# update by one batch's noise. Averaging the weights of the last few snapshots — the
# parameters themselves, not the predictions —
# $$\bar\theta = \frac1K \sum_{k=1}^K \theta_{s_k}$$
# lands closer to the middle of that valley than the typical snapshot. Vaswani et al. (2017)
# averaged their last checkpoints; `make repro` averages the weights of its last epochs and
# keeps whichever of "last" and "average" scores better on validation. We measure both
# effects on the validation set: the loss (per token, teacher-forced) of each snapshot and of
# their average, and greedy BLEU on 300 sentences for the last weights and the average.

# %%
val_src_tok, val_tgt_tok = pipeline.read(DATA, "val")
val_src = [torch.tensor(pipeline.encode(s, "en")) for s in val_src_tok]
val_tgt = [torch.tensor(pipeline.encode(t, "de")) for t in val_tgt_tok]
val_refs_tok = read_split(DATA, "val", "de", "tok")
val_batches = make_batches([len(s) for s in val_src],
                           [PackedBatch.decoder_length(len(t)) for t in val_tgt],
                           MAX_TOKENS, shuffle=False)


@torch.no_grad()
def val_nll(m):
    """Validation loss per target token, teacher-forced, without smoothing."""
    m.eval()
    nll = tokens = 0
    for pairs in val_batches:
        b = m.collate([val_src[i] for i in pairs], [val_tgt[i] for i in pairs])
        nll += float(smoothed_and_nll(m(b), b.gold, 0.0)[1])
        tokens += b.num_target_tokens
    return nll / tokens


def val_bleu(m, n=300):
    hyps = translate_ids(m, [s.tolist() for s in val_src[:n]], beam_size=1)
    return bleu_tok_lc([pipeline.decode_tgt(h, plain=True) for h in hyps], val_refs_tok[:n], "de")


if snapshots:
    kept_at = [UPDATES - SNAPSHOT_EVERY * i for i in range(len(snapshots) - 1, -1, -1)]
    snapshot_nll = []
    for weights in snapshots:
        probe.load_state_dict(weights)
        snapshot_nll.append(val_nll(probe))
    averaged = GraphTransformer(cfg)
    averaged.load_state_dict({k: sum(s[k] for s in snapshots) / len(snapshots)
                              for k in snapshots[0]})
    averaged_nll = val_nll(averaged)
    assert abs(snapshot_nll[-1] - val_nll(model)) < 1e-6  # the last snapshot is the model
    for at, nll in zip(kept_at, snapshot_nll, strict=True):
        print(f"snapshot after update {at}: validation NLL {nll:.3f}")
    print(f"average of the {len(snapshots)}: validation NLL {averaged_nll:.3f} "
          f"(mean of the snapshots' NLL: {sum(snapshot_nll) / len(snapshot_nll):.3f})")
    bleu_last, bleu_avg = val_bleu(model), val_bleu(averaged)
    print(f"greedy BLEU on 300 validation sentences: last {bleu_last:.1f}, "
          f"average {bleu_avg:.1f}")
    assert averaged_nll < sum(snapshot_nll) / len(snapshot_nll)  # better than the typical one
else:  # a make-repro model records its own comparison, made on the whole validation set
    for name, s in state.candidates.items():
        print(f"{name:>16s}: validation NLL {s['val_nll']:.3f}, "
              f"greedy BLEU {s['val_bleu_greedy']:.1f}")
    print("kept:", state.chosen)
    assert state.chosen in state.candidates

# %% [markdown]
# Here training is still descending: the validation NLL falls from one snapshot to the next
# (printed above). The average beats the mean of its snapshots (checked), yet it need not beat
# the last one: it carries some of the older, worse weights along. There is no valley to find
# the middle of yet; averaging pays in a long run, once the weights have stopped improving
# and only the noise is left — which is why `make repro` checks both on validation rather
# than assuming. The greedy BLEU may rank the two the other way round from the NLL, but on
# 300 sentences a difference of a point or two is within the noise of so small a sample; the
# NLL, over the whole validation set, is the steadier measure.
#
# ## 4. Translating and scoring
#
# `translate_ids` decodes batches of sentences with the decoders of lesson 4. We translate
# the 1,000 sentences of the official 2016 test set greedily, and score with **BLEU**
# (Papineni et al., 2002): the geometric mean of the $n$-gram precisions $p_1, \dots, p_4$ of
# the output against the reference, times a brevity penalty that punishes outputs shorter
# than the references ($c$: output length, $r$: reference length):
# $$\text{BLEU} = \min\!\left(1, e^{\,1 - r/c}\right) \cdot
#   \exp\Big(\tfrac14 \sum_{n=1}^{4} \log p_n\Big).$$
# We use sacreBLEU, on lowercased tokenised text compared with the official tokenised
# references — the protocol of most Multi30k papers (`make repro` reports the others too).

# %%
test_src_tok, _ = pipeline.read(DATA, "test_2016_flickr")
test_refs_tok = read_split(DATA, "test_2016_flickr", "de", "tok")
test_src_ids = [pipeline.encode(s, "en") for s in test_src_tok]
hyp_ids = translate_ids(model, test_src_ids, beam_size=1)
hyps = [pipeline.decode_tgt(h, plain=True) for h in hyp_ids]
bleu = bleu_tok_lc(hyps, test_refs_tok, "de")

# the same number straight from sacreBLEU
direct = sacrebleu.corpus_bleu([preprocess(h, "de") for h in hyps], [test_refs_tok],
                               tokenize="none")
assert abs(direct.score - bleu) < 0.01
print(direct)

# a baseline that makes no effort: output the English source as the "German" translation
copy_bleu = bleu_tok_lc(test_en, test_refs_tok, "de")
print(f"greedy BLEU {bleu:.1f}; copying the source: {copy_bleu:.1f}")
if checkpoint_path is None:  # trained here, for a few minutes
    assert bleu >= (6 if QUICK else 12)
elif not chosen_by_user:  # a checkpoint found under runs/ (validation BLEU >= 20)
    assert bleu >= 15
else:  # a checkpoint of your choice: at least clearly better than copying
    assert bleu > copy_bleu + 5
for i in (3, 17, 404):
    print(f"\nEN  : {test_en[i]}\nREF : {test_de[i]}\nGRDY: {hyps[i]}")

# %% [markdown]
# ## 5. Beam search, where the model hesitates
#
# Greedy decoding commits to the best token at every step; a slightly worse token now might
# lead to a much better sentence. **Beam search** keeps the $k$ best partial outputs
# (hypotheses), scored by their log-probability
# $$\text{score}(y_{1..t}) = \sum_{s=1}^{t} \log p(y_s \mid y_{<s}, x).$$
# At each step every hypothesis proposes its continuations; among the best $2k$ candidates, an
# `</s>` that ranks in the top $k$ finishes a hypothesis, and the best $k$ others continue.
# Longer outputs have more negative scores, so finished hypotheses are compared after dividing
# by a length penalty (Wu et al., 2016), $\text{lp}(L) = \left(\frac{5 + L}{6}\right)^\alpha$
# with $\alpha = 0.6$. As in greedy decoding, `<pad>`, `<s>` and `<unk>` are never proposed.
#
# In graph terms, $k$ hypotheses are $k$ causal graphs batched together, all reading the same
# source through their own bipartite edges; each step adds one node to each. Below is beam
# search for one source, written plainly: every step re-runs the decoder on the live
# prefixes. `dgl_transformer.nn.decoding.beam_search` does the same for a batch of sources,
# with lesson 4's incremental cache.

# %%
@torch.no_grad()
def beam_search_one(model, src, k=4, max_len=40, alpha=0.6, trace=None):
    memory = model.encode(PackedBatch.collate([src]))  # the encoder runs once
    live, finished = [(0.0, [BOS])], []  # (score, tokens) of live and finished hypotheses
    for _ in range(min(max_len, model.cfg.max_len)):
        # one batched graph: the causal graphs of the live hypotheses, each reading the source
        step = PackedBatch.from_decoder_inputs([src] * len(live),
                                               [torch.tensor(tokens) for _, tokens in live])
        hidden = model.decode(step.decoder_input, memory.repeat(len(live), 1))
        logits = model.generator(hidden[step.tgt_offsets + step.tgt_lens - 1])  # newest nodes
        logits[:, NEVER] = float("-inf")  # never propose <pad>, <s> or <unk>
        logp = torch.log_softmax(logits, -1).double()
        cand = torch.tensor([score for score, _ in live], dtype=torch.float64)[:, None] + logp
        top = cand.flatten().topk(min(2 * k, cand.numel()))
        survivors, ended = [], []
        for rank, (score, flat) in enumerate(zip(top.values.tolist(), top.indices.tolist(),
                                                 strict=True)):
            row, token = divmod(flat, logp.shape[1])
            words = live[row][1][1:]
            if token == EOS:
                if rank < k:  # an end in the top k finishes a hypothesis
                    penalised = score / ((5 + len(words) + 1) / 6) ** alpha
                    finished.append((penalised, words))
                    ended.append((penalised, row))
            elif len(survivors) < k:  # the best k others go on
                survivors.append((score, live[row][1] + [token]))
        if trace is not None:
            trace.append((live, survivors, ended))
        if len(finished) >= k:
            break
        live = survivors
    else:  # out of steps: live hypotheses finish as they are
        finished += [(s / ((5 + len(t) - 1) / 6) ** alpha, t[1:]) for s, t in live]
    return torch.tensor(max(finished)[1], dtype=torch.int64)


@torch.no_grad()
def token_logp(model, src, out):
    """log p of each output token and of </s>, as the decoders score them."""
    b = PackedBatch.collate([src], [torch.tensor(out, dtype=torch.int64)])
    logits = model(b)
    logits[:, NEVER] = float("-inf")
    return torch.log_softmax(logits, -1).gather(1, b.gold[:, None]).squeeze(1).double()


def penalised_score(model, src, out, alpha=0.6):
    return token_logp(model, src, out).sum().item() / ((5 + len(out) + 1) / 6) ** alpha


first200 = [torch.tensor(s) for s in test_src_ids[:200]]
greedy_out = translate_ids(model, test_src_ids[:200], beam_size=1)
beam_out = translate_ids(model, test_src_ids[:200], beam_size=4)
differ = [i for i in range(200) if greedy_out[i] != beam_out[i]]
bleu_k = {k: bleu_tok_lc([pipeline.decode_tgt(o, plain=True) for o in outs],
                         test_refs_tok[:200], "de")
          for k, outs in [(1, greedy_out), (4, beam_out)]}
print(f"first 200 test sentences: greedy BLEU {bleu_k[1]:.1f}, beam (k = 4) {bleu_k[4]:.1f}; "
      f"the outputs differ on {len(differ)} sentences")
# both decoders translate: on these 200 sentences each scores near greedy on the whole set
assert differ and min(bleu_k.values()) > bleu - 5

library = beam_search(model, first200[:20], beam_size=4, max_len=40)
assert all(torch.equal(beam_search_one(model, s, k=4), b)
           for s, b in zip(first200[:20], library, strict=True))  # ours is the library's

# %% [markdown]
# Our plain version and the library's batched, cached one agree on the first 20 test
# sentences. Now one sentence where the two decoders disagree. Beam search is approximate: on
# some sentences its output scores *worse* than greedy's (it dropped the hypothesis greedy
# kept). Among the short sources (at most 8 pieces) of the first 200 where it found the
# better-scoring output, we take the one where the beam's output is closest to the reference
# compared with greedy's (by sentence-level chrF, a character $n$-gram score). At the first
# position where the two outputs part, the model hesitates: even its favourite piece there,
# greedy's choice, is far from sure.

# %%
def piece_text(token):
    return "</s>" if token == EOS else (pipeline.tokenizer.decode([token], "de") or "▁")


def chrf_gain(i):
    """How much closer to the reference the beam's output is than greedy's (chrF points)."""
    g, b = (pipeline.decode_tgt(o[i], plain=True) for o in (greedy_out, beam_out))
    return (sacrebleu.sentence_chrf(b, [test_de[i]]).score
            - sacrebleu.sentence_chrf(g, [test_de[i]]).score)


def beam_scores_better(i):
    return (penalised_score(model, first200[i], beam_out[i])
            >= penalised_score(model, first200[i], greedy_out[i]))


better = [i for i in differ if beam_scores_better(i)]
print(f"the beam's output scores better on {len(better)} of the {len(differ)} sentences where "
      "the two differ")
chosen = max([i for i in better if len(test_src_ids[i]) <= 8] or better, key=chrf_gain)
src_c = first200[chosen]
g_out, b_out = greedy_out[chosen], beam_out[chosen]
split = next(t for t in range(min(len(g_out), len(b_out)) + 1)
             if t == len(g_out) or t == len(b_out) or g_out[t] != b_out[t])
p_g, p_b = token_logp(model, src_c, g_out).exp(), token_logp(model, src_c, b_out).exp()
print(f"EN    : {test_en[chosen]}\nREF   : {test_de[chosen]}")
print(f"greedy: {pipeline.decode_tgt(g_out, plain=True)}")
print(f"beam 4: {pipeline.decode_tgt(b_out, plain=True)}")
print(f"position {split}: greedy takes '{piece_text((g_out + [EOS])[split])}' "
      f"(p = {p_g[split]:.2f}), the beam '{piece_text((b_out + [EOS])[split])}' "
      f"(p = {p_b[split]:.2f})")
scores_ = {"greedy": penalised_score(model, src_c, g_out),
           "beam": penalised_score(model, src_c, b_out)}
print("length-penalised scores:", {k: round(v, 3) for k, v in scores_.items()})
assert p_g[split] < 0.6  # the model hesitates where the outputs part

# %% [markdown]
# Greedy took the more likely word at that position, but the rest of its sentence scored
# worse; beam search kept the alternative alive long enough to see that. Here is the search,
# step by step: each column is a step, each box a hypothesis kept (with its score), boxes
# ending in `</s>` are finished hypotheses (score after the length penalty), and the orange
# path is the output.

# %%
trace = []
assert torch.equal(beam_search_one(model, src_c, k=4, trace=trace), torch.tensor(b_out))
best_path = [BOS, *b_out, EOS]
fig, ax = plt.subplots(figsize=(max(9, 1.15 * len(trace)), 4.8))


def node(x, y, text, on_best):
    ax.text(x, y, text, ha="center", va="center", fontsize=7,
            bbox=dict(boxstyle="round", fc="#fc8" if on_best else "white", ec="#666"))


node(0, 0, "<s>", True)
for step_i, (live, survivors, ended) in enumerate(trace):
    children = [(s, t, t[:-1]) for s, t in survivors]
    children += [(p, live[row][1] + [EOS], live[row][1]) for p, row in ended]
    for rank, (score, toks, parent_toks) in enumerate(children):
        parent = next(r for r, (_, t) in enumerate(live) if t == parent_toks)
        ax.plot([step_i, step_i + 1], [-parent, -rank], color="#999", lw=0.8, zorder=0)
        node(step_i + 1, -rank, f"{piece_text(toks[-1])}\n{score:.2f}",
             toks == best_path[: len(toks)])
ax.set_xlim(-0.5, len(trace) + 0.5)
ax.set_ylim(-max(len(kept) + len(ended) for _, kept, ended in trace) + 0.4, 0.6)
ax.set_xlabel("step")
ax.set_yticks([])
ax.set_title("beam search, k = 4: kept hypotheses, and finished ones (</s>, score after the "
             "length penalty); orange = the output", fontsize=9)
plt.show()

# %% [markdown]
# ## 6. What did attention learn?
#
# ### 6.1 Cross-attention as a bipartite graph
#
# To see which source pieces the decoder used for each output piece, we run the model once
# more, teacher-forced on its own translation, and read the weights $\alpha_{ij}$ on the edges
# of the encoder → decoder graph (`GraphTransformer.attention_weights`). Each target node's
# incoming weights sum to one. Below, the last decoder layer's weights averaged over heads:
# first as the bipartite graph itself (line width = weight, lines under 0.1 not drawn), then
# as the familiar heat map — the same numbers, one edge per cell. The sentence is chosen by a
# rule: the first test sentence of 8 to 12 words with a number word and a colour word, two
# words the translation must carry over to the right place.

# %%
NUMBER_WORDS = {"two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"}
COLOUR_WORDS = {"red", "blue", "green", "yellow", "black", "white", "pink", "orange", "purple",
                "brown", "gray", "grey"}


def words_of(text):
    return [w.lower() for w in text.rstrip(".").split()]


picked = next(i for i, text in enumerate(test_en) if 8 <= len(words_of(text)) <= 12
              and NUMBER_WORDS & set(words_of(text)) and COLOUR_WORDS & set(words_of(text)))
print(f"test sentence {picked}: {test_en[picked]}")
src_ids_picked = torch.tensor(test_src_ids[picked])
out_ids = translate_ids(model, [test_src_ids[picked]], beam_size=4)[0]
att = model.attention_weights(PackedBatch.collate([src_ids_picked], [torch.tensor(out_ids)]))
u, v = att["cross_graph"].edges()
last = len(model.decoder) - 1
weights = att["cross"][last].mean(1)  # (edges,), averaged over heads
n_src, n_tgt = len(src_ids_picked), len(out_ids) + 1
heat = torch.zeros(n_tgt, n_src)
heat[v, u] = weights
assert torch.allclose(heat.sum(1), torch.ones(n_tgt), atol=1e-5)

src_labels = [pipeline.tokenizer.decode([int(i)], "en") or "▁" for i in src_ids_picked]
# the decoder input at position t predicts output piece t: label rows by what they produce
out_labels = [piece_text(int(i)) for i in out_ids] + ["</s>"]

fig, ax = plt.subplots(figsize=(12, 3.8))
xs_src = torch.linspace(0, 1, n_src)
xs_tgt = torch.linspace(0, 1, n_tgt)
for j, i, w in zip(u.tolist(), v.tolist(), weights.tolist(), strict=True):
    if w > 0.1:
        ax.plot([xs_src[j], xs_tgt[i]], [0, 1], color="C1", lw=4 * w, alpha=0.3 + 0.7 * w)
for x, label in zip(xs_src.tolist(), src_labels, strict=True):
    ax.text(x, -0.05, label, ha="center", va="top", fontsize=8, rotation=60)
for x, label in zip(xs_tgt.tolist(), out_labels, strict=True):
    ax.text(x, 1.05, label, ha="center", va="bottom", fontsize=8, rotation=60)
ax.set_ylim(-0.6, 1.6)
ax.axis("off")
ax.set_title(f"encoder -> decoder graph of one translation, decoder layer {last} "
             "(bottom: English pieces, top: German output pieces)", fontsize=9)
plt.show()

fig, ax = plt.subplots(figsize=(0.45 * n_src + 2, 0.35 * n_tgt + 1.5))
ax.imshow(heat, cmap="viridis", vmin=0, vmax=1)
ax.set_xticks(range(n_src), src_labels, rotation=60, fontsize=8)
ax.set_yticks(range(n_tgt), out_labels, fontsize=8)
ax.set_xlabel("English source piece (sender)")
ax.set_ylabel("German piece being produced")
plt.show()

# %% [markdown]
# With $n$ source pieces, uniform attention would give every edge $1/n$. The trained model's
# attention is far more peaked: across 100 test translations, the heaviest edge into a target
# piece carries on average several times the uniform share.

# %%
ratios = []
sample = list(range(0, 1000, 10))
sample_out = translate_ids(model, [test_src_ids[s] for s in sample], beam_size=1)
for s, out in zip(sample, sample_out, strict=True):
    a = model.attention_weights(PackedBatch.collate([torch.tensor(test_src_ids[s])],
                                                    [torch.tensor(out)]))
    cv = a["cross_graph"].edges()[1]
    w = a["cross"][last].mean(1)
    best = torch.zeros(int(cv.max()) + 1).scatter_reduce(0, cv, w, "amax")
    ratios.append(float(best.mean()) * len(test_src_ids[s]))
peak = sum(ratios) / len(ratios)
print(f"heaviest cross edge / uniform weight, averaged: {peak:.1f}")
assert peak > 2

# %% [markdown]
# ### 6.2 The encoder's heads, word by word
#
# Cross-attention averaged over heads hides what each head does. The essay asks "Why
# multiple heads of attention?" and "Are Transformers learning 'neural syntax'?": we look at
# the encoder's **self-attention, head by head**, on one real sentence.
#
# Pieces are hard to read, so we merge them back into words. spaCy's rule-based English
# tokenizer (`spacy.blank("en")`, lesson 3) splits the plain sentence into words; each
# subword piece belongs to the word whose characters it covers. For a receiving word $W$ and
# a sending word $U$ we *add* the weights from $U$'s pieces (a word receives what all its
# pieces receive) and *average* over $W$'s pieces (a word asks with the voice of all its
# pieces, Clark et al., 2019):
# $$\alpha_{WU} = \frac{1}{|W|} \sum_{i \in W} \sum_{j \in U} \alpha_{ij},$$
# so every row of the word-level map still sums to one. (A word made of many pieces collects
# the weights of all of them: where attention is broad, such a word stands out in its column
# for that reason alone.)

# %%
nlp_en = spacy.blank("en")


def word_of_piece(pieces, words):
    """For each subword piece, the index of the spaCy word whose characters it covers."""
    owner = [w for w, word in enumerate(words) for _ in word]  # one entry per character
    chars = "".join(words).lower()
    groups, pos = [], 0
    for piece in pieces:
        text = piece.replace("▁", "").lower()
        if text:
            assert chars[pos : pos + len(text)] == text, (piece, chars[pos:])
            assert owner[pos] == owner[pos + len(text) - 1], piece  # within one word
        groups.append(owner[min(pos, len(owner) - 1)])  # a bare "▁" joins the next word
        pos += len(text)
    assert pos == len(chars)  # every character of every word is covered
    return torch.tensor(groups)


def word_level(piece_map, groups, n_words):
    """alpha_WU = mean over receiver pieces of W of the sum over sender pieces of U."""
    member = torch.zeros(len(groups), n_words)
    member[torch.arange(len(groups)), groups] = 1.0  # piece -> word
    return (member.T @ piece_map @ member) / member.sum(0)[:, None]


words = [t.text for t in nlp_en(sentence)]
pieces = pipeline.tokenizer.pieces(corpus_form(sentence), "en")
groups = word_of_piece(pieces, words)
# the encoder's weights do not depend on the target side: a one-token target will do
enc = model.attention_weights(PackedBatch.collate([torch.tensor(ids)], [torch.tensor([EOS])]))
eu, ev = enc["enc_graph"].edges()
print(f"{len(pieces)} pieces -> {len(words)} spaCy words:",
      [(w, [p for p, g in zip(pieces, groups.tolist(), strict=True) if g == i])
       for i, w in enumerate(words) if (groups == i).sum() > 1])

layers_shown = sorted({0, len(model.encoder) - 1})
fig, axes = plt.subplots(len(layers_shown), cfg.n_heads, squeeze=False,
                         figsize=(3.2 * cfg.n_heads, 3.3 * len(layers_shown)))
for row, layer in enumerate(layers_shown):
    for head in range(cfg.n_heads):
        piece_map = torch.zeros(len(pieces), len(pieces))
        piece_map[ev, eu] = enc["enc"][layer][:, head]
        word_map = word_level(piece_map, groups, len(words))
        assert torch.allclose(word_map.sum(1), torch.ones(len(words)), atol=1e-5)
        ax = axes[row, head]
        ax.imshow(word_map, cmap="viridis", vmin=0, vmax=1)
        ax.set_xticks(range(len(words)), words, rotation=90, fontsize=7)
        ax.set_yticks(range(len(words)), words, fontsize=7)
        ax.set_title(f"encoder layer {layer}, head {head}", fontsize=8)
plt.suptitle("encoder self-attention at word level (row: receiving word, column: sender)",
             y=1.0)
plt.tight_layout()
plt.show()

# %% [markdown]
# The same sentence in the attention viewer of lesson 4, which says what is on the screen
# (`docs/viewer.md` lists the controls). Run the cell to see it: JupyterLab draws a saved
# notebook's page only once you have run the cell (or after `jupyter trust`), the course
# website (`make site`) shows it as saved, and GitHub shows only the static maps above. It
# opens on every head of layer 0 side by side, each a graph over the same spaCy words: the
# viewer merges the pieces by the rule above, given the lesson's `groups`
# (`tests/test_viewer.py::test_the_word_view_merges_pieces_as_lesson_5_does` checks the merged
# weights in a browser; a notebook can't run the page's JavaScript); untick "words" to see the
# pieces. Beside them stand the decoder's causal graph and the cross graph of the model's own
# translation of this sentence (beam search, $k = 4$), not of section 6.1's test sentence. The
# viewer labels each decoder node by its input, `<s>` first: one position behind 6.1's rows,
# which name the piece each node produces and end in `</s>`. The weights are the same numbers
# `model.attention_weights` gave the maps above (it reads them through `observe_attention`
# too).

# %%
view = show_attention(Translator(model, pipeline), sentence, src_words=groups.tolist(),
                      beam_size=4, head=None, words=True, threshold=0.1)
assert [w.lower() for w in view.source.words] == [w.lower() for w in words]
assert view.graphs["enc"].edges() == list(zip(eu.tolist(), ev.tolist(), strict=True))
# the encoder's weights, as drawn above: computed there with another target (a lone </s>),
# but the encoder never sees the target
for layer in range(len(model.encoder)):
    assert torch.allclose(view.graphs["enc"].weights[layer], enc["enc"][layer], atol=1e-6)
display(view)

# %% [markdown]
# One sentence is an anecdote. To say what each head does *in general*, we measure over 200
# validation sentences (at piece level) how spread out its attention is — the entropy of each
# receiver's weights, divided by $\log n$ so that 1 means uniform over the $n$ pieces and 0
# means one piece only — and where it goes: to the piece itself, to the previous or the next
# piece, and how far on average, $\sum_j \alpha_{ij}\, |i - j|$. For comparison, the same
# architecture before training, initialised with the same seed (when this lesson trains its own
# model, that is exactly its starting point; a `make repro` model started from its own seed).

# %%
def head_statistics(m, sentences):
    """Per layer and head: normalised entropy, share on self / previous / next, distance."""
    out = torch.zeros(len(m.encoder), cfg.n_heads, 5)
    for s in sentences:
        a = m.attention_weights(PackedBatch.collate([s], [torch.tensor([EOS])]))
        eu, ev = a["enc_graph"].edges()
        offset = (eu - ev).float()  # sender minus receiver position
        for layer, w in enumerate(a["enc"]):  # w: (edges, heads)
            entropy = torch.zeros(len(s), cfg.n_heads).index_add_(
                0, ev, -w * w.clamp_min(1e-12).log())
            out[layer, :, 0] += (entropy / torch.log(torch.tensor(float(len(s))))).mean(0)
            for column, where in [(1, offset == 0), (2, offset == -1), (3, offset == 1)]:
                out[layer, :, column] += w[where].sum(0) / len(s)
            out[layer, :, 4] += (w * offset.abs()[:, None]).sum(0) / len(s)
    return out / len(sentences)


torch.manual_seed(SEED)
untrained = GraphTransformer(cfg).eval()  # the start of a model trained here (same seed)
trained_stats = head_statistics(model, val_src[:200])
untrained_stats = head_statistics(untrained, val_src[:200])
print("layer head   entropy (untrained)   self  previous  next   mean distance")
for layer in range(len(model.encoder)):
    for head in range(cfg.n_heads):
        st, st0 = trained_stats[layer, head], untrained_stats[layer, head]
        print(f"{layer:5d} {head:4d}   {st[0]:.2f}    ({st0[0]:.2f})         {st[1]:.2f}    "
              f"{st[2]:.2f}    {st[3]:.2f}      {st[4]:.1f}")


def spread(values):
    return f"{values.min():.2f}-{values.max():.2f}"


print(f"ranges over the heads: entropy {spread(trained_stats[..., 0])} (untrained "
      f"{spread(untrained_stats[..., 0])}); self {spread(trained_stats[..., 1])}, previous "
      f"{spread(trained_stats[..., 2])}, next {spread(trained_stats[..., 3])}; mean distance "
      f"{spread(trained_stats[..., 4])} pieces")
sharpened = untrained_stats[..., 0] - trained_stats[..., 0]
assert (untrained_stats[..., 0] > 0.9).all()  # untrained: close to uniform
assert (sharpened > 0.03).all()  # training made every head more selective ...
assert trained_stats[..., 0].max() - trained_stats[..., 0].min() > 0.05  # ... and not equally

# %% [markdown]
# Untrained, every head spreads its attention almost uniformly. Training has made every head
# more selective, by different amounts (the ranges are printed under the table). A head that
# had specialised in a neighbour would stand out in the *previous* or *next* column, with a
# large share there. The small model this lesson trains for a few minutes has no such head:
# its heads look much alike, with small shares on the piece itself and on either neighbour.
# Several heads *can* look at the sentence in several ways at once — the usual answer to "why
# multiple heads?" — but showing that they do needs a model trained for longer. Lesson 8
# (section 2.1) takes the model `make repro` trains in an hour, which the repository ships,
# finds one head that gives nearly half of each token's attention to the token just before
# it, and switches it off in the viewer. (If this lesson found a `make repro` model and
# studied it instead of training its own, that head is in the table above.) Whether some heads
# learn syntax, a verb attending to its subject or an adjective to its noun, lesson 8 asks too.
#
# ## Summary
#
# * The whole pipeline — verified data, BPE subwords, token-budget batches as graphs, one
#   `train_step` per update, decoding, sacreBLEU — is the project's code; the model is the
#   graph Transformer of lessons 3 and 4.
# * A batch is a graph of its real tokens. On the (bucketed) batch we drew, padding added
#   little to the encoder's and the cross graph's work, and far more to the causal graph's: a
#   padded decoder computes the whole square of which the causal graph is a triangle.
# * Warm-up keeps Adam's first, single-batch steps small; label smoothing gives the loss a
#   finite optimum, $p = q$; averaging the last snapshots beats their typical member, but
#   while training still descends, not the last one.
# * Beam search keeps $k$ causal graphs growing side by side and pays off where the model
#   hesitates.
# * Cross-attention is a weighted bipartite graph. Training made every encoder head more
#   selective, by different amounts; a small model trained for a few minutes shows no clear
#   specialisation of its heads (an hour of training grows one: lesson 8).
#
# ## Exercises
#
# 1. **Your own sentence.** Translate a sentence of your choice with `pipeline.encode_src`,
#    `translate` (from `nn.decoding`) and `pipeline.decode_tgt(..., plain=True)`, and compare
#    it with a translation of your own using sacreBLEU's sentence-level chrF. (The
#    `Translator` of `mt.generate` does all three for a `make repro` checkpoint.)
# 2. **A beam of one.** Show that `beam_search_one` with $k = 1$ returns the greedy output.
# 3. **Padding, measured.** Over all batches of an epoch, what fraction of the scores of a
#    padded dense encoder are real edges of the graph? And with `bucketed=False` in
#    `make_batches`?

# %% [markdown]
# ## Solutions
#
# **1.** `translate` takes a list of id tensors and returns a list of id tensors. chrF
# compares character $n$-grams, which suits a single sentence better than BLEU; as a yardstick
# we score the English sentence itself against the same German reference.

# %%
mine = "A man in a red jacket is riding a bike down the street."
my_reference = "Ein Mann in einer roten Jacke fährt mit einem Fahrrad die Straße hinunter."
out = translate(model, [torch.tensor(pipeline.encode_src(mine))], beam_size=4)[0]
german = pipeline.decode_tgt(out.tolist(), plain=True)
chrf = sacrebleu.sentence_chrf(german, [my_reference]).score
chrf_copy = sacrebleu.sentence_chrf(mine, [my_reference]).score
print(f"{german}\nchrF against our reference: {chrf:.1f} (the English sentence itself: "
      f"{chrf_copy:.1f})")
assert chrf > chrf_copy + 10

# %% [markdown]
# **2.** With one hypothesis, the best of the top-2 candidates is the argmax: if it is `</s>`
# the output finishes, otherwise it is appended — greedy decoding.

# %%
assert all(torch.equal(beam_search_one(model, s, k=1, max_len=40), g)
           for s, g in zip(first200[:20], greedy(model, first200[:20], max_len=40), strict=True))

# %% [markdown]
# **3.** Real edges are $\sum_b n_b^2$, padded scores $B \cdot \max_b n_b^2$ per batch.

# %%
def real_fraction(bucketed):
    real = padded_total = 0
    for b in make_batches(*lengths, MAX_TOKENS, shuffle=True, seed=1 + SEED, bucketed=bucketed):
        lens = torch.tensor([lengths[0][i] for i in b])
        real += int((lens**2).sum())
        padded_total += len(b) * int(lens.max()) ** 2
    return real / padded_total


with_buckets, without = real_fraction(True), real_fraction(False)
print(f"real fraction of a padded encoder's scores: bucketed {with_buckets:.0%}, "
      f"random batches {without:.0%}")
assert with_buckets > without
