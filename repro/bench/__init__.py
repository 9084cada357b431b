"""``make bench``: the graph Transformer against its dense twin and tutorial-style DGL attention.

    OMP_NUM_THREADS=2 python -m repro.bench [--config repro/configs/default.yaml]
                                             [--d256-config repro/configs/lowercase.yaml]
                                             [--checkpoint runs/default/final.pt]
                                             [--require-trained]

Two model sizes, each with its own config (model, data variant, token budget): ``small`` is
``--config``, the repro's model (d_model 128, 4 heads, FFN 256, 4+4 layers, cased BPE), and
``d256`` is ``--d256-config``, the model of the earlier lowercased runs (d_model 256, 4 heads,
FFN 1024, 3+3 layers). Everything runs in one process (plus children for parts f and g), on
the same batches for every model, and is written to ``repro/results/bench.json``, then
``repro/results/bench.png`` and ``BENCHMARKS.md`` (by ``repro/report/benchmarks.py``). One
module per part, each returning a typed record of ``results.py``:

a. ``training.py``: training throughput (target tokens/s of collate, forward, backward,
   clipping and an Adam step) of :class:`GraphTransformer` and :class:`DenseTransformer` at
   both sizes, and of the tutorial-style baselines (``tutorial.py``'s
   :class:`TutorialStyleTransformer`, ``variants.py``'s :class:`UdfGraphTransformer`) at the
   small size, on length-bucketed and on random batches. The models take turns on each batch
   (the order rotates), so a change in the machine's load hits all; ratios are medians of
   per-batch ratios;
b. ``kernels.py``: attention kernels alone (forward + backward on one batch's three graphs),
   and a profile of each DGL kernel (SDDMM, edge softmax, SpMM, each forward and backward;
   graph construction and format conversion) in ms and GFLOP/s;
c. ``options.py``: the DGL-level options (threads, int32 indices, formats built in collate,
   contiguous operands, heads in chunks, one graph for all layers, weights repeated so SpMM
   takes libxsmm): attention of every layer of a training step with and without each;
d. ``flops.py``: achieved GFLOP/s of a training step against torch matmuls of the step's own
   shapes;
e. ``decoding.py``: decoding test2016 (greedy and the config's beam, the repro's decoding
   settings) with the incremental cache, and the cache against naive decoding on one batch;
f. ``long.py``: one long sequence (in a child process): time and peak memory of complete
   graph, window graph and dense attention;
g. ``threads.py``: graph and dense throughput with OpenMP's idle threads spinning or sleeping
   (child processes, since the policy is fixed when OpenMP starts).

``summary.py`` reads the headline numbers and judges the targets; ``cli.py`` runs it all.

Multi30k comes from ``$MULTI30K_DIR`` or each config's data root (``corpus.py``). Without it
the bench uses synthetic batches with Multi30k's length distribution, and without a trained
checkpoint it decodes a model trained for ``--train-steps`` updates here; each such stand-in
is labelled ``fallback: ...`` in the results, printed beside its numbers, and never counted
as meeting a target. ``--require-trained`` refuses to run without a trained model and
Multi30k instead.
"""
