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
# # Lesson 3 — A Transformer layer is a GNN on a complete graph
#
# *Reading time: about 50 minutes, exercises included. Running time: under half a minute.*
#
# Lesson 2 ended with attention on a graph: a score on every edge, a softmax over each node's
# incoming edges, a weighted sum. A Transformer's self-attention (Vaswani et al., 2017) is
# exactly that, on one particular graph: **the words of a sentence are the nodes, and every
# word is connected to every word**, itself included. This is the heart of Joshi's essay
# (*Transformers are Graph Neural Networks*, The Gradient, 2020), in its sections "Sentences
# are fully-connected word graphs" and "Breaking down the Transformer". In this lesson you will
#
# 1. split real English and German sentences into words with spaCy and build their complete
#    graphs;
# 2. write scaled dot-product, multi-head attention as message passing with DGL built-ins,
#    and check it equals PyTorch's dense `F.scaled_dot_product_attention` and the project's
#    `dgl_transformer.nn.attention`;
# 3. wrap it into a full encoder layer — LayerNorm, residual connections, a feed-forward
#    network — check it equals `dgl_transformer.nn.layers.EncoderLayer`, and see in a small
#    controlled run why the project normalises *before* each sub-layer;
# 4. add positions, assemble the whole encoder equation by equation and check it against
#    the project's `GraphTransformer.encode`;
# 5. batch sentences of different lengths **without padding**, and count what a complete
#    graph costs: $n^2$ edges for $n$ words.

# %%
import os
import time

import dgl
import dgl.function as fn
import matplotlib.pyplot as plt
import networkx as nx
import spacy
import torch
import torch.nn as nn
import torch.nn.functional as F
from dgl.nn.functional import edge_softmax

from dgl_transformer import GraphTransformer, PackedBatch, TransformerConfig
from dgl_transformer.nn import graphs
from dgl_transformer.nn.attention import MultiHeadAttention, graph_attention
from dgl_transformer.nn.layers import EncoderLayer, sinusoidal_positions

SEED = int(os.environ.get("DGLT_SEED", "0"))  # another seed: run_notebooks.py --seed N
torch.manual_seed(SEED)
torch.set_num_threads(1)  # small tensors: one thread is fastest, and robust on a busy machine

# %% [markdown]
# ## 1. A sentence is a complete graph
#
# First we need the nodes: the words. Splitting text into words is *tokenisation*. We use
# spaCy's rule-based tokenisers, `spacy.blank("en")` and `spacy.blank("de")`: they split on
# spaces, then peel punctuation off the words and apply each language's exceptions (English
# "don't" becomes "do" + "n't"; the German abbreviation "d.h.", "that is", stays one word). A blank
# pipeline has no trained model, so nothing is downloaded.

# %%
nlp = {"en": spacy.blank("en"), "de": spacy.blank("de")}
sentences = {
    "en": "The cat sat on the mat.",
    "de": "Die Katze saß schon um 7 Uhr auf der Matte, d.h. vor dem Frühstück.",
    "en2": "Two dogs are running across a snowy field.",
}
tokens = {key: [t.text for t in nlp[key[:2]](text)] for key, text in sentences.items()}
for key, words_ in tokens.items():
    print(f"{key:>3s}: {len(words_):2d} tokens  {words_}")

for key, text in sentences.items():
    doc = nlp[key[:2]](text)
    assert "".join(t.text_with_ws for t in doc) == text  # nothing lost, nothing added
assert tokens["en"][-2:] == ["mat", "."]  # punctuation is a token of its own
assert "d.h." in tokens["de"]  # a German abbreviation is kept whole
assert [t.text for t in nlp["en"]("Don't panic.")] == ["Do", "n't", "panic", "."]

# %% [markdown]
# Each of the $n$ tokens of "The cat sat on the mat." is a node. In self-attention every
# token may look at every token, so there is an edge $j \to i$ for every pair, including
# $i \to i$: $n^2$ edges. `dgl_transformer.nn.graphs.complete_graph` builds it from a list
# of sentence lengths.

# %%
words = tokens["en"]
n = len(words)
g = graphs.complete_graph([n])
src, dst = g.edges()
print(g)
assert g.num_edges() == n * n
assert set(zip(src.tolist(), dst.tolist(), strict=True)) == {(j, i) for i in range(n)
                                                                 for j in range(n)}

# %%
fig, axes = plt.subplots(1, 2, figsize=(10, 4))
G = nx.DiGraph(list(zip(src.tolist(), dst.tolist(), strict=True)))
pos = nx.circular_layout(range(n))
nx.draw_networkx(G, pos, ax=axes[0], labels=dict(enumerate(words)), node_color="#cde",
                 node_size=1100, font_size=9, edge_color="#999", arrows=False)
axes[0].set_title(f"complete graph of {n} tokens: {g.num_edges()} edges\n"
                  "(a line = both directions; small loops = self-loops)")
