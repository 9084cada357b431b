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
# Lessons 3 and 4 built the Transformer as message passing on three graphs and trained it on
# a toy task. Now the real thing: translating English image descriptions into German, on
# **Multi30k** (Elliott et al., 2016; 29,000 training pairs, derived from Flickr30K, for
# non-commercial research and education).
#
# This lesson does not re-build the model; it uses the project's pipeline end to end:
#
# | step | project code |
# |---|---|
# | read and verify the data files | `dgl_transformer.mt.data` |
# | split words into subwords (BPE) | `dgl_transformer.mt.text` |
# | group sentences into batches = graphs | `dgl_transformer.mt.batching` |
# | train | `dgl_transformer.mt.train` (what `make repro` runs) |
# | translate, score with BLEU | `dgl_transformer.mt.evaluate` (sacreBLEU) |
#
# If a model trained by `make repro` exists (`runs/*/final.pt`), the lesson loads it;
# otherwise it trains a small model for two to three minutes on the CPU — enough for
# recognisable German, not for a good score. Then we look at what the model does on its graphs: the
# cross-attention of a translation, drawn as a bipartite graph and as a heat map.

# %%
import io
import json
import logging
import os
import shutil
import tempfile
from contextlib import redirect_stderr
from pathlib import Path

import matplotlib.pyplot as plt
import sacrebleu
import torch

from dgl_transformer import BOS
from dgl_transformer.mt import checkpoint
from dgl_transformer.mt.batching import make_batches
from dgl_transformer.mt.configs import RunConfig
from dgl_transformer.mt.data import read_parallel, read_split
from dgl_transformer.mt.evaluate import bleu_tok_lc, translate_ids
from dgl_transformer.mt.text import preprocess
from dgl_transformer.mt.train import Trainer
from dgl_transformer.mt.translate import load_translator
from dgl_transformer.nn import graphs

QUICK = os.environ.get("DGLT_QUICK") == "1"  # CI: shorter training, same lesson
logging.getLogger("sacrebleu").setLevel(logging.ERROR)  # no advice on tokenised input
torch.manual_seed(0)
torch.set_num_threads(1)  # robust on a busy machine; see the project's BENCHMARKS notes

# %% [markdown]
# ## 1. The data
#
# The project reads Multi30k from a data directory with the layout of the official
# repository (`raw/` cased text, `tok/` lowercased tokenised text) and checks every file
# against SHA-256 sums kept in the repository. Where is it? In order: the directory named by
# the environment variable `MULTI30K_DIR`; `data/multi30k` in the repository (what `make data`
# fetches); the shared mirror `../shared/data/multi30k` next to the repository.

# %%
def repo_root():
    for folder in [Path.cwd(), *Path.cwd().resolve().parents]:
        if (folder / "pyproject.toml").exists() and (folder / "dgl_transformer").is_dir():
            return folder
    raise FileNotFoundError("run this notebook inside the dgl-transformer repository")


ROOT = repo_root()
candidates = [os.environ.get("MULTI30K_DIR"), ROOT / "data" / "multi30k",
              ROOT.parent / "shared" / "data" / "multi30k"]
DATA = next((Path(c) for c in candidates if c and (Path(c) / "raw" / "train.en.gz").exists()),
            None)
if DATA is None:
    raise FileNotFoundError("Multi30k not found: run `make data` (needs internet) or set "
                            "MULTI30K_DIR to a local copy")
print("data:", os.path.relpath(DATA, ROOT))

train_en, train_de = read_parallel(DATA, "train", "en", "de", "raw")
test_en, test_de = read_parallel(DATA, "test_2016_flickr", "en", "de", "raw")
assert (len(train_en), len(read_split(DATA, "val", "en")), len(test_en)) == (29000, 1014, 1000)
for k in (0, 1, 2):
    print(f"EN: {train_en[k]}\nDE: {train_de[k]}\n")

# %% [markdown]
# ## 2. A model: load one, or train one briefly
#
# The project's recipe (`repro/configs/default.yaml`) uses the official lowercased, tokenised
# text and one joint BPE vocabulary for both languages. `make repro` trains for up to an hour;
# here we look for such a result first: a `runs/*/final.pt` whose recorded validation BLEU is
# at least 20 (so a quick smoke-test run is not mistaken for a model). Set `DGLT_CHECKPOINT`
# to a `final.pt` to choose one yourself, or to `none` to train here even when one exists.

