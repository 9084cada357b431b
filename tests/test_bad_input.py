import subprocess
import sys

import pytest
import torch

from dgl_transformer import GraphTransformer, TransformerConfig
from dgl_transformer.nn.decoding import translate

CFG = TransformerConfig(src_vocab=20, tgt_vocab=20, d_model=16, n_heads=2, d_ff=32,
                        n_enc_layers=1, n_dec_layers=1, max_len=10)
OK = torch.tensor([4, 5, 6])


@pytest.mark.parametrize(
    "src, tgt, message",
    [
        ([], [], "empty batch"),
        ([torch.tensor([], dtype=torch.int64)], [OK], r"src\[0\] is an empty sequence"),
        ([OK], [torch.tensor([4, 25])], r"tgt_in\[0\] holds token id 25, outside the vocabulary"),
        ([OK, torch.tensor([-1])], [OK, OK], r"src\[1\] holds token id -1"),
        ([torch.arange(4, 15)], [OK], r"src\[0\] has 11 tokens, more than max_len=10"),
        ([OK], [OK, OK], "src has 1 sequences but tgt_in has 2"),
        ([torch.tensor([[4, 5]])], [OK], r"src\[0\] must be a 1-D integer tensor"),
        (torch.tensor([4, 5]), [OK], "src must be a list"),
    ],
)
def test_bad_batches_raise_clear_value_errors(src, tgt, message):
    model = GraphTransformer(CFG)
    with pytest.raises(ValueError, match=message):
        model(src, tgt)


def test_translate_checks_its_input_too():
    model = GraphTransformer(CFG)
    with pytest.raises(ValueError, match="empty batch"):
        translate(model, [])
    with pytest.raises(ValueError, match="beam_size must be >= 1"):
        translate(model, [OK], beam_size=0)


def test_bad_config_names_the_field():
    with pytest.raises(ValueError, match="not divisible by n_heads"):
        TransformerConfig(src_vocab=10, tgt_vocab=10, d_model=30, n_heads=4)
    with pytest.raises(ValueError, match="share_embeddings needs one joint vocabulary"):
        TransformerConfig(src_vocab=10, tgt_vocab=12, share_embeddings=True)
    with pytest.raises(ValueError, match=r"TransformerConfig.d_ff must be int"):
        TransformerConfig(src_vocab=10, tgt_vocab=10, d_ff="1024")
    with pytest.raises(ValueError, match="unknown model config key 'n_layers'"):
        TransformerConfig.from_dict({"src_vocab": 10, "tgt_vocab": 10, "n_layers": 2})


def test_broken_dgl_gives_an_actionable_import_error(tmp_path):
    fake = tmp_path / "dgl"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise FileNotFoundError('libgraphbolt_pytorch_2.13.0.so')\n")
    code = "import dgl_transformer"
    env = {"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: DGL failed to import (FileNotFoundError")
    assert "dgl==1.1.3" in last and "torch==2.13.0" in last
