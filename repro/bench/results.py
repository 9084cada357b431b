"""What each part of ``make bench`` returns, as written to ``repro/results/bench.json``.

Every part returns one of the typed records below, and the report (``repro/report``) reads
the same records back from the JSON. This module imports neither torch nor DGL, so the report
can use it alone.

Provenance: a result says what it was measured on (``SizeDescription.data``,
``DecodingResult.model`` and ``.corpus``). A label that starts with :data:`FALLBACK` names a
stand-in the bench used because the real thing was missing (synthetic ids instead of
Multi30k, a model trained for a few steps instead of a trained checkpoint); such a number is
printed with its label and never counted as meeting a target. Labels hold no absolute path of
the machine that wrote them (:func:`portable`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NotRequired, TypedDict

#: The start of every provenance label that names a stand-in.
FALLBACK = "fallback: "
#: The models of the training part, first to last (``graph`` is the one the others are
#: compared with); the tutorial-style ones run at the small size only.
TRAINING_MODEL_NAMES = ("graph", "dense", "udf", "udf_kernel")
#: The kinds of attention of the long-sequence part.
LONG_ATTENTION_KINDS = ("complete", "window", "dense", "dense_materialised")


def is_fallback(label: str) -> bool:
    """Whether a provenance label names a stand-in (see the module docstring)."""
    return label.startswith(FALLBACK)


def portable(path: Path | str) -> str:
    """``path`` as a result file records it: relative to the working directory when it lies
    inside it, else ``.../`` and its last part (no absolute path of this machine)."""
    path = Path(path)
    if not path.is_absolute():
        return path.as_posix()
    try:
        return path.relative_to(Path.cwd()).as_posix()
    except ValueError:
        return f".../{path.name}"


def portable_command(argv: list[str]) -> str:
    """The command line of a run, each absolute path in it made :func:`portable`."""
    return " ".join(portable(a) if os.path.isabs(a) else a for a in argv)


class BatchStats(TypedDict):
    """Real tokens of a batch, and the positions the dense model computes (padded)."""

    sentences: int
    src_tokens: int
    tgt_tokens: int
    dense_positions: int


class BatchTiming(BatchStats):
    """One training batch: its sizes and each model's seconds for one update on it."""

    seconds: dict[str, float]


class TrainingResult(TypedDict):
    """Part a at one size and batching: per-batch times, median tokens/s per model, and median
    per-batch ratios "graph over X" (X's time over the graph model's)."""

    batches: list[BatchTiming]
    tgt_tokens_per_s: dict[str, float]
    graph_over: dict[str, float]
    dense_padding_fraction: float


class ProfileEntry(TypedDict):
    """Median ms of one piece of the attention; GFLOP and GFLOP/s where it computes."""

    ms: float
    gflop: NotRequired[float]
    gflop_per_s: NotRequired[float]


class KernelGraphResult(TypedDict):
    """Part b on one of a batch's three graphs."""

    edges: int
    layers: int
    ms: dict[str, float]
    profile: dict[str, ProfileEntry]


class KernelResult(TypedDict):
    """Part b at one size: each kernel on the three graphs, their sums, and the profile."""

    heads: int
    head_dim: int
    batch: BatchStats
    graphs: dict[str, KernelGraphResult]
    sum_ms: dict[str, float]
    graph_over: dict[str, float]
    graph_over_sdpa: float
    attention_gflop: float
    attention_gflop_per_s: float
    profile: dict[str, ProfileEntry]
    profile_step_ms: dict[str, float]


class OptionVerdict(TypedDict):
    """One DGL-level option: the run without (or with) it, whether the model keeps it, and
    the median ratio of the time with it over the time without it."""

    run: str
    kept: bool
    with_over_without: float


class OptionsResult(TypedDict):
    """Part c at one size."""

    rounds: int
    ms: dict[str, float]
    options: dict[str, OptionVerdict]
    threads: dict[str, int]


class FlopsResult(TypedDict):
    """Part d at one size: useful FLOPs of a training step and how fast they run."""

    batch: BatchStats
    useful_gflop: float
    gemm_gflop: float
    attention_gflop: float
    gemm_shapes: int
    step_seconds: dict[str, float]
    step_gflop_per_s: dict[str, float]
    same_gemms_alone_seconds: float
    same_gemms_alone_gflop_per_s: float
    matmul_2048_gflop_per_s: float


