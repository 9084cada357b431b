"""What ``make repro`` generates from its result files: each run's curves and samples, and the
results table, the targets block, the search for the 1-hour default and the plots of
``repro/README.md``.

The table (section ``results``), the targets (``targets``) and the default's search and seeds
(``sweep``) are regenerated from every ``repro/results/*.json`` a run wrote and from the paired
comparisons ``python -m repro.compare`` wrote (``repro/results/comparisons.json``), by
``python -m repro.report``; nothing is typed by hand. Scores carry their 95% bootstrap interval
(``mt/bleu.py``) where the result file has one.
"""

from __future__ import annotations

import json
from pathlib import Path

from dgl_transformer.mt.configs import VAL_BLEU_KEYS, load_config

from .experiments import mean_sd
from .figures import plt, save_figure
from .markers import write_section

#: The protocol columns of the table, first to last (see mt/evaluate.py and the README).
RESULT_PROTOCOL_COLUMNS = {
    "bleu_cased": "sacreBLEU cased (13a, detokenised)",
    "bleu_dgl": "DGL protocol (Moses -a -no-escape, cased, tokenised)",
    "bleu_tok_lc": "tok, lc (official lc.norm.tok refs)",
}
#: The columns that score case: not shown for a run that writes lowercased text.
CASED_PROTOCOLS = ("bleu_cased", "bleu_dgl")
#: Published numbers (test_2016_flickr, en->de), each in the protocol its authors scored with.
PUBLISHED_BLEU_ANCHORS = [
    ("DGL Transformer example, 6+6 layers (word level)", "bleu_dgl", 35.41),
    ("DGL Transformer example, 2+2 layers (word level)", "bleu_dgl", 36.45),
    ("Transformer-Tiny, text-only (Wu et al., ACL 2021; joint BPE, 2 GPUs)", "bleu_tok_lc", 41.02),
]
REPRO_RESULTS = Path("repro/results")
REPRO_README = Path("repro/README.md")
RESULTS_SECTION, TARGETS_SECTION, SWEEP_SECTION = "results", "targets", "sweep"
RECIPE_SECTION = "recipe"
#: Validation BLEU levels (greedy, ``bleu_tok_lc``) whose first crossing a run reports.
BLEU_LEVELS = (30, 35, 38)
#: Transformer-Tiny's recipe as a config: what the default is compared with, setting by setting.
ANCHOR_CONFIG = Path("repro/configs/tiny.yaml")
#: The default's seeds (its own block), and the prefix of the runs that searched for it.
SEED_RUNS = ("default", "default_seed2", "default_seed3")
SWEEP_PREFIX = "default_"
#: The configuration the default's search starts from and writes back.
DEFAULT_CONFIG = Path("repro/configs/default.yaml")
#: Settings that name or place a run rather than define it.
NOT_RECIPE = {"name", "train.out_dir", "train.threads"}
#: What each config set out to reach on test2016 (the [Repro 2] issue), by protocol; None: no
#: target, only the comparison with the anchors in that protocol (the word-level baseline
#: against DGL's word-level example).
REPRO_BLEU_TARGETS = {"default": {"bleu_dgl": 38.0, "bleu_tok_lc": 40.0},
                      "word": {"bleu_dgl": None}, "tiny": {"bleu_tok_lc": 41.02}}


def plot_curves(result: dict, path: Path) -> None:
    """Training and validation loss, and validation BLEU, per epoch."""
    epochs = [h for h in result["history"] if "val_nll" in h]
    x = [h["epoch"] + 1 for h in epochs]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    left.plot(x, [h["train_nll"] for h in epochs], "o-", label="train NLL / token")
    left.plot(x, [h["val_nll"] for h in epochs], "s-", label="val NLL / token")
    left.set(xlabel="epoch", ylabel="cross-entropy (nats)", title="loss")
    left.legend()
    right.plot(x, [h["val_bleu_greedy"] for h in epochs], "o-", color="C2")
    right.set(xlabel="epoch", ylabel="BLEU (tok, lc)", title="validation BLEU (greedy)")
    fig.suptitle(f"{result['name']}: {result['config']['data']['src_lang']}->"
                 f"{result['config']['data']['tgt_lang']}, {result['threads']} CPU threads")
    save_figure(fig, path)


def write_samples(name: str, samples: list[dict], path: Path) -> None:
    """A run's sample translations beside their sources and references, as markdown."""
    lines = [f"# {name}: sample translations ({samples[0]['split'] if samples else 'none'})", ""]
    for n, s in enumerate(samples, 1):
        lines += [f"{n}. **source** {s['source']}", f"   **reference** {s['reference']}",
                  f"   **ours** {s['hypothesis']}", ""]
    path.write_text("\n".join(lines), encoding="utf-8")


