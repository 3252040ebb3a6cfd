import sys

from ablate.mask.training.cli import main

sys.exit(main())
