"""`python -m aupctl.commands`: the same as the `aupctl` script."""

from . import main

main()
