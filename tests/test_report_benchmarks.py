"""BENCHMARKS.md holds what bench.json holds: one table row per input, every measured number in
its row, and the label of every fallback beside the numbers that rest on it. Read from the
committed run, and from that run changed where a case needs it."""

import copy

from committed_bench import COMMITTED, FALLBACK_MODEL, ROOT, TRAINED_MODEL, with_decoding_model

from repro.bench.results import LONG_ATTENTION_KINDS, TRAINING_MODEL_NAMES
from repro.report.benchmarks import BENCHMARKS_PAGE, markdown


def tables(page: str) -> dict[str, list[list[list[str]]]]:
    """Every table of the page, under the ``##`` heading it follows: rows of cells (header
    and rule left out)."""
    found: dict[str, list[list[list[str]]]] = {}
    heading, rows = "", None
    for line in page.splitlines() + [""]:
        if line.startswith("## "):
            heading = line[3:]
        if line.startswith("|"):
            if rows is None:
                rows = []
                found.setdefault(heading, []).append(rows)
            rows.append([c.strip() for c in line.strip("|").split("|")])
        else:
            rows = None
    return {h: [t[2:] for t in ts] for h, ts in found.items()}


def numbered(page: str) -> str:
    """The page without its fixed method text."""
    return page.split("## How it is measured")[0]


def test_the_committed_page_is_generated_from_the_committed_run():
    assert (ROOT / BENCHMARKS_PAGE).read_text(encoding="utf-8") == markdown(COMMITTED)


def test_each_table_has_one_row_per_input():
    t, r = tables(markdown(COMMITTED)), COMMITTED
    sizes = list(r["sizes"])
    assert len(t["Machine and run"][0]) == len(sizes)
    summary, measurements = t["Summary"]
    assert len(summary) == len(r["targets"])
    assert len(measurements) == len(r["summary"]) - len(r["targets"])
    assert len(t["Training throughput (target tokens/s)"][0]) == sum(map(len, r["train"].values()))
    kernels = t["Attention kernels alone (ms, forward + backward)"]
    assert [len(k) for k in kernels] == [len(r["kernels"][s]["graphs"]) + 2 for s in sizes]
    profile = t["Profile of the model's attention, kernel by kernel"]
    assert [len(p) for p in profile] == [len(r["kernels"][s]["profile"]) + 1 for s in sizes]
    options = t["DGL-level options (attention of every layer, with / without the option)"][0]
    assert len(options) == 1 + len(r["options"]["small"]["options"])
    flops = t["Achieved GFLOP/s of a training step"]
    assert [len(f) for f in flops] == [len(r["flops"][s]["step_seconds"]) + 2 for s in sizes]
    assert [len(d) for d in t["Decoding test2016 (small model)"]] == [2, 2]
    assert len(t["One long sequence (forward, ms and peak MiB)"][0]) == len(r["long"]["window"])
    policies = t["OpenMP wait policy (target tokens/s, training, small size)"][0]
    assert len(policies) == len(r["wait_policy"]["tgt_tokens_per_s"]) + 1


def test_every_measured_number_stands_in_its_row():
    t, r = tables(markdown(COMMITTED)), COMMITTED
    training = t["Training throughput (target tokens/s)"][0]
    for row in training:
        part = r["train"][row[0]][row[1]]
        tps = [part["tgt_tokens_per_s"].get(m, "") for m in TRAINING_MODEL_NAMES]
        over = [part["graph_over"].get(m, "") for m in TRAINING_MODEL_NAMES[1:]]
        assert row[2:] == [str(c) for c in [len(part["batches"]), *tps, *over,
                                            part["dense_padding_fraction"]]]
    for size, table in zip(r["kernels"], t["Attention kernels alone (ms, forward + backward)"],
                           strict=True):
        k = r["kernels"][size]
        for row in table[:-2]:
            graph = k["graphs"][row[0]]
            assert row[1:] == [str(graph["edges"]), *map(str, graph["ms"].values())]
        assert table[-2][2:] == list(map(str, k["sum_ms"].values()))
    options = t["DGL-level options (attention of every layer, with / without the option)"][0]
    for row in options[1:]:
        assert row[1:3] == [str(r["options"][s]["options"][row[0]]["with_over_without"])
                            for s in r["options"]]
    greedy, beam = t["Decoding test2016 (small model)"][0]
    for row, name in ((greedy, "greedy"), (beam, "beam")):
        d = r["decoding"][name]
        assert row == [name, str(d["seconds"]), str(d["sentences_per_s"]),
                       str(d["mean_output_len"])]
    for row in t["One long sequence (forward, ms and peak MiB)"][0]:
        cells = [r["long"][kind][row[0]] for kind in LONG_ATTENTION_KINDS]
        assert [c.split(" [")[0] for c in row[1:]] == [
            f"{m['ms']} ms, {m['peak_mib']} MiB" for m in cells]
    summary, measurements = t["Summary"]
    for row in summary + measurements:
        key = row[0].strip("`")
        assert row[1].split(" (")[0] == str(r["summary"][key])


