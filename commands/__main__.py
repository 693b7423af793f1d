"""`python -m aupctl.commands`: the same as the `aupctl` script."""

import sys

from . import main

sys.exit(main())
