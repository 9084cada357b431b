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
# # Lesson 1 — Message passing and a sum-aggregator GNN
#
# *Reading time: about 45 minutes, exercises included. Running time: a few seconds.*
#
# This course is built on Chaitanya Joshi's essay *Transformers are Graph Neural Networks*
# (The Gradient, 2020, https://thegradient.pub/transformers-are-graph-neural-networks/). The
# essay argues, with equations and figures, that a Transformer is a graph neural network
# (GNN): a sentence is a graph whose nodes are words, self-attention is each word collecting
# information from its neighbours with learned weights, and the attention mask is nothing
# but the shape of the graph. It ends with open questions: are fully-connected graphs the
# best input for language, why several attention heads, why training is hard. This course
# turns the argument into code that runs and checks itself, and each lesson says which part
# of the essay it answers. Before we can see any of it, we need the one idea every GNN is
# built on: **message passing** — the essay's section "GNNs build representations of
# graphs", which this lesson covers.
#
# In this lesson you will
#
# 1. build a small social network as a DGL graph and draw it;
# 2. pass messages along its edges in three visible steps — *message*, *aggregate*,
#    *update* — using DGL's built-in functions;
# 3. turn those steps into a GNN layer $h_i' = \sigma(U h_i + \sum_{j} V h_j)$ and check it
#    against the same formula written with a dense adjacency matrix;
# 4. compare the sum aggregator with mean and max, and see one thing sum can do that
#    the others cannot;
# 5. batch several graphs into one, the trick that later lets a Transformer process
#    sentences of different lengths without padding.
#
# Every claim the text makes about a result is checked by an `assert` in the code next to it,
# or shown by a measurement printed next to it: if the notebook runs to the end, the asserted
# claims hold.

# %%
import os

import dgl
import dgl.function as fn
import matplotlib.pyplot as plt
import networkx as nx
import torch
import torch.nn as nn
import torch.nn.functional as F

SEED = int(os.environ.get("DGLT_SEED", "0"))  # another seed: run_notebooks.py --seed N
torch.manual_seed(SEED)
torch.set_num_threads(1)  # tiny graphs: one thread is fastest, and robust on a busy machine

# %% [markdown]
# ## 1. A graph of friends
#
# Eight people; a line between two of them means they are friends. Friendship goes both
# ways, but a DGL graph is *directed*: an edge $j \to i$ is a channel along which $j$ can
# send something to $i$. So each friendship becomes two edges, one in each direction.

# %%
people = ["Ana", "Ben", "Caro", "Dan", "Eve", "Finn", "Gus", "Hana"]
friendships = [
    ("Ana", "Ben"), ("Ana", "Caro"), ("Ben", "Caro"), ("Caro", "Dan"), ("Dan", "Eve"),
    ("Eve", "Finn"), ("Finn", "Dan"), ("Eve", "Gus"), ("Gus", "Hana"),
]
idx = {name: i for i, name in enumerate(people)}
a = torch.tensor([idx[x] for x, _ in friendships])
b = torch.tensor([idx[y] for _, y in friendships])
# both directions: a -> b and b -> a
g = dgl.graph((torch.cat([a, b]), torch.cat([b, a])), num_nodes=len(people))
print(g)

assert g.num_nodes() == 8
assert g.num_edges() == 2 * len(friendships)  # one edge per direction
# the number of incoming edges of a person is their number of friends
n_friends = {p: sum(p in f for f in friendships) for p in people}
assert g.in_degrees().tolist() == [n_friends[p] for p in people]

# %% [markdown]
# DGL graphs convert to `networkx`, which can draw them. We fix the layout once and reuse it
# for every picture of this graph.

# %%
G = dgl.to_networkx(g).to_undirected()
G = nx.relabel_nodes(G, dict(enumerate(people)))
pos = nx.spring_layout(G, seed=3)

fig, ax = plt.subplots(figsize=(5, 3.5))
nx.draw_networkx(G, pos, ax=ax, node_color="#cde", node_size=900, font_size=9)
ax.set_title("Eight friends: 9 friendships = 18 directed edges")
ax.axis("off")
plt.show()

