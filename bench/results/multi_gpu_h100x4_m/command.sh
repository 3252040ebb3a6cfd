#!/bin/bash
# call M: the one-GPU path after the loop's seam and the bridge's driver changed (h70run merged),
# this tree against 05bae26, the four rows at once, each alone on its own GPU (calls H and L)
source .whl/setup.sh
nvidia-smi -L > $OUT/gpus.txt
P="--only seed-packed-flex-compile --policies causal --steps 30 --warmup 10 --window"
F="--only B6-adamw-compile --policies causal --passes 1 --warmup 3 --timed 8"
T=${1:-160}
(CUDA_VISIBLE_DEVICES=0 timeout $T python3 bench/bench_packing.py $P --out $OUT/reg_new_packed.json > $OUT/reg_new_packed.txt 2>&1) &
(cd /tmp/old && CUDA_VISIBLE_DEVICES=1 PYTHONPATH=/tmp/site:/tmp/old/src:/tmp/old/bench timeout $T python3 bench/bench_packing.py $P --out $OUT/reg_old_packed.json > $OUT/reg_old_packed.txt 2>&1) &
(CUDA_VISIBLE_DEVICES=2 timeout $T python3 bench/bench_finetune.py $F --json $OUT/reg_new_full.json > $OUT/reg_new_full.txt 2>&1) &
(cd /tmp/old && CUDA_VISIBLE_DEVICES=3 PYTHONPATH=/tmp/site:/tmp/old/src:/tmp/old/bench timeout $T python3 bench/bench_finetune.py $F --json $OUT/reg_old_full.json > $OUT/reg_old_full.txt 2>&1) &
wait
for f in $OUT/reg_*.txt; do echo "== $f"; grep -E "^\| (seed|B6)" $f; done
echo "call M done at ${SECONDS}s $(date)"
