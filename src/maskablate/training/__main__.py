import sys

from maskablate.training.cli import main

sys.exit(main())
