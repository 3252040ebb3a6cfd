# Installs the carried wheels beside the host's torch; source it from the repository root.
python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl > /tmp/site_install.log 2>&1 || { tail -5 /tmp/site_install.log; }
printf '#!/bin/sh\nexec python3 -m snakemake "$@"\n' > /tmp/site/bin/snakemake; chmod +x /tmp/site/bin/snakemake
export PYTHONPATH=/tmp/site:$PWD/src PATH=/tmp/site/bin:$PATH
