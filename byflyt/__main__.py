"""Allow ``python -m byflyt``."""

from byflyt.cli import main

main()
