source .whl/setup.sh
lscpu | grep -E "Model name|^CPU\(s\)" > $OUT/machine.txt; python3 -c "import torch;print(torch.__version__, torch.backends.cpu.get_cpu_capability())" >> $OUT/machine.txt
(timeout 550 python3 .whl/sweep.py /tmp/n "0 1 2 3 4 5 6 7 8 9 10 11" > $OUT/sweep_native.txt 2>&1) &
(CAP=avx2; export ATEN_CPU_CAPABILITY=avx2; timeout 550 python3 .whl/sweep.py /tmp/a "5 2 4 9" > $OUT/sweep_avx2.txt 2>&1) &
wait
python3 .whl/table.py /tmp/n > $OUT/table_native.md 2>&1
python3 .whl/table.py /tmp/a > $OUT/table_avx2.md 2>&1
tar czf $OUT/res2.tgz $(find /tmp/n /tmp/a \( -name recovery.csv -o -name "mask.csv" -o -name "run.log" -o -name "metrics.json" -path "*hardware*" \) 2>/dev/null) 2>/dev/null
cat $OUT/table_native.md $OUT/table_avx2.md $OUT/sweep_native.txt $OUT/sweep_avx2.txt
