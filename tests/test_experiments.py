"""``make experiments`` on a one-minute schedule: two configs, resumable, table from files."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from multi30k_mirror import MIRROR, NEEDS_MIRROR

from repro.experiments import ANALYSES, experiment_configs
from repro.report.experiments import summary_table

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
           "--probe-updates", "2", "--converged",
           str(tmp_path / "runs" / "graph_complete" / "final.pt"), "--set", *TINY]
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    first = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env, timeout=900)
    assert first.returncode == 0, first.stderr[-2000:]
    results = {p.stem: json.loads(p.read_text()) for p in (tmp_path / "results").glob("*.json")}
    analysed = {name: results.pop(name) for name in (
        "heads_pruning", "heads_pruning_converged", "scaling_probe", "learned_graph_w4",
        "verdicts")}
    assert analysed["heads_pruning_converged"]["checkpoint"].endswith("graph_complete/final.pt")
    assert (tmp_path / "results" / "syntax_converged" / "syntax_study.json").exists()
    # the essay's pairs whose runs exist are decided: heads_2 and the learned graph against
    # graph_complete, on seed 1, with a paired interval on test
    decided = {(v["baseline"], v["changed"]): v for v in analysed["verdicts"]["verdicts"]}
    assert set(decided) == {("graph_complete", "heads_2"), ("graph_complete", "graph_learned_4")}
    assert all(v["seeds"] == [1] and len(v["per_seed"][0]["test"]["ci95"]) == 2
               for v in decided.values())
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
