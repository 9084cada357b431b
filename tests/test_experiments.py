"""``make experiments`` on a one-minute schedule: two configs, resumable, table from files."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from multi30k_mirror import MIRROR, NEEDS_MIRROR

from repro.experiments import ANALYSES, experiment_configs, summary, summary_table

ROOT = Path(__file__).resolve().parent.parent
pytestmark = NEEDS_MIRROR
TINY = ["train.time_limit_minutes=1", "train.max_steps=4", "train.log_every=1",
        "data.train_limit=400", "data.val_limit=40", "train.val_bleu_sentences=20",
        "data.vocab_size=500", "eval.beam_size=1", "eval.max_len_a=0", "eval.max_len_b=2",
        f"data.root={MIRROR}"]


def test_every_experiment_config_loads_and_names_itself():
    from dgl_transformer.mt.configs import load_config

    configs = experiment_configs()
    assert len(configs) >= 10
    for path in configs:
        assert load_config(path).name == path.stem  # results are filed under the name


@pytest.mark.integration
def test_two_experiments_run_resume_and_fill_the_table(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("x\n<!-- experiments:begin -->\nold\n<!-- experiments:end -->\ny\n")
    cmd = [sys.executable, "-m", "repro.experiments", "--only", "graph_complete", "heads_2",
           "graph_learned_4", *ANALYSES, "--results", str(tmp_path / "results"),
           "--runs", str(tmp_path / "runs"), "--readme", str(readme), "--sentences", "8",
           "--probe-updates", "2", "--set", *TINY]
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    first = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, timeout=900)
    assert first.returncode == 0, first.stderr[-2000:]
    results = {p.stem: json.loads(p.read_text()) for p in (tmp_path / "results").glob("*.json")}
    analysed = {name: results.pop(name) for name in ("heads_pruning", "scaling_probe",
                                                       "learned_graph_w4")}
    assert sorted(results) == ["graph_complete", "graph_learned_4", "heads_2"]
    # the learned graph: graph_complete's strongest edges, window 4's edge count
    learned = results["graph_learned_4"]
    assert learned["config"]["model"]["graph_file"] == str(tmp_path / "runs" /
                                                           "learned_graph_w4.pt")
    assert analysed["learned_graph_w4"]["teacher"].endswith("graph_complete/final.pt")
    shares = [analysed["learned_graph_w4"][f"{kind}within_window_share_non_self"]
              for kind in ("", "random_")]
    assert all(0 <= share <= 1 for share in shares)  # learned, and random at the same degrees
    assert learned["edges_per_sentence"] < results["graph_complete"]["edges_per_sentence"]
    # the analyses read graph_complete's model (heads, syntax) or train their own (probe)
    assert analysed["heads_pruning"]["checkpoint"].endswith("graph_complete/final.pt")
    assert all(len(c["points"]) == 4 * 4 + 1 for c in analysed["heads_pruning"]["curves"].values())
    assert len(analysed["scaling_probe"]["variants"]) == 4
    syntax = json.loads((tmp_path / "results" / "syntax" / "syntax_study.json").read_text())
    assert syntax["sentences"] == 8 and len(syntax["encoder"]["per_head"]) == 4 * 4
    for name, r in results.items():
        assert r["config"]["train"]["out_dir"] == str(tmp_path / "runs" / name)
        assert r["train_steps"] == 4 and r["train_tokens_per_s"] > 0
        if name != "graph_learned_4":  # complete graph: about n^2 for n ~ 15 subwords
            assert r["edges_per_sentence"] > 100
        assert "bleu_cased" in r["scores"]["test_2016_flickr"]
    assert results["heads_2"]["config"]["model"]["n_heads"] == 2
    text = readme.read_text()
    assert "old" not in text and "| `graph_complete` |" in text and "| `heads_2` |" in text
    assert "random wiring with the same in-degrees" in text
    assert text.startswith("x\n") and text.endswith("y\n")
    stamp = (tmp_path / "results" / "heads_2.json").stat().st_mtime_ns
    again = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, timeout=900)
    assert again.returncode == 0 and "heads_2: done" in again.stderr
    assert all(f"{name}: done" in again.stderr for name in ANALYSES)
    assert (tmp_path / "results" / "heads_2.json").stat().st_mtime_ns == stamp
    assert summary_table(tmp_path / "results").count("\n") == 4  # header, rule, three rows


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
