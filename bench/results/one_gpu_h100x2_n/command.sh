#!/bin/bash
# call N: the one-GPU path on the final tree of issue 70 (typed params, Trainer, driver/entries
# renames, merged) against 05bae26 on one host: the packed rows of both trees at once (GPUs 0, 1),
# then the full rows of both at once (GPUs 0, 1); each row alone on its GPU (calls H, L, M)
source .whl/setup.sh
nvidia-smi -L > $OUT/gpus.txt
P="--only seed-packed-flex-compile --policies causal --steps 30 --warmup 10 --window"
F="--only B6-adamw-compile --policies causal --passes 1 --warmup 3 --timed 8"
T=${1:-160}
(CUDA_VISIBLE_DEVICES=0 timeout $T python3 bench/bench_packing.py $P --out $OUT/reg_new_packed.json > $OUT/reg_new_packed.txt 2>&1) &
(cd /tmp/old && CUDA_VISIBLE_DEVICES=1 PYTHONPATH=/tmp/site:/tmp/old/src:/tmp/old/bench timeout $T python3 bench/bench_packing.py $P --out $OUT/reg_old_packed.json > $OUT/reg_old_packed.txt 2>&1) &
wait
(CUDA_VISIBLE_DEVICES=1 timeout $T python3 bench/bench_finetune.py $F --json $OUT/reg_new_full.json > $OUT/reg_new_full.txt 2>&1) &
(cd /tmp/old && CUDA_VISIBLE_DEVICES=0 PYTHONPATH=/tmp/site:/tmp/old/src:/tmp/old/bench timeout $T python3 bench/bench_finetune.py $F --json $OUT/reg_old_full.json > $OUT/reg_old_full.txt 2>&1) &
wait
for f in $OUT/reg_*.txt; do echo "== $f"; grep -E "^\| (seed|B6)" $f; done
tail -c 20000 $OUT/reg_old_packed.txt > $OUT/reg_old_packed.tail.txt; rm $OUT/reg_old_packed.txt
echo "call N done at ${SECONDS}s $(date)"