# %%
def recorded_bleu(path):
    """The validation BLEU a final.pt records for the weights it holds (0 if unreadable)."""
    try:
        state = checkpoint.load(path)
    except checkpoint.CheckpointError:
        return 0.0
    return float(state.get("candidates", {}).get(state.get("chosen"), {})
                 .get("val_bleu_greedy", 0.0))


def find_checkpoint():
    chosen = os.environ.get("DGLT_CHECKPOINT")
    if chosen:
        return None if chosen == "none" else Path(chosen)
    scored = [(recorded_bleu(p), p) for p in sorted((ROOT / "runs").glob("*/final.pt"))]
    scored = [(b, p) for b, p in scored if b >= 20]
    return max(scored)[1] if scored else None


checkpoint_path = find_checkpoint()
chosen_by_user = bool(os.environ.get("DGLT_CHECKPOINT")) and checkpoint_path is not None
print("checkpoint:", os.path.relpath(checkpoint_path, ROOT) if checkpoint_path
      else "none found: training a small model here")

# %% [markdown]
# Without a checkpoint we train a small Transformer ($d = 128$, 2 encoder and 2 decoder
# layers, a 2,000-piece vocabulary) with the project's trainer, exactly as `make repro`
# would, only smaller and for a fixed number of updates: 360 (about 1.3 passes over the data;
# two to three minutes on one core), or 200 when `DGLT_QUICK=1`.

# %%
work_dir = None
if checkpoint_path is None:
    work_dir = Path(tempfile.mkdtemp(prefix="dglt-lesson5-"))
    cfg = RunConfig.from_dict({
        "name": "lesson5",
        "data": {"root": str(DATA), "variant": "lc_tok", "vocab_size": 2000, "max_len": 40,
                 "val_limit": 200},
        "model": {"d_model": 128, "n_heads": 4, "d_ff": 256, "n_enc_layers": 2,
                  "n_dec_layers": 2, "dropout": 0.1, "max_len": 64},
        "train": {"out_dir": str(work_dir), "threads": 1, "max_tokens": 4000,
                  "max_steps": 200 if QUICK else 360, "max_epochs": 5, "lr": 3e-3,
                  "warmup_steps": 100, "label_smoothing": 0.0, "checkpoint_every": 10**6,
                  "log_every": 20, "val_bleu_sentences": 200, "time_limit_minutes": 10},
    })
    with redirect_stderr(io.StringIO()):  # keep the progress bar out of the notebook
        trainer = Trainer(cfg, resume=False)
        trainer.fit()
    checkpoint_path = work_dir / "final.pt"
    print(f"trained {trainer.step} updates in {trainer.elapsed:.0f} s")

model, pipeline, run_cfg = load_translator(checkpoint_path)
print(model.cfg)
print(f"{sum(p.numel() for p in model.parameters()):,} parameters; "
      f"text variant {pipeline.variant}; vocabulary {pipeline.tokenizer.vocab_size}")

# %%
log = checkpoint_path.parent / "metrics.jsonl"
records = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
train_records = [r for r in records if r["kind"] == "train"]
epochs = [r for r in records if r["kind"] == "epoch"]
if train_records:
    fig, ax = plt.subplots(figsize=(6.5, 3))
    ax.plot([r["step"] for r in train_records], [r["nll"] for r in train_records])
    ax.set_xlabel("update")
    ax.set_ylabel("training loss (nats / token)")
    for r in epochs:
        ax.axvline(r["step"], color="#bbb", lw=0.8)
        ax.text(r["step"], ax.get_ylim()[1], f" val BLEU {r['val_bleu_greedy']:.1f}",
                fontsize=7, va="top")
    plt.show()

# %% [markdown]
# ## 3. Subwords, and a batch as a graph
#
# The model does not see words but **subword pieces** from a byte-pair encoding learnt on the
# training text: frequent words stay whole, rare ones are split ("▁" marks the start of a
# word). Both languages share the vocabulary. In the `lc_tok` variant the text is first
# lowercased and tokenised the way the official files are.

# %%
sentence = "Two young children are playing the xylophone on the beach."
print(preprocess(sentence, "en"))
print(pipeline.tokenizer.pieces(preprocess(sentence, "en")))
ids = pipeline.encode_src(sentence)
assert pipeline.tokenizer.decode(ids) == preprocess(sentence, "en")  # lossless
assert pipeline.tokenizer.pieces("the") == ["▁the"]  # a frequent word: one piece
assert len(pipeline.tokenizer.pieces("xylophone")) > 1  # a rare one: several

