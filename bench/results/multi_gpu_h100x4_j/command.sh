#!/bin/bash
# call J: the study's packed step on one GPU alone (nothing else on the host): this tree, then
# 05bae26 (call H ran four rows at once); then the loss curves' tolerance through snakemake: one
# GPU again with compile_layers on (fused kernels: the same function, other rounding)
source .whl/setup.sh
nvidia-smi -L > $OUT/gpus.txt
python3 -m compileall -q -j 32 /tmp/site src > /dev/null 2>&1
P="--only seed-packed-flex-compile --policies causal --steps 30 --warmup 10 --window"
CUDA_VISIBLE_DEVICES=0 timeout 150 python3 bench/bench_packing.py $P --out $OUT/alone_new_packed.json > $OUT/alone_new_packed.txt 2>&1
grep -E "^\| seed" $OUT/alone_new_packed.txt; echo "new done at ${SECONDS}s"
(cd /tmp/old && CUDA_VISIBLE_DEVICES=0 PYTHONPATH=/tmp/site:/tmp/old/src:/tmp/old/bench timeout 150 python3 bench/bench_packing.py $P --out $OUT/alone_old_packed.json > $OUT/alone_old_packed.txt 2>&1)
grep -E "^\| seed" $OUT/alone_old_packed.txt; echo "old done at ${SECONDS}s"
F='^\s*(input|output|log|jobid|benchmark|reason|resources|wildcards|threads|priority):'
timeout $((590 - SECONDS)) python3 bench/tools/multi_gpu_finetune.py --gpus 4 --cores 64 --against .whl/call_f_runs.json --no-resume --control compile_layers=true --out $OUT/control.json 2>&1 | tee $OUT/control.txt | grep -Ev "$F" | grep -v "Loading weights" | tail -8
echo "call J done at ${SECONDS}s $(date)"
