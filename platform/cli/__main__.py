"""``python -m sabha.platform.cli``: the ``sabha`` command."""

from . import main

main()