axes[0].axis("off")
adjacency = torch.zeros(n, n)
adjacency[dst, src] = 1  # row i: the tokens i receives from
axes[1].imshow(adjacency, cmap="Greys", vmin=0, vmax=1.5)
axes[1].set_xticks(range(n), words)
axes[1].set_yticks(range(n), words)
axes[1].set_xlabel("sender j (key)")
axes[1].set_ylabel("receiver i (query)")
axes[1].set_title("its adjacency matrix = the attention mask")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 2. Scaled dot-product attention as message passing
#
# Every token starts as a vector: a row of a learned **embedding table** $E$, one row per
# word of the vocabulary. Like the project (and Vaswani et al.), we scale it by
# $\sqrt{d}$, where $d$ is the model width:
# $$x_i = \sqrt{d}\; E[w_i] .$$
# Why the scale? The table is initialised with entries of standard deviation $d^{-1/2}$, so
# that each row has length about 1 — the right size for lesson 4, where the same table also
# turns outputs back into word scores. Multiplied by $\sqrt{d}$, every coordinate of $x_i$ is
# of order 1, the scale of the positional encodings we add in section 4. Our vocabulary is
# just the lowercased words of this lesson's sentences.

# %%
d_model, n_heads = 16, 4
d_k = d_model // n_heads
all_words = sorted({w.lower() for words_ in tokens.values() for w in words_})
vocab = {w: i for i, w in enumerate(all_words)}


def ids_of(words_):
    return torch.tensor([vocab[w.lower()] for w in words_])


embedding = nn.Embedding(len(vocab), d_model)
nn.init.normal_(embedding.weight, std=d_model**-0.5)  # the project's initialisation
ids = ids_of(words)
x = embedding(ids).detach() * d_model**0.5  # x_i = sqrt(d) E[w_i]: one vector per token
print(f"{len(vocab)} words in the vocabulary; x: {tuple(x.shape)} = (tokens, d_model)")
row_length = embedding.weight.norm(dim=1).mean().item()
rms = x.pow(2).mean().sqrt().item()
print(f"length of a row of E: {row_length:.2f}; root-mean-square coordinate of x: {rms:.2f}")
assert 0.7 < row_length < 1.4 and 0.7 < rms < 1.4

# %% [markdown]
# Three learned matrices turn each $x_i$ into a **query**, a **key** and a **value**:
# $$q_i = W_Q x_i + b_Q, \qquad k_j = W_K x_j + b_K, \qquad v_j = W_V x_j + b_V .$$
# Read them as: the query is what token $i$ is looking for, the key is what token $j$ offers,
# the value is what $j$ will send if chosen. Then, on the graph:
#
# | step | formula | DGL built-in |
# |---|---|---|
# | message: a score per edge | $s_{ij} = q_i^\top k_j / \sqrt{d_k}$ | `fn.v_dot_u("q", "k", "s")` |
# | normalise over in-edges | $\alpha_{ij} = e^{s_{ij}} / \sum_{j'} e^{s_{ij'}}$ | `edge_softmax` |
# | aggregate | $o_i = \sum_j \alpha_{ij} v_j$ | `fn.u_mul_e("v", "a", "m")`, `fn.sum` |
#
# Compared with GAT (lesson 2) only the score changed: a dot product of the receiver's query
# with the sender's key, divided by $\sqrt{d_k}$ (we measure why just below). `fn.v_dot_u`
# reads "destination's `q` dot source's `k`", which is $q_i^\top k_j$ on the edge $j \to i$.
#
# With $H$ heads, each head has its own $W_Q, W_K, W_V$ of size $d \times d_k$ (and biases
# of size $d_k$), $d_k = d / H$; as in lesson 2 the heads are one more tensor dimension,
# $(N, H, d_k)$.

# %%
W_Q, W_K, W_V = (nn.Linear(d_model, d_model) for _ in range(3))


def split_heads(t):
    return t.view(-1, n_heads, d_k)  # (N, d) -> (N, H, d_k)


def attention_on_graph(g, q, k, v):
    """Scaled dot-product attention along the edges of g. q, k, v: (N, H, d_k)."""
    with g.local_scope():
        g.ndata.update({"q": q / q.shape[-1] ** 0.5, "k": k, "v": v})  # scale by 1/sqrt(d_k)
        g.apply_edges(fn.v_dot_u("q", "k", "s"))  # message: one score per edge and head
        g.edata["a"] = edge_softmax(g, g.edata["s"])  # normalise over each node's in-edges
        g.update_all(fn.u_mul_e("v", "a", "m"), fn.sum("m", "o"))  # aggregate
        return g.ndata["o"], g.edata["a"].squeeze(-1)  # (N, H, d_k), (E, H)


