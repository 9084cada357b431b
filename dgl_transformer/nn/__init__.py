"""The network: attention graphs, graph attention, layers, the packed batch, the model, its
dense twin and decoding. Nothing here reads files or knows about translation data."""
