"""Figures, samples and the results table of ``repro/README.md``, all from result files.

``python -m repro.report`` regenerates the table between the ``<!-- results -->`` markers of
``repro/README.md`` from every ``repro/results/*.json`` a run wrote; nothing is typed by hand.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

# Published numbers we compare against (test_2016_flickr, en->de, lowercased tokenised BLEU).
ANCHORS = [
    ("DGL Transformer example, 6+6 layers (word level)", 35.41),
    ("DGL Transformer example, 2+2 layers (word level)", 36.45),
    ("Transformer-Tiny, text-only baselines in multimodal MT papers (joint BPE, GPU)", 41.0),
]
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"


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
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_samples(name: str, samples: list[dict], path: Path) -> None:
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


def results_table(results_dir: Path) -> str:
    rows = ["| system | test_2016_flickr BLEU (tok, lc) | sacreBLEU cased | sacreBLEU lc |"
            " wall time | source |", "|---|---|---|---|---|---|"]
    for label, bleu in ANCHORS:
        rows.append(f"| {label} | {bleu:.2f} | - | - | - | published |")
    for path in sorted(results_dir.glob("*.json")):
        r = json.loads(path.read_text())
        if "scores" not in r or "test_2016_flickr" not in r["scores"]:
            continue
        s = r["scores"]["test_2016_flickr"]
        m = r["config"]["model"]
        label = (f"**ours: {r['name']}** ({m['n_enc_layers']}+{m['n_dec_layers']} layers, "
                 f"d={m['d_model']}, beam {r['config']['eval']['beam_size']}, "
                 f"{r['threads']} CPU threads)")
        rows.append(f"| {label} | **{s['bleu_tok_lc']:.2f}** | {s['bleu_cased']:.2f} | "
                    f"{s['bleu_lc']:.2f} | {wall_time(r)} | `{path.as_posix()}` |")
    return "\n".join(rows)


def update_readme(results_dir: Path, readme: Path) -> None:
    """Replace the text between the result markers of ``readme`` with a fresh table."""
    text = readme.read_text(encoding="utf-8")
    if BEGIN not in text or END not in text:
        raise SystemExit(f"{readme}: missing {BEGIN} / {END} markers")
    table = results_table(results_dir)
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    readme.write_text(pattern.sub(lambda _: f"{BEGIN}\n{table}\n{END}", text), encoding="utf-8")


if __name__ == "__main__":
    update_readme(Path("repro/results"), Path("repro/README.md"))
    sys.exit(0)