class DecodingSettings(TypedDict):
    beam_size: int
    length_penalty: float
    max_len_a: float
    max_len_b: int
    batch_sentences: int


class DecodeTiming(TypedDict):
    """One decoder over the whole test set."""

    seconds: float
    sentences_per_s: float
    mean_output_len: float


class DecoderComparison(TypedDict):
    """Incremental cache against naive re-running, for one decoder on one batch."""

    incremental_seconds: float
    naive_seconds: float
    incremental_runs: list[float]
    incremental_over_naive: float
    same_output_fraction: float


class CacheComparison(TypedDict):
    sentences: int
    max_len: int
    mean_source_len: float
    greedy: DecoderComparison
    beam: DecoderComparison


class DecodingResult(TypedDict):
    """Part e: which model decoded which sources (provenance labels), and how fast."""

    model: str
    corpus: str
    reference_mean_len: float
    settings: DecodingSettings
    sentences: int
    greedy: DecodeTiming
    beam: DecodeTiming
    cache_vs_naive: CacheComparison


class LongMeasurement(TypedDict):
    """Part f: one kind of attention at one length (forward only)."""

    ms: float
    peak_mib: float
    first_call_peak_mib: float
    structure_mib: float
    edges: int
    repeats: int


class LongRatios(TypedDict):
    length: int
    dense_over_window_speed: float
    complete_over_window_speed: float
    dense_over_window_memory: float
    dense_materialised_over_window_memory: float
    complete_over_window_memory: float


class LongResult(TypedDict):
    """Part f: every kind (:data:`LONG_ATTENTION_KINDS`) at every length (as a string key)."""

    heads: int
    head_dim: int
    window_size: int
    mode: str
    complete: dict[str, LongMeasurement]
    window: dict[str, LongMeasurement]
    dense: dict[str, LongMeasurement]
    dense_materialised: dict[str, LongMeasurement]
    ratios_at_longest: LongRatios


class WaitPolicyRun(TypedDict):
    """Part g: one child process under one OpenMP wait policy."""

    omp_wait_policy: str | None
    threads: int
    tgt_tokens_per_s: dict[str, float]


class WaitPolicyResult(TypedDict):
    runs: list[WaitPolicyRun]
    tgt_tokens_per_s: dict[str, dict[str, float]]
    passive_over_active: dict[str, float]


class SizeDescription(TypedDict):
    """One model size: its config, model, token budget and the data it read (a label)."""

    config: str
    model: dict[str, Any]
    max_tokens: int
    data: str
    train_pairs: int
    test_sentences: int


class Anchor(TypedDict):
    """A number this run does not measure, shown for orientation."""

    value: float
    source: str


class TargetVerdict(TypedDict):
    """A target and whether the summary meets it; ``met`` is None, with the reason in
    ``not_judged``, when the measurement rests on a fallback."""

    target: str
    met: bool | None
    not_judged: NotRequired[str]


class RunCircumstances(TypedDict):
    """What a bench run records as it starts: the command, the code, the machine, its load."""

    command: str
    overrides: list[str]
    git_commit: str
    machine: dict[str, Any]
    threads: int
    dgl_threads: int
    omp_wait_policy: str | None
    dgl_version: str
    torch_version: str
    load_average_start: list[float]
    anchors: dict[str, Anchor]


class BenchResults(RunCircumstances):
    """The whole of ``repro/results/bench.json``: the circumstances, each part, the summary
    (with the fallbacks it rests on) and the targets judged on it."""

    sizes: dict[str, SizeDescription]
    train: dict[str, dict[str, TrainingResult]]
    kernels: dict[str, KernelResult]
    options: dict[str, OptionsResult]
    flops: dict[str, FlopsResult]
    decoding: DecodingResult
    long: LongResult
    wait_policy: NotRequired[WaitPolicyResult]
    summary: dict[str, float]
    summary_fallbacks: dict[str, str]
    targets: dict[str, TargetVerdict]
    old_targets: dict[str, TargetVerdict]
    load_average_end: list[float]
    wall_seconds: float
