"""A tiny untrained checkpoint with a real subword model, for the tests of the commands that
load one (translate, evaluate): no data and no training needed."""

from __future__ import annotations

import random
from pathlib import Path

from dgl_transformer.mt import checkpoint
from dgl_transformer.mt.configs import RunConfig
from dgl_transformer.mt.text import MOSES_ESCAPES, SubwordTokenizer, TextPipeline
from dgl_transformer.nn.config import TransformerConfig
from dgl_transformer.nn.model import GraphTransformer

WORDS = "a dog cat man woman runs jumps the on in park street red blue ball plays with".split()

def make_checkpoint(path: Path, variant: str = "lc_tok", **changes) -> Path:
    """A tiny untrained model with a real subword model, saved like ``final.pt``.

    ``changes`` edit the saved state: ``model_config`` entries, or a whole top-level value.
    """
    rng = random.Random(0)
    texts = [" ".join(rng.choices(WORDS, k=rng.randint(3, 10))) + " ." for _ in range(300)]
    tokenizer = SubwordTokenizer.train(texts, 320, user_symbols=MOSES_ESCAPES)
    pipeline = TextPipeline(variant, "en", "de", tokenizer)
    model_cfg = TransformerConfig(src_vocab=320, tgt_vocab=320, d_model=16, n_heads=2, d_ff=32,
                                  n_enc_layers=1, n_dec_layers=1, max_len=64)
    run_cfg = RunConfig.from_dict({"eval": {"max_len_a": 0.0, "max_len_b": 3}})
    trained = checkpoint.TrainedModel(
        run_config=run_cfg.to_dict(), model_config=model_cfg.to_dict(),
        pipeline=pipeline.to_state(), model=GraphTransformer(model_cfg).state_dict(),
    )
    for key, value in changes.items():
        if key in trained.model_config:
            trained.model_config[key] = value
        else:
            setattr(trained, key, value)
    trained.save(path)
    return path