q, k, v = split_heads(W_Q(x)), split_heads(W_K(x)), split_heads(W_V(x))
o_graph, alpha = attention_on_graph(g, q, k, v)
print("output", tuple(o_graph.shape), " attention", tuple(alpha.shape))

# %% [markdown]
# **Why $\sqrt{d_k}$?** (The essay's "Scale issues" paragraph.) If the coordinates of $q$ and
# $k$ are independent with variance 1, their dot product is a sum of $d_k$ such products, with
# variance $d_k$: the wider the head, the larger the scores, and a softmax of large scores
# puts almost all its weight on one edge (and passes almost no gradient to the others).
# Dividing by $\sqrt{d_k}$ brings the scores back to variance 1 whatever the width. Measured
# on random vectors, with the mean weight of the heaviest of $n$ edges:

# %%
gen = torch.Generator().manual_seed(SEED)
print(" d_k   std(q.k)   heaviest weight: unscaled  scaled")
for width in (4, 16, 64, 256):
    qs, ks = torch.randn(2000, width, generator=gen), torch.randn(2000, n, width, generator=gen)
    raw = torch.einsum("bd,bnd->bn", qs, ks)  # 2000 receivers, n senders each
    heaviest_raw = raw.softmax(-1).max(-1).values.mean().item()
    heaviest = (raw / width**0.5).softmax(-1).max(-1).values.mean().item()
    print(f"{width:4d}   {raw.std().item():8.1f}   {heaviest_raw:22.2f}  {heaviest:6.2f}")
    assert 0.9 < raw.std().item() / width**0.5 < 1.1  # the spread grows as sqrt(d_k)
    if width >= 64:
        assert heaviest_raw > 0.85 and heaviest < 0.5  # unscaled: nearly one-hot

# %% [markdown]
# The same computation written densely is the familiar
# $$\text{Attention}(Q, K, V) = \text{softmax}\!\left(\frac{Q K^\top}{\sqrt{d_k}}\right) V ,$$
# which PyTorch provides as `F.scaled_dot_product_attention` on tensors of shape
# (batch, heads, length, $d_k$). It computes all $n^2$ scores as one matrix; we computed the
# same $n^2$ numbers, one per edge.

# %%
def to_dense(t):
    return t.transpose(0, 1).unsqueeze(0)  # (N, H, d_k) -> (1, H, N, d_k)


o_dense = F.scaled_dot_product_attention(to_dense(q), to_dense(k), to_dense(v))
assert torch.allclose(to_dense(o_graph), o_dense, atol=1e-6)

# the edge weights are the entries of the dense attention matrix
A_dense = torch.softmax(to_dense(q) @ to_dense(k).transpose(-1, -2) / d_k**0.5, dim=-1)[0]
assert torch.allclose(alpha.T, A_dense[:, dst, src], atol=1e-6)

# and the project's implementation (dgl_transformer.nn.attention) is this function
o_lib, alpha_lib = graph_attention(g, q, k, v, return_weights=True)
assert torch.allclose(o_lib, o_graph, atol=1e-6) and torch.allclose(alpha_lib, alpha, atol=1e-6)

# %% [markdown]
# **Attention weights are a weighted adjacency matrix.** For each head, put $\alpha_{ij}$ in
# row $i$, column $j$: the familiar attention heat map is the complete graph's adjacency
# matrix with learned weights, and every row sums to one. (The weights are untrained here; in
# lesson 5 we draw those of a trained translation model, head by head.)

# %%
fig, axes = plt.subplots(1, n_heads, figsize=(13, 3.2))
for head, ax in enumerate(axes):
    heat = torch.zeros(n, n)
    heat[dst, src] = alpha[:, head].detach()
    assert torch.allclose(heat.sum(1), torch.ones(n))
    ax.imshow(heat, cmap="viridis", vmin=0, vmax=1)
    ax.set_xticks(range(n), words, fontsize=7, rotation=45)
    ax.set_yticks(range(n), words, fontsize=7)
    ax.set_title(f"head {head}")
plt.suptitle(r"$\alpha_{ij}$ per head (row: receiver $i$, column: sender $j$)")
plt.tight_layout()
plt.show()

# %% [markdown]
# The heads' outputs are concatenated and mixed by one more matrix, $W_O$:
# $$\text{MHA}(x)_i = W_O\, \big[\, o_i^{(1)} \,\|\, \dots \,\|\, o_i^{(H)} \big] + b_O .$$
# Here is the whole multi-head attention module. The project's `MultiHeadAttention` is the
# same computation with $W_Q, W_K, W_V$ fused into one `qkv` matrix of size
# $d \times 3d$; stacking our three matrices gives its weights.

