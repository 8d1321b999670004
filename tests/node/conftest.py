"""The Node.js client test reuses the CLI test harness (daemons on 127.0.0.1)."""

from __future__ import annotations

import sys
from pathlib import Path

# The harness lives with the CLI tests; make it importable from here explicitly.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "cli"))
