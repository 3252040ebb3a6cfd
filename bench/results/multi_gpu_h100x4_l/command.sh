#!/bin/bash
# call L: the study's packed step on one GPU alone, this tree (random_model keeps the config's
# flex_attention: calls H and J's new rows had run sdpa) then 05bae26; then the packed step at a
# global batch of 128 pairs (8x the seed's) on 1, 2 and 4 GPUs
source .whl/setup.sh
nvidia-smi -L > $OUT/gpus.txt
python3 -m compileall -q -j 32 /tmp/site src > /dev/null 2>&1
P="--only seed-packed-flex-compile --policies causal --steps 30 --warmup 10 --window"
CUDA_VISIBLE_DEVICES=0 timeout 150 python3 bench/bench_packing.py $P --out $OUT/alone_new_packed.json > $OUT/alone_new_packed.txt 2>&1
grep -E "^\| seed" $OUT/alone_new_packed.txt; echo "new done at ${SECONDS}s"
(cd /tmp/old && CUDA_VISIBLE_DEVICES=0 PYTHONPATH=/tmp/site:/tmp/old/src:/tmp/old/bench timeout 150 python3 bench/bench_packing.py $P --out $OUT/alone_old_packed.json > $OUT/alone_old_packed.txt 2>&1)
grep -E "^\| seed" $OUT/alone_old_packed.txt; echo "old done at ${SECONDS}s"
timeout $((590 - SECONDS)) python3 bench/bench_packing.py --ddp 2 4 --pairs 128 --only seed-packed-flex-compile --steps 20 --warmup 10 --out $OUT/packed_pairs128.json 2>&1 | tee $OUT/packed_pairs128.txt | grep -E '^\{|^\| seed|^### |^\| row' | cut -c1-300
echo "call L done at ${SECONDS}s $(date)"