# %%
class GraphMHA(nn.Module):
    """Multi-head self-attention on a graph: project, attend along edges, mix heads."""

    def __init__(self, d_model, n_heads):
        super().__init__()
        self.h, self.d_k = n_heads, d_model // n_heads
        self.W_Q, self.W_K, self.W_V = (nn.Linear(d_model, d_model) for _ in range(3))
        self.W_O = nn.Linear(d_model, d_model)

    def forward(self, g, x):
        q, k, v = (W(x).view(-1, self.h, self.d_k) for W in (self.W_Q, self.W_K, self.W_V))
        o, _ = attention_on_graph(g, q, k, v)
        return self.W_O(o.flatten(1))  # concatenate heads, then mix


mha = GraphMHA(d_model, n_heads)
lib_mha = MultiHeadAttention(d_model, n_heads)
with torch.no_grad():
    lib_mha.qkv.weight.copy_(torch.cat([mha.W_Q.weight, mha.W_K.weight, mha.W_V.weight]))
    lib_mha.qkv.bias.copy_(torch.cat([mha.W_Q.bias, mha.W_K.bias, mha.W_V.bias]))
    lib_mha.out.load_state_dict(mha.W_O.state_dict())
lib_out = lib_mha(x, lambda q, k, v: graph_attention(g, q, k, v))
assert torch.allclose(mha(g, x), lib_out, atol=1e-5)

# %% [markdown]
# ## 3. The rest of the layer: every other piece is a node update
#
# Attention is the only part of a Transformer layer in which tokens talk to each other. The
# rest acts on every node separately — the *update* step of lesson 1:
#
# * **Residual connection:** the node keeps its own state and adds what it heard,
#   $x \leftarrow x + \text{MHA}(\dots)$. This plays the role of $U h_i$ in lesson 1's layer.
# * **Layer normalisation:** $\text{LN}(x) = \gamma \odot \frac{x - \mu(x)}{\sigma(x)} + \beta$,
#   mean and standard deviation taken over the features of one node (a small $\epsilon$ is
#   added to the variance under the root).
# * **Feed-forward network:** the same two-layer network applied to every node,
#   $\text{FFN}(x) = W_2\, \text{ReLU}(W_1 x + b_1) + b_2$, with a hidden size $d_\text{ff}$
#   usually $4d$.
#
# Where the LayerNorm goes is a real choice. The original Transformer normalises *after*
# adding the residual (*post-norm*); the project normalises the input of each sub-layer and
# leaves the residual path untouched (*pre-norm*, Xiong et al., 2020):
# $$\begin{aligned}
# \text{pre-norm:}\quad & x \leftarrow x + \text{MHA}(\text{LN}_1(x)), &
#   x &\leftarrow x + \text{FFN}(\text{LN}_2(x)) \\
# \text{post-norm:}\quad & x \leftarrow \text{LN}_1(x + \text{MHA}(x)), &
#   x &\leftarrow \text{LN}_2(x + \text{FFN}(x))
# \end{aligned}$$

# %%
class GraphEncoderLayer(nn.Module):
    def __init__(self, d_model, n_heads, d_ff, post_norm=False):
        super().__init__()
        self.post_norm = post_norm
        self.mha = GraphMHA(d_model, n_heads)
        self.ln1, self.ln2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.ffn = nn.Sequential(nn.Linear(d_model, d_ff), nn.ReLU(), nn.Linear(d_ff, d_model))

    def forward(self, g, x):
        if self.post_norm:  # the original arrangement
            x = self.ln1(x + self.mha(g, x))
            return self.ln2(x + self.ffn(x))
        x = x + self.mha(g, self.ln1(x))  # message passing on the graph, plus residual
        return x + self.ffn(self.ln2(x))  # node-wise update, plus residual


d_ff = 4 * d_model
layer = GraphEncoderLayer(d_model, n_heads, d_ff)

# the layer's LayerNorm is the formula above, each node on its own (its features only)
ln = layer.ln1
mu, var = x.mean(1, keepdim=True), x.var(1, unbiased=False, keepdim=True)
assert torch.allclose(ln(x), ln.weight * (x - mu) / (var + ln.eps).sqrt() + ln.bias, atol=1e-5)

# %% [markdown]
# The project's `EncoderLayer` takes an `attend` function instead of a graph, so the same
# layer code runs on a graph (the Transformer of this project) or on padded dense tensors
# (its reference twin). Loaded with our weights, it computes what our layer computes.

# %%
def load_into_library(ours, lib):
    m = ours.mha
    with torch.no_grad():
        lib.self_attn.qkv.weight.copy_(torch.cat([m.W_Q.weight, m.W_K.weight, m.W_V.weight]))
        lib.self_attn.qkv.bias.copy_(torch.cat([m.W_Q.bias, m.W_K.bias, m.W_V.bias]))
        lib.self_attn.out.load_state_dict(m.W_O.state_dict())
        lib.norm_attn.load_state_dict(ours.ln1.state_dict())
        lib.norm_ffn.load_state_dict(ours.ln2.state_dict())
        lib.ffn[0].load_state_dict(ours.ffn[0].state_dict())
        lib.ffn[3].load_state_dict(ours.ffn[2].state_dict())  # [Linear, ReLU, Dropout, Linear]