def duration(seconds: float) -> str:
    """Minutes, or hours past two of them."""
    return f"{seconds / 60:.1f} min" if seconds < 7200 else f"{seconds / 3600:.2f} h"


def wall_time(result: dict) -> str:
    """Wall time of the run, data to results; a run recorded in pieces adds the training time
    spent before its last piece."""
    before = result.get("resumed_from")
    if not before:
        return duration(result["wall_seconds"])
    if before["step"] == result.get("train_steps"):  # trained earlier, only evaluated here
        return (f"{duration(result['wall_seconds'] + before['train_seconds'])}: "
                f"{duration(before['train_seconds'])} of training in an earlier run, then "
                f"{duration(result['wall_seconds'])} here to evaluate it")
    return (f"{duration(result['wall_seconds'] + before['train_seconds'])}: "
            f"{duration(before['train_seconds'])} of training before resuming at step "
            f"{before['step']:,}, then {duration(result['wall_seconds'])}")


def run_label(r: dict) -> str:
    """The table's name for a run: its name, text units, layers, width, beam and threads."""
    m, d = r["config"]["model"], r["config"].get("data", {})
    variant = d.get("variant", "?")
    return (f"**ours: {r['name']}** ({variant}, {m['n_enc_layers']}+{m['n_dec_layers']} layers, "
            f"d={m['d_model']}, beam {r['config']['eval']['beam_size']}, "
            f"{r['threads']} CPU thread{'' if r['threads'] == 1 else 's'})")


def chosen_on(r: dict) -> str:
    """The protocol whose greedy val BLEU chose a run's final weights (older runs, without
    ``eval.protocol``, chose on ``bleu_tok_lc``)."""
    return r["config"]["eval"].get("protocol", "bleu_tok_lc")


def updates(r: dict) -> str:
    """A run's number of updates, or '-' for an older file without it."""
    return f"{r['train_steps']:,}" if "train_steps" in r else "-"


def headline(r: dict) -> str:
    """The protocol a run leads with (``eval.protocol``; older files: ``bleu_dgl``)."""
    return r["config"]["eval"].get("protocol", "bleu_dgl")


def score_cell(scores: dict, protocol: str) -> str:
    """A test score in bold, with its 95% interval when the file has one; '-' if absent."""
    if protocol not in scores:
        return "-"
    ci = scores.get(f"{protocol}_ci95")
    return f"**{scores[protocol]:.2f}**" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")


def run_cells(r: dict) -> list[str]:
    """A run's test2016 cells, one per protocol column. A run trained on lowercased text
    (``lc_tok``) writes lowercased German, so its cased columns are '-': cased BLEU would only
    measure the case it never produces."""
    s = r["scores"]["test_2016_flickr"]
    lowercased = r["config"].get("data", {}).get("variant") == "lc_tok"
    return ["-" if lowercased and c in CASED_PROTOCOLS else score_cell(s, c)
            for c in RESULT_PROTOCOL_COLUMNS]


def repro_results(results_dir: Path) -> list[tuple[Path, dict]]:
    """Every result file of a ``make repro`` run that scored test_2016_flickr, by name."""
    found = []
    for path in sorted(results_dir.glob("*.json")):
        r = json.loads(path.read_text())
        if "test_2016_flickr" in r.get("scores", {}):
            found.append((path, r))
    return found


def in_search(name: str) -> bool:
    """Whether a run belongs to the default's search or seeds (the ``sweep`` section) rather
    than the results table (``default`` itself is in both)."""
    return name.startswith(SWEEP_PREFIX) or name in SEED_RUNS[1:]


def results_table(results_dir: Path) -> str:
    """The published anchors, each followed by our runs that lead with its protocol (its
    number in its own protocol's column, '-' elsewhere), then any other run; per run every
    protocol it was scored with (with 95% intervals), its updates, wall time and file."""
    columns = RESULT_PROTOCOL_COLUMNS
    rows = ["| system | " + " | ".join(columns.values()) + " | updates | wall time | source |",
            "|---|" + "---|" * len(columns) + "---|---|---|"]
    runs = [(path, r) for path, r in repro_results(results_dir) if not in_search(r["name"])]
    for protocol in dict.fromkeys([p for _, p, _ in PUBLISHED_BLEU_ANCHORS] + list(columns)):
        for label, p, bleu in PUBLISHED_BLEU_ANCHORS:
            if p == protocol:
                cells = [f"{bleu:.2f}" if c == protocol else "-" for c in columns]
                rows.append(f"| {label} | " + " | ".join(cells) + " | - | - | published |")
        for path, r in runs:
            if headline(r) == protocol:
                rows.append(f"| {run_label(r)} | " + " | ".join(run_cells(r))
                            + f" | {updates(r)} | {wall_time(r)} | `{path.as_posix()}` |")
    return "\n".join(rows)


