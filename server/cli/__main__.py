"""`python -m server.cli` is `loket`: used where the entry-point script may not be on PATH."""

from server.cli import main

main()
