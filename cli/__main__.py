"""`python -m cli`: the sparkctl command line (how daemons re-execute themselves)."""

from __future__ import annotations

from cli.main import main

main()
