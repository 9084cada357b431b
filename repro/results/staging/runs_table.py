"""The closing note's table of staged comparisons, one row per seed (markdown on stdout).

    python3 repro/results/staging/runs_table.py

Deleted with the staging folder.
"""

import json
from pathlib import Path

STAGING = Path("repro/results/staging")
HEADER = ("| change | baseline | seed | updates | test difference [95% interval] "
          "| val difference | status |\n|---|---|---|---|---|---|---|")


def main() -> None:
    print(HEADER)
    for v in json.loads((STAGING / "verdicts.json").read_text())["verdicts"]:
        for s in v["per_seed"]:
            t = s["test"]
            print(f"| `{v['changed']}` | `{v['baseline']}` | {s['seed']} | {s['updates']:,} | "
                  f"{t['delta']:+.2f} [{t['ci95'][0]:+.2f}, {t['ci95'][1]:+.2f}] | "
                  f"{s['val_delta']:+.2f} | {v['verdict']} |")
    staged = sorted(p.stem for p in STAGING.glob("*.json")
                    if "train_steps" in json.loads(p.read_text()))
    print(f"\nStaged training records ({len(staged)}): "
          + ", ".join(f"`{n}`" for n in staged) + ". Test differences are test2016 `bleu_dgl`, "
          "changed minus baseline, with sacreBLEU-style paired-bootstrap intervals; a pair not "
          "listed lacks its baseline or its changed run so far.")


if __name__ == "__main__":
    main()
