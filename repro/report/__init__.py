"""Every generated section and figure of the project's documents, from result files only.

* ``repro_results.py``: ``repro/README.md``'s results table (section ``results``) and targets
  (section ``targets``), the time-to-BLEU plot, and each ``make repro`` run's curves and
  samples;
* ``experiments.py`` (figures in ``experiment_figures.py``): the essay's summary in
  ``repro/README.md`` (section ``experiments``);
* ``benchmarks.py`` (tables in ``bench_tables.py``, findings in ``bench_findings.py``, plot in
  ``bench_plot.py``): ``BENCHMARKS.md`` and ``repro/results/bench.png``;
* ``markers.py``: how a section of a markdown file is found and replaced.

``python -m repro.report [repro] [experiments] [benchmarks]`` regenerates them (all by default).
"""
