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
# # Lesson 2 — From sum to attention: graph attention networks
#
# *Reading time: about 45 minutes, exercises included. Running time: a few seconds.*
#
# In lesson 1 every neighbour counted the same: the sum aggregator gives each message weight
# 1, the mean aggregator weight $1/|\mathcal N(i)|$. But not all neighbours are equally useful.
# A **graph attention network** (GAT; Veličković et al., 2018) lets the network *learn* a
# weight $\alpha_{ij}$ for every edge $j \to i$, computed from the two nodes it connects, and
# aggregates a weighted average:
# $$h_i' = \sum_{j \in \mathcal N(i)} \alpha_{ij}\, W h_j, \qquad
#   \sum_{j \in \mathcal N(i)} \alpha_{ij} = 1 .$$
#
# This is the step from GNNs to Transformers: a Transformer layer is this same computation
# with a different formula for the scores (lesson 3). Joshi's essay (*Transformers are Graph
# Neural Networks*, The Gradient, 2020) takes the same step in "GNNs build representations of
# graphs": replace the sum over neighbours by a learned weighted sum, run several of them in
# parallel, and you have a GAT — and, on the right graph, a Transformer.
#
# In this lesson you will
#
# 1. compute attention scores as **edge data**, normalise them with `edge_softmax`, and
#    aggregate with `fn.u_mul_e` + `fn.sum`, one visible step at a time;
# 2. add several heads and check that your layer equals `dgl.nn.GATConv` with the same weights;
# 3. train a GAT on Zachary's karate club (it ships with DGL, nothing is downloaded) and draw
#    the learned attention;
# 4. build a task where attention is essential and see the network learn whom to trust.

# %%
import os

import dgl
import dgl.function as fn
import matplotlib.pyplot as plt
import networkx as nx
import torch
import torch.nn as nn
import torch.nn.functional as F
from dgl.data import KarateClubDataset
from dgl.nn.functional import edge_softmax

SEED = int(os.environ.get("DGLT_SEED", "0"))  # another seed: run_notebooks.py --seed N
torch.manual_seed(SEED)
torch.set_num_threads(1)  # tiny graphs: one thread is fastest, and robust on a busy machine

# %% [markdown]
# ## 1. The karate club
#
# In the 1970s the sociologist Wayne Zachary recorded the friendships among the 34 members of
# a university karate club. The club then split in two: some members followed the instructor,
# "Mr. Hi" (node 0), the others the administrator, "Officer" (node 33). The graph and the split
# are a classic small benchmark; DGL builds it from the copy that ships with `networkx`.
#
# We add a **self-loop** to every node so that each member also "listens to" themself; GAT
# does this too.

# %%
karate = KarateClubDataset()[0]
club = karate.ndata["label"]  # 0: followed Mr. Hi, 1: followed the Officer
g = dgl.add_self_loop(karate)
print(g)

assert karate.num_nodes() == 34 and karate.num_edges() == 2 * 78  # 78 friendships
assert club[0] == 0 and club[33] == 1
assert torch.equal(g.in_degrees(), karate.in_degrees() + 1)  # one self-loop each

# %%
G = nx.Graph(dgl.to_networkx(karate))
pos = nx.spring_layout(G, seed=7)
colours = ["#f84" if c == 0 else "#48c" for c in club.tolist()]
fig, ax = plt.subplots(figsize=(6, 4.5))
nx.draw_networkx(G, pos, ax=ax, node_color=colours, node_size=250, font_size=7,
                 edge_color="#bbb")
ax.set_title("Zachary's karate club: orange followed Mr. Hi (0), blue the Officer (33)")
ax.axis("off")
plt.show()

# %% [markdown]
# ## 2. One attention head, step by step
#
# Let $h_i \in \mathbb R^{d_\text{in}}$ be node $i$'s features. GAT first transforms every node
# with a shared matrix $W$:
# $$z_i = W h_i .$$
# Then, for every edge $j \to i$, a **score** says how interesting $j$ is to $i$. GAT uses a
# learned vector $a$ on the concatenation $[z_i \,\|\, z_j]$ and a LeakyReLU:
# $$e_{ij} = \text{LeakyReLU}\big(a^\top [z_i \,\|\, z_j]\big) .$$
# Splitting $a$ into the halves that multiply $z_i$ and $z_j$,
# $a^\top [z_i \,\|\, z_j] = a_\text{dst}^\top z_i + a_\text{src}^\top z_j$: each half is a
# number *per node*, so we compute two numbers per node and only add them on the edges.
# That is the built-in `fn.u_add_v` ("source's field plus destination's field").
#
# For now the input features are just random, so we can look at the mechanics.