# %% [markdown]
# Each person has a **feature vector** $h_i$. Ours has two numbers anyone can read: hours
# of music and hours of sport per week.

# %%
h = torch.tensor([
    # music, sport
    [10.0, 1.0],   # Ana
    [2.0, 6.0],    # Ben
    [5.0, 5.0],    # Caro
    [0.0, 9.0],    # Dan
    [7.0, 2.0],    # Eve
    [3.0, 3.0],    # Finn
    [8.0, 0.0],    # Gus
    [1.0, 4.0],    # Hana
])
g.ndata["h"] = h
print("features:", tuple(h.shape), "= (people, features)")

# %% [markdown]
# ## 2. Message passing in three steps
#
# A round of message passing answers the question "what do my neighbours look like?" for
# every node at once. It has three steps.
#
# **Message.** Every edge $j \to i$ carries a message computed from its source. The simplest
# message is a copy of the source's features:
# $$m_{j\to i} = h_j .$$
#
# In DGL, *per-edge* computations are `apply_edges`, and the built-in `fn.copy_u("h", "m")`
# means "copy the source node's (`u`'s) field `h` into the edge field `m`". The result lives
# on the edges: one row per edge.

# %%
g.apply_edges(fn.copy_u("h", "m"))
src, dst = g.edges()
print("messages:", tuple(g.edata["m"].shape), "= (edges, features)")
for e in range(g.num_edges()):
    if people[dst[e]] == "Caro":
        print(f"  {people[src[e]]:>4s} -> Caro carries {g.edata['m'][e].tolist()}")

assert torch.equal(g.edata["m"], h[src])  # the message on edge j -> i is h_j

# %% [markdown]
# **Aggregate.** Every node combines the messages arriving on its incoming edges into one
# vector. Here we add them up:
# $$a_i = \sum_{j \in \mathcal{N}(i)} m_{j \to i},$$
# where $\mathcal{N}(i)$ is the set of nodes with an edge into $i$.
#
# `update_all(message_fn, reduce_fn)` runs a message function on every edge and a reduce
# function at every node. The messages already sit on the edges, so the message function just
# reads them (`fn.copy_e`), and the reduce function is `fn.sum`.

# %%
g.update_all(fn.copy_e("m", "m"), fn.sum("m", "a"))
print("Caro's friends together:", g.ndata["a"][idx["Caro"]].tolist())

caro_friends = [p for p in people if ("Caro", p) in friendships or (p, "Caro") in friendships]
assert sorted(caro_friends) == ["Ana", "Ben", "Dan"]
assert torch.equal(g.ndata["a"][idx["Caro"]], h[[idx[p] for p in caro_friends]].sum(0))

# %% [markdown]
# The same aggregation is a matrix product. Let $A$ be the adjacency matrix with
# $A_{ji} = 1$ when there is an edge $j \to i$. Then $a_i = \sum_j A_{ji} h_j$, that is
# $$a = A^\top H ,$$
# with the feature vectors stacked as the rows of $H$. Message passing is a sparse matrix
# product that never builds $A$.
#
# In practice we do not store the messages either: `update_all(fn.copy_u(...), fn.sum(...))`
# fuses *message* and *aggregate* into one sparse kernel, so the $|E|$ messages never exist
# in memory. Both give the same result:

# %%
A = torch.zeros(g.num_nodes(), g.num_nodes())
A[src, dst] = 1.0
assert torch.allclose(g.ndata["a"], A.T @ h)

g.update_all(fn.copy_u("h", "m"), fn.sum("m", "a_fused"))
assert torch.allclose(g.ndata["a_fused"], g.ndata["a"])

