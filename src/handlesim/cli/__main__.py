"""`python -m handlesim.cli`."""

from . import main

main()
