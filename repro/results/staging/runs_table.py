"""The closing note's table of staged comparisons, per seed (markdown on stdout). Deleted with the staging folder."""
import json, glob, os
v=json.load(open('repro/results/staging/verdicts.json'))['verdicts']
rows=["| change | baseline | seed | updates | test difference [95% interval] | val difference | status |","|---|---|---|---|---|---|---|"]
for d in v:
    for s in d['per_seed']:
        t=s['test']; rows.append(f"| `{d['changed']}` | `{d['baseline']}` | {s['seed']} | {s['updates']:,} | {t['delta']:+.2f} [{t['ci95'][0]:+.2f}, {t['ci95'][1]:+.2f}] | {s['val_delta']:+.2f} | {d['verdict']} |")
staged=sorted(os.path.basename(p)[:-5] for p in glob.glob('repro/results/staging/*.json') if 'train_steps' in json.load(open(p)))
print("\n".join(rows))
print(f"\nStaged training records ({len(staged)}): " + ", ".join(f"`{n}`" for n in staged) + ". Test differences are test2016 `bleu_dgl`, changed minus baseline, with sacreBLEU-style paired-bootstrap intervals; a pair not listed lacks its baseline or its changed run so far.")
