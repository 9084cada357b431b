#!/bin/bash
# usage: runs/lanes.sh LANE  -- take queue lines (experiment or analysis names) one at a time
cd /work/main
lane=$1
touch runs/queue.claimed runs/queue.done
[ -f runs/README_scratch.md ] || cp repro/README.md runs/README_scratch.md
while true; do
  name=$(flock runs/queue.lock bash -c '
    while read -r n; do
      [ -z "$n" ] && continue
      if ! grep -qx "$n" runs/queue.claimed; then echo "$n" >> runs/queue.claimed; echo "$n"; break; fi
    done < runs/queue.txt')
  [ -z "$name" ] && { echo "lane $lane: queue empty $(date +%H:%M)"; break; }
  echo "lane $lane: start $name $(date +%H:%M)"
  OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE MULTI30K_DIR=/work/shared/data/multi30k \
    nice .venv/bin/python -m repro.experiments --only $name --results repro/results/staging \
    --readme runs/README_scratch.md --set train.threads=1 > runs/job-$name.log 2>&1
  rc=$?
  echo "$name rc=$rc" >> runs/queue.done
  echo "lane $lane: end $name rc=$rc $(date +%H:%M)"
done
