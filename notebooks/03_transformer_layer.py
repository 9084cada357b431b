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
# Lesson 2 ended with attention on a graph: a score on every edge, a softmax over each node's
# incoming edges, a weighted sum. A Transformer's self-attention (Vaswani et al., 2017) is
# exactly that, on one particular graph: **the words of a sentence are the nodes, and every
# word is connected to every word**, itself included. In this lesson you will
#
# 1. build the complete graph of a sentence;
# 2. write scaled dot-product, multi-head attention as message passing with DGL built-ins,
#    and check it equals PyTorch's dense `F.scaled_dot_product_attention` and the project's
#    `dgl_transformer.nn.attention`;
# 3. wrap it into a full encoder layer — LayerNorm, residual connections, a feed-forward
#    network — and check it equals `dgl_transformer.nn.layers.EncoderLayer`;
# 4. batch sentences of different lengths **without padding**, and see why a graph needs
#    positional encodings;
# 5. count what a complete graph costs: $n^2$ edges for $n$ words.

# %%
import dgl
import dgl.function as fn
import matplotlib.pyplot as plt
import networkx as nx
import torch
import torch.nn as nn
import torch.nn.functional as F
from dgl.nn.functional import edge_softmax

from dgl_transformer.nn import graphs
from dgl_transformer.nn.attention import MultiHeadAttention, graph_attention
from dgl_transformer.nn.layers import EncoderLayer, sinusoidal_positions

torch.manual_seed(0)
torch.set_num_threads(1)  # small tensors: one thread is fastest, and robust on a busy machine

# %% [markdown]
# ## 1. A sentence is a complete graph
#
# Take the sentence "the cat sat on the mat". Each of its $n = 6$ tokens is a node. In
# self-attention every token may look at every token, so there is an edge $j \to i$ for every
# pair, including $i \to i$: $n^2 = 36$ edges. `dgl_transformer.nn.graphs.complete_graph` builds
# it from a list of sentence lengths.

# %%
words = "the cat sat on the mat".split()
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
# Every token starts as a vector $x_i \in \mathbb R^{d}$ (an embedding; here random). Three
# learned matrices turn it into a **query**, a **key** and a **value**:
# $$q_i = W_Q x_i, \qquad k_j = W_K x_j, \qquad v_j = W_V x_j .$$
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
# with the sender's key, scaled by $\sqrt{d_k}$ so that scores do not grow with the dimension.
# `fn.v_dot_u` reads "destination's `q` dot source's `k`", which is $q_i^\top k_j$ on the edge
# $j \to i$.
#
# With $H$ heads, each head has its own $W_Q, W_K, W_V$ of size $d \times d_k$,
# $d_k = d / H$; as in lesson 2 the heads are one more tensor dimension, $(N, H, d_k)$.

# %%
d_model, n_heads = 16, 4
d_k = d_model // n_heads
x = torch.randn(n, d_model)  # one vector per token
W_Q, W_K, W_V = (nn.Linear(d_model, d_model) for _ in range(3))


def split_heads(t):
    return t.view(-1, n_heads, d_k)  # (N, d) -> (N, H, d_k)


def attention_on_graph(g, q, k, v):
    """Scaled dot-product attention along the edges of g. q, k, v: (N, H, d_k)."""
    with g.local_scope():
        g.ndata.update({"q": q / d_k**0.5, "k": k, "v": v})
        g.apply_edges(fn.v_dot_u("q", "k", "s"))  # message: one score per edge and head
        g.edata["a"] = edge_softmax(g, g.edata["s"])  # normalise over each node's in-edges
        g.update_all(fn.u_mul_e("v", "a", "m"), fn.sum("m", "o"))  # aggregate
        return g.ndata["o"], g.edata["a"].squeeze(-1)  # (N, H, d_k), (E, H)


