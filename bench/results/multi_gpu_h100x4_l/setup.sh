# sourced by each call: the carried packages (once per machine) and the environment
[ -d /tmp/site ] || tar -C /tmp -xJf .whl/site.tar.xz
[ -d /tmp/old ] || (mkdir -p /tmp/old && tar -C /tmp/old -xzf .whl/old.tar.gz)
export PYTHONPATH=/tmp/site:$PWD/src:$PWD/bench
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_VERBOSITY=error
echo "# $(hostname) $(nvidia-smi -L | tr '\n' ';') tree $(cat .whl/tree 2>/dev/null)"