def _tokens_seen(r: dict, h: dict) -> float | None:
    """Millions of source and target tokens trained on by the end of epoch record ``h``."""
    per_epoch = r.get("tokens_per_epoch")
    return None if per_epoch is None else (h["epoch"] + 1) * per_epoch / 1e6


def plot_time_to_bleu(results_dir: Path, path: Path) -> None:
    """Greedy val BLEU (tok, lc) against training minutes, one line per recorded run."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for _, r in repro_results(results_dir):
        epochs = [h for h in r["history"] if "val_bleu_greedy" in h]
        ax.plot([h["elapsed_s"] / 60 for h in epochs], [h["val_bleu_greedy"] for h in epochs],
                "o-", ms=3, label=f"{r['name']} ({r['config']['data']['variant']})")
    ax.set(xlabel="training minutes (2 CPU threads)", ylabel="val BLEU (tok, lc), greedy",
           title="time to BLEU")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    save_figure(fig, path)


def plot_bleu_by_updates(results_dir: Path, path: Path) -> None:
    """Greedy val BLEU (tok, lc) against updates and against tokens seen: the companion of
    the time plot, for runs of different speeds (runs whose file lacks the epoch's token
    count are left out of the right panel)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), sharey=True)
    for _, r in repro_results(results_dir):
        epochs = [h for h in r["history"] if "val_bleu_greedy" in h]
        label = f"{r['name']} ({r['config']['data']['variant']})"
        bleu = [h["val_bleu_greedy"] for h in epochs]
        left.plot([h["step"] for h in epochs], bleu, "o-", ms=3, label=label)
        tokens = [_tokens_seen(r, h) for h in epochs]
        if None not in tokens:
            right.plot(tokens, bleu, "o-", ms=3, label=label)
    left.set(xlabel="updates", ylabel="val BLEU (tok, lc), greedy", title="BLEU by updates")
    right.set(xlabel="source + target tokens seen (millions)", title="BLEU by tokens seen")
    for ax in (left, right):
        ax.grid(alpha=0.3)
    left.legend(fontsize="small")
    save_figure(fig, path)


def _first_update(epochs: list[dict], level: float) -> str:
    """The update at the end of the first epoch whose greedy val BLEU reached ``level``."""
    hit = next((h for h in epochs if h["val_bleu_greedy"] >= level), None)
    return f"{level} never" if hit is None else f"{level} at update {hit['step']:,}"


#: How close to its lowest val NLL a curve counts as flat.
FLAT_NATS = 0.02


def _against(score: float, ci: list[float] | None, anchor: float) -> str:
    """How a score stands against a published ``anchor``: the claim its 95% interval allows
    (none without an interval)."""
    if ci is None:
        return f"{score - anchor:+.2f}; no interval recorded, so no claim either way"
    interval = f"[{ci[0]:.2f}, {ci[1]:.2f}]"
    if ci[0] > anchor:
        return f"{score - anchor:+.2f}, and our 95% interval {interval} lies above it: ahead"
    if ci[1] < anchor:
        return f"{score - anchor:+.2f}, and our 95% interval {interval} lies below it: behind"
    return (f"{score - anchor:+.2f}, but it lies inside our 95% interval {interval}: no claim "
            "either way")


def _budget(r: dict) -> str:
    """How much training a run saw, in the units its batches were measured in."""
    t = r["config"]["train"]
    steps = r["train_steps"]
    if t.get("batch_rule", "tokens") == "fairseq":
        per = t.get("batches_per_update", 1)
        text = (f"{steps:,} updates of {per} batches of at most {t['max_tokens']:,} as fairseq "
                "counts them (sentences x longest side)")
    else:
        text = (f"{steps:,} updates of at most {t['max_tokens']:,} source and target tokens "
                f"together (at most {steps * t['max_tokens'] / 1e6:.1f}M)")
    if r.get("tokens_per_epoch"):
        epochs = len([h for h in r["history"] if "val_nll" in h])
        text += f"; {epochs} epochs, {epochs * r['tokens_per_epoch'] / 1e6:.1f}M tokens seen"
    return text


