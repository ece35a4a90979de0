"""``python -m turngym.cli``: the ``turngym`` command (``turngym train --nproc N`` runs it under torchrun)."""

from turngym.cli import main

main()
