"""The translation pipeline around the network: data, text, batching, run configs, training,
evaluation, checkpoints and the ``translate`` command."""
