"""Entry point of an executor process: `python -m scheduler.executor --driver-url ...`.

Launched by a Worker (standalone) or directly by the driver (local[N]); see
`scheduler/executor/runtime.py` for what it does. This module only starts it.
"""

from __future__ import annotations

import sys

from scheduler.executor.runtime import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