def target_report(results_dir: Path) -> str:
    """Per run named in :data:`REPRO_BLEU_TARGETS`: each target met or missed by how much, the
    best anchor in the same protocol and where it lies against the score's 95% interval, and
    what the validation curve did at the end of training."""
    lines = []
    for _, r in repro_results(results_dir):
        if r["name"] not in REPRO_BLEU_TARGETS:
            continue
        s = r["scores"]["test_2016_flickr"]
        parts = []
        for protocol, target in REPRO_BLEU_TARGETS[r["name"]].items():
            verdict = ""
            if target is not None:
                gap = s[protocol] - target
                verdict = f"target {target:.2f} {'met' if gap >= 0 else f'missed by {-gap:.2f}'}; "
            anchors = [(label, bleu) for label, p, bleu in PUBLISHED_BLEU_ANCHORS
                       if p == protocol]
            best = max(anchors, key=lambda a: a[1])
            parts.append(f"`{protocol}` {s[protocol]:.2f}: {verdict}against "
                         f"{best[0].split(' (')[0].split(',')[0]}'s best published "
                         f"{best[1]:.2f}, "
                         + _against(s[protocol], s.get(f"{protocol}_ci95"), best[1]))
        epochs = [h for h in r["history"] if "val_bleu_greedy" in h]
        last, best_epoch = epochs[-1], max(epochs, key=lambda h: h["val_bleu_greedy"])
        recent = epochs[-5:]
        per_epoch = (recent[0]["val_nll"] - recent[-1]["val_nll"]) / max(1, len(recent) - 1)
        best_nll = min(h["val_nll"] for h in epochs)
        flat = next(h for h in epochs if h["val_nll"] <= best_nll + FLAT_NATS)
        reached = ", ".join(_first_update(epochs, level) for level in BLEU_LEVELS)
        key = VAL_BLEU_KEYS[chosen_on(r)]
        candidates = ", ".join(f"{name} {c[key]:.2f}" for name, c in r["val_candidates"].items())
        keep = r["config"]["train"].get("keep", "better")
        lines.append(
            f"* **{r['name']}**: " + "; ".join(parts) + ". Greedy val BLEU (tok, lc) reached "
            f"{reached} (by updates, which do not depend on the machine's load); its best "
            f"epoch ({best_epoch['epoch'] + 1} of {len(epochs)}, "
            f"{best_epoch['val_bleu_greedy']:.2f}) against the last "
            f"({last['val_bleu_greedy']:.2f}); over the last {len(recent)} epochs val NLL fell "
            f"by {per_epoch:.3f} per epoch "
            + ("(still improving when training stopped" if per_epoch > 0.005 else "(flat")
            + f"; stop: {r['stopped_early'] or 'max_epochs'}); it came within {FLAT_NATS} nats "
            f"of its lowest ({best_nll:.3f}) at update {flat['step']:,}. Final weights "
            + ("chosen on val" if keep == "better" else f"by rule ({keep})")
            + f" (greedy `{chosen_on(r)}`): {candidates} -> `{r['chosen_weights']}`. Training "
            f"saw {_budget(r)}.")
    return "\n".join(lines)


def recipe(config: dict) -> dict[str, object]:
    """A run configuration as flat ``section.key`` settings, less those that only name or
    place the run."""
    flat = {f"{section}.{key}": value for section, values in config.items()
            if isinstance(values, dict) for key, value in values.items()}
    return {k: v for k, v in flat.items() if k not in NOT_RECIPE}


def recipe_table() -> str:
    """Every setting in which the default recipe differs from Transformer-Tiny's
    (``tiny.yaml``), from the two configs."""
    ours = recipe(load_config(DEFAULT_CONFIG).to_dict())
    theirs = recipe(load_config(ANCHOR_CONFIG).to_dict())
    rows = [f"| setting | `{DEFAULT_CONFIG.name}` | `{ANCHOR_CONFIG.name}` "
            "(Transformer-Tiny's recipe) |", "|---|---|---|"]
    rows += [f"| `{k}` | {_setting(k, ours)} | {_setting(k, theirs)} |"
             for k in sorted(ours.keys() | theirs.keys()) if ours.get(k) != theirs.get(k)]
    return "\n".join(rows)


def _setting(key: str, settings: dict[str, object]) -> str:
    """A setting's value as the table shows it (a dropout of None follows ``model.dropout``)."""
    value = settings.get(key)
    if value is None and key.endswith("_dropout"):
        return f"{settings['model.dropout']} (= `model.dropout`)"
    return str(value)


