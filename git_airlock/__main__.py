"""Allow ``python -m git_airlock``."""

from git_airlock.cli import main

main()
