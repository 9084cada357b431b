"""See attention as graphs: an interactive page for any sentence pair.

>>> from dgl_transformer.viewer import show_attention          # doctest: +SKIP
>>> view = show_attention(translator, "A man in a blue shirt.")  # decodes, then observes
>>> view                      # a notebook cell's last line: the page, inline, once it has run
>>> view.save("attention.html")  # the same page, self-contained, works offline

``docs/viewer.md`` describes the page and its controls.

:mod:`.attention` gathers the weights (through :func:`~dgl_transformer.nn.hooks.observe_attention`)
and writes the page; :mod:`.browser` opens pages in Debian's headless Chromium (screenshots,
the browser tests), which needs ``selenium`` and ``apt-get install chromium chromium-driver``.
"""

from .attention import AttentionView, GraphWeights, Side, show_attention

__all__ = ["AttentionView", "GraphWeights", "Side", "show_attention"]
