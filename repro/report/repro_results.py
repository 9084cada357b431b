"""What ``make repro`` generates from its result files: each run's curves and samples, and the
results table, the targets block and the time-to-BLEU plot of ``repro/README.md``.

The table (section ``results``) and the targets (section ``targets``) are regenerated from
every ``repro/results/*.json`` a run wrote (``python -m repro.report``); nothing is typed by
hand.
"""

from __future__ import annotations

import json
from pathlib import Path

from .figures import plt, save_figure
from .markers import write_section

#: The protocol columns of the table, first to last (see mt/evaluate.py and the README).
RESULT_PROTOCOL_COLUMNS = {
    "bleu_cased": "sacreBLEU cased (13a, detokenised)",
    "bleu_dgl": "DGL protocol (Moses -a -no-escape, cased, tokenised)",
    "bleu_tok_lc": "tok, lc (official lc.norm.tok refs)",
}
#: Published numbers (test_2016_flickr, en->de), each in the protocol its authors scored with.
PUBLISHED_BLEU_ANCHORS = [
    ("DGL Transformer example, 6+6 layers (word level)", "bleu_dgl", 35.41),
    ("DGL Transformer example, 2+2 layers (word level)", "bleu_dgl", 36.45),
    ("Transformer-Tiny, text-only (Wu et al., ACL 2021; joint BPE, 2 GPUs)", "bleu_tok_lc", 41.02),
]
REPRO_RESULTS = Path("repro/results")
REPRO_README = Path("repro/README.md")
RESULTS_SECTION, TARGETS_SECTION = "results", "targets"
#: What each config set out to reach on test2016 (the [Repro 2] issue), by protocol; None: no
#: target, only the comparison with the anchors in that protocol (the word-level baseline
#: against DGL's word-level example).
REPRO_BLEU_TARGETS = {"default": {"bleu_dgl": 38.0, "bleu_tok_lc": 40.0},
                      "long": {"bleu_tok_lc": 41.1}, "word": {"bleu_dgl": None}}


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


def wall_time(result: dict) -> str:
    """Wall time of the run; a resumed run adds the training time spent before it resumed."""
    text = f"{result['wall_seconds'] / 60:.1f} min"
    before = result.get("resumed_from")
    if before:
        text += (f" + {before['train_seconds'] / 60:.1f} min of training before resuming at "
                 f"step {before['step']}")
    return text


def run_label(r: dict) -> str:
    """The table's name for a run: its name, text units, layers, width, beam and threads."""
    m, d = r["config"]["model"], r["config"].get("data", {})
    variant = d.get("variant", "?")
    return (f"**ours: {r['name']}** ({variant}, {m['n_enc_layers']}+{m['n_dec_layers']} layers, "
            f"d={m['d_model']}, beam {r['config']['eval']['beam_size']}, "
            f"{r['threads']} CPU threads)")


def repro_results(results_dir: Path) -> list[tuple[Path, dict]]:
    """Every result file of a ``make repro`` run that scored test_2016_flickr, by name."""
    found = []
    for path in sorted(results_dir.glob("*.json")):
        r = json.loads(path.read_text())
        if "test_2016_flickr" in r.get("scores", {}):
            found.append((path, r))
    return found


def results_table(results_dir: Path) -> str:
    """One row per published anchor (its number in its own protocol's column, '-' elsewhere)
    and one per run (every protocol it was scored with; '-' for one an older run lacks)."""
    columns = RESULT_PROTOCOL_COLUMNS
    rows = ["| system | " + " | ".join(columns.values()) + " | wall time | source |",
            "|---|" + "---|" * len(columns) + "---|---|"]
    for label, protocol, bleu in PUBLISHED_BLEU_ANCHORS:
        cells = [f"{bleu:.2f}" if p == protocol else "-" for p in columns]
        rows.append(f"| {label} | " + " | ".join(cells) + " | - | published |")
    for path, r in repro_results(results_dir):
        s = r["scores"]["test_2016_flickr"]
        cells = [f"**{s[p]:.2f}**" if p in s else "-" for p in columns]
        rows.append(f"| {run_label(r)} | " + " | ".join(cells)
                    + f" | {wall_time(r)} | `{path.as_posix()}` |")
    return "\n".join(rows)


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
    ax.legend()
    save_figure(fig, path)


def target_report(results_dir: Path) -> str:
    """Per run named in :data:`REPRO_BLEU_TARGETS`: each target met or missed by how much, the
    best anchor in the same protocol, and what the validation curve did at the end of
    training."""
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
                verdict = f"target {target:.1f} {'met' if gap >= 0 else f'missed by {-gap:.2f}'}; "
            anchors = [(label, bleu) for label, p, bleu in PUBLISHED_BLEU_ANCHORS
                       if p == protocol]
            best = max(anchors, key=lambda a: a[1])
            parts.append(f"`{protocol}` {s[protocol]:.2f}: {verdict}"
                         f"{best[0].split(' (')[0].split(',')[0]}'s best published "
                         f"{best[1]:.2f} {'passed' if s[protocol] > best[1] else 'not reached'} "
                         f"({s[protocol] - best[1]:+.2f})")
        epochs = [h for h in r["history"] if "val_bleu_greedy" in h]
        last, best_epoch = epochs[-1], max(epochs, key=lambda h: h["val_bleu_greedy"])
        recent = epochs[-5:]
        per_epoch = (recent[0]["val_nll"] - recent[-1]["val_nll"]) / max(1, len(recent) - 1)
        reached = ", ".join(f"{level} at {minutes} min" if minutes is not None else
                            f"{level} never" for level, minutes in r["time_to_bleu"].items()
                            if level != "metric")
        budget = r["config"]["train"]["max_tokens"]
        candidates = ", ".join(f"{name} {c['val_bleu_greedy']:.2f}"
                               for name, c in r["val_candidates"].items())
        lines.append(
            f"* **{r['name']}**: " + "; ".join(parts) + ". Greedy val BLEU reached "
            f"{reached}; its best epoch ({best_epoch['epoch'] + 1} of {len(epochs)}, "
            f"{best_epoch['val_bleu_greedy']:.2f}) against the last "
            f"({last['val_bleu_greedy']:.2f}); over the last {len(recent)} epochs val NLL fell "
            f"by {per_epoch:.3f} per epoch "
            + ("(still improving when training stopped" if per_epoch > 0.005 else "(flat")
            + f"; stop: {r['stopped_early'] or 'max_epochs'}). Weights chosen on val (greedy "
            f"BLEU): {candidates} -> `{r['chosen_weights']}`. Training saw {r['train_steps']:,} "
            f"updates of at most {budget:,} source and target tokens together (at most "
            f"{r['train_steps'] * budget / 1e6:.1f}M).")
    return "\n".join(lines)


def update_readme(results_dir: Path, readme: Path) -> None:
    """Replace the results table and the targets of ``readme`` (and the time-to-BLEU plot)
    with fresh ones."""
    plot_time_to_bleu(results_dir, results_dir / "time_to_bleu.png")
    write_section(readme, RESULTS_SECTION, results_table(results_dir))
    write_section(readme, TARGETS_SECTION, target_report(results_dir))
