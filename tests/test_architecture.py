"""The package's shape: no import cycle, one training step, one packed batch."""

import ast
import math
from pathlib import Path

import pytest
import torch

from dgl_transformer import GraphTransformer, PackedBatch, TransformerConfig
from dgl_transformer.nn import graphs
from dgl_transformer.nn.decoding import NEVER_PREDICTED, beam_search, greedy
from dgl_transformer.tokens import BOS, EOS
from dgl_transformer.training import NonFiniteLoss, train_step

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "dgl_transformer"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def runtime_imports(path: Path) -> set[str]:
    """Modules of the package that ``path`` imports when it runs (``if TYPE_CHECKING:``
    blocks hold annotations only and are skipped)."""
    tree = ast.parse(path.read_text())
    here = module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("dgl_transformer"))
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            target = ".".join([*base, *([node.module] if node.module else [])])
            if target.startswith("dgl_transformer"):
                for alias in node.names:  # `from . import graphs` imports a module
                    sub = f"{target}.{alias.name}"
                    found.add(sub if (ROOT / (sub.replace(".", "/") + ".py")).exists() else target)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def test_the_import_graph_has_no_cycle():
    graph = {module_name(p): runtime_imports(p) for p in PACKAGE.rglob("*.py")}
    assert "dgl_transformer.nn.model" in graph["dgl_transformer"]  # the walker sees imports
    state: dict[str, str] = {}

    def walk(mod: str, path: list[str]) -> None:
        state[mod] = "open"
        for dep in sorted(graph.get(mod, ())):
            if state.get(dep) == "open":
                cycle = path[path.index(dep):] + [dep] if dep in path else [mod, dep]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if dep not in state:
                walk(dep, [*path, dep])
        state[mod] = "done"

    for mod in sorted(graph):
        if mod not in state:
            walk(mod, [mod])


