#!/bin/bash
# call G: through snakemake at the real shape (smoke config): one GPU with the step in 4
# micro-batches (the loss curves' tolerance), a 4-GPU finetune interrupted after checkpoint-10 and
# resumed (against call F's uninterrupted 4-GPU run); then the packed step at 128 pairs on 1 and 2 GPUs
source .whl/setup.sh
nvidia-smi -L > $OUT/gpus.txt
python3 -m compileall -q -j 32 /tmp/site src > /dev/null 2>&1
F='^\s*(input|output|log|jobid|benchmark|reason|resources|wildcards|threads|priority):'
timeout 380 python3 bench/tools/multi_gpu_finetune.py --gpus 4 --cores 64 --micro --against .whl/call_f_runs.json --out $OUT/multi_gpu_finetune.json 2>&1 | tee $OUT/multi_gpu_finetune.txt | grep -Ev "$F" | grep -v "Loading weights" | tail -25
mkdir -p $OUT/logs && cp -r /tmp/multi_gpu_finetune/results/smoke/logs/finetune* $OUT/logs/ 2>/dev/null
echo "snakemake part done at ${SECONDS}s $(date)"
timeout $((590 - SECONDS)) python3 bench/bench_packing.py --ddp 2 --pairs 128 --only seed-packed-flex-compile --steps 20 --warmup 10 --out $OUT/packed_pairs128.json 2>&1 | tee $OUT/packed_pairs128.txt | grep -E "^\| seed|^### |^\| row"
echo "call G done at ${SECONDS}s $(date)"
