"""Write runs/queue.txt: every experiment config without a staged record, the 2,400-update
runs first (start them early in a session), then the seed-1 runs, then seeds 2 and 3 (those
a staged pair wants, or the issue asks for, first; seed 2 before a seed 3 that may be
dropped).

    python3 repro/results/staging/make_queue.py

Deleted with the staging folder.
"""

import json
from pathlib import Path

STAGING = Path("repro/results/staging")
#: the groups the issue asks three seeds of whatever their first seed says (their spread)
THREE_SEEDS = {"graph_complete", "graph_window_1", "graph_window_4", "heads_1", "heads_2",
               "heads_8"}


def main() -> None:
    names = [p.stem for p in sorted(Path("repro/experiments").glob("[!_]*.yaml"))
             if not (STAGING / f"{p.stem}.json").exists()]
    converged = [n for n in names if n.startswith("converged")]
    seed_1 = [n for n in names if n not in converged and "_seed" not in n]
    seeds = [n for n in names if n not in converged and "_seed" in n]
    # seeds a staged pair wants, or the issue asks for, before the seeds that may yet be dropped
    verdicts = json.loads((STAGING / "verdicts.json").read_text())["verdicts"]
    wanted = THREE_SEEDS | {g for v in verdicts if v["verdict"] == "wants seeds"
                            for g in (v["baseline"], v["changed"])}
    # every seed 2 before any seed 3, and last the seeds 3 that may yet be dropped: seeds stop
    # at the first interval across zero (want_seeds.py), so a pair's seed 2 is judged before
    # its seed 3 is claimed
    def order(name: str) -> tuple[bool, bool, bool]:
        group, seed = name.rsplit("_seed", 1)
        return group not in wanted, seed == "3", seed == "3" and group not in THREE_SEEDS

    seeds.sort(key=order)
    Path("runs").mkdir(exist_ok=True)
    Path("runs/queue.txt").write_text("".join(f"{n}\n" for n in converged + seed_1 + seeds))
    print(f"{len(names)} runs queued: {len(converged)} of 2,400 updates, {len(seed_1)} seed-1, "
          f"{len(seeds)} seeds 2 and 3")


if __name__ == "__main__":
    main()
