#!/usr/bin/env bash
# One-GPU before/after of a change: the old tree (build/gpu/old.tar, `git archive <rev> src bench config`)
# and this checkout, alternated in one call. $1 = ft | br.
set -u
what=$1
python -m pip install -q --no-index --no-deps --upgrade --target /tmp/site build/gpu/whl/*.whl >/dev/null 2>&1
mkdir -p /tmp/old && tar -xf build/gpu/old.tar -C /tmp/old
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader > $OUT/machine.txt
python -c "import torch; print(torch.__version__)" >> $OUT/machine.txt
lscpu | grep "Model name" >> $OUT/machine.txt
for run in "1 old" "2 new" "3 new" "4 old"; do
  set -- $run; n=$1; tree=$2
  if [ $tree = old ]; then src=/tmp/old; else src=$PWD; fi
  if [ $what = ft ]; then
    (cd $src && PYTHONPATH=/tmp/site:$src/src timeout 200 python bench/bench_finetune.py --only seed-GA16-split --warmup 4 --timed 12 --json $OUT/ft_${n}_${tree}.json) > $OUT/ft_${n}_${tree}.txt 2>&1
    tail -5 $OUT/ft_${n}_${tree}.txt
  else
    (cd $src && PYTHONPATH=/tmp/site:$src/src timeout 140 python bench/bench_bridge.py --shape real --only pipeline:seed --steps 8 --out $OUT/br_${n}_${tree}.json) > $OUT/br_${n}_${tree}.txt 2>&1
    tail -4 $OUT/br_${n}_${tree}.txt
  fi
  echo "== run $n $tree rc=$?"
done