lib_layer = EncoderLayer(d_model, n_heads, d_ff, dropout=0.0).eval()
load_into_library(layer, lib_layer)
assert torch.allclose(layer(g, x), lib_layer(x, lambda q, k, v: graph_attention(g, q, k, v)),
                      atol=1e-5)

# %% [markdown]
# ### Why pre-norm? A small controlled run
#
# The essay's last question is "Why is training Transformers so hard?". One answer, by Xiong
# et al. (2020): in post-norm, every LayerNorm sits on the residual path, and at the start of
# training the gradients of the last layers are large, so a large learning rate wrecks them
# unless it is *warmed up* from a small value. Pre-norm keeps an untouched residual path from
# the input to the output.
#
# A controlled test, small enough to run here: a stack of four layers (width 32) learns to
# tag each token of random 10-token sentences over 12 symbols with "does this symbol occur
# again in the sentence?". Same data, same initialisation seed, Adam at a learning rate of
# 0.01, 200 steps; three runs: post-norm, post-norm with the learning rate warmed up
# linearly over the first 50 steps, and pre-norm. We report the mean loss over the last 20
# steps; a model that ignores its input cannot do better than about $\ln 2 = 0.69$. Two
# pieces come ahead of section 4, which explains them: each token gets a sinusoidal position
# vector added to its embedding (`sinusoidal_positions`), and the pre-norm stack ends with one
# more LayerNorm, as the project's does.

# %%
def tagging_batch(gen, sentences=32, length=10, symbols=12):
    x = torch.randint(0, symbols, (sentences, length), generator=gen)
    y = ((x[:, :, None] == x[:, None, :]).sum(-1) > 1).long()  # another copy exists?
    return x.flatten(), y.flatten()


