#!/bin/bash
# call K: a 4-GPU finetune through snakemake (smoke config) interrupted after checkpoint-10 and
# resumed, against call F's uninterrupted 4-GPU run
source .whl/setup.sh
nvidia-smi -L > $OUT/gpus.txt
F='^\s*(input|output|log|jobid|benchmark|reason|resources|wildcards|threads|priority):'
timeout 585 python3 bench/tools/multi_gpu_finetune.py --gpus 4 --cores 64 --against .whl/call_f_runs.json --out $OUT/resume.json 2>&1 | tee $OUT/resume.txt | grep -Ev "$F" | grep -v "Loading weights" | tail -16
mkdir -p $OUT/logs && cp -r /tmp/multi_gpu_finetune/results/smoke/logs/finetune* $OUT/logs/ 2>/dev/null
echo "call K done at ${SECONDS}s $(date)"
