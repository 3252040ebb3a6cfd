"""``python -m ablate.mask.training``: ``ablate train`` (:mod:`ablate.mask.training.cli`)."""

import sys

from ablate.mask.training.cli import main

sys.exit(main())
