source .whl/setup.sh
python3 -c "import snakemake.cli, lm_eval, lm_eval.api.metrics, datasets, mistral_common, transformers, ablate.cli, ablate.mask.evaluation" || exit 3
which python3; python3 -m snakemake --version || exit 4
lscpu | grep -E "Model name|^CPU\(s\)" > $OUT/machine.txt; python3 -c "import torch;print(torch.__version__, torch.backends.cpu.get_cpu_capability())" >> $OUT/machine.txt; nvidia-smi -L >> $OUT/machine.txt
timeout 540 python3 .whl/sweep.py /tmp/s1 "5 0 1 2 3 4 6 7" "mask.finetune.defaults.learning_rate=5.0e-4,1.0e-3" > $OUT/sweep.txt 2>&1
python3 .whl/table.py /tmp/s1 > $OUT/table.md 2>&1
tar czf $OUT/res.tgz $(cd / && find /tmp/s1 \( -name recovery.csv -o -name "mask.csv" -o -name "*.log" -path "*finetune*" \) 2>/dev/null) run.log 2>/dev/null
tail -c 3000 /tmp/s1/seed5/run.log > $OUT/seed5_tail.txt
cat $OUT/table.md; cat $OUT/sweep.txt | tail -20
