"""``python -m dgl_transformer``: the ``dgl-transformer`` command."""

import sys

from .cli import main

sys.exit(main(prog="python -m dgl_transformer"))