# %% [markdown]
# For training, sentences are grouped into batches by a **token budget**: a batch holds as
# many pairs as fit in `max_tokens` source + target tokens — the number of nodes of the
# batch's graph. Pairs of similar length go together ("bucketing"). Here is the first batch
# of an epoch, as the three graphs of lesson 4, next to what a padded dense batch computes.

# %%
src_tok, tgt_tok = pipeline.read(DATA, "train")
src_ids = [pipeline.encode(s) for s in src_tok[:5000]]
tgt_ids = [pipeline.encode(t) for t in tgt_tok[:5000]]
batches = make_batches([len(s) for s in src_ids], [len(t) + 1 for t in tgt_ids], 4000,
                       shuffle=True, seed=1)
batch = batches[0]
S = [len(src_ids[i]) for i in batch]
T = [len(tgt_ids[i]) + 1 for i in batch]  # decoder input: <s> + target
edges = {
    "encoder (complete)": graphs.complete_graph(S).num_edges(),
    "decoder (causal)": graphs.causal_graph(T).num_edges(),
    "encoder-decoder (bipartite)": graphs.cross_graph(S, T).num_edges(),
}
padded = {
    "encoder (complete)": len(S) * max(S) ** 2,
    "decoder (causal)": len(T) * max(T) ** 2,
    "encoder-decoder (bipartite)": len(S) * max(S) * max(T),
}
print(f"{len(batch)} sentence pairs, {sum(S) + sum(T)} nodes")
for name in edges:
    print(f"  {name:<28s} {edges[name]:>7,d} edges   (padded dense: {padded[name]:>7,d} scores)")
assert sum(S) + sum(T) <= 4000
assert all(edges[k] <= padded[k] for k in edges)

# %% [markdown]
# ## 4. Translating and scoring
#
# `translate_ids` decodes batches of sentences with the greedy or beam search of lesson 4.
# We translate the 1,000 sentences of the official 2016 test set greedily, and score with
# **BLEU** (Papineni et al., 2002): the geometric mean of the $n$-gram precisions
# $p_1, \dots, p_4$ of the output against the reference, times a brevity penalty that punishes
# outputs shorter than the references ($c$: output length, $r$: reference length):
# $$\text{BLEU} = \min\!\left(1, e^{\,1 - r/c}\right) \cdot
#   \exp\Big(\tfrac14 \sum_{n=1}^{4} \log p_n\Big).$$
# We use sacreBLEU, on lowercased tokenised text compared with the official tokenised
# references — the protocol of DGL's Transformer example and of most Multi30k papers.

# %%
test_src_tok, _ = pipeline.read(DATA, "test_2016_flickr")
test_refs_tok = read_split(DATA, "test_2016_flickr", "de", "tok")
test_src_ids = [pipeline.encode(s) for s in test_src_tok]
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
assert bleu > 3 * copy_bleu
if work_dir is not None:  # trained here, for a few minutes
    assert bleu >= (6 if QUICK else 12)
elif not chosen_by_user:  # a checkpoint found under runs/ (validation BLEU >= 20)
    assert bleu >= 15

# %% [markdown]
# A few translations (beam search, $k = 4$), with the reference:

# %%
examples = [3, 17, 58, 404]
beams = translate_ids(model, [test_src_ids[k] for k in examples], beam_size=4)
for k, b in zip(examples, beams, strict=True):
    print(f"EN  : {test_en[k]}\nREF : {test_de[k]}\nBEAM: {pipeline.decode_tgt(b, plain=True)}"
          f"\nGRDY: {hyps[k]}\n")

# %% [markdown]
# ## 5. Cross-attention as a bipartite graph
#
# To see which source pieces the decoder used for each output piece, we run the model once
# more, teacher-forced on its own translation, and read the weights $\alpha_{ij}$ on the edges
# of the encoder → decoder graph (`GraphTransformer.attention_weights`). Each target node's
# incoming weights sum to one. Below, the last decoder layer's weights averaged over heads:
# first as the bipartite graph itself (line width = weight, lines under 0.1 not drawn), then
# as the familiar heat map — the same numbers, one edge per cell.