def test_the_walker_finds_a_cycle_when_there_is_one(tmp_path):
    pkg = tmp_path / "dgl_transformer"
    pkg.mkdir()
    (pkg / "a.py").write_text("from .b import x\n")
    (pkg / "b.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                              "    from .a import y\nfrom . import a\n")
    global ROOT
    saved, ROOT = ROOT, tmp_path
    try:
        assert runtime_imports(pkg / "a.py") == {"dgl_transformer.b"}
        assert runtime_imports(pkg / "b.py") == {"dgl_transformer.a"}
    finally:
        ROOT = saved


def optimiser_uses(source: str) -> list[str]:
    """Where ``source`` builds a torch optimiser or steps anything (``x.step()``), by syntax
    tree, whatever the names: ``torch.optim.X(...)``, ``optim.X(...)``, a class imported from
    ``torch.optim`` under any alias, and every zero-argument ``.step()`` call."""
    tree = ast.parse(source)
    imported = {alias.asname or alias.name for node in ast.walk(tree)
                if isinstance(node, ast.ImportFrom)
                and (node.module or "").startswith("torch.optim") for alias in node.names}
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        dotted = ast.unparse(f)
        if isinstance(f, ast.Attribute) and f.attr == "step" and not node.args:
            found.append(f"line {node.lineno}: {dotted}()")
        elif ".optim." in f".{dotted}" and dotted.split(".")[-1][:1].isupper():
            found.append(f"line {node.lineno}: {dotted}(...)")
        elif isinstance(f, ast.Name) and f.id in imported:
            found.append(f"line {node.lineno}: {f.id}(...)")
    return found


def test_one_optimiser_builder_and_one_training_step_in_the_code_base():
    """Every loop (trainer, toy tasks, bench, probes) builds its optimiser with
    training.build_optimizer and updates weights through training.train_step: nowhere else
    is a torch optimiser built or anything stepped."""
    sources = [p for d in ("dgl_transformer", "repro") for p in (ROOT / d).rglob("*.py")]
    uses = {p.relative_to(ROOT).as_posix(): optimiser_uses(p.read_text()) for p in sources}
    assert {path: found for path, found in uses.items() if found} == {
        "dgl_transformer/training.py": uses["dgl_transformer/training.py"]}
    assert len(uses["dgl_transformer/training.py"]) >= 3  # Adam(...), optimizer/scheduler step


def test_the_optimiser_check_sees_through_names():
    dodges = ("import torch\nadam = torch.optim.SGD(ps, lr=1)\nadam.step()\n",
              "from torch.optim import Adam as A\nA(ps)\n",
              "from torch import optim\noptim.AdamW(ps)\n")
    assert [len(optimiser_uses(code)) for code in dodges] == [2, 1, 1]
    assert optimiser_uses("import torch\ntorch.optim.lr_scheduler\nx = 1\n") == []


CFG = TransformerConfig(src_vocab=20, tgt_vocab=20, d_model=16, n_heads=2, d_ff=32,
                        n_enc_layers=1, n_dec_layers=2, max_len=30)


def test_packed_batch_holds_both_sides_and_the_three_graphs():
    src = [torch.tensor([4, 5, 6]), torch.tensor([7])]
    tgt = [torch.tensor([8, 9]), torch.tensor([10, 11, 12])]
    b = PackedBatch.collate(src, tgt)
    assert b.tgt_lens.tolist() == [PackedBatch.decoder_length(2), PackedBatch.decoder_length(3)]
    assert b.tgt_in.tolist() == [BOS, 8, 9, BOS, 10, 11, 12]
    assert b.gold.tolist() == [8, 9, EOS, 10, 11, 12, EOS]
    assert b.src_offsets.tolist() == [0, 3] and b.tgt_offsets.tolist() == [0, 3]
    assert b.src_pos.tolist() == [0, 1, 2, 0] and b.tgt_pos.tolist() == [0, 1, 2, 0, 1, 2, 3]
    assert b.num_target_tokens == 7 and b.num_nodes == 11 and len(b) == 2
    for got, want in ((b.enc_graph, graphs.complete_graph([3, 1])),
                      (b.dec_graph, graphs.causal_graph([3, 4])),
                      (b.cross_graph, graphs.cross_graph([3, 1], [3, 4]))):
        assert [t.tolist() for t in got.edges()] == [t.tolist() for t in want.edges()]
    assert [s.tolist() for s in b.sources()] == [s.tolist() for s in src]
    assert [t.tolist() for t in b.decoder_inputs()] == [[BOS, 8, 9], [BOS, 10, 11, 12]]
    moved = b.to("cpu")
    assert torch.equal(moved.gold, b.gold) and moved.enc_graph.num_edges() == 10
    dense_layout = PackedBatch.collate(src, tgt, encoder_graph=None)
    assert dense_layout.enc_graph is None and dense_layout.dec_graph is None
    with pytest.raises(ValueError, match="src has 2 sequences but tgt_in has 1"):
        PackedBatch.collate(src, tgt[:1])
    with pytest.raises(ValueError, match="holds sources only"):
        PackedBatch.collate(src).decoder_input  # noqa: B018


def test_model_of_a_batch_equals_model_of_lists():
    torch.manual_seed(0)
    model = GraphTransformer(CFG).eval()
    src = [torch.tensor([4, 5, 6]), torch.tensor([7])]
    tgt = [torch.tensor([8, 9]), torch.tensor([10, 11, 12])]
    batch = model.collate(src, tgt)
    assert torch.equal(model(batch), model(src, batch.decoder_inputs()))


def test_a_batch_built_for_another_encoder_graph_is_refused():
    model = GraphTransformer(CFG, encoder_graph=lambda lens: graphs.window_graph(lens, 1))
    batch = PackedBatch.collate([torch.tensor([4, 5])], [torch.tensor([6])])
    with pytest.raises(ValueError, match="collate it with model.collate"):
        model(batch)


def biased_model() -> GraphTransformer:
    """A model whose raw distribution always prefers PAD, BOS and UNK (then token 9, then EOS)."""
    torch.manual_seed(0)
    model = GraphTransformer(CFG).eval()
    with torch.no_grad():
        model.dec_norm.weight.zero_()
        model.dec_norm.bias.fill_(1.0)  # every decoder output is the all-ones vector
        model.generator.weight.zero_()
        model.generator.weight[list(NEVER_PREDICTED)] = 10.0
        model.generator.weight[9] = 5.0
        model.generator.weight[EOS] = -5.0
    return model


@pytest.mark.parametrize("beam", [1, 3])
def test_decoding_never_proposes_pad_bos_or_unk(beam):
    model = biased_model()
    src = [torch.tensor([4, 5, 6]), torch.tensor([7])]
    raw = model.generator(model.dec_norm(torch.zeros(1, 16)))
    assert int(raw.argmax()) in NEVER_PREDICTED  # unmasked, a special would win
    for incremental in (True, False):
        decode = greedy if beam == 1 else beam_search
        args = (model, src, 4) if beam == 1 else (model, src, beam, 4)
        out = decode(*args, incremental=incremental)
        assert [o.tolist() for o in out] == [[9, 9, 9, 9], [9, 9, 9, 9]]


def test_train_step_updates_and_refuses_a_non_finite_loss():
    torch.manual_seed(0)
    model = GraphTransformer(CFG)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    batch = model.collate([torch.tensor([4, 5])], [torch.tensor([6, 7])])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():  # the loss without dropout, before and after: the update's effect
        loss_before = torch.nn.functional.cross_entropy(model.eval()(batch), batch.gold)
    stats = train_step(model.train(), batch, opt, clip_norm=1.0)
    with torch.no_grad():
        loss_after = torch.nn.functional.cross_entropy(model.eval()(batch), batch.gold)
    assert stats.tokens == 3 and math.isfinite(stats.loss) and stats.grad_norm > 0
    assert not torch.equal(before["generator.weight"], model.state_dict()["generator.weight"])
    assert loss_after < loss_before  # the update lowered the loss on its own batch
    model.train()
    kept = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        model.generator.weight[6, 0] = float("nan")
    kept["generator.weight"][6, 0] = float("nan")
    with pytest.raises(NonFiniteLoss, match="non-finite loss"):
        train_step(model, batch, opt, clip_norm=1.0)
    for key, value in model.state_dict().items():
        assert torch.equal(value.nan_to_num(), kept[key].nan_to_num()), key


@pytest.mark.parametrize("activation", [None, 0.0, 0.2])
def test_activation_dropout_is_the_ffn_dropout_and_defaults_to_dropout(activation):
    cfg = TransformerConfig(src_vocab=9, tgt_vocab=9, d_model=8, d_ff=16, dropout=0.3,
                            activation_dropout=activation)
    model = GraphTransformer(cfg)
    inner = [m.p for layer in [*model.encoder, *model.decoder] for m in layer.ffn
             if isinstance(m, torch.nn.Dropout)]
    outer = [layer.drop.p for layer in [*model.encoder, *model.decoder]]
    assert inner == [0.3 if activation is None else activation] * 6
    assert outer == [0.3] * 6 and model.embed_drop.p == 0.3


def test_activation_dropout_acts_in_training_alone():
    src, tgt = [torch.tensor([4, 5, 6])], [torch.tensor([7, 8])]

    def two_passes_differ(activation: float) -> bool:
        cfg = TransformerConfig(src_vocab=9, tgt_vocab=9, d_model=8, d_ff=16, dropout=0.0,
                                activation_dropout=activation)
        model = GraphTransformer(cfg).train()
        batch = model.collate(src, tgt)
        return not torch.equal(model(batch), model(batch))

    assert two_passes_differ(0.5) and not two_passes_differ(0.0)
