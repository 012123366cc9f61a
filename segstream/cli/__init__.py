"""The command line: `segstream ...` and `./dev demo`."""