# %%
k = 58
src_ids_k = torch.tensor(test_src_ids[k])
out_ids = translate_ids(model, [test_src_ids[k]], beam_size=4)[0]
tgt_in = torch.tensor([BOS, *out_ids])
att = model.attention_weights([src_ids_k], [tgt_in])
u, v = att["cross_graph"].edges()
last = len(model.decoder) - 1
weights = att["cross"][last].mean(1)  # (edges,), averaged over heads
n_src, n_tgt = len(src_ids_k), len(tgt_in)
heat = torch.zeros(n_tgt, n_src)
heat[v, u] = weights
assert torch.allclose(heat.sum(1), torch.ones(n_tgt), atol=1e-5)


def piece(i):
    return pipeline.tokenizer.decode([i]) or "▁"


src_labels = [piece(int(i)) for i in src_ids_k]
tgt_labels = ["<s>"] + [piece(int(i)) for i in out_ids]
# the decoder input at position t predicts output piece t: label rows by what they produce
out_labels = [piece(int(i)) for i in out_ids] + ["</s>"]

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
    a = model.attention_weights([torch.tensor(test_src_ids[s])],
                                [torch.tensor([BOS, *out])])
    cv = a["cross_graph"].edges()[1]
    w = a["cross"][last].mean(1)
    best = torch.zeros(int(cv.max()) + 1).scatter_reduce(0, cv, w, "amax")
    ratios.append(float(best.mean()) * len(test_src_ids[s]))
peak = sum(ratios) / len(ratios)
print(f"heaviest cross edge / uniform weight, averaged: {peak:.1f}")
assert peak > 2

# %% [markdown]
# ## Summary
#
# * The whole pipeline — verified data, BPE subwords, token-budget batches as graphs, training,
#   decoding, sacreBLEU — is the project's code; the model is the graph Transformer of
#   lessons 3 and 4.
# * A batch is a graph of its real tokens; padding would compute several times more scores.
# * Cross-attention is a weighted bipartite graph between the sentences; its heat map is the
#   same set of edge weights.
#
# ## Exercises
#
# 1. **Your own sentence.** Translate a sentence of your choice with `pipeline.encode_src`,
#    `model.translate` and `pipeline.decode_tgt(..., plain=True)`.
# 2. **Greedy or beam?** Compare greedy and beam search ($k = 4$) BLEU on the first 200 test
#    sentences.
# 3. **Padding, measured.** Over all batches of the 5,000 pairs above, what fraction of the
#    scores of a padded dense encoder are real edges of the graph? And with `bucketed=False`?

# %% [markdown]
# ## Solutions
#
# **1.** `translate` takes a list of id tensors and returns a list of id tensors.

# %%
mine = "A man in a red jacket is riding a bike down the street."
out = model.translate([torch.tensor(pipeline.encode_src(mine))], beam_size=4)[0]
german = pipeline.decode_tgt(out.tolist(), plain=True)
print(german)
assert isinstance(german, str) and german.strip()

# %% [markdown]
# **2.** Beam search usually gains a little BLEU over greedy decoding, but not on every
# sentence; with a small, briefly trained model the difference can go either way.

# %%
first = test_src_ids[:200]
scores, outputs = {}, {}
for k_beam in (1, 4):
    outputs[k_beam] = translate_ids(model, first, beam_size=k_beam)
    scores[k_beam] = bleu_tok_lc([pipeline.decode_tgt(o, plain=True) for o in outputs[k_beam]],
                                 test_refs_tok[:200], "de")
differ = sum(a != b for a, b in zip(outputs[1], outputs[4], strict=True))
print(f"first 200 test sentences: greedy {scores[1]:.1f}, beam 4 {scores[4]:.1f}; "
      f"the two differ on {differ} sentences")
assert min(scores.values()) > 3 * copy_bleu  # both decoders translate
assert differ > 0

# %% [markdown]
# **3.** Real edges are $\sum_b n_b^2$, padded scores $B \cdot \max_b n_b^2$ per batch.

# %%
def real_fraction(bucketed):
    real = padded_total = 0
    for b in make_batches([len(s) for s in src_ids], [len(t) + 1 for t in tgt_ids], 4000,
                          shuffle=True, seed=1, bucketed=bucketed):
        lens = torch.tensor([len(src_ids[i]) for i in b])
        real += int((lens**2).sum())
        padded_total += len(b) * int(lens.max()) ** 2
    return real / padded_total


with_buckets, without = real_fraction(True), real_fraction(False)
print(f"real fraction of a padded encoder's scores: bucketed {with_buckets:.0%}, "
      f"random batches {without:.0%}")
assert with_buckets > without

# %%
if work_dir is not None:
    shutil.rmtree(work_dir)  # the briefly trained model is not kept