# %%
d_in, d_out = 34, 4
h = torch.randn(g.num_nodes(), d_in)
W = nn.Linear(d_in, d_out, bias=False)
a_src, a_dst = torch.randn(d_out), torch.randn(d_out)

z = W(h)  # (N, d_out): one transformed vector per node
g.ndata["z"] = z
g.ndata["el"] = z @ a_src  # a_src . z_j, used when the node is a source
g.ndata["er"] = z @ a_dst  # a_dst . z_i, used when the node is a destination
g.apply_edges(fn.u_add_v("el", "er", "e"))  # on edge j -> i: a_src.z_j + a_dst.z_i
e = F.leaky_relu(g.edata["e"], negative_slope=0.2)  # (E,) one score per edge

src, dst = g.edges()
concat = torch.cat([z[dst], z[src]], dim=1)  # [z_i || z_j] for every edge, the slow way
assert torch.allclose(e, F.leaky_relu(concat @ torch.cat([a_dst, a_src]), 0.2), atol=1e-5)

# %% [markdown]
# The scores are **edge data**: one number per edge, like the messages in lesson 1. To turn
# them into weights that sum to one over each node's neighbourhood, apply a softmax over the
# edges *entering* each node:
# $$\alpha_{ij} = \frac{\exp(e_{ij})}{\sum_{k \in \mathcal N(i)} \exp(e_{ik})} .$$
# DGL calls this `edge_softmax`: a softmax whose groups are the in-edges of each node.

# %%
alpha = edge_softmax(g, e)
g.edata["a"] = alpha

# the weights entering every node sum to one
g.update_all(fn.copy_e("a", "m"), fn.sum("m", "total"))
assert torch.allclose(g.ndata["total"], torch.ones(34))

# for one node, it is the ordinary softmax of the scores on its incoming edges
into_33 = dst == 33
assert torch.allclose(alpha[into_33], torch.softmax(e[into_33], dim=0))
print(f"node 33 has {int(into_33.sum())} in-edges; its attention weights:")
print([round(x, 3) for x in alpha[into_33].tolist()])

# %% [markdown]
# Finally each node aggregates its neighbours' transformed features, weighted by attention:
# $$h_i' = \sum_{j \in \mathcal N(i)} \alpha_{ij} z_j .$$
# The message on edge $j \to i$ is $z_j$ multiplied by the edge's weight (`fn.u_mul_e`), and
# the aggregation is the familiar `fn.sum`. In matrix form, with $\alpha$ placed in an
# $N \times N$ matrix $P$ ($P_{ij} = \alpha_{ij}$, zero where there is no edge), this is
# $h' = P z$: a dense softmax attention in which the graph decides which entries may be
# non-zero.

# %%
g.update_all(fn.u_mul_e("z", "a", "m"), fn.sum("m", "h_new"))

P = torch.zeros(34, 34)
P[dst, src] = alpha  # row i holds the weights of i's neighbours
assert torch.allclose(g.ndata["h_new"], P @ z, atol=1e-5)
assert torch.allclose(P.sum(1), torch.ones(34))  # each row is a probability distribution

# %% [markdown]
# ## 3. Several heads, and DGL's `GATConv`
#
# One set of weights $(W, a)$ learns one notion of "interesting". **Multi-head attention** runs
# $H$ of them side by side and concatenates the results (for a last layer one averages them
# instead):
# $$h_i' = \big\Vert_{k=1}^{H} \sum_{j \in \mathcal N(i)} \alpha^{k}_{ij} W^{k} h_j .$$
# In code the heads are just one more tensor dimension: node data of shape $(N, H, D)$, edge
# data of shape $(E, H, 1)$. Every built-in broadcasts over it, so the layer below is the
# single-head code with an `H` in the shapes.

