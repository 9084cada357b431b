"""The essay's summary in repro/README.md: generated from the experiments' result files, the
committed section equal to what the committed files give, analyses with nothing to measure
written as n/a."""

import json
import shutil
from pathlib import Path

from repro.report.experiment_figures import EXPERIMENT_FIGURES, figures_shown
from repro.report.experiments import (
    EXPERIMENTS_SECTION,
    group_name,
    load_results,
    summary,
    summary_table,
    update_experiments_section,
)
from repro.report.markers import read_section

ROOT = Path(__file__).resolve().parent.parent
RECORDED = ROOT / "repro" / "results" / "experiments"


def test_the_readme_section_is_generated_from_the_recorded_results():
    assert read_section(ROOT / "repro" / "README.md", EXPERIMENTS_SECTION) == summary(RECORDED)


def test_the_table_has_one_row_per_configuration_with_its_seeds_and_scores():
    """Every configuration with recorded runs has its row (its seeds together), with its
    budget, its seeds and the mean of its test scores in the headline protocol."""
    runs = load_results(RECORDED)
    groups = sorted({group_name(name) for name in runs})
    rows = summary_table(RECORDED).splitlines()[2:]
    assert sorted(row.split("`")[1] for row in rows) == groups
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        members = [r for n, r in runs.items() if group_name(n) == cells[0].strip("`")]
        protocol = members[0]["config"]["eval"].get("protocol", "bleu_tok_lc")
        test = [r["scores"]["test_2016_flickr"][protocol] for r in members]
        assert cells[5] == f"{members[0]['train_steps']:,}"
        assert cells[6] == ", ".join(str(r["config"]["train"]["seed"]) for r in members)
        assert cells[9].startswith(f"`{protocol}` {sum(test) / len(test):.2f}")


def test_seed_runs_join_their_configuration():
    assert group_name("graph_window_4_seed3") == "graph_window_4"
    assert group_name("aggregate_enc_mean_window_4") == "aggregate_enc_mean_window_4"


def test_the_section_and_its_figures_are_written_together(tmp_path):
    """Figures only for runs that exist, each linked from the section."""
    results = tmp_path / "results"
    shutil.copytree(RECORDED, results, ignore=shutil.ignore_patterns("*.png", "norm_*.json"))
    readme = tmp_path / "README.md"
    readme.write_text("a\n<!-- experiments:begin -->\nold\n<!-- experiments:end -->\nb\n")
    update_experiments_section(results, readme)
    shown = figures_shown(load_results(results))
    assert shown == ["graph_shapes.png"] and len(EXPERIMENT_FIGURES) == 2
    assert sorted(p.name for p in results.glob("*.png")) == shown
    section = read_section(readme, EXPERIMENTS_SECTION)
    assert "![graph_shapes](results/experiments/graph_shapes.png)" in section
    assert "norm_curves" not in section and "old" not in section
    assert readme.read_text().startswith("a\n") and readme.read_text().endswith("b\n")


def syntax_record(cross: dict) -> dict:
    """A syntax-study file of one layer and head, with the given cross-attention part."""
    per_head = [{"layer": 1, "head": 1, "adjacent_share": 0.5, "mean_entropy": 1.0}]
    return {"sentences": 8, "rule": {"word_attention": "W = ...: why"},
            "encoder": {"layers": 1, "heads": 1, "uniform_adjacent_share": 0.2,
                        "uniform_entropy": 2.0, "per_head": per_head},
            "agreement": {"mean_within_layer": None, "mean_across_layers": None},
            "cross": cross, "figures": {}}


def test_the_summary_reads_analyses_with_nothing_to_measure(tmp_path):
    """An analysis may record None (no cross-attention candidates, one head): the README
    section says n/a instead of failing after hours of runs."""
    (tmp_path / "syntax").mkdir()
    heads = {"sentences": 8, "importance_sentences": [8, 16], "curves": {
        "enc": {"points": [{"heads_kept": 2, "bleu_tok_lc": 3.0}, {"heads_kept": 1,
                                                                  "bleu_tok_lc": 2.0}]},
        "cross": {"points": [{"heads_kept": 1, "bleu_tok_lc": 1.0}]}}}
    syntax = syntax_record({"candidates": 0, "uniform_chance_share": None,
                            "per_layer": [{"layer": 1, "share_predicting": None}]})
    (tmp_path / "heads_pruning.json").write_text(json.dumps(heads))
    (tmp_path / "syntax" / "syntax_study.json").write_text(json.dumps(syntax))
    text = summary(tmp_path)
    assert "| 2 | 3.00 | n/a |" in text and "| 1 | 2.00 | 1.00 |" in text
    assert "n/a within a layer" in text and "chance n/a" in text


def test_the_summary_says_when_one_word_makes_up_the_alignment_test(tmp_path):
    """The identical-word shares come with their baselines and the word that dominates them
    (on Multi30k: 'in', shared by English and German)."""
    (tmp_path / "syntax").mkdir()
    syntax = syntax_record({"candidates": 4, "uniform_chance_share": 0.1,
                            "length_only_share": 0.25,
                            "most_frequent_identical_words": [["in", 3], ["Paris", 1]],
                            "per_layer": [{"layer": 1, "share_predicting": 0.75}]})
    (tmp_path / "syntax" / "syntax_study.json").write_text(json.dumps(syntax))
    text = summary(tmp_path)
    assert "(layer 1: 0.75; chance 0.10, length-only choice 0.25); 3 of the 4 are the word 'in'." \
        in text


def test_a_configuration_with_two_baselines_shows_its_verdict_against_the_first(tmp_path):
    """graph_random_4 is compared with the complete graph and with the window of the same
    in-degrees; its row gives the first comparison, the verdicts table both."""
    results = tmp_path / "results"
    results.mkdir()
    for name in ("graph_complete", "graph_random_4"):
        shutil.copy(RECORDED / f"{name}.json", results)
    verdicts = [{"baseline": base, "changed": "graph_random_4", "verdict": word}
                for base, word in (("graph_complete", "worse"), ("graph_window_4", "better"))]
    (results / "verdicts.json").write_text(json.dumps({"verdicts": verdicts}))
    row = next(r for r in summary_table(results).splitlines() if "`graph_random_4`" in r)
    assert row.endswith("| worse than `graph_complete` |")
    verdicts[0]["verdict"] = "not decided"
    (results / "verdicts.json").write_text(json.dumps({"verdicts": verdicts}))
    row = next(r for r in summary_table(results).splitlines() if "`graph_random_4`" in r)
    assert row.endswith("| not decided against `graph_complete` |")