# %% [markdown]
# **Update.** Finally every node combines what it heard with what it is. A GNN layer with a
# sum aggregator does this with two learned matrices, $U$ for the node itself and $V$ for its
# neighbours, and a non-linearity $\sigma$ (we use ReLU):
# $$h_i' = \sigma\Big(U h_i + b + \sum_{j \in \mathcal{N}(i)} V h_j\Big).$$
#
# Because $V$ is linear, $\sum_j V h_j = V \sum_j h_j$: we may transform before or after
# aggregating. Transforming first is cheaper when the output is smaller than the input, and it
# is what lets us replace "sum" by "max" below, where the order matters.
#
# Up to the bias $b$, this is the layer with which the essay introduces graph networks; in
# lesson 2 the same shape returns, with the plain sum replaced by attention (a GAT).
#
# Here is the layer. The three steps stay visible: `copy_u` (message), `fn.sum` (aggregate),
# the last line (update). The reducer is a parameter so we can try others in section 3.

# %%
AGGREGATORS = {"sum": fn.sum, "mean": fn.mean, "max": fn.max}


class GNNLayer(nn.Module):
    """h_i' = relu(U h_i + b + AGG_{j in N(i)} V h_j)."""

    def __init__(self, d_in, d_out, aggregator="sum"):
        super().__init__()
        self.U = nn.Linear(d_in, d_out)  # the node itself (with bias b)
        self.V = nn.Linear(d_in, d_out, bias=False)  # its neighbours
        self.reduce = AGGREGATORS[aggregator]

    def forward(self, g, h):
        with g.local_scope():  # fields written here disappear when the block ends
            g.ndata["Vh"] = self.V(h)
            g.update_all(fn.copy_u("Vh", "m"),  # message: m_{j->i} = V h_j
                         self.reduce("m", "agg"))  # aggregate: AGG_j m_{j->i}
            return torch.relu(self.U(h) + g.ndata["agg"])  # update


layer = GNNLayer(2, 4)
out = layer(g, h)
print(out.shape)

# the same layer written with the dense adjacency matrix
dense = torch.relu(h @ layer.U.weight.T + layer.U.bias + A.T @ (h @ layer.V.weight.T))
assert torch.allclose(out, dense, atol=1e-5)

# %% [markdown]
# DGL ships this layer (and dozens of others) in `dgl.nn`. With the *mean* aggregator our
# layer is exactly GraphSAGE, `dgl.nn.SAGEConv(aggregator_type="mean")`: $U$ is its
# `fc_self`, $V$ its `fc_neigh`. Copy our weights into it and the outputs agree.

# %%
mean_layer = GNNLayer(2, 4, aggregator="mean")
sage = dgl.nn.SAGEConv(2, 4, aggregator_type="mean", activation=torch.relu)
with torch.no_grad():
    sage.fc_self.weight.copy_(mean_layer.U.weight)
    sage.fc_self.bias.copy_(mean_layer.U.bias)
    sage.fc_neigh.weight.copy_(mean_layer.V.weight)
assert torch.allclose(sage(g, h), mean_layer(g, h), atol=1e-5)

# %% [markdown]
# ### How far does information travel?
#
# One round of message passing lets a node hear from its neighbours; a second round lets it
# hear what its neighbours heard, that is from nodes two steps away. After $k$ rounds (or $k$
# stacked layers) a node's output can depend only on the nodes at most $k$ edges away: its
# *receptive field*.
#
# We can watch this happen. Give Hana a 1 and everybody else a 0, and repeat
# "keep what you have and add what your neighbours have" — a sum-aggregator layer with
# $U = V = 1$ and no non-linearity. The nodes with a non-zero value after $k$ rounds are
# those that have heard from Hana.

# %%
x = torch.zeros(g.num_nodes(), 1)
x[idx["Hana"]] = 1.0
hops = nx.single_source_shortest_path_length(G, "Hana")

fig, axes = plt.subplots(1, 4, figsize=(13, 3))
for k, ax in enumerate(axes):
    reached = {people[i] for i in torch.nonzero(x[:, 0]).flatten().tolist()}
    # the claim: after k rounds, exactly the nodes within k hops of Hana have heard from her
    assert reached == {p for p, d in hops.items() if d <= k}
    colours = ["#f84" if p in reached else "#cde" for p in G.nodes]
    nx.draw_networkx(G, pos, ax=ax, node_color=colours, node_size=500, font_size=7)
    ax.set_title(f"after {k} round(s)")
    ax.axis("off")
    with g.local_scope():
        g.ndata["x"] = x
        g.update_all(fn.copy_u("x", "m"), fn.sum("m", "s"))
        x = x + g.ndata["s"]