# %%
class GATLayer(nn.Module):
    """Multi-head graph attention: returns (N, H, D) features and (E, H, 1) weights."""

    def __init__(self, d_in, d_out, heads):
        super().__init__()
        self.heads, self.d_out = heads, d_out
        self.W = nn.Linear(d_in, heads * d_out, bias=False)
        self.a_src = nn.Parameter(torch.randn(1, heads, d_out) * 0.1)
        self.a_dst = nn.Parameter(torch.randn(1, heads, d_out) * 0.1)

    def forward(self, g, h):
        with g.local_scope():
            z = self.W(h).view(-1, self.heads, self.d_out)  # (N, H, D)
            g.ndata["z"] = z
            g.ndata["el"] = (z * self.a_src).sum(-1, keepdim=True)  # (N, H, 1)
            g.ndata["er"] = (z * self.a_dst).sum(-1, keepdim=True)
            g.apply_edges(fn.u_add_v("el", "er", "e"))  # score on every edge
            g.edata["a"] = edge_softmax(g, F.leaky_relu(g.edata["e"], 0.2))  # normalise
            g.update_all(fn.u_mul_e("z", "a", "m"), fn.sum("m", "h"))  # aggregate
            return g.ndata["h"], g.edata["a"]


layer = GATLayer(34, 8, heads=4)
out, att = layer(g, h)
print("output", tuple(out.shape), "attention", tuple(att.shape))

# %% [markdown]
# `dgl.nn.GATConv` is DGL's implementation of the same layer. Its `fc` is our $W$, its
# `attn_l` multiplies the *source* ($a_\text{src}$) and `attn_r` the destination
# ($a_\text{dst}$); it also has a bias, initialised to zero. Copy the weights across and both
# the outputs and the attention weights agree.

# %%
conv = dgl.nn.GATConv(34, 8, num_heads=4)
with torch.no_grad():
    conv.fc.weight.copy_(layer.W.weight)
    conv.attn_l.copy_(layer.a_src)
    conv.attn_r.copy_(layer.a_dst)
ref_out, ref_att = conv(g, h, get_attention=True)
assert torch.allclose(conv.bias, torch.zeros(32))
assert torch.allclose(out, ref_out, atol=1e-5)
assert torch.allclose(att, ref_att, atol=1e-6)

# %% [markdown]
# ## 4. Training on the karate club
#
# The task: we know the side of only the two leaders, nodes 0 and 33, and must predict the
# side every other member took. The input tells a node nothing but its identity (one-hot
# features, $h_i = e_i$), so everything must come from the graph.
#
# Two GAT layers: 4 heads of size 8, concatenated and passed through an ELU, then one head
# that outputs two class scores.

# %%
class GAT(nn.Module):
    def __init__(self, d_in, hidden, heads, classes):
        super().__init__()
        self.layer1 = GATLayer(d_in, hidden, heads)
        self.layer2 = GATLayer(hidden * heads, classes, heads=1)

    def forward(self, g, x):
        h, att1 = self.layer1(g, x)
        h = F.elu(h.flatten(1))  # concatenate the heads
        logits, att2 = self.layer2(g, h)
        return logits.squeeze(1), att1


x = torch.eye(34)  # one-hot identities
labelled = torch.zeros(34, dtype=torch.bool)
labelled[[0, 33]] = True

torch.manual_seed(SEED)
model = GAT(34, 8, 4, 2)
opt = torch.optim.Adam(model.parameters(), lr=0.01, weight_decay=5e-4)
losses = []
for _ in range(100):
    logits, _ = model(g, x)
    loss = F.cross_entropy(logits[labelled], club[labelled])  # only two labels!
    opt.zero_grad()
    loss.backward()
    opt.step()
    losses.append(loss.item())

with torch.no_grad():
    logits, att1 = model(g, x)
pred = logits.argmax(1)
accuracy = (pred == club)[~labelled].float().mean().item()
print(f"accuracy on the 32 members whose side we did not give: {accuracy:.1%}")
assert accuracy >= 0.85

# %% [markdown]
# Two labels and the friendships are enough to place almost everybody. Below: the learned
# attention of the first layer, averaged over the heads. The thickness of the line from $j$
# to $i$ is $\alpha_{ij}$; each friendship shows the larger of its two directions, and the
# node colour is the prediction (a ring marks a mistake).

