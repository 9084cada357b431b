"""The essay's summary in ``repro/README.md`` (section ``experiments``), generated from the
result files of ``make experiments``: one table row per run, the seed spread, the figures
(``experiment_figures.py``), and one paragraph per analysis of trained models."""

from __future__ import annotations

import json
from pathlib import Path
from statistics import median

from .experiment_figures import figures_shown, seed_pairs, write_figures
from .markers import write_section

EXPERIMENT_RESULTS = Path("repro/results/experiments")
EXPERIMENTS_SECTION = "experiments"


def summary_table(results: Path) -> str:
    """One row per results file: what it changed and what it measured."""
    rows = ["| run | encoder graph, aggregator | heads | layers | norm / warm-up | "
            "edges per sentence | train tok/s | val BLEU (tok, lc, greedy) | test2016 cased | "
            "test2016 tok, lc |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for r in load_results(results).values():
        m, t = r["config"]["model"], r["config"]["train"]
        s = r["scores"]["test_2016_flickr"]
        encoder = f"{m.get('encoder_graph', 'complete')}, {m.get('enc_aggregator', 'attention')}"
        decoder = m.get("dec_aggregator", "attention")
        if decoder != "attention":
            encoder += f", decoder self: {decoder}"
        norm = "pre-LN" if m.get("norm_first", True) else "post-LN"
        rows.append(
            f"| `{r['name']}` | {encoder} | {m['n_heads']} | {m['n_enc_layers']}+"
            f"{m['n_dec_layers']} | {norm}, warm-up {t['warmup_steps']} | "
            f"{r['edges_per_sentence']} | {r['train_tokens_per_s']:,.0f} | {r['val_bleu']:.2f} | "
            f"{s['bleu_cased']:.2f} | {s['bleu_tok_lc']:.2f} |")
    return "\n".join(rows)


def load_results(results: Path) -> dict[str, dict]:
    """Every experiment's results file, by name (analyses' files are not experiments)."""
    found = {}
    for path in sorted(results.glob("*.json")):
        r = json.loads(path.read_text(encoding="utf-8"))
        if "scores" in r:
            found[r["name"]] = r
    return found


def seed_spread(runs: dict[str, dict]) -> str:
    """The two seeds of each repeated experiment, side by side: the noise floor."""
    lines = []
    for a, b in seed_pairs(runs):
        ta = a["scores"]["test_2016_flickr"]["bleu_tok_lc"]
        tb = b["scores"]["test_2016_flickr"]["bleu_tok_lc"]
        lines.append(f"- `{a['name']}` vs `{b['name']}` (seeds {a['config']['train']['seed']} "
                     f"and {b['config']['train']['seed']}): val BLEU {a['val_bleu']:.2f} / "
                     f"{b['val_bleu']:.2f} (spread {abs(a['val_bleu'] - b['val_bleu']):.2f}), "
                     f"test2016 tok, lc {ta:.2f} / {tb:.2f} (spread {abs(ta - tb):.2f})")
    if not lines:
        return ""
    return ("Seed spread, the noise floor of every difference above (same config, another "
            "seed):\n\n" + "\n".join(lines))


def read_json(path: Path) -> dict | None:
    """The record at ``path``, or None if there is none yet."""
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def fmt(value: float | None, spec: str = ".2f") -> str:
    """A number for the README; ``n/a`` where an analysis had nothing to measure."""
    return "n/a" if value is None else format(value, spec)


def heads_summary(results: Path) -> str:
    """Val BLEU as heads of one attention type are pruned (``repro/heads.py``)."""
    r = read_json(results / "heads_pruning.json")
    if r is None:
        return ""
    curves = {kind: {p["heads_kept"]: p["bleu_tok_lc"] for p in c["points"]}
              for kind, c in r["curves"].items()}
    kept = sorted(set().union(*curves.values()), reverse=True)
    rows = ["| heads kept (of one type) | " + " | ".join(curves) + " |",
            "|---" * (len(curves) + 1) + "|"]
    rows += [f"| {k} | " + " | ".join(fmt(c.get(k)) for c in curves.values()) + " |"
             for k in kept]
    first, last = r.get("importance_sentences", [0, r["sentences"]])
    return (f"**Head pruning** (`repro/heads.py` on `graph_complete`, greedy decoding). "
            f"Importance = val NLL increase when the head alone is masked, measured on val "
            f"sentences {first}-{last}; heads are then removed least important first, one type "
            f"at a time (the other two keep all heads), and val BLEU (tok, lc) is measured on "
            f"the first {r['sentences']} val sentences:\n\n" + "\n".join(rows)
            + "\n\n![head pruning](results/experiments/heads_pruning.png)")


def syntax_summary(results: Path) -> str:
    """Encoder heads against adjacency, entropy and alignment (``repro/syntax_study.py``)."""
    r = read_json(results / "syntax" / "syntax_study.json")
    if r is None:
        return ""
    enc, cross = r["encoder"], r["cross"]
    lines = []
    for layer in range(1, enc["layers"] + 1):
        heads = [h for h in enc["per_head"] if h["layer"] == layer]
        best = max(heads, key=lambda h: h["adjacent_share"])
        lines.append(f"| {layer} | {min(h['adjacent_share'] for h in heads):.2f} - "
                     f"{best['adjacent_share']:.2f} (head {best['head']}) | "
                     f"{sum(h['mean_entropy'] for h in heads) / len(heads):.2f} |")
    cross_rows = ", ".join(f"layer {c['layer']}: {fmt(c['share_predicting'])}"
                           for c in cross["per_layer"])
    figures = " ".join(f"![{k}](results/experiments/syntax/{v})" for k, v in r["figures"].items())
    return ("**Neural syntax** (`repro/syntax_study.py` on `graph_complete`, "
            f"{r['sentences']} val sentences, words from spaCy's rule-based tokenizer; "
            f"{r['rule']['word_attention'].split(':')[0]}). Share of words whose strongest "
            "other word is a neighbour, per encoder layer (range over heads), and mean row "
            f"entropy. Baselines: a uniformly random choice gives "
            f"{enc['uniform_adjacent_share']:.2f}; uniform attention over the pieces, merged by "
            f"the same rule (which favours words of many pieces; ties split evenly), "
            f"{fmt(enc.get('length_only_adjacent_share'))}; uniform attention has "
            f"{enc['uniform_entropy']:.2f} nats:\n\n"
            "| layer | adjacent share | entropy (nats) |\n|---|---|---|\n" + "\n".join(lines)
            + f"\n\nHead agreement (Jaccard of strongest edges): "
            f"{fmt(r['agreement']['mean_within_layer'])} within a layer, "
            f"{fmt(r['agreement']['mean_across_layers'])} across layers. Cross-attention: of "
            f"{cross['candidates']} target words that also occur in the source, the share "
            f"whose strongest source word is that word when it is predicted ({cross_rows}; "
            f"chance {fmt(cross['uniform_chance_share'])}, length-only choice "
            f"{fmt(cross.get('length_only_share'))}){most_frequent(cross)}.\n\n{figures}")


def most_frequent(cross: dict) -> str:
    """How much of the identical-word test one word makes up: a caveat on its shares."""
    words = cross.get("most_frequent_identical_words")
    if not words:
        return ""
    word, count = words[0]
    return f"; {count} of the {cross['candidates']} are the word '{word}'"


def probe_summary(results: Path) -> str:
    """Attention entropy and score gradients with and without 1/sqrt(d_k)."""
    r = read_json(results / "scaling_probe.json")
    if r is None:
        return ""
    rows = ["| run | d_k | encoder entropy, first -> last probe (nats) | encoder score-gradient "
            "RMS, first probe / median of the second half | probe NLL, last |",
            "|---|---|---|---|---|"]
    for name, v in r["variants"].items():
        first, last = v["points"][0], v["points"][-1]
        half = r["settings"]["updates"] // 2  # past warm-up and the first steep descent
        grad = median(p["score_grad_rms"]["enc"] for p in v["points"] if p["update"] >= half)
        rows.append(f"| {name} | {v['d_k']} | {first['entropy']['enc']:.2f} -> "
                    f"{last['entropy']['enc']:.2f} | {first['score_grad_rms']['enc']:.1e} / "
                    f"{grad:.1e} | {last['nll']:.2f} |")
    st = r["settings"]
    return (f"**Scaling the scores** (`repro/scaling_probe.py`: {st['updates']} updates of "
            f"{st['max_tokens']} tokens each, probes on {st['probe_pairs']} fixed val pairs):"
            "\n\n" + "\n".join(rows)
            + "\n\n![scaling probe](results/experiments/scaling_probe.png)")


def summary(results: Path) -> str:
    """The README section between the markers: table, seed spread, figures, analyses."""
    runs = load_results(results)
    parts = [summary_table(results), seed_spread(runs)]
    parts += [f"![{name[:-4]}](results/experiments/{name})" for name in figures_shown(runs)]
    learned = read_json(results / "learned_graph_w4.json")
    if learned is not None:
        parts.append(f"The learned graph (`graph_learned_4`): {learned['edges']:,} edges over "
                     f"{learned['sentences']:,} sentences; of the edges between two different "
                     f"tokens, {fmt(learned['within_window_share_non_self'], '.0%')} lie inside "
                     "the window-4 graph (random wiring with the same in-degrees: "
                     f"{fmt(learned.get('random_within_window_share_non_self'), '.0%')}).")
    parts += [heads_summary(results), syntax_summary(results), probe_summary(results)]
    return "\n\n".join(p for p in parts if p)


def update_experiments_section(results: Path, readme: Path) -> None:
    """The figures into ``results``, and the section of ``readme`` between its
    ``experiments`` markers, from the result files in ``results``."""
    write_figures(load_results(results), results)
    write_section(readme, EXPERIMENTS_SECTION, summary(results))
