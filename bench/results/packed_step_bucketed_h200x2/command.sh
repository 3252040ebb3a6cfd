# Issue 81: the study's packed step at 1 and 2 GPUs, this tree (new: bucketed reduce-scatter in the
# last backward) against 35e2b0d (old), alternated, on one host in one call.
source .whl/setup.sh
export PYTHONPATH=/tmp/site
mkdir -p /tmp/old && tar -C /tmp/old -xzf .whl/old.tar.gz
R=$OUT/r; mkdir -p $R
(hostname; nvidia-smi -L; lscpu | grep "Model name"; python3 -c "import torch;print(torch.__version__)") > $R/machine.txt 2>&1
P="--ddp 2 --only seed-packed-flex-compile --steps 30 --warmup 10"
i=0
for tree in new old new old new old; do
  [ $SECONDS -gt 300 ] && break
  i=$((i+1)); src=$PWD; [ $tree = old ] && src=/tmp/old
  (cd $src && PYTHONPATH=/tmp/site:$src/src:$src/bench timeout 120 python3 bench/bench_packing.py $P --out $R/${i}_${tree}.json > $R/${i}_${tree}.txt 2>&1)
  echo "run $i $tree rc=$? at ${SECONDS}s"; grep -E '^\| ' $R/${i}_${tree}.txt | tail -4
done
echo "command: bench/bench_packing.py $P (new = main tree, old = 35e2b0d)" > $R/command.txt