# %%
a_mean = att1.mean(1).squeeze(-1)  # (E,) average over heads
weight = {}
for s, d, w in zip(src.tolist(), dst.tolist(), a_mean.tolist(), strict=True):
    if s != d:
        key = tuple(sorted((s, d)))
        weight[key] = max(weight.get(key, 0.0), w)

fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), gridspec_kw={"width_ratios": [2, 1]})
ax = axes[0]
nx.draw_networkx_edges(G, pos, ax=ax, edgelist=list(weight),
                       width=[8 * weight[e] for e in weight], edge_color="#888")
wrong = (pred != club).tolist()
nx.draw_networkx_nodes(G, pos, ax=ax, node_size=250, linewidths=2,
                       node_color=["#f84" if p == 0 else "#48c" for p in pred.tolist()],
                       edgecolors=["k" if w else "none" for w in wrong])
nx.draw_networkx_labels(G, pos, ax=ax, font_size=7)
ax.set_title("predicted side; line width = learned attention")
ax.axis("off")
axes[1].plot(losses)
axes[1].set_xlabel("step")
axes[1].set_ylabel("training loss (2 labelled nodes)")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 5. When attention matters: learning whom to trust
#
# In the karate club most friendships stay within one side, and most members side with the
# majority of their friends (checked below), so even equal weights point the right way.
# Attention earns its keep when some neighbours are worth more than others. We generate such
# a graph:
#
# * 600 people of two classes, $y_i \in \{0, 1\}$; each listens to 8 random people of its own
#   class.
# * 30% of the people are **reliable**: their feature $s_j$ is $+1$ or $-1$ and tells their
#   class. The others' $s_j$ is noise, $\mathcal N(0, 3^2)$.
# * Every node carries $x_j = (s_j, r_j)$ where $r_j \in \{0,1\}$ says whether $j$ is reliable.
#
# A node must guess its class from its neighbours. The right thing is to listen only to the
# reliable ones. An *average* over all neighbours drowns the signal in noise; attention can
# learn from $r_j$ to put its weight on reliable neighbours. We train the same one-layer model
# twice: with learned attention, and with the attention vectors fixed at zero, which makes
# every $\alpha_{ij} = 1/|\mathcal N(i)|$ — the mean aggregator of lesson 1.

# %%
k_src, k_dst = karate.edges()
within = (club[k_src] == club[k_dst]).float().mean().item()
with karate.local_scope():
    karate.ndata["side"] = F.one_hot(club, 2).float()
    karate.update_all(fn.copy_u("side", "m"), fn.sum("m", "friends"))
    with_majority = (karate.ndata["friends"].argmax(1) == club).float().mean().item()
print(f"friendships within one side: {within:.0%}; "
      f"members on the side of most of their friends: {with_majority:.0%}")
assert within > 0.8 and with_majority > 0.85


def whom_to_trust(n, k, seed):
    gen = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 2, (n,), generator=gen)
    reliable = (torch.rand(n, generator=gen) < 0.3).float()
    signal = torch.where(reliable.bool(), 2.0 * y - 1, 3 * torch.randn(n, generator=gen))
    src, dst = [], []
    for c in (0, 1):
        members = torch.nonzero(y == c).flatten()
        for i in members.tolist():  # k random sources of the same class
            src.append(members[torch.randint(len(members), (k,), generator=gen)])
            dst.append(torch.full((k,), i))
    graph = dgl.graph((torch.cat(src), torch.cat(dst)), num_nodes=n)
    return graph, torch.stack([signal, reliable], 1), y, reliable