def train_stack(post_norm, warmup_steps, lr=1e-2, steps=200, width=32, n_layers=4):
    torch.manual_seed(SEED)
    emb = nn.Embedding(12, width)
    nn.init.normal_(emb.weight, std=width**-0.5)
    stack = nn.ModuleList(GraphEncoderLayer(width, 4, 2 * width, post_norm)
                          for _ in range(n_layers))
    final = nn.Identity() if post_norm else nn.LayerNorm(width)  # see section 4
    head = nn.Linear(width, 2)
    params = [p for m in (emb, stack, final, head) for p in m.parameters()]
    opt = torch.optim.Adam(params, lr=lr, betas=(0.9, 0.98))
    warm = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warmup_steps))
    graph, pe = graphs.complete_graph([10] * 32), sinusoidal_positions(10, width).repeat(32, 1)
    gen, losses = torch.Generator().manual_seed(SEED), []
    for _ in range(steps):
        tokens_, labels = tagging_batch(gen)
        h = emb(tokens_) * width**0.5 + pe
        for block in stack:
            h = block(graph, h)
        loss = F.cross_entropy(head(final(h)), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()
        warm.step()
        losses.append(loss.item())
    return losses


start = time.perf_counter()
runs = {"post-norm": train_stack(True, warmup_steps=1),
        "post-norm + warm-up": train_stack(True, warmup_steps=50),
        "pre-norm": train_stack(False, warmup_steps=1)}
final_loss = {name: sum(r[-20:]) / 20 for name, r in runs.items()}
for name, value in final_loss.items():
    print(f"{name:>20s}: loss over the last 20 steps {value:.3f}")
print(f"({time.perf_counter() - start:.0f} s for the three runs)")

fig, ax = plt.subplots(figsize=(6.5, 3))
for name, r in runs.items():
    ax.plot(r, lw=0.8, label=name)
ax.axhline(0.693, color="k", ls="--", lw=0.8, label=r"$\ln 2$")
ax.set_xlabel("step")
ax.set_ylabel("training loss")
ax.legend(fontsize=8)
plt.show()

# learning nothing means staying within a few hundredths of ln 2; learning, ending below that
assert final_loss["post-norm"] > 0.65  # post-norm at this learning rate learns nothing
assert final_loss["pre-norm"] < 0.65 and final_loss["post-norm + warm-up"] < 0.65

# %% [markdown]
# At this learning rate, post-norm without warm-up never gets off the ground, while the same
# model with a warm-up, and pre-norm without one, both learn. (At a learning rate ten times
# smaller all three learn: try it.) One small run proves nothing in general, but it shows the
# mechanism the literature reports; lesson 5 plots the warm-up schedule the project uses.
#
# ## 4. Positions, and the whole encoder
#
# Nothing in the computation above knows which token comes first: the graph is a *set* of
# edges, and a complete graph looks the same however its nodes are numbered. So reordering
# the words just reorders the outputs — self-attention is *permutation-equivariant*:
# $\text{Layer}(P x) = P\, \text{Layer}(x)$ for any permutation $P$. Real sentences show what
# that means: "The cat sat on the mat." and "The mat sat on the cat." have the same words,
# and without positions "cat" gets exactly the same vector in both, subject or object.

# %%
swapped = [t.text for t in nlp["en"]("The mat sat on the cat.")]
perm, free = [], list(range(n))
for w in swapped:  # perm[i]: the position in the first sentence of the i-th word of the second
    perm.append(next(p for p in free if words[p].lower() == w.lower()))
    free.remove(perm[-1])
x_swapped = embedding(ids_of(swapped)).detach() * d_model**0.5
assert torch.equal(x_swapped, x[perm])  # the same word vectors, reordered

out, out_swapped = layer(g, x), layer(g, x_swapped)
assert torch.allclose(out_swapped, out[perm], atol=1e-5)  # equivariant
cat, cat_swapped = words.index("cat"), swapped.index("cat")
assert torch.allclose(out[cat], out_swapped[cat_swapped], atol=1e-5)  # same vector for "cat"

# %% [markdown]
# The Transformer fixes this by adding to each token a vector that encodes its position $p$,
# $\text{PE}(p)_{2m} = \sin(p / 10000^{2m/d})$ and $\text{PE}(p)_{2m+1} = \cos(p/10000^{2m/d})$.
# The input of the first layer is then
# $$x_i = \sqrt{d}\; E[w_i] + \text{PE}(i) .$$
# Positions are *node features*; the graph stays the same. Each sine/cosine pair has
# $\sin^2 + \cos^2 = 1$, so every coordinate of $\text{PE}(p)$ has root mean square
# $1/\sqrt 2 \approx 0.71$: the same order as the scaled word vectors, which is the point of
# the $\sqrt d$. Without it the word vectors (length about 1) would be about three times
# shorter than the position vectors (length $\sqrt{d/2} \approx 2.8$).

# %%
pe_table = sinusoidal_positions(64, d_model)


def embed(words_):
    """x_i = sqrt(d) E[w_i] + PE(i)"""
    return embedding(ids_of(words_)).detach() * d_model**0.5 + pe_table[: len(words_)]


pe_rms = pe_table.pow(2).mean(1).sqrt()
word_length = (embedding.weight * d_model**0.5).norm(dim=1).mean().item()
print(f"length of sqrt(d) E[w]: {word_length:.2f}; of PE(p): {pe_table.norm(dim=1)[0]:.2f}; "
      f"without the sqrt(d): {row_length:.2f}")
assert torch.allclose(pe_rms, torch.full((64,), 0.5**0.5), atol=1e-5)
assert 0.7 < word_length / pe_table.norm(dim=1)[0] < 2  # same scale with sqrt(d) ...
assert row_length / pe_table.norm(dim=1)[0] < 0.5  # ... three times smaller without

with_pos, with_pos_swapped = layer(g, embed(words)), layer(g, embed(swapped))
assert not torch.allclose(with_pos[cat], with_pos_swapped[cat_swapped], atol=1e-3)  # now differ

fig, ax = plt.subplots(figsize=(7, 2.5))
ax.imshow(pe_table.T, aspect="auto", cmap="RdBu")
ax.set_xlabel("position p")
ax.set_ylabel("feature")
ax.set_title("sinusoidal positional encodings: one column per position")
plt.show()

# %% [markdown]
# **The whole encoder.** $L$ layers follow one another, and the encoder ends with one more
# LayerNorm:
# $$x^{(0)}_i = \sqrt{d}\; E[w_i] + \text{PE}(i), \qquad
#   x^{(l)} = \text{Layer}_l\big(x^{(l-1)}\big), \qquad
#   \text{memory} = \text{LN}_\text{final}\big(x^{(L)}\big).$$
# Why the last one? In pre-norm every sub-layer reads a normalised copy of the residual
# stream, but the stream itself is only ever *added to*: $x^{(L)}$ is the embedding plus the
# outputs of all sub-layers, and its scale differs from token to token. Post-norm ends each
# layer with a LayerNorm; pre-norm needs this one at the end, so that the decoder reads
# normalised memory vectors. We load two of our layers into the project's `GraphTransformer`
# and check that its encoder computes exactly these three lines.

# %%
cfg = TransformerConfig(src_vocab=len(vocab), tgt_vocab=len(vocab), d_model=d_model,
                        n_heads=n_heads, d_ff=d_ff, n_enc_layers=2, n_dec_layers=1,
                        dropout=0.0, max_len=64, share_embeddings=True)
model = GraphTransformer(cfg).eval()
ours = [layer, GraphEncoderLayer(d_model, n_heads, d_ff)]
final_norm = nn.LayerNorm(d_model)
with torch.no_grad():
    model.src_embed.weight.copy_(embedding.weight)
    for mine, theirs in zip(ours, model.encoder, strict=True):
        load_into_library(mine, theirs)
    model.enc_norm.load_state_dict(final_norm.state_dict())

    x_l = embed(words)  # x^(0) = sqrt(d) E[w] + PE
    for block in ours:
        x_l = block(g, x_l)  # x^(l) = Layer_l(x^(l-1))
    memory = final_norm(x_l)  # memory = LN_final(x^(L))

    library_memory = model.encode(PackedBatch.collate([ids]))
    assert torch.allclose(model.embed(model.src_embed, ids, torch.arange(n)), embed(words),
                          atol=1e-5)
    assert torch.allclose(library_memory, memory, atol=1e-5)

token_scale = x_l.pow(2).mean(1).sqrt()  # root-mean-square of each token's x^(L)
print("root-mean-square of x^(L), token by token:", [round(s, 2) for s in token_scale.tolist()])
print("after LN_final:", [round(s, 2) for s in memory.pow(2).mean(1).sqrt().tolist()])
assert token_scale.max() > 1.05 * token_scale.min()  # unnormalised: tokens differ in scale
assert not torch.allclose(library_memory, x_l, atol=1e-2)  # the final LayerNorm is really there

# %% [markdown]
# ## 5. A batch of sentences, with no padding
#
# Sentences have different lengths, like the three of section 1. Dense implementations
# pad every sentence to the longest one with dummy tokens and then *mask* the dummies out of
# the attention. A graph needs neither: the batch is the complete graphs of each sentence side
# by side (lesson 1's batching), and tokens are stored one after another, "packed". Messages
# never cross from one sentence to another because no edge does.

# %%
batch_words = list(tokens.values())  # the English, German and second English sentence
lengths = [len(ws) for ws in batch_words]
bg = graphs.complete_graph(lengths)
packed = torch.cat([embed(ws) for ws in batch_words])  # one row per real token
out_packed = layer(bg, packed)
print(f"lengths {lengths}: {packed.shape[0]} packed tokens, {bg.num_edges()} edges")

# sentence by sentence, on its own complete graph: the same numbers
pieces = torch.split(packed, lengths)
separate = torch.cat([layer(graphs.complete_graph([len(p)]), p) for p in pieces])
assert torch.allclose(out_packed, separate, atol=1e-5)

# %% [markdown]
# The dense equivalent pads to the longest sentence and passes a mask that hides the padding
# keys. We write it out so that we can count what it computes: one score for every
# (query, key) pair of the padded $B \times T$ grid, real or not.

# %%
B, T = len(lengths), max(lengths)
padded = torch.zeros(B, T, d_model)
real = torch.zeros(B, T, dtype=torch.bool)
for b, p in enumerate(pieces):
    padded[b, : len(p)] = p
    real[b, : len(p)] = True
computed = {}


def dense_attend(q, k, v):  # q, k, v: (B, T, H, d_k); key mask from `real`
    q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # (B, H, T, d_k)
    scores = q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5  # (B, H, T, T)
    computed["scores per head"] = scores[:, 0].numel()
    weights = scores.masked_fill(~real[:, None, None, :], float("-inf")).softmax(-1)
    return (weights @ v).transpose(1, 2)


out_dense = lib_layer(padded, dense_attend)
assert torch.allclose(out_dense[real], out_packed, atol=1e-5)  # real tokens agree

between_real = int((real[:, :, None] & real[:, None, :]).sum())  # pairs of two real tokens
print(f"padded dense: {computed['scores per head']} scores per head, of which "
      f"{between_real} between real tokens; graph: {bg.num_edges()} edges")
assert between_real == bg.num_edges()  # the graph computes exactly the real pairs ...
assert computed["scores per head"] > bg.num_edges()  # ... the padded grid computes more

# %% [markdown]
# ## 6. What a complete graph costs
#
# A sentence of $n$ tokens has $n^2$ edges, and each edge holds $H$ scores: attention's time
# and memory grow with the square of the length. For a batch, the graph stores
# $\sum_b n_b^2$ edges while padded dense attention computes $B \cdot (\max_b n_b)^2$ scores.
# The difference depends on how much the lengths in a batch vary: sorting by length before
# batching ("bucketing") makes it small, random batches leave it large. We measure both on
# random batches of 32 lengths between 5 and 40.

# %%
lengths_range = torch.arange(1, 101)
edges = torch.tensor([graphs.complete_graph([int(L)]).num_edges() for L in lengths_range])
assert torch.equal(edges, lengths_range**2)

gen = torch.Generator().manual_seed(SEED)
sample = torch.randint(5, 41, (32 * 50,), generator=gen).view(50, 32)  # 50 random batches
graph_edges = torch.tensor([graphs.complete_graph(b).num_edges() for b in sample])
padded_scores = 32 * sample.max(1).values ** 2
bucketed = sample.flatten().sort().values.view(50, 32)  # the same sentences, sorted
bucketed_edges = sum(graphs.complete_graph(b).num_edges() for b in bucketed)
bucketed_padded = 32 * bucketed.max(1).values ** 2

fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))
axes[0].plot(lengths_range, edges, label="complete graph: $n^2$")
axes[0].plot(lengths_range, 3 * lengths_range,
             label="a window, 3 senders per token: about $3n$ (lesson 6)")
