"""`python -m syncd` runs the CLI."""

from syncd.entry import main

main()
