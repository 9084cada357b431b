"""The translation pipeline around the network: data, corpus, text, batching, run configs,
training, decoding (``generate``), scoring (``evaluate``), checkpoints, and the four commands
of ``dgl-transformer`` (``data``, ``train``, ``translate``, ``evaluate``)."""
