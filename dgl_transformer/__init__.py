"""dgl-transformer: the Transformer written as message passing on DGL graphs.

>>> from dgl_transformer import TransformerConfig, GraphTransformer, DenseTransformer
"""

import os
from importlib.metadata import PackageNotFoundError, version

os.environ.setdefault("DGLBACKEND", "pytorch")

_NEEDED = (
    "dgl_transformer needs DGL 1.1.3 with torch 2.13 (the registry's DGL 2.x does not load with "
    "this torch): pip install 'torch==2.13.0' 'dgl==1.1.3' packaging  (or run `make setup`)"
)
try:
    import dgl  # noqa: F401
except (ImportError, OSError) as err:  # a missing library, or a wrong DGL build for this torch
    raise ImportError(f"DGL failed to import ({type(err).__name__}: {err}). {_NEEDED}") from None

from .nn.batch import PackedBatch  # noqa: E402
from .nn.config import TransformerConfig  # noqa: E402
from .nn.dense import DenseTransformer  # noqa: E402
from .nn.model import GraphTransformer  # noqa: E402
from .tokens import BOS, EOS, PAD, UNK  # noqa: E402

__all__ = [
    "TransformerConfig", "GraphTransformer", "DenseTransformer", "PackedBatch",
    "PAD", "BOS", "EOS", "UNK",
]
try:
    __version__ = version("dgl-transformer")  # pyproject.toml's, as installed
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "unknown"