q, k, v = split_heads(W_Q(x)), split_heads(W_K(x)), split_heads(W_V(x))
o_graph, alpha = attention_on_graph(g, q, k, v)
print("output", tuple(o_graph.shape), " attention", tuple(alpha.shape))

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
# matrix with learned weights, and every row sums to one. (The weights are random here; in
# lesson 5 we draw those of a trained translation model.)

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
# $$\text{MHA}(x)_i = W_O\, \big[\, o_i^{(1)} \,\|\, \dots \,\|\, o_i^{(H)} \big] .$$
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
#   mean and standard deviation taken over the features of one node.
# * **Feed-forward network:** the same two-layer network applied to every node,
#   $\text{FFN}(x) = W_2\, \text{ReLU}(W_1 x + b_1) + b_2$, with a hidden size $d_\text{ff}$
#   usually $4d$.
#
# The project uses the *pre-norm* arrangement (normalise before each sub-layer), which trains
# more stably than the original post-norm one (Xiong et al., 2020):
# $$x \leftarrow x + \text{MHA}(\text{LN}_1(x)), \qquad
#   x \leftarrow x + \text{FFN}(\text{LN}_2(x)).$$

# %%
class GraphEncoderLayer(nn.Module):
    def __init__(self, d_model, n_heads, d_ff):
        super().__init__()
        self.mha = GraphMHA(d_model, n_heads)
        self.ln1, self.ln2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.ffn = nn.Sequential(nn.Linear(d_model, d_ff), nn.ReLU(), nn.Linear(d_ff, d_model))

    def forward(self, g, x):
        x = x + self.mha(g, self.ln1(x))  # message passing on the graph, plus residual
        return x + self.ffn(self.ln2(x))  # node-wise update, plus residual


d_ff = 4 * d_model
layer = GraphEncoderLayer(d_model, n_heads, d_ff)

# LayerNorm works on each node on its own: mean 0, variance 1 over the features (before gamma/beta)
normed = F.layer_norm(x, (d_model,))
assert torch.allclose(normed.mean(1), torch.zeros(n), atol=1e-5)
assert torch.allclose(normed.var(1, unbiased=False), torch.ones(n), atol=1e-3)

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
# ## 4. A batch of sentences, with no padding
#
# Sentences have different lengths. Dense implementations pad every sentence to the longest
# one with dummy tokens and then *mask* the dummies out of the attention. A graph needs
# neither: the batch is the complete graphs of each sentence side by side (lesson 1's
# batching), and tokens are stored one after another, "packed". Messages never cross from
# one sentence to another because no edge does.

# %%
lengths = [3, 6, 8]
bg = graphs.complete_graph(lengths)
tokens = torch.randn(sum(lengths), d_model)  # 17 packed token vectors
out_packed = layer(bg, tokens)

assert bg.num_edges() == sum(L * L for L in lengths)  # 9 + 36 + 64 = 109
# sentence by sentence, on its own complete graph: the same numbers
pieces = torch.split(tokens, lengths)
separate = torch.cat([layer(graphs.complete_graph([len(p)]), p) for p in pieces])
assert torch.allclose(out_packed, separate, atol=1e-5)

# %% [markdown]
# The dense equivalent pads to 8 tokens per sentence and passes a mask that hides the padding
# keys. It computes $3 \times 8^2 = 192$ scores, of which only 109 are real.

# %%
B, T = len(lengths), max(lengths)
padded = torch.zeros(B, T, d_model)
real = torch.zeros(B, T, dtype=torch.bool)
for b, p in enumerate(pieces):
    padded[b, : len(p)] = p
    real[b, : len(p)] = True


def dense_attend(q, k, v):  # q, k, v: (B, T, H, d_k); key mask from `real`
    q, k, v = (t.transpose(1, 2) for t in (q, k, v))
    o = F.scaled_dot_product_attention(q, k, v, attn_mask=real[:, None, None, :])
    return o.transpose(1, 2)


out_dense = lib_layer(padded, dense_attend)
assert torch.allclose(out_dense[real], out_packed, atol=1e-5)  # real tokens agree
print(f"graph: {bg.num_edges()} scores; padded dense: {B * T * T} scores")
assert B * T * T == 192

