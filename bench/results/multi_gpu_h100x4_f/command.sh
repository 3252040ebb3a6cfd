#!/bin/bash
# call F: the smoke config's 3A finetune through snakemake with gpu 1, 2, 4 and a 4-GPU run
# interrupted after checkpoint-10 and resumed; then the 8B shape on 1 (does it fit?) and 2 GPUs
source .whl/setup.sh
nvidia-smi -L > $OUT/gpus.txt; nvidia-smi topo -m > $OUT/topo.txt 2>&1
python3 -c "import torch, transformers; print(torch.__version__, transformers.__version__)"
python3 -m compileall -q -j 32 /tmp/site src > /dev/null 2>&1
F='^\s*(input|output|log|jobid|benchmark|reason|resources|wildcards|threads|priority):'
timeout 420 python3 bench/tools/multi_gpu_finetune.py --gpus 2 4 --cores 64 --out $OUT/multi_gpu_finetune.json 2>&1 | tee $OUT/multi_gpu_finetune.txt | grep -Ev "$F" | tail -45
mkdir -p $OUT/logs && cp -r /tmp/multi_gpu_finetune/results/smoke/logs/finetune* $OUT/logs/ 2>/dev/null
echo "snakemake part done at ${SECONDS}s $(date)"
timeout $((585 - SECONDS)) python3 bench/bench_finetune.py --shape 8b --ddp 2 --only B4-GA4-adafactor-split-compile --warmup 1 --timed 3 --json $OUT/8b_ddp2.json 2>&1 | tee $OUT/8b_ddp2.txt | grep -v '^{' | tail -20
echo "call F done at ${SECONDS}s $(date)"