def test_a_fallback_number_carries_its_label():
    results = with_decoding_model(COMMITTED, FALLBACK_MODEL)
    speed = results["summary"]["translate_sentences_per_second"]
    beam = results["summary"]["beam_incremental_over_naive"]
    page = markdown(results)
    summary, measurements = tables(page)["Summary"]
    rows = {row[0].strip("`"): row for row in summary + measurements}
    assert rows["translate_sentences_per_second"][1:] == [
        f"{speed} ({FALLBACK_MODEL})", ">= 16.7", "not judged (fallback)"]
    assert rows["beam_incremental_over_naive"][1] == f"{beam} ({FALLBACK_MODEL})"
    assert rows["attention_graph_over_sdpa_ms"][1] == str(
        results["summary"]["attention_graph_over_sdpa_ms"])
    assert f"Model: {FALLBACK_MODEL}; sources: {COMMITTED['decoding']['corpus']}." in page
    assert "comes from that stand-in" in page
    clean = numbered(markdown(with_decoding_model(COMMITTED, TRAINED_MODEL)))
    assert "fallback" not in clean and "stand-in" not in clean
    assert f"| `translate_sentences_per_second` | {speed} | >= 16.7 | yes |" in clean


def test_a_synthetic_corpus_is_labelled_in_the_sizes_table():
    results = copy.deepcopy(COMMITTED)
    results["sizes"]["d256"]["data"] = "fallback: synthetic ids"
    rows = tables(markdown(results))["Machine and run"][0]
    assert [row[3] for row in rows] == [s["data"] for s in results["sizes"].values()]


def test_each_missed_target_is_explained_with_its_number():
    results = with_decoding_model(COMMITTED, TRAINED_MODEL)
    missed = ("train_graph_over_dense_small_random", "attention_graph_over_sdpa_ms",
              "translate_sentences_per_second", "len4096_window_over_dense_speed")
    for key in missed:
        results["targets"][key]["met"] = False
    section = markdown(results).split("## Targets not met, and why")[1].split("\n## ")[0]
    bullets = [line for line in section.splitlines() if line.startswith("* ")]
    assert [b.split("`")[1] for b in bullets] == list(missed)
    for bullet, key in zip(bullets, missed, strict=True):
        assert f"= {results['summary'][key]} (target {results['targets'][key]['target']})" in bullet
    assert section.count("the one that holds it back is") == 2
    assert "## Targets not met" not in markdown(with_decoding_model(COMMITTED, TRAINED_MODEL))


def test_the_earlier_targets_are_bounded_by_this_runs_numbers():
    page = markdown(COMMITTED)
    f = COMMITTED["flops"]["small"]
    udf = COMMITTED["train"]["small"]["bucketed"]["graph_over"]["udf"]
    headroom = f["same_gemms_alone_gflop_per_s"] / f["step_gflop_per_s"]["graph"]
    assert f"only {headroom:.2f}x faster" in page and f"about {udf * headroom:.2f}" in page
    c = COMMITTED["decoding"]["cache_vs_naive"]["beam"]
    assert (f"naive decoder takes {c['naive_seconds']} s and the cache "
            f"{c['incremental_seconds']} s") in page