axes[0].set_xlabel("sentence length n")
axes[0].set_ylabel("edges")
axes[0].legend()
ratio_random = (padded_scores / graph_edges).float()
ratio_bucketed = bucketed_padded.sum().item() / bucketed_edges
axes[1].hist(ratio_random, bins=15, color="#888")
axes[1].axvline(ratio_bucketed, color="C1", label=f"bucketed batches: {ratio_bucketed:.2f}")
axes[1].set_xlabel("padded scores / graph edges, per random batch of 32 (lengths 5-40)")
axes[1].legend()
plt.tight_layout()
plt.show()

print(f"random batches: padding computes {ratio_random.mean():.2f}x the scores of the graph; "
      f"bucketed: {ratio_bucketed:.2f}x")
assert ratio_random.mean() > 1.5 and ratio_bucketed < 1.2

# %% [markdown]
# The graph view makes the quadratic cost visible as *edges*, and it suggests the remedy
# that dense code only expresses awkwardly: **use fewer edges**. Lesson 6 swaps the complete
# graph for sparse ones in the same model, and takes up the essay's question "Are
# fully-connected graphs the best input format for NLP?".
#
# ## Summary
#
# * A sentence, split into words (here by spaCy), is a complete graph with $n^2$ edges.
# * Self-attention is GAT's recipe with a dot-product score on that graph:
#   `fn.v_dot_u` → `edge_softmax` → `fn.u_mul_e` + `fn.sum`. It equals
#   `F.scaled_dot_product_attention`. The $1/\sqrt{d_k}$ keeps the scores' spread
#   independent of the head width.
# * The rest of the layer (LayerNorm, residuals, FFN) is a node-wise update; pre-norm keeps
#   the residual path clean and, in our run, trains where post-norm needs a warm-up.
# * The encoder: $x^{(0)} = \sqrt d\,E[w] + \text{PE}$, $L$ layers, a final LayerNorm.
#   Positions are node features: the graph itself has no order.
# * A batch is a set of disjoint complete graphs: no padding, no padding mask, and exactly
#   the real (query, key) pairs.
#
# ## Exercises
#
# 1. **A causal graph.** A decoder may not look at future tokens: token $i$ receives only from
#    $j \le i$. Build this graph with `graphs.causal_graph`, count its edges, and check our
#    `attention_on_graph` on it against `F.scaled_dot_product_attention(..., is_causal=True)`.
# 2. **Edges are a set.** Build the complete graph of the sentence with its edges listed in a
#    random order. Show that `attention_on_graph` gives the same token outputs.
# 3. **More heads, same size.** Compare the number of parameters of `GraphMHA` with 1, 2, 4
#    and 8 heads for $d = 16$. What changes when the number of heads grows?

