"""`python -m booth_client --config FILE`: the kiosk without the server's CLI."""

from booth_client.cli import main

main()