plt.show()

# %% [markdown]
# Hana is 5 hops away from Ana and Ben, so a GNN needs 5 layers before Ana can be influenced by
# Hana. Keep this in mind: in lesson 3 the graph of a sentence will be *complete* — every word
# linked to every other — and one layer is then enough for any word to hear from any other.

# %%
assert max(hops.values()) == 5 and hops["Ana"] == 5

# %% [markdown]
# ## 3. Sum, mean, max
#
# The aggregator is the GNN's way to summarise a *set* of neighbours of any size into one
# vector. Three common choices, all DGL built-ins:
#
# | aggregator | formula | DGL reducer |
# |---|---|---|
# | sum  | $\sum_{j\in\mathcal N(i)} m_{j\to i}$ | `fn.sum` |
# | mean | $\frac{1}{\lvert\mathcal N(i)\rvert}\sum_{j\in\mathcal N(i)} m_{j\to i}$ | `fn.mean` |
# | max  | $\max_{j\in\mathcal N(i)} m_{j\to i}$ (per feature) | `fn.max` |
#
# On our friends: how much music do your friends listen to in total, on average, and how much
# does your most musical friend listen to?

# %%
agg = {}
for name, reducer in AGGREGATORS.items():
    g.update_all(fn.copy_u("h", "m"), reducer("m", name))
    agg[name] = g.ndata[name][:, 0]  # the music column

deg = g.in_degrees().float()
assert torch.allclose(agg["sum"], agg["mean"] * deg)  # sum = mean x number of friends
assert (agg["max"] >= agg["mean"]).all()  # the largest is at least the average

fig, ax = plt.subplots(figsize=(8, 3))
w = 0.27
for k, name in enumerate(agg):
    ax.bar(torch.arange(8) + (k - 1) * w, agg[name], width=w, label=name)
labels = [f"{p}\n({int(d)} friend{'s' * (d > 1)})" for p, d in zip(people, deg, strict=True)]
ax.set_xticks(range(8), labels, fontsize=8)
ax.set_ylabel("friends' music (h/week)")
ax.legend()
plt.show()

# %% [markdown]
# Sum grows with the number of friends; mean and max do not see it at all. That is a real
# difference in what the layer can tell apart. A node with one friend whose feature is 1 and a
# node with two such friends get the same mean and the same max, but different sums:

# %%
tiny = dgl.graph(([1, 3, 4], [0, 2, 2]))  # node 0 <- node 1;  node 2 <- nodes 3 and 4
tiny.ndata["h"] = torch.ones(5, 1)
res = {}
for name, reducer in AGGREGATORS.items():
    tiny.update_all(fn.copy_u("h", "m"), reducer("m", name))
    res[name] = tiny.ndata[name][[0, 2], 0].tolist()
print(res)
assert res["mean"][0] == res["mean"][1] and res["max"][0] == res["max"][1]
assert res["sum"] == [1.0, 2.0]

# %% [markdown]
# Sum can **count**; mean and max cannot (Xu et al., 2019, *How powerful are graph neural
# networks?*). Let us test it with learning. The task: predict each node's number of
# neighbours when every node carries the same feature, $h_i = 1$. We generate 16 random graphs,
# train one `GNNLayer` plus a linear read-out with each aggregator, and measure the error on
# 16 other random graphs.
#
# To train on 16 graphs at once we need the last tool of this lesson, so we use it now and
# explain it in section 4: `dgl.batch` merges a list of graphs into one big graph.

# %%
def random_graphs(n_graphs, seed):
    """A batch of random connected graphs with 5 to 12 nodes."""
    gen = torch.Generator().manual_seed(seed)
    graphs = []
    while len(graphs) < n_graphs:
        n = int(torch.randint(5, 13, (1,), generator=gen))
        nxg = nx.gnp_random_graph(n, 0.35, seed=int(torch.randint(10**6, (1,), generator=gen)))
        if nx.is_connected(nxg):  # no isolated nodes: everybody has at least one neighbour
            graphs.append(dgl.from_networkx(nxg))  # undirected -> both directions
    return dgl.batch(graphs)