# %% [markdown]
# ## Solutions
#
# **1.** $1 + 2 + \dots + n = n(n+1)/2$ edges. The dense version builds a triangular mask; on
# the graph, the missing edges *are* the mask.

# %%
cg = graphs.causal_graph([n])
assert cg.num_edges() == n * (n + 1) // 2
o_causal, _ = attention_on_graph(cg, q, k, v)
o_causal_dense = F.scaled_dot_product_attention(to_dense(q), to_dense(k), to_dense(v),
                                                is_causal=True)
assert torch.allclose(to_dense(o_causal), o_causal_dense, atol=1e-6)

# %% [markdown]
# **2.** The softmax groups edges by their destination and the sum does not care about order,
# so the node results do not depend on how the edges are listed. (The per-edge weights come
# out in the new edge order.)

# %%
shuffle = torch.randperm(g.num_edges())
g_shuffled = dgl.graph((src[shuffle], dst[shuffle]), num_nodes=n)
o_shuffled, alpha_shuffled = attention_on_graph(g_shuffled, q, k, v)
assert torch.allclose(o_shuffled, o_graph, atol=1e-6)
assert torch.allclose(alpha_shuffled, alpha[shuffle], atol=1e-6)

# %% [markdown]
# **3.** The number of parameters does not depend on the number of heads: $4(d^2 + d)$. More
# heads means more, smaller ($d_k = d/H$) attention distributions per token: each head can
# attend to a different neighbour, at the price of a lower-dimensional dot product.

# %%
counts = {h: sum(p.numel() for p in GraphMHA(16, h).parameters()) for h in (1, 2, 4, 8)}
print(counts)
assert set(counts.values()) == {4 * (16 * 16 + 16)}