def _differences(r: dict, default: dict) -> str:
    """The settings in which a run's configuration differs from ``default``."""
    base, mine = recipe(default), recipe(r["config"])
    changed = [f"`{k}` {v}" for k, v in mine.items() if base.get(k) != v]
    return ", ".join(changed) or "(the default's recipe)"


def comparisons(results_dir: Path) -> list[dict]:
    """The paired comparisons ``python -m repro.compare`` wrote (none yet: [])."""
    path = results_dir / "comparisons.json"
    return json.loads(path.read_text())["comparisons"] if path.exists() else []


def seeds_report(seeds: list[dict]) -> str:
    """The default's runs that differ only in the training seed: each one's scores, threads,
    the machine's mean load and wall time (data to results), then the mean and the sample
    standard deviation of the test scores in the headline protocol."""
    p = headline(seeds[0])
    rows = ["| run | seed | val BLEU (beam, as test) | test2016 | threads | mean load | "
            "wall time |", "|---|---|---|---|---|---|---|"]
    for r in seeds:
        load = r.get("load_1m_mean")
        rows.append(f"| `{r['name']}` | {r['config']['train']['seed']} | `{p}` "
                    f"{r['scores']['val'][p]:.2f} | `{p}` "
                    f"{score_cell(r['scores']['test_2016_flickr'], p)} | {r['threads']} | "
                    f"{'-' if load is None else f'{load:.2f}'} | {wall_time(r)} |")
    spread = {split: mean_sd([r["scores"][key][p] for r in seeds])
              for split, key in (("val", "val"), ("test2016", "test_2016_flickr"))}
    return "\n".join(rows) + (f"\n\n`default` over {len(seeds)} seeds (mean +- sample "
                              f"standard deviation): val `{p}` {spread['val']}, test2016 "
                              f"`{p}` {spread['test2016']}.")


def sweep_report(results_dir: Path) -> str:
    """The search for the 1-hour default (each run, what it changes in ``default.yaml``, its
    val BLEU decoded as test is in the headline protocol, which decides, and its test score),
    the default's seeds (mean and spread) and the paired comparisons that involve the
    default."""
    found = {r["name"]: r for _, r in repro_results(results_dir)}
    default = load_config(DEFAULT_CONFIG).to_dict()
    runs = [r for name, r in found.items() if name.startswith(SWEEP_PREFIX)
            and name not in SEED_RUNS]
    lines = [f"| run | differs from `{DEFAULT_CONFIG.name}` in | updates | val BLEU (beam, as "
             "test) | test2016 | decided |", "|---|---|---|---|---|---|"]
    if runs:
        best = max(runs, key=lambda r: r["scores"]["val"][headline(r)])
        for r in runs:
            p = headline(r)
            val = r["scores"]["val"][p]
            test = score_cell(r["scores"]["test_2016_flickr"], p)
            lines.append(f"| `{r['name']}` | {_differences(r, default)} | {r['train_steps']:,} "
                         f"| `{p}` {val:.2f} | `{p}` {test} "
                         f"| {'**best on val**' if r is best else ''} |")
    seeds = [found[n] for n in SEED_RUNS if n in found]
    if len(seeds) > 1:
        lines += ["", seeds_report(seeds)]
    for c in comparisons(results_dir):
        lines += ["", f"`{c['system']}` against `{c['baseline']}` on {c['split']}, paired "
                  f"bootstrap ({c['samples']} resamples) in `{c['protocol']}`: "
                  f"{c['delta']:+.2f} BLEU, 95% interval [{c['ci95'][0]:+.2f}, "
                  f"{c['ci95'][1]:+.2f}]; the system does not score higher in "
                  f"{c['p_not_better']:.1%} of resamples."]
    return "\n".join(lines)


def update_readme(results_dir: Path, readme: Path) -> None:
    """Replace the results table, the targets and the default's search in ``readme``, and the
    time and updates plots, with fresh ones."""
    plot_time_to_bleu(results_dir, results_dir / "time_to_bleu.png")
    plot_bleu_by_updates(results_dir, results_dir / "bleu_by_updates.png")
    write_section(readme, RESULTS_SECTION, results_table(results_dir))
    write_section(readme, TARGETS_SECTION, target_report(results_dir))
    write_section(readme, SWEEP_SECTION, sweep_report(results_dir))
    write_section(readme, RECIPE_SECTION, recipe_table())
