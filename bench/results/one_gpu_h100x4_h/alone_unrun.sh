#!/bin/bash
# call I: the study's packed step on one GPU, alone: this tree, then 05bae26 (call H ran four at once)
source .whl/setup.sh
P="--only seed-packed-flex-compile --policies causal --steps 30 --warmup 10 --window"
timeout 95 python3 bench/bench_packing.py $P --out $OUT/alone_new_packed.json 2>&1 | grep -E "^\| seed"
(cd /tmp/old && PYTHONPATH=/tmp/site:/tmp/old/src:/tmp/old/bench timeout 95 python3 bench/bench_packing.py $P --out $OUT/alone_old_packed.json 2>&1 | grep -E "^\| seed")
echo "call I done at ${SECONDS}s"
