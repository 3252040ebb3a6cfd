#!/usr/bin/env bash
# Warm against cold job starts (ablate.core.execution.warm): the same Snakemake targets run from a
# fresh copy of this checkout each time, alternating ABLATE_WARM_JOBS=1 (warm) and 0 (cold). Per
# run: its wall seconds, the machine's CPU seconds over the run (/proc/stat: user+nice+system+irq
# +softirq of every core, so run it on an otherwise idle machine), the jobs that ran, and the
# per-job table of bench/tools/job_times.py (each job's `startup` phase).
#
#   bench/tools/warm_ab.sh WORK RESULTS "warm cold warm cold" [snakemake arguments...]
#   bench/tools/warm_ab.sh /tmp/ab results "warm cold" -c2                 # the embedded default
#   bench/tools/warm_ab.sh /tmp/ab results/smoke "cold warm" results/smoke/recovery.csv -c16 \
#       --resources gpu=2 --configfile config/ministral3b-smoke.yaml
#
# Each run's log is WORK/<i>-<mode>.log; the summary lines go to stdout.
set -u
work=$1 results=$2 order=$3
shift 3
repo=$(cd "$(dirname "$0")/../.." && pwd)
cpu() { awk '/^cpu /{print $2+$3+$4+$7+$8}' /proc/stat; }
calc() { python -c "print(round($1, 1))"; }
mkdir -p "$work"
i=0
for mode in $order; do
  i=$((i + 1))
  dir=$work/$i-$mode
  rm -rf "$dir" && mkdir -p "$dir"
  (cd "$repo" && tar --exclude=./results --exclude=./.snakemake --exclude=./.git --exclude=./.ablate \
    --exclude=./.venv --exclude=./build -cf - .) | tar -xf - -C "$dir"
  switch=1
  [ "$mode" = cold ] && switch=0
  c0=$(cpu) t0=$(date +%s.%N) load=$(cut -d' ' -f1 /proc/loadavg)
  path=${PYTHONPATH:+$PYTHONPATH:}$dir/src
  (cd "$dir" && ABLATE_WARM_JOBS=$switch PYTHONPATH=$path python -m snakemake "$@" >"$dir.log" 2>&1)
  rc=$?
  t1=$(date +%s.%N) c1=$(cpu)
  echo "run $i $mode: exit $rc, wall $(calc "$t1 - $t0") s, CPU $(calc "($c1 - $c0) / 100") s," \
    "$(grep -c 'ran in' "$dir.log") jobs ran, load at start $load"
  PYTHONPATH=$path python "$repo/bench/tools/job_times.py" "$dir/$results" 2>&1 | tail -40
done
