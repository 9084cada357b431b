"""The essay's summary in ``repro/README.md`` (section ``experiments``), generated from the
result files of ``make experiments``: one table row per configuration (its seeds together),
the verdicts of ``repro/essay.py``, the figures (``experiment_figures.py``), and one paragraph
per analysis of trained models."""

from __future__ import annotations

import json
from pathlib import Path
from statistics import mean, median, stdev

from .experiment_figures import figures_shown, group_name, write_figures
from .markers import write_section

EXPERIMENT_RESULTS = Path("repro/results/experiments")
EXPERIMENTS_SECTION = "experiments"


def mean_sd(values: list[float]) -> str:
    """Values over seeds as 'mean +- sample standard deviation' (one value: itself)."""
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{mean(values):.2f} +- {stdev(values):.2f}"


def summary_table(results: Path) -> str:
    """One row per configuration (its seeds together): what it changed, its budget and seeds,
    and what it measured (BLEU: mean +- sample standard deviation over the seeds, val decoded
    as test is, in the runs' headline protocol), with the verdict against its baseline from
    ``verdicts.json``."""
    groups: dict[str, list[dict]] = {}
    for r in load_results(results).values():
        groups.setdefault(group_name(r["name"]), []).append(r)
    verdicts: dict[str, dict] = {}  # against the first baseline listed (random_4: complete)
    for v in (read_json(results / "verdicts.json") or {}).get("verdicts", []):
        verdicts.setdefault(v["changed"], v)
    rows = ["| configuration | encoder graph, aggregator | heads | layers | norm, warm-up, lr | "
            "updates | seeds | edges per sentence | val BLEU | test2016 BLEU | verdict |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, runs in groups.items():
        r = runs[0]
        m, t = r["config"]["model"], r["config"]["train"]
        protocol = r["config"]["eval"].get("protocol", "bleu_tok_lc")
        encoder = f"{m.get('encoder_graph', 'complete')}, {m.get('enc_aggregator', 'attention')}"
        decoder = m.get("dec_aggregator", "attention")
        if decoder != "attention":
            encoder += f", decoder self: {decoder}"
        norm = "pre-LN" if m.get("norm_first", True) else "post-LN"
        warmup = t["warmup_steps"] if t.get("warmup", "linear") == "linear" else "none"
        val = [x["scores"]["val"][protocol] for x in runs if "val" in x["scores"]]
        test = [x["scores"]["test_2016_flickr"][protocol] for x in runs]
        v = verdicts.get(name)
        verdict = (f"{v['verdict']} {'than' if v['verdict'] in ('better', 'worse') else 'against'} "
                   f"`{v['baseline']}`" if v else "")
        rows.append(
            f"| `{name}` | {encoder} | {m['n_heads']} | {m['n_enc_layers']}+"
            f"{m['n_dec_layers']} | {norm}, {warmup}, {t['lr']:g} | {r['train_steps']:,} | "
            f"{', '.join(str(x['config']['train']['seed']) for x in runs)} | "
            f"{r['edges_per_sentence']} | {mean_sd(val) if val else '-'} | "
            f"`{protocol}` {mean_sd(test)} | {verdict} |")
    return "\n".join(rows)


def verdicts_table(results: Path) -> str:
    """Every comparison of ``repro/essay.py``'s list whose runs exist: the val difference over
    the seeds, the paired test difference of each seed with its 95% interval, the verdict."""
    v = read_json(results / "verdicts.json")
    if not v or not v["verdicts"]:
        return ""
    rows = ["| question | baseline -> changed | seeds | updates | val difference | test2016 "
            "difference per seed [95% interval] | verdict |", "|---|---|---|---|---|---|---|"]
    for d in v["verdicts"]:
        val = f"{d['val_delta_mean']:+.2f}" + (
            f" +- {d['val_delta_sd']:.2f}" if d["val_delta_sd"] is not None else "")
        test = "; ".join(f"{s['test']['delta']:+.2f} [{s['test']['ci95'][0]:+.2f}, "
                         f"{s['test']['ci95'][1]:+.2f}]" for s in d["per_seed"])
        rows.append(f"| {d['question']} | `{d['baseline']}` -> `{d['changed']}` | "
                    f"{', '.join(map(str, d['seeds']))} | "
                    f"{', '.join(f'{u:,}' for u in d['updates'])} | {val} | {test} | "
                    f"**{d['verdict']}** |")
    return (f"The decision rule (`repro/essay.py`): {v['rule']}\n\n" + "\n".join(rows))


def load_results(results: Path) -> dict[str, dict]:
    """Every experiment's results file, by name (analyses' files are not experiments)."""
    found = {}
    for path in sorted(results.glob("*.json")):
        r = json.loads(path.read_text(encoding="utf-8"))
        if "scores" in r:
            found[r["name"]] = r
    return found


def read_json(path: Path) -> dict | None:
    """The record at ``path``, or None if there is none yet."""
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def fmt(value: float | None, spec: str = ".2f") -> str:
    """A number for the README; ``n/a`` where an analysis had nothing to measure."""
    return "n/a" if value is None else format(value, spec)


def heads_summary(results: Path, stem: str = "heads_pruning",
                  model: str = "`graph_complete`") -> str:
    """Val BLEU as heads of one attention type are pruned (``repro/heads.py``)."""
    r = read_json(results / f"{stem}.json")
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
    return (f"**Head pruning** (`repro/heads.py` on {model}, greedy decoding). "
            f"Importance = val NLL increase when the head alone is masked, measured on val "
            f"sentences {first}-{last}; heads are then removed least important first, one type "
            f"at a time (the other two keep all heads), and val BLEU (tok, lc) is measured on "
            f"the first {r['sentences']} val sentences:\n\n" + "\n".join(rows)
            + f"\n\n![head pruning](results/experiments/{stem}.png)")


def syntax_summary(results: Path, folder: str = "syntax",
                   model: str = "`graph_complete`") -> str:
    """Encoder heads against adjacency, entropy and alignment (``repro/syntax_study.py``)."""
    r = read_json(results / folder / "syntax_study.json")
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
    figures = " ".join(f"![{k}](results/experiments/{folder}/{v})"
                       for k, v in r["figures"].items())
    return (f"**Neural syntax** (`repro/syntax_study.py` on {model}, "
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
    parts = [summary_table(results), verdicts_table(results)]
    parts += [f"![{name[:-4]}](results/experiments/{name})" for name in figures_shown(runs)]
    learned = read_json(results / "learned_graph_w4.json")
    if learned is not None:
        parts.append(f"The learned graph (`graph_learned_4`): {learned['edges']:,} edges over "
                     f"{learned['sentences']:,} sentences; of the edges between two different "
                     f"tokens, {fmt(learned['within_window_share_non_self'], '.0%')} lie inside "
                     "the window-4 graph (random wiring with the same in-degrees: "
                     f"{fmt(learned.get('random_within_window_share_non_self'), '.0%')}).")
    converged = "the converged default (`repro/models/default.pt`, 2,400 updates)"
    parts += [heads_summary(results), syntax_summary(results),
              heads_summary(results, "heads_pruning_converged", converged),
              syntax_summary(results, "syntax_converged", converged), probe_summary(results)]
    return "\n\n".join(p for p in parts if p)


def update_experiments_section(results: Path, readme: Path) -> None:
    """The figures into ``results``, and the section of ``readme`` between its
    ``experiments`` markers, from the result files in ``results``."""
    write_figures(load_results(results), results)
    write_section(readme, EXPERIMENTS_SECTION, summary(results))
