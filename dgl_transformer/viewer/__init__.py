"""See attention as graphs: an interactive page for any sentence pair.

>>> from dgl_transformer.viewer import show_attention          # doctest: +SKIP
>>> view = show_attention(translator, "A man in a blue shirt.")  # decodes, then observes
>>> view                      # in JupyterLab or VS Code: the page, inline
>>> view.save("attention.html")  # the same page, self-contained, works offline

:mod:`.attention` gathers the weights (through :func:`~dgl_transformer.nn.hooks.observe_attention`)
and writes the page; :mod:`.browser` opens pages in Debian's headless Chromium (screenshots,
the browser tests), which needs ``selenium`` and ``apt-get install chromium chromium-driver``.
"""

from .attention import AttentionView, GraphWeights, Side, show_attention

__all__ = ["AttentionView", "GraphWeights", "Side", "show_attention"]