train_g, test_g = random_graphs(16, seed=1), random_graphs(16, seed=2)
ones_train = torch.ones(train_g.num_nodes(), 1)
ones_test = torch.ones(test_g.num_nodes(), 1)
target_train = train_g.in_degrees().float()
target_test = test_g.in_degrees().float()

errors = {}
for name in AGGREGATORS:
    torch.manual_seed(SEED)
    gnn, readout = GNNLayer(1, 16, aggregator=name), nn.Linear(16, 1)
    opt = torch.optim.Adam([*gnn.parameters(), *readout.parameters()], lr=0.05)
    for _ in range(100):
        loss = F.mse_loss(readout(gnn(train_g, ones_train)).squeeze(-1), target_train)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        pred = readout(gnn(test_g, ones_test)).squeeze(-1)
        errors[name] = F.mse_loss(pred, target_test).item()

variance = target_test.var(unbiased=False).item()
print(f"variance of the degree (error of the best constant guess): {variance:.2f}")
for name, err in errors.items():
    print(f"{name:>4s} aggregator: test mean squared error {err:.3f}")

# sum learns to count; mean and max see identical inputs everywhere and can only guess a constant
assert errors["sum"] < 0.05
assert errors["mean"] >= variance - 1e-4 and errors["max"] >= variance - 1e-4

# %% [markdown]
# Mean and max are not useless — averaging is robust when degrees vary wildly, and we will
# meet a *weighted* mean in every remaining lesson — but the choice of aggregator decides what
# the network can see.

# %% [markdown]
# ## 4. Batching graphs
#
# Training one graph at a time wastes time. DGL's answer is `dgl.batch`: it places several
# graphs side by side in one big graph with no edges between them. Node ids are renumbered
# consecutively — the second graph's nodes come after the first graph's — and the graph
# remembers how many nodes and edges each piece has.

# %%
triangle = dgl.graph(([0, 1, 2, 1, 2, 0], [1, 2, 0, 0, 1, 2]))
path = dgl.graph(([0, 1, 1, 2], [1, 0, 2, 1]))
friends = dgl.graph(g.edges(), num_nodes=8)  # a copy of g without the fields we added
for part, feats in [(friends, h), (triangle, torch.rand(3, 2)), (path, torch.rand(3, 2))]:
    part.ndata["h"] = feats
parts = [friends, triangle, path]
bg = dgl.batch(parts)
print(bg.batch_size, "graphs;", bg.batch_num_nodes().tolist(), "nodes;",
      bg.batch_num_edges().tolist(), "edges")

assert bg.num_nodes() == sum(p.num_nodes() for p in parts)
assert bg.num_edges() == sum(p.num_edges() for p in parts)
# node ids of the triangle start right after the 8 friends
assert bg.edges()[0][g.num_edges()].item() == g.num_nodes() + triangle.edges()[0][0].item()

fig, ax = plt.subplots(figsize=(7, 3))
BG = dgl.to_networkx(bg).to_undirected()
colour_of = sum([[c] * p.num_nodes() for c, p in zip(["#cde", "#fc8", "#9d9"], parts,
                                                       strict=True)], [])
nx.draw_networkx(BG, nx.spring_layout(BG, seed=1), ax=ax, node_color=colour_of,
                 node_size=300, font_size=7)
ax.set_title("one batched graph = three graphs side by side")
ax.axis("off")
plt.show()

# %% [markdown]
# Since no edge connects two pieces, no message crosses from one graph to another: running a
# layer on the batch gives exactly what running it on each graph separately gives.
# `dgl.unbatch` (or slicing by `batch_num_nodes`) recovers the pieces, and `dgl.mean_nodes`
# / `dgl.sum_nodes` give one vector per graph (a *read-out*, for graph-level tasks).

