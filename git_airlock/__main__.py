"""Allow ``python -m git_airlock``."""

from git_airlock.entry import main

main()