def train_trust(learn_attention, steps=150):
    torch.manual_seed(SEED)
    layer, classify = GATLayer(2, 8, heads=2), nn.Linear(16, 2)
    if not learn_attention:
        for a in (layer.a_src, layer.a_dst):
            a.data.zero_()
            a.requires_grad_(False)
    params = [p for m in (layer, classify) for p in m.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=0.02)
    for _ in range(steps):
        h, _ = layer(train_graph, train_x)
        loss = F.cross_entropy(classify(F.elu(h.flatten(1))), train_y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        h, att = layer(test_graph, test_x)
        acc = (classify(F.elu(h.flatten(1))).argmax(1) == test_y).float().mean().item()
    return acc, att.mean(1).squeeze(-1), layer


train_graph, train_x, train_y, _ = whom_to_trust(600, 8, seed=0)
test_graph, test_x, test_y, test_reliable = whom_to_trust(600, 8, seed=1)
acc_attention, att_trust, trust_layer = train_trust(learn_attention=True)
acc_uniform, att_uniform, _ = train_trust(learn_attention=False)

t_src, t_dst = test_graph.edges()
from_reliable = test_reliable[t_src].bool()
share = from_reliable.float().mean().item()
mass = att_trust[from_reliable].sum().item() / test_graph.num_nodes()
print(f"accuracy with learned attention: {acc_attention:.1%}, "
      f"with equal weights: {acc_uniform:.1%}")
print(f"reliable neighbours are {share:.0%} of all neighbours "
      f"and receive {mass:.0%} of the attention")

assert torch.allclose(att_uniform, 1 / test_graph.in_degrees()[t_dst].float())  # the mean
assert acc_attention >= 0.9 and acc_attention >= acc_uniform + 0.2
assert share < 0.35 and mass > 0.5  # more than half the attention on under a third of them

# %%
fig, ax = plt.subplots(figsize=(6, 3))
bins = torch.linspace(0, 1, 26)
ax.hist(att_trust[from_reliable], bins=bins, alpha=0.7, label="from a reliable neighbour")
ax.hist(att_trust[~from_reliable], bins=bins, alpha=0.7, label="from a noisy neighbour")
ax.axvline(1 / 8, color="k", ls="--", lw=1, label="equal weights (1/8)")
ax.set_xlabel(r"learned attention weight $\alpha_{ij}$")
ax.set_ylabel("edges")
ax.set_yscale("log")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# ### A limit of GAT's scores
#
# Write GAT's score as $e_{ij} = \text{LeakyReLU}(r_i + s_j)$, with a receiver term
# $r_i = a_\text{dst}^\top z_i$ and a sender term $s_j = a_\text{src}^\top z_j$. If there were
# no LeakyReLU, the receiver's term would cancel: a softmax does not change when the same
# number is added to all its inputs, so every receiver would give its senders weights that
# depend on $s_j$ alone. The LeakyReLU prevents that — it bends $r_i + s_j$ differently for
# different $r_i$ (it has two slopes), so the weights themselves do depend on the receiver.
# What the receiver cannot change is the **order**: LeakyReLU is increasing, so a larger
# $s_j$ always gives a larger score, and **every node ranks the senders it shares with
# another node in the same order** (Brody et al., 2022, call this *static* attention). Here
# that was exactly what we wanted — "reliable first" for everybody — but it cannot express
# "listen to whoever is most like me". A Transformer's score, $q_i^\top k_j$, multiplies a
# receiver term with a sender term, and the ranking can differ for every receiver. That is
# lesson 3.
#
# All three statements can be checked on the trained layer: without the LeakyReLU the
# receiver's term cancels; with it, it does not; and for each head, every node orders all of
# its senders by their sender term $s_j$ alone — sorted by $s_j$, a node's weights never
# decrease — so two nodes rank the senders they share in the same order.

# %%
with torch.no_grad():
    _, att = trust_layer(test_graph, test_x)
    z_test = trust_layer.W(test_x).view(-1, 2, 8)
    sender_term = (z_test * trust_layer.a_src).sum(-1)  # s_j: (N, H)
    receiver_term = (z_test * trust_layer.a_dst).sum(-1)  # r_i: (N, H)
s_e, r_e = sender_term[t_src], receiver_term[t_dst]  # per edge j -> i: (E, H)
sender_only = edge_softmax(test_graph, F.leaky_relu(s_e, 0.2))  # r_i left out
# without the LeakyReLU, r_i cancels: the weights are those of s_j alone
assert torch.allclose(edge_softmax(test_graph, r_e + s_e), edge_softmax(test_graph, s_e),
                      atol=1e-5)
# with it, r_i changes the weights (GAT's real weights are not those of s_j alone) ...
change = (att[:, :, 0] - sender_only).abs().max().item()
print(f"largest change of a weight when the receiver's term is left out: {change:.3f}")
assert change > 0.01
for head in range(2):
    # the edges sorted by receiver, and within each receiver by the sender term s_j
    by_s = torch.argsort(s_e[:, head], stable=True)
    order = by_s[torch.argsort(t_dst[by_s], stable=True)]
    weight, receiver = att[order, head, 0], t_dst[order]
    same_receiver = receiver[1:] == receiver[:-1]
    # ... but never the order of the senders: along it, each node's weights never decrease
    assert (weight[1:] >= weight[:-1] - 1e-6)[same_receiver].all()

# %% [markdown]
# ## Summary
#
# * Attention = a score per edge (`apply_edges`), a softmax over each node's in-edges
#   (`edge_softmax`), and a weighted sum (`fn.u_mul_e` + `fn.sum`).
# * Heads are an extra tensor dimension; our layer is `dgl.nn.GATConv`.
# * Attention pays off when neighbours differ in value; with equal weights it is the mean.
#
# ## Exercises
#
# 1. **Nobody to listen to.** Remove the self-loops and give one node no incoming edge. What
#    does our `GATLayer` output for it? What does `dgl.nn.GATConv` do?
# 2. **Dot-product scores.** Replace GAT's score with the Transformer's
#    $e_{ij} = z_i^\top z_j / \sqrt{D}$, computed with the built-in `fn.u_dot_v`, on the karate
#    graph. Check the result against a dense computation: the $34\times34$ matrix
#    $z z^\top/\sqrt D$ with $-\infty$ where there is no edge, a row softmax, times $z$.
# 3. **Equal weights.** Show that with $a_\text{src} = a_\text{dst} = 0$ the GAT layer computes
#    the mean of the neighbours' $z_j$ — `fn.mean` from lesson 1.

# %% [markdown]
# ## Solutions
#
# **1.** A node with no in-edges receives no message; `fn.sum` over nothing is 0, so its output
# is zero. DGL's `GATConv` refuses such graphs unless told `allow_zero_in_degree=True`, because
# a silent zero is easy to miss.

# %%
lonely = dgl.graph(([0, 1, 2], [1, 2, 0]), num_nodes=4)  # node 3 has no incoming edge
feats = torch.randn(4, 34)
out_lonely, _ = layer(lonely, feats)
assert torch.equal(out_lonely[3], torch.zeros(4, 8))
assert out_lonely[:3].abs().sum() > 0
try:
    dgl.nn.GATConv(34, 8, num_heads=4)(lonely, feats)
    raised = False
except dgl.DGLError:
    raised = True
assert raised

# %% [markdown]
# **2.** `fn.u_dot_v("z", "z", "e")` puts $z_j^\top z_i$ on every edge $j \to i$. The dense
# version is masked attention; masking *is* the graph.

# %%
D = 8
z = torch.randn(34, D)
with g.local_scope():
    g.ndata["z"] = z
    g.apply_edges(fn.u_dot_v("z", "z", "e"))
    g.edata["a"] = edge_softmax(g, g.edata["e"] / D**0.5)
    g.update_all(fn.u_mul_e("z", "a", "m"), fn.sum("m", "h"))
    sparse_result = g.ndata["h"]

adjacency = torch.zeros(34, 34, dtype=torch.bool)
adjacency[dst, src] = True  # row i: who i listens to
scores = (z @ z.T / D**0.5).masked_fill(~adjacency, float("-inf"))
dense_result = torch.softmax(scores, dim=1) @ z
assert torch.allclose(sparse_result, dense_result, atol=1e-5)

# %% [markdown]
# **3.** With zero attention vectors every score is 0, every $\alpha_{ij} = 1/|\mathcal N(i)|$.

# %%
flat = GATLayer(34, 8, heads=4)
with torch.no_grad():
    flat.a_src.zero_()
    flat.a_dst.zero_()
out_flat, att_flat = flat(g, h)
with g.local_scope():
    g.ndata["z"] = flat.W(h).view(-1, 4, 8)
    g.update_all(fn.copy_u("z", "m"), fn.mean("m", "avg"))
    assert torch.allclose(out_flat, g.ndata["avg"], atol=1e-5)
