"""A mock results folder for smoke-testing the lesson-07 draft before every run is staged.

    .venv/bin/python repro/results/staging/mock07.py OUT

Writes into OUT (a copy of the tree's ``repro/results/experiments``) every staged record, and
for each config of ``repro/experiments`` still without one a fake record (a staged template
renamed, its BLEU shifted) and a fake ``verdicts.json`` whose verdicts are the ones the draft
states, so that the draft's code runs end to end. Nothing here is a result: it only exercises
the code paths. Deleted with the staging folder.
"""

from __future__ import annotations

import json
import shutil
import sys
import zlib
from pathlib import Path

from dgl_transformer.mt.configs import load_config
from repro import essay

STAGING = Path("repro/results/staging")
OLD = Path("repro/results/experiments")
#: The verdicts the draft states (changed group -> verdict); the rest are "not decided".
STATED = {"graph_window_1": "better", "graph_window_2": "better", "graph_hierarchy_2": "better",
          "scores_unscaled": "worse", "converged_enc_mean": "worse",
          ("norm_post_warmup", "norm_pre_warmup"): "better",
          ("norm_post_warmup_lr1e-3", "norm_pre_warmup_lr1e-3"): "better",
          ("norm_post_warmup_lr5e-4", "norm_pre_warmup_lr5e-4"): "better",
          "norm_pre_nowarmup": "worse", "norm_pre_nowarmup_lr1e-3": "better",
          "norm_pre_nowarmup_lr5e-4": "better", "norm_post_nowarmup_lr1e-3": "worse"}


def shift(name: str) -> float:
    return (zlib.crc32(name.encode()) % 400) / 100 - 2


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    for p in STAGING.iterdir():
        if p.suffix == ".json" or p.is_dir() and p.name not in ("drafts",):
            if p.is_dir():
                shutil.copytree(p, out / p.name, dirs_exist_ok=True)
            else:
                shutil.copy(p, out / p.name)
    for extra in ("scaling_probe.json", "learned_graph_w4.json"):
        if not (out / extra).exists():
            shutil.copy(OLD / extra, out / extra)
    template = json.loads((STAGING / "graph_complete.json").read_text())
    default = json.loads(Path("repro/results/default.json").read_text())
    for cfg_path in sorted(Path("repro/experiments").glob("[!_]*.yaml")):
        name = cfg_path.stem
        if (out / f"{name}.json").exists():
            continue
        base = default if name.startswith("converged") else template
        cfg = load_config(cfg_path, ["train.threads=1", f"train.out_dir=runs/experiments/{name}"])
        record = json.loads(json.dumps(base))
        old = OLD / f"{name.split('_seed')[0]}.json"
        edges = json.loads(old.read_text())["edges_per_sentence"] if old.exists() else 0
        record.update(name=name, config=cfg.to_dict(), train_steps=cfg.train.max_steps,
                      edges_per_sentence=edges or template["edges_per_sentence"],
                      train_tokens_per_s=template["train_tokens_per_s"],
                      val_bleu=template["val_bleu"])
        for split in ("val", "test_2016_flickr"):
            score = record["scores"][split]
            score["bleu_dgl"] = 0.3 if name.startswith("norm_post_") and "_lr" not in name \
                else round(score["bleu_dgl"] + shift(name) - 5 * ("_lr5e-4" in name), 2)
        (out / f"{name}.json").write_text(json.dumps(record, indent=1))
    verdicts = []
    for question, baseline, changed in essay.PAIRS:
        seeds = [1, 2, 3] if (out / f"{changed}_seed3.json").exists() else [1]
        said = STATED.get((baseline, changed), STATED.get(changed, "not decided"))
        sign = {"better": 1, "worse": -1}.get(said, 0)
        lean = 0.2 if changed == "graph_window_4" or sign else -0.2
        per_seed = [{"seed": s, "protocol": "bleu_dgl", "updates": 650, "baseline_updates": 650,
                     "val_delta": sign * 1.0 + 0.1,
                     "test": {"delta": sign * 1.5 + lean, "ci95": [sign * 1.5 - 0.7,
                                                                 sign * 1.5 + 1.1]}}
                    for s in seeds]
        if changed == "graph_window_4":  # the draft: one seed clear of zero, two not
            per_seed[0]["test"]["ci95"] = [0.05, 1.5]
        if changed == "heads_2" and len(per_seed) == 3:  # the draft: one interval below zero
            per_seed[1]["test"] = {"delta": -1.7, "ci95": [-2.6, -0.8]}
        scale = 15 if changed == "scores_unscaled" else 1  # the draft: by far the largest
        updates = 2400 if baseline == "default" else 650
        verdicts.append({"question": question, "baseline": baseline, "changed": changed,
                         "seeds": seeds, "updates": [updates], "val_delta_mean": sign * scale,
                         "val_delta_sd": None, "per_seed": per_seed, "verdict": said})
    rule = essay.__doc__.split("**The rule.** ")[1].split("\n\n")[0].replace("\n", " ")
    (out / "verdicts.json").write_text(json.dumps({"rule": rule, "verdicts": verdicts}))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
