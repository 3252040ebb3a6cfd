#!/usr/bin/env bash
# A command's wall time and the whole machine's busy CPU seconds over it (/proc/stat), and the busy
# share of the cores: `bench/tools/cpu_of.sh python -m pytest ...` (run nothing else meanwhile).
read -r _ u n s i w x y z _ < /proc/stat; b0=$((u+n+s+x+y+z)); i0=$((i+w)); t0=$(date +%s.%N)
"$@"; rc=$?
read -r _ u n s i w x y z _ < /proc/stat; b1=$((u+n+s+x+y+z)); i1=$((i+w)); t1=$(date +%s.%N)
hz=$(getconf CLK_TCK)
python3 -c "import os; n=os.cpu_count(); b=($b1-$b0)/$hz; i=($i1-$i0)/$hz; wall=$t1-$t0; print(f'wall {wall:.0f} s, busy CPU {b:.0f} s, idle {i:.0f} s, busy share of the {n} cores {b/(n*wall):.2f}')"
exit $rc