# %%
out_batched = layer(bg, bg.ndata["h"])
out_separate = torch.cat([layer(p, p.ndata["h"]) for p in parts])
assert torch.allclose(out_batched, out_separate, atol=1e-6)

bg.ndata["out"] = out_batched
per_graph = dgl.mean_nodes(bg, "out")  # one row per graph
assert per_graph.shape == (3, 4)
assert torch.allclose(per_graph[1], layer(triangle, triangle.ndata["h"]).mean(0), atol=1e-6)

# %% [markdown]
# This is how the Transformer in this project batches sentences: each sentence is its own
# graph, a batch of sentences is `dgl.batch` of them, and sentences of different lengths need
# **no padding** — a short sentence is simply a small piece of the big graph.
#
# ## Summary
#
# * A round of message passing is *message* (per edge, `apply_edges` / a message function),
#   *aggregate* (per node, a reducer over incoming edges) and *update* (per node, any network).
# * `update_all(fn.copy_u, fn.sum)` computes $A^\top H$ without building $A$ or the messages.
# * $k$ layers see $k$ hops. The aggregator decides what can be distinguished: sum counts,
#   mean and max do not.
# * `dgl.batch` turns many graphs into one, with no messages crossing between them.
#
# Next lesson: instead of giving every neighbour the same weight, let the network *learn* how
# much to listen to each neighbour — attention.
#
# ## Exercises
#
# 1. **Mean from sum.** Compute the mean aggregation of `h` on the friends graph using only
#    `fn.sum` and `g.in_degrees()`, and check it equals `fn.mean`.
# 2. **Strong and weak ties.** Give each friendship a strength $w$ (the same in both
#    directions) and compute $a_i = \sum_j w_{j\to i} h_j$ with the built-ins `fn.u_mul_e`
#    and `fn.sum`. Check it against the dense product $A_w^\top H$.
# 3. **Counting edges of a batch.** With one round of message passing on `bg` and a read-out,
#    compute the number of edges of each of the three graphs. Check against
#    `bg.batch_num_edges()`.
#
# Try them before reading the solutions below.

# %% [markdown]
# ## Solutions
#
# **1. Mean from sum.** Divide the sum by the number of incoming edges (every friend has at
# least one friend here; in general guard against dividing by zero, as `fn.mean` does by
# returning 0).

# %%
g.update_all(fn.copy_u("h", "m"), fn.sum("m", "s"))
mean_from_sum = g.ndata["s"] / g.in_degrees().clamp(min=1).unsqueeze(-1)
g.update_all(fn.copy_u("h", "m"), fn.mean("m", "avg"))
assert torch.allclose(mean_from_sum, g.ndata["avg"])

# %% [markdown]
# **2. Strong and weak ties.** Edge features live in `g.edata`; `fn.u_mul_e("h", "w", "m")`
# multiplies the source's `h` by the edge's `w`. Our edges were built as (all $a\to b$, then
# all $b\to a$), so the strengths are the list repeated twice.

# %%
strength = torch.rand(len(friendships))
g.edata["w"] = torch.cat([strength, strength]).unsqueeze(-1)  # (E, 1) broadcasts over features
g.update_all(fn.u_mul_e("h", "w", "m"), fn.sum("m", "weighted"))
A_w = torch.zeros(8, 8)
A_w[src, dst] = g.edata["w"][:, 0]
assert torch.allclose(g.ndata["weighted"], A_w.T @ h, atol=1e-5)
assert torch.allclose(A_w, A_w.T)  # a friendship is equally strong both ways

# %% [markdown]
# **3. Counting edges of a batch.** With every node sending a 1, a node receives its
# in-degree; summing over the nodes of a graph counts each edge once.

# %%
bg.ndata["one"] = torch.ones(bg.num_nodes(), 1)
bg.update_all(fn.copy_u("one", "m"), fn.sum("m", "deg"))
edges_per_graph = dgl.sum_nodes(bg, "deg")[:, 0]
assert edges_per_graph.long().tolist() == bg.batch_num_edges().tolist() == [18, 6, 4]