# %% [markdown]
# ### A graph has no word order
#
# Nothing in the computation above knows which token comes first: the graph is a *set* of
# edges, and a complete graph looks the same however its nodes are numbered. So shuffling the
# words just shuffles the outputs — self-attention is *permutation-equivariant*:
# $\text{Layer}(P x) = P\, \text{Layer}(x)$ for any permutation $P$. "the cat sat on the mat"
# and "the mat sat on the cat" would be the same bag of words.
#
# The Transformer fixes this by adding to each token a vector that encodes its position,
# $x_i \leftarrow x_i + \text{PE}(i)$, with
# $\text{PE}(p)_{2m} = \sin(p / 10000^{2m/d})$ and $\text{PE}(p)_{2m+1} = \cos(p/10000^{2m/d})$.
# Positions are then *node features*; the graph stays the same.

# %%
perm = torch.randperm(n)
assert torch.allclose(layer(g, x[perm]), layer(g, x)[perm], atol=1e-5)  # equivariant

pe = sinusoidal_positions(64, d_model)[:n]
with_pos, with_pos_shuffled = layer(g, x + pe), layer(g, x[perm] + pe)
assert not torch.allclose(with_pos_shuffled, with_pos[perm], atol=1e-3)  # order now matters

fig, ax = plt.subplots(figsize=(7, 2.5))
ax.imshow(sinusoidal_positions(64, d_model).T, aspect="auto", cmap="RdBu")
ax.set_xlabel("position p")
ax.set_ylabel("feature")
ax.set_title("sinusoidal positional encodings: one column per position")
plt.show()

# %% [markdown]
# ## 5. What a complete graph costs
#
# A sentence of $n$ tokens has $n^2$ edges, and each edge holds $H$ scores: attention's time
# and memory grow with the square of the length. For a batch, the graph stores
# $\sum_b n_b^2$ edges while padded dense attention computes $B \cdot (\max_b n_b)^2$ scores.
# The difference depends on how much the lengths in a batch vary: sorting by length before
# batching ("bucketing") makes it small, random batches leave it large.

# %%
lengths_range = torch.arange(1, 101)
edges = torch.tensor([graphs.complete_graph([int(L)]).num_edges() for L in lengths_range])
assert torch.equal(edges, lengths_range**2)

gen = torch.Generator().manual_seed(0)
sample = torch.randint(5, 41, (32 * 50,), generator=gen).view(50, 32)  # 50 random batches
graph_edges = (sample**2).sum(1)
padded_scores = 32 * sample.max(1).values ** 2
bucketed = sample.flatten().sort().values.view(50, 32)  # the same sentences, sorted
bucketed_padded = 32 * bucketed.max(1).values ** 2

fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))
axes[0].plot(lengths_range, edges, label="complete graph: $n^2$")
axes[0].plot(lengths_range, 3 * lengths_range,
             label="a window, 3 senders per token: about $3n$ (lesson 6)")
axes[0].set_xlabel("sentence length n")
axes[0].set_ylabel("edges")
axes[0].legend()
ratio_random = (padded_scores / graph_edges).float()
ratio_bucketed = bucketed_padded.sum() / (bucketed**2).sum()
axes[1].hist(ratio_random, bins=15, color="#888")
axes[1].axvline(ratio_bucketed, color="C1", label=f"bucketed batches: {ratio_bucketed:.2f}")
axes[1].set_xlabel("padded scores / graph edges, per random batch of 32 (lengths 5-40)")
axes[1].legend()
plt.tight_layout()
plt.show()

print(f"random batches: padding computes {ratio_random.mean():.2f}x the scores of the graph")
assert (padded_scores >= graph_edges).all()  # padding never computes fewer scores
assert ratio_random.mean() > 1.5 and ratio_bucketed < 1.2

# %% [markdown]
# The graph view makes the quadratic cost visible as *edges*, and it suggests the remedy
# that dense code only expresses awkwardly: **use fewer edges**. Lesson 6 swaps the complete
# graph for sparse ones in the same model.
#
# ## Summary
#
# * Self-attention is GAT's recipe with a dot-product score on the complete graph:
#   `fn.v_dot_u` → `edge_softmax` → `fn.u_mul_e` + `fn.sum`. It equals
#   `F.scaled_dot_product_attention`.
# * The rest of the layer (LayerNorm, residuals, FFN) is a node-wise update.
# * A batch is a set of disjoint complete graphs: no padding, no padding mask.
# * A graph has no order: positions must be node features.
# * A complete graph has $n^2$ edges.
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
